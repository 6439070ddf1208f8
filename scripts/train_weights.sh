#!/usr/bin/env bash
# Trains the eight shipped models and copies each finished compact checkpoint to weights/<run>.safetensors.
#   bash scripts/train_weights.sh [run ...]              CPU budget: options/train/<run>_cpu.yml, one run after another
#   BUDGET=gpu bash scripts/train_weights.sh [run ...]   GPU budget: <run>_gpu.yml, all runs side by side on one GPU
# Runs default to all eight. PARALLEL=1/0 overrides side by side / one after another.
# Needs datasets/ prepared (python -m restore_dhp.prepare_data --source ../shared/datasets --dest datasets).
# Safe to re-run after a kill: each run resumes from its last saved state (--auto_resume).
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
BUDGET=${BUDGET:-cpu}
case $BUDGET in cpu) PARALLEL=${PARALLEL:-0} ;; gpu) PARALLEL=${PARALLEL:-1} ;;
  *) echo "BUDGET must be cpu or gpu, got '$BUDGET'" >&2; exit 2 ;; esac
runs=("$@")
[ ${#runs[@]} -eq 0 ] && runs=(dncnn_s70_baseline srresnet_x4_baseline dncnn_s70_dhp60 dncnn_s70_dhp40 dncnn_s70_dhp20
                                srresnet_x4_dhp60 srresnet_x4_dhp40 srresnet_x4_dhp20)
for run in "${runs[@]}"; do
  [ -f "options/train/${run}_${BUDGET}.yml" ] || { echo "no option file options/train/${run}_${BUDGET}.yml" >&2; exit 2; }
done
mkdir -p weights logs

train_one() {
  local run=$1 opt=options/train/$1_${BUDGET}.yml start
  echo "== $(date -u +%FT%TZ) start $run ($opt)"
  start=$(date +%s)
  if $PY -m restore_dhp.train -opt "$opt" --auto_resume > "logs/${run}_${BUDGET}.log" 2>&1; then
    cp "experiments/${run}_${BUDGET}/models/net_g_latest.safetensors" "weights/${run}.safetensors"
    echo "== $(date -u +%FT%TZ) done $run in $(( $(date +%s) - start )) s -> weights/${run}.safetensors"
  else
    echo "== $(date -u +%FT%TZ) FAILED $run (see logs/${run}_${BUDGET}.log)"
    return 1
  fi
}

status=0
if [ "$PARALLEL" = 1 ]; then
  pids=()
  for run in "${runs[@]}"; do train_one "$run" & pids+=($!); done
  for pid in "${pids[@]}"; do wait "$pid" || status=1; done
else
  for run in "${runs[@]}"; do train_one "$run" || status=1; done
fi
exit $status
