#!/usr/bin/env bash
# One prepared run for a lent GPU machine (the device tool runs it in a copy of this checkout):
#   1. set-up (.device_data is built here first by research/gpu_campaign/make_device_data.py and carried):
#      BasicSR and its pure-Python needs from .device_data/site (the device image has Python 3.12,
#      torch and opencv but no BasicSR, addict or lmdb, and no distutils: small stubs stand in for the last
#      two), datasets/ -> .device_data/datasets, the "291" split; the CUDA tests start in the background;
#   2. the SR experiment on the held-out split (research/sr_inversion/options/sr_inv_<arm>_s10/_s11.yml), each arm's
#      two seeds side by side, the arms one after another (ARMS);
#   3. the full-width SR network trained with the DHP recipe at the shipped budget
#      (options/train/srresnet_x4_dhp100_gpu.yml) -> weights/srresnet_x4_dhp100.safetensors;
#   4. the continuation of every shipped model, CONT_ITERS iterations each, one after another
#      (BUDGET=gpu-continue tools/train_weights.sh --iters), results over weights/ (history under `parent`);
#   5. this GPU's width-latency curve (speedup --uniform-widths, fused fp32/fp16); optionally (SPEED=1) the inference speed tables and training-step benchmark (tools/gpu_check.sh);
#   6. pruning for this GPU (issue 20; DEVICE=cuda research/device_latency/device_search.sh): latency tables of SRResNet at 170x256 and
#      DnCNN at 321x481, fused fp16 and fp32, batch 1 (latency_tables/cuda-<gpu>/), the searches to 60/40/20% of the
#      fp16 table's full-width latency (recipes <net>_gpu{60,40,20}_gpu, research/device_latency/options/, side by side; LAT_FORCE="train:total_iter=N
#      dhp:max_search_iter=M" shortens them), and their speedup over the baseline in every GPU backend;
#   7. results packed under $OUT (weights, validation curves, logs, latency tables and reports) for the machine that asked.
# Each part has a time limit (EXP_LIMIT, FULL_LIMIT, CONT_LIMIT, WIDTH_LIMIT, LAT_LIMIT seconds), cut further so that everything
# is packed DEADLINE seconds after the start; the continuation installs each model's result as soon as it exists.
# Usage there: OUT=/path bash research/gpu_campaign/gpu_session.sh      (SKIP_EXP=1 / SKIP_FULL=1 / SKIP_CONT=1 / SKIP_LAT=1 leave parts out)
# DRY=1: a few iterations of every part, a CPU check of this script in a copy of the checkout without datasets/.
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-gpu-session}
PY=${PY:-python3}
ARMS=${ARMS:-baseline dhp100 dhp60}
CONT_ITERS=${CONT_ITERS:-3000}
T0=$(date +%s)
DEADLINE=${DEADLINE:-540}   # seconds after the start by which everything is packed (the call's limit, less a margin)
limit() {  # limit S: S, or what is left before the deadline less 25 s for packing, whichever is less (at least 1)
  local left=$(( DEADLINE - 25 - ($(date +%s) - T0) ))
  [ "$left" -lt "$1" ] && echo $(( left > 1 ? left : 1 )) || echo "$1"
}
exp_force=() full_force=()
if [ "${DRY:-0}" = 1 ]; then
  CONT_ITERS=4 exp_force=(--iters 6)
  full_force=(--force_yml train:total_iter=8 dhp:min_search_iter=4 dhp:max_search_iter=4 val:val_freq=8
              logger:save_checkpoint_freq=8 train:scheduler:milestones=[4,6,7])
fi
mkdir -p "$OUT" logs weights
export PYTHONPATH=$PWD/.device_data/site:$PWD PYTHONWARNINGS=ignore
[ -e datasets ] || ln -s .device_data/datasets datasets
# the held-out split of "291" as made on the machine that built .device_data (research/gpu_campaign/make_device_data.py)
mkdir -p datasets/SR291_train/HR datasets/SR291_val/HR
for f in $(ls datasets/SR291/HR); do
  if grep -qx "$f" datasets/SR291_val.txt; then ln -sf ../../SR291/HR/$f datasets/SR291_val/HR/$f
  else ln -sf ../../SR291/HR/$f datasets/SR291_train/HR/$f; fi
done
echo "291 split: $(ls datasets/SR291_train/HR | wc -l) train, $(ls datasets/SR291_val/HR | wc -l) validation"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader

$PY -m pytest -q -p no:cacheprovider -rs $(bash tools/gpu_check.sh --list-tests) > "$OUT/cuda_tests.txt" 2>&1 &
tests=$!

if [ "${SKIP_EXP:-0}" != 1 ]; then
  echo "== $(date -u +%T) experiment: $ARMS (two seeds side by side each)"
  for arm in $ARMS; do
    timeout "$(limit ${EXP_LIMIT:-90})" $PY -m tools.run_side_by_side --opts research/sr_inversion/options/sr_inv_${arm}_s1?.yml \
      "${exp_force[@]}" --python "$PY" >> "$OUT/experiment.txt" 2>&1
    echo "   $(date -u +%T) $arm exit $?"
  done
  names=()   # the curves from the runs' checkpoints (tools/curves.py)
  for arm in $ARMS; do for s in s10 s11; do [ -d "experiments/sr_inv_${arm}_$s" ] && names+=("sr_inv_${arm}_$s"); done; done
  [ ${#names[@]} -gt 0 ] && $PY -c 'import sys; from tools.curves import write_summary
write_summary(sys.argv[1], sys.argv[2:])' "$OUT/sr_inversion_validation.md" "${names[@]}"
fi

if [ "${SKIP_FULL:-0}" != 1 ]; then
  echo "== $(date -u +%T) full width trained as DHP, shipped budget"
  s=$(date +%s)
  if timeout "$(limit ${FULL_LIMIT:-150})" $PY -m restore_dhp.train -opt options/train/srresnet_x4_dhp100_gpu.yml --auto_resume \
      "${full_force[@]}" > logs/srresnet_x4_dhp100_gpu.log 2>&1; then
    cp experiments/srresnet_x4_dhp100_gpu/models/net_g_latest.safetensors weights/srresnet_x4_dhp100.safetensors
    echo "   done in $(( $(date +%s) - s )) s"
  else echo "   FAILED or cut (exit $?): logs/srresnet_x4_dhp100_gpu.log"; tail -n 3 logs/srresnet_x4_dhp100_gpu.log; fi
  $PY -c 'import sys; from tools.curves import validation_curve; print(*validation_curve(sys.argv[1]), sep="\n")' \
    srresnet_x4_dhp100_gpu   # its validations, from its last checkpoint
fi

if [ "${SKIP_CONT:-0}" != 1 ]; then
  echo "== $(date -u +%T) continuation, $CONT_ITERS iterations each, one after another"
  runs=()
  for run in $($PY -m restore_dhp.catalogue runs --task sr) $($PY -m restore_dhp.catalogue runs --task denoise); do
    [ -f weights/$run.safetensors ] && runs+=("$run")
  done
  # (DRY here means real runs at toy size: train_weights.sh's own DRY=1 would only print them)
  BUDGET=gpu-continue SKIP_REPORTS=1 DRY=0 PY=$PY timeout "$(limit ${CONT_LIMIT:-300})" bash tools/train_weights.sh \
    --iters "$CONT_ITERS" "${runs[@]}" > "$OUT/continue.txt" 2>&1
  echo "   continuation exit $?"; tail -n 14 "$OUT/continue.txt"
fi

# CAMPAIGN=1 (with SKIP_EXP=1 SKIP_FULL=1 SKIP_CONT=1: the lease's plan of issue 23): measure, then all nine continued
[ "${CAMPAIGN:-0}" = 1 ] && $PY -m research.gpu_campaign.campaign --deadline "$(limit 600)" --skip-reports 2>&1 | tee "$OUT/campaign.txt"
kill $tests 2>/dev/null; wait $tests; tail -n 3 "$OUT/cuda_tests.txt"
if [ "${SKIP_WIDTHS:-0}" != 1 ] && [ "${DRY:-0}" != 1 ]; then  # this GPU's width-latency curve (issue 11)
  echo "== $(date -u +%T) width-latency curve"
  timeout "$(limit ${WIDTH_LIMIT:-90})" $PY -m restore_dhp.speedup --device cuda --uniform-widths 56 48 40 32 24 16 \
    --backends fused --precisions fp32 fp16 --out "$OUT/width_latency_gpu.txt" > /dev/null 2>&1
  echo "   exit $?"
fi
[ "${SPEED:-0}" = 1 ] && OUT=$OUT/check PY=$PY SKIP_TESTS=1 timeout "$(limit ${CHECK_LIMIT:-240})" bash tools/gpu_check.sh

if [ "${SKIP_LAT:-0}" != 1 ]; then  # issue 20: this GPU's latency tables, searches to its latency targets, their speedup
  echo "== $(date -u +%T) latency tables and GPU latency searches"
  lat_dry=()
  [ "${DRY:-0}" = 1 ] && lat_dry=(DRY=1 NETS=dncnn_s70)   # on the CPU: toy size, one network
  env DEVICE=cuda PY="$PY" TRAIN_FORCE="${LAT_FORCE:-}" "${lat_dry[@]}" timeout "$(limit ${LAT_LIMIT:-300})" \
    bash research/device_latency/device_search.sh > "$OUT/device_search.txt" 2>&1
  echo "   exit $?"; grep -E "^(== |   |.*median relative error|.*control)" "$OUT/device_search.txt" | tail -n 30
fi

cat "$OUT/sr_inversion_validation.md" logs/continue_gpu_validation.md 2>/dev/null
# what comes back (at most 8 files of at most 16 MiB): the weights in three archives, everything else in a fourth
tar czf "$OUT/weights_sr_full.tgz" weights/srresnet_x4_baseline.safetensors weights/srresnet_x4_dhp100.safetensors
tar czf "$OUT/weights_sr_pruned.tgz" weights/srresnet_x4_dhp[0-9]0.safetensors
tar czf "$OUT/weights_denoise.tgz" weights/dncnn_s70_*.safetensors
tar czf "$OUT/weights_device.tgz" weights/device 2>/dev/null
tar czf "$OUT/results.tgz" --exclude='*.tgz' "$OUT" logs experiments/*/train_*.log \
  experiments/*/models/search_summary.json latency_tables reports/device 2>/dev/null
find "$OUT" -mindepth 1 ! -name '*.tgz' -delete
ls -la "$OUT"
