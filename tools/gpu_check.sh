#!/usr/bin/env bash
# The prepared check for a lent GPU: `make gpu-check` here, or `bash tools/gpu_check.sh` on the device machine.
#   1. the CUDA tests (deploy: CUDA graphs, fp16/bf16; the captured / mixed-precision training step;
#      GPU-resident training batches), which skip on a machine without CUDA;
#   2. inference speed of the shipped models per backend and precision, all side by side
#      (python -m restore_dhp.speedup: speedup vs FLOPs ratio at a small, an Urban100-sized and a large input);
#   3. the CUDA kernels of one forward (speedup --profile --device cuda): where the time goes;
#   4. training-step speed, plain vs DHP search, eager vs captured, batch 16 and 64.
# Everything is written under $OUT (default gpu-check/). Needs the shipped weights, no datasets.
# PY picks the interpreter (default python3: the device machine's, which has torch); SKIP_TESTS=1 leaves out
# part 1 (research/gpu_campaign/gpu_session.sh runs the tests beside its training runs), SKIP_STEP=1 part 4; --list-tests
# prints part 1's files.
set -u
cd "$(dirname "$0")/.."
TESTS="tests/test_deploy.py tests/test_train_step.py tests/test_device_cache.py tests/test_dhp_core.py"
[ "${1:-}" = --list-tests ] && { echo "$TESTS"; exit 0; }
PY=${PY:-python3}
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
$PY -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "gpu_check: no CUDA device here")' || exit 2
status=0
step() {  # step NAME COMMAND...: run one part, keep its output, go on after a failure
  local name=$1; shift
  echo "== $(date -u +%T) $name"
  "$@" > "$OUT/$name.txt" 2>&1 || { status=1; echo "   FAILED (exit $?): $OUT/$name.txt"; }
  tail -n 4 "$OUT/$name.txt"
}
[ "${SKIP_TESTS:-0}" = 1 ] || step cuda_tests $PY -m pytest -q -p no:cacheprovider -rs $TESTS
# sizes: the defaults (a small and an Urban100 / BSD68 input) and a large one (1440x2560 SR output, 1080p denoising),
# where a GPU is busy enough for the FLOPs cut to show; bf16 measured as fp16 did on an H200 (reports/*/speedup_gpu.txt)
step speedup_gpu_sr $PY -m restore_dhp.speedup --device cuda --weights weights/srresnet_x4_*.safetensors \
  --backends eager fused compiled --precisions fp32 fp16 --sizes 64x64 170x256 360x640 --pad-to 32 \
  --out "$OUT/speedup_gpu_sr_table.txt"
step speedup_gpu_denoise $PY -m restore_dhp.speedup --device cuda --weights weights/dncnn_s70_*.safetensors \
  --backends eager fused compiled --precisions fp32 fp16 --sizes 128x128 321x481 1080x1920 --pad-to 32 \
  --out "$OUT/speedup_gpu_denoise_table.txt"
# where a forward's GPU time goes: kernels of SR baseline / DHP-20 and DnCNN baseline / DHP-40, fused and compiled, fp16
step kernels_gpu $PY -m restore_dhp.speedup --device cuda --profile --backends fused compiled --precisions fp16 \
  --weights weights/srresnet_x4_baseline.safetensors weights/srresnet_x4_dhp20.safetensors --sizes 170x256 --repeats 5
step kernels_gpu_denoise $PY -m restore_dhp.speedup --device cuda --profile --backends fused compiled --precisions fp16 \
  --weights weights/dncnn_s70_baseline.safetensors weights/dncnn_s70_dhp40.safetensors --sizes 321x481 --repeats 5
[ "${SKIP_STEP:-0}" = 1 ] || step search_step_gpu $PY -m research.probes.benchmark_search_step --devices cuda --batches 16 64 --modes eager captured \
  --steps 40 --rounds 3
exit $status
