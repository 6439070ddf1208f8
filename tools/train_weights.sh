#!/usr/bin/env bash
# Trains the shipped models and installs each finished compact checkpoint as weights/<model>.safetensors.
#   bash tools/train_weights.sh [model ...]              CPU budget (<model>_cpu recipes), one run after another
#   BUDGET=gpu bash tools/train_weights.sh [model ...]   GPU budget (<model>_gpu), all runs side by side on one GPU,
#       then the stages that follow in the shipped chain (DnCNN: <model>_bnfreeze_gpu, BatchNorm frozen, from the
#       first stage's result)
#   BUDGET=gpu-continue bash tools/train_weights.sh --minutes 10 [model ...]   (or --iters N: N iterations each)
#       continues the shipped weights (<model>_continue_gpu, widths fixed) one after another on one GPU for an equal
#       number of iterations that fills the wall time, writes the results over weights/<model>.safetensors (the
#       shipped file's history stays under `parent`; SR then gets its 200-iteration BatchNorm-frozen stage,
#       <model>_bnfreeze_gpu), then re-runs the benchmark and regenerates the model card and the README results
#       (SKIP_REPORTS=1: not here, e.g. on the GPU machine).
# Every run goes through tools/run_side_by_side.py (its log in logs/<run>.log, its share of the CPU cores);
# a run's option file and overlay: python -m tools.recipes show <run>.
# Models default to the catalogue's (python -m restore_dhp.catalogue runs). PARALLEL=1/0 overrides side by side / one
# after another; BATCH=64: the first stage at that batch, lr scaled by the square root of the batch ratio (the fast
# recipe); FORCE="key=value ...": more BasicSR --force_yml settings for every stage (e.g. train:amp=bf16).
# DRY=1 prints each run's train command and trains nothing.
# Needs datasets/ prepared (python -m restore_dhp.prepare_data --source ../shared/datasets --dest datasets).
# Safe to re-run after a kill: each run resumes from its last saved state (--auto_resume).
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
BUDGET=${BUDGET:-cpu}
case $BUDGET in
  cpu) stage=cpu; [ "${PARALLEL:-0}" = 1 ] && order=() || order=(--one-at-a-time) ;;
  gpu) stage=gpu; [ "${PARALLEL:-1}" = 1 ] && order=() || order=(--one-at-a-time) ;;
  gpu-continue) stage=continue_gpu; order=(--one-at-a-time) ;;
  *) echo "BUDGET must be cpu, gpu or gpu-continue, got '$BUDGET'" >&2; exit 2 ;;
esac
fill=()   # --minutes M (calibrated to fill M minutes) or --iters N (N each, no calibration)
case ${1:-} in --minutes|--iters) fill=("$1" "${2:?$1 needs a number}"); shift 2 ;; esac
if [ "$BUDGET" = gpu-continue ] && [ ${#fill[@]} -eq 0 ]; then
  echo "BUDGET=gpu-continue needs --minutes M (the wall time to fill) or --iters N" >&2; exit 2
fi
models=("$@")
if [ ${#models[@]} -eq 0 ]; then  # the catalogue's models (restore_dhp/catalogue.py), baselines first
  listed=$($PY -m restore_dhp.catalogue runs) || exit 2
  mapfile -t models <<< "$listed"
fi
first=()
for model in "${models[@]}"; do first+=("${model}_$stage"); done
listed=$($PY -m tools.recipes next "$stage" "${models[@]}") || exit 2
later=()
[ -n "$listed" ] && mapfile -t later <<< "$listed"
batch=() force=() dry=()
[ -n "${BATCH:-}" ] && batch=(--batch "$BATCH")
[ -n "${FORCE:-}" ] && read -ra force <<< "--force $FORCE"
[ "${DRY:-0}" = 1 ] && dry=(--dry-run)
mkdir -p weights logs

side_by_side() {  # side_by_side SUMMARY RUN...: train the runs, install each result in weights/
  local summary=$1; shift
  $PY -m tools.run_side_by_side --runs "$@" "${order[@]}" --install weights --summary "$summary" \
    --python "$PY" "${force[@]}" "${dry[@]}"
}

side_by_side "logs/${stage}_validation.md" "${first[@]}" "${fill[@]}" "${batch[@]}" || exit 1
if [ ${#later[@]} -gt 0 ]; then
  side_by_side "logs/bnfreeze_gpu_validation.md" "${later[@]}" || exit 1
fi
[ "$BUDGET" = gpu-continue ] && [ "${SKIP_REPORTS:-0}" != 1 ] && [ ${#dry[@]} -eq 0 ] && exec bash tools/update_reports.sh
exit 0
