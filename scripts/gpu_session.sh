#!/usr/bin/env bash
# One prepared run for a lent GPU machine (the device tool runs it in a copy of this checkout):
#   1. set-up (.device_data is built here first by scripts/make_device_data.py and carried):
#      BasicSR and its pure-Python needs from .device_data/site (the device image has Python 3.12,
#      torch and opencv but no BasicSR, addict or lmdb, and no distutils: small stubs stand in for the last
#      two), datasets/ -> .device_data/datasets, the "291" split;
#   2. on a quiet GPU: inference speed tables and the training-step benchmark (scripts/gpu_check.sh);
#   3. for MINUTES of wall time, the two groups side by side and each group's runs one at a time: the SR experiment
#      (options/experiments/sr_inv_*.yml) and the continuation of the eight shipped models
#      (BUDGET=gpu-continue scripts/train_weights.sh), plus the CUDA tests;
#   4. results packed under $OUT (weights, validation curves, logs) for the machine that asked.
# Usage there: OUT=/path MINUTES=5 bash scripts/gpu_session.sh
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-session}
MINUTES=${MINUTES:-5}
PY=${PY:-python3}
mkdir -p "$OUT" logs
export PYTHONPATH=$PWD/.device_data/site:$PWD PYTHONWARNINGS=ignore
[ -e datasets ] || ln -s .device_data/datasets datasets
# the held-out split of "291" as made on the machine that built .device_data (scripts/make_device_data.py)
mkdir -p datasets/SR291_train/HR datasets/SR291_val/HR
for f in $(ls datasets/SR291/HR); do
  if grep -qx "$f" datasets/SR291_val.txt; then ln -sf ../../SR291/HR/$f datasets/SR291_val/HR/$f
  else ln -sf ../../SR291/HR/$f datasets/SR291_train/HR/$f; fi
done
echo "291 split: $(ls datasets/SR291_train/HR | wc -l) train, $(ls datasets/SR291_val/HR | wc -l) validation"

echo "== $(date -u +%T) benchmarks on a quiet GPU"
OUT=$OUT/check PY=$PY SKIP_TESTS=1 SKIP_STEP=${SKIP_STEP:-0} timeout ${CHECK_LIMIT:-240} bash scripts/gpu_check.sh

echo "== $(date -u +%T) experiment + continuation side by side, $MINUTES min"
limit=$(awk "BEGIN {print int($MINUTES * 60 + 60)}")
timeout "$limit" $PY scripts/run_side_by_side.py --opts ${EXPERIMENT:-options/experiments/sr_inv_*_s1?.yml} \
  --minutes "$MINUTES" --calib-iters 30 --one-at-a-time \
  --summary "$OUT/sr_inversion_validation.md" --python "$PY" > "$OUT/experiment.txt" 2>&1 &
exp=$!
BUDGET=gpu-continue SKIP_REPORTS=1 PY=$PY timeout "$limit" bash scripts/train_weights.sh --minutes "$MINUTES" \
  > "$OUT/continue.txt" 2>&1 &
cont=$!
$PY -m pytest -q -p no:cacheprovider -rs ${TESTS:-$(bash scripts/gpu_check.sh --list-tests)} > "$OUT/cuda_tests.txt" 2>&1
tail -n 3 "$OUT/cuda_tests.txt"
wait $exp; echo "experiment exit $?"; tail -n 12 "$OUT/experiment.txt"
wait $cont; echo "continuation exit $?"; tail -n 14 "$OUT/continue.txt"

cat logs/continue_gpu_validation.md "$OUT/sr_inversion_validation.md" 2>/dev/null
# what comes back (at most 8 files): the weights in two archives, everything else in a third
tar czf "$OUT/weights_sr.tgz" weights/srresnet_x4_*.safetensors
tar czf "$OUT/weights_denoise.tgz" weights/dncnn_s70_*.safetensors
tar czf "$OUT/results.tgz" --exclude='*.tgz' "$OUT" logs experiments/*/train_*.log \
  experiments/*/models/search_summary.json 2>/dev/null
find "$OUT" -mindepth 1 ! -name '*.tgz' -delete
ls -la "$OUT"
