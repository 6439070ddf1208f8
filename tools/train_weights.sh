#!/usr/bin/env bash
# Trains the shipped models and copies each finished compact checkpoint to weights/<run>.safetensors.
#   bash tools/train_weights.sh [run ...]              CPU budget: options/train/<run>_cpu.yml, one run after another
#   BUDGET=gpu bash tools/train_weights.sh [run ...]   GPU budget: <run>_gpu.yml, all runs side by side on one GPU
#   BUDGET=gpu-continue bash tools/train_weights.sh --minutes 10 [run ...]   (or --iters N: N iterations each)
#       continues the shipped weights (<run>_continue_gpu.yml, widths fixed) one after another on one GPU for an equal
#       number of iterations that fills the wall time (tools/run_side_by_side.py), writes the results over
#       weights/<run>.safetensors (the shipped file's history stays under `parent`; SR then gets its 200-iteration
#       BatchNorm-frozen stage, <run>_bnfreeze_gpu.yml), then re-runs the benchmark
#       and regenerates the model card and the README results (SKIP_REPORTS=1: not here, e.g. on the GPU machine).
#       BATCH=64: the continuation at that batch, lr scaled by the square root of the batch ratio (the fast recipe);
#       FORCE="key=value ...": more BasicSR --force_yml settings for both stages (e.g. train:amp=bf16).
# Runs default to the catalogue's (python -m restore_dhp.catalogue runs); with BUDGET=gpu the four DnCNN runs then get their second stage,
# dncnn_s70_<variant>_bnfreeze (BatchNorm frozen, continuing from the first stage's result), which
# writes weights/dncnn_s70_<variant>.safetensors. PARALLEL=1/0 overrides side by side / one after another.
# Needs datasets/ prepared (python -m restore_dhp.prepare_data --source ../shared/datasets --dest datasets).
# Safe to re-run after a kill: each run resumes from its last saved state (--auto_resume).
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
BUDGET=${BUDGET:-cpu}
case $BUDGET in cpu) PARALLEL=${PARALLEL:-0} ;; gpu) PARALLEL=${PARALLEL:-1} ;; gpu-continue) ;;
  *) echo "BUDGET must be cpu, gpu or gpu-continue, got '$BUDGET'" >&2; exit 2 ;; esac
fill=()   # gpu-continue: --minutes M (calibrated to fill M minutes) or --iters N (N each, no calibration)
case ${1:-} in --minutes|--iters) fill=("$1" "${2:?$1 needs a number}"); shift 2 ;; esac
runs=("$@")
stage2=()
if [ ${#runs[@]} -eq 0 ]; then  # the catalogue's runs (restore_dhp/catalogue.py), baselines first
  listed=$($PY -m restore_dhp.catalogue runs) || exit 2
  mapfile -t runs <<< "$listed"
  if [ "$BUDGET" = gpu ]; then
    listed=$($PY -m restore_dhp.catalogue runs --task denoise --suffix _bnfreeze) || exit 2
    mapfile -t stage2 <<< "$listed"
  fi
fi
if [ "$BUDGET" = gpu-continue ]; then
  [ ${#fill[@]} -eq 2 ] || { echo "BUDGET=gpu-continue needs --minutes M (the wall time to fill) or --iters N" >&2; exit 2; }
  opts=()
  for run in "${runs[@]}"; do opts+=("options/train/${run}_continue_gpu.yml"); done
  extra=() force=()
  [ -n "${BATCH:-}" ] && extra=(--batch "$BATCH")
  [ -n "${FORCE:-}" ] && read -ra force <<< "--force $FORCE"
  $PY -m tools.run_side_by_side --opts "${opts[@]}" "${fill[@]}" --one-at-a-time --install-weights \
    --summary logs/continue_gpu_validation.md --python "$PY" "${extra[@]}" "${force[@]}" || exit 1
  # then a run whose continuation trains BatchNorm gets its BatchNorm-frozen stage (SR: <run>_bnfreeze_gpu.yml,
  # 200 iterations; the DnCNN continuation files freeze BatchNorm themselves)
  frozen=()
  for run in "${runs[@]}"; do
    grep -q freeze_bn_iter "options/train/${run}_continue_gpu.yml" && continue
    [ -f "options/train/${run}_bnfreeze_gpu.yml" ] && frozen+=("options/train/${run}_bnfreeze_gpu.yml")
  done
  if [ ${#frozen[@]} -gt 0 ]; then
    $PY -m tools.run_side_by_side --opts "${frozen[@]}" --one-at-a-time --install-weights \
      --summary logs/bnfreeze_gpu_validation.md --python "$PY" "${force[@]}" || exit 1
  fi
  [ "${SKIP_REPORTS:-0}" = 1 ] && exit 0
  exec bash tools/update_reports.sh
fi
for run in "${runs[@]}" "${stage2[@]}"; do
  [ -f "options/train/${run}_${BUDGET}.yml" ] || { echo "no option file options/train/${run}_${BUDGET}.yml" >&2; exit 2; }
done
mkdir -p weights logs

train_one() {
  local run=$1 opt=options/train/$1_${BUDGET}.yml start
  local target=${run%_bnfreeze}   # a second stage replaces its model's weights
  echo "== $(date -u +%FT%TZ) start $run ($opt)"
  start=$(date +%s)
  if $PY -m restore_dhp.train -opt "$opt" --auto_resume > "logs/${run}_${BUDGET}.log" 2>&1; then
    cp "experiments/${run}_${BUDGET}/models/net_g_latest.safetensors" "weights/${target}.safetensors"
    echo "== $(date -u +%FT%TZ) done $run in $(( $(date +%s) - start )) s -> weights/${target}.safetensors"
  else
    echo "== $(date -u +%FT%TZ) FAILED $run (see logs/${run}_${BUDGET}.log)"
    return 1
  fi
}

train_all() {
  local status=0 pids=() run pid
  if [ "$PARALLEL" = 1 ]; then  # each run its share of the cores (as run_side_by_side.child_env does)
    local -x OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( $(nproc) / $# > 1 ? $(nproc) / $# : 1 ))}
    for run in "$@"; do train_one "$run" & pids+=($!); done
    for pid in "${pids[@]}"; do wait "$pid" || status=1; done
  else
    for run in "$@"; do train_one "$run" || status=1; done
  fi
  return $status
}

train_all "${runs[@]}" || exit 1
[ ${#stage2[@]} -eq 0 ] || train_all "${stage2[@]}"
