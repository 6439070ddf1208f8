#!/usr/bin/env bash
# Trains the eight shipped models with the CPU-budget option files, one after another,
# and copies each finished compact checkpoint to weights/<name>.safetensors.
#   bash scripts/train_cpu_weights.sh [run ...]   (default: all eight, in this order)
# Needs datasets/ prepared (python -m restore_dhp.prepare_data --source ../shared/datasets --dest datasets).
# Safe to re-run after a kill: each run resumes from its last saved state (--auto_resume).
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
runs=("$@")
[ ${#runs[@]} -eq 0 ] && runs=(dncnn_s70_baseline srresnet_x4_baseline dncnn_s70_dhp60 dncnn_s70_dhp40 dncnn_s70_dhp20
                                srresnet_x4_dhp60 srresnet_x4_dhp40 srresnet_x4_dhp20)
mkdir -p weights logs
for run in "${runs[@]}"; do
  opt=options/train/${run}_cpu.yml
  echo "== $(date -u +%FT%TZ) start $run ($opt)"
  start=$(date +%s)
  if $PY -m restore_dhp.train -opt "$opt" --auto_resume > "logs/${run}_cpu.log" 2>&1; then
    src=experiments/${run}_cpu/models/net_g_latest.safetensors
    cp "$src" "weights/${run}.safetensors"
    echo "== $(date -u +%FT%TZ) done $run in $(( $(date +%s) - start )) s -> weights/${run}.safetensors"
  else
    echo "== $(date -u +%FT%TZ) FAILED $run (see logs/${run}_cpu.log)"
  fi
done
