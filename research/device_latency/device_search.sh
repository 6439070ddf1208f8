#!/usr/bin/env bash
# Pruning for the device users run on (issue 20), on this CPU, end to end:
#   bash research/device_latency/device_search.sh [tables] [train] [report]      (default: all three, in this order)
# 1. tables: latency tables of SRResNet at 170x256 and DnCNN at 321x481 (python -m restore_dhp.latency profile),
#    fused and onnxruntime, THREADS (default 1) threads, into latency_tables/cpu-<cpu>-<THREADS>t/ (a table already
#    there is kept; REBUILD=1 measures it again), each checked (20 random width sets) -> <table>.check.json;
# 2. train: the latency-targeted runs (options/train/<net>_cpu{60,40,20}_cpu.yml: 60/40/20% of the fused table's
#    full-width latency) and the FLOPs-targeted runs again at the same budget and seeds (<net>_dhp{60,40,20}_cpu.yml,
#    as experiment <name>_device), one after another -> weights/device/<net>_{cpu,dhp}{60,40,20}.safetensors;
# 3. report: quality of both families and the baseline (restore_dhp.benchmark, no timing), then their latency side
#    by side on the table's settings and the comparison (restore_dhp.device_report) -> reports/device/report.md.
# Run it on a quiet machine (nothing else running: the tables and the report time the CPU) with datasets/ prepared;
# safe to re-run after a kill (tables present are kept, training resumes, installed weights are not trained again:
# delete one to retrain it).
# DEVICE=cuda (on a lent GPU; research/gpu_campaign/gpu_session.sh runs it): fused fp16 and fp32 tables (PRECISIONS), the searches
# to GPU latency targets on the fp16 table (options/train/<net>_gpu{60,40,20}_gpu.yml, side by side), no FLOPs
# family (the shipped weights are it), and for the report the speedup tables of the results against the baseline
# and DHP-20 in every GPU backend (restore_dhp.speedup) -> reports/device/speedup_gpu_<net>.txt.
# The searches always read the tables built here (each option file is copied with its dhp.target.table pointed at
# them). TRAIN_FORCE="train:total_iter=N ..." shortens the runs (BasicSR --force_yml); PARALLEL=1 trains side by side.
# DRY=1: every step at toy size (tiny networks and grids, 4 iterations, generated images, measured on the CPU)
# in a scratch folder (DRY_DIR, default a new temporary one): a check of this script (DEVICE=cuda DRY=1 included).
set -eu
REPO=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PY:-$REPO/.venv/bin/python}
THREADS=${THREADS:-1}
DEVICE=${DEVICE:-cpu}
case $DEVICE in
  cpu) FAMILY=cpu PRECISIONS=${PRECISIONS:-fp32} SEARCH_PRECISION=fp32 PARALLEL=${PARALLEL:-0} ;;
  cuda) FAMILY=gpu PRECISIONS=${PRECISIONS:-fp16 fp32} SEARCH_PRECISION=fp16 PARALLEL=${PARALLEL:-1} ;;
  *) echo "DEVICE must be cpu or cuda, got '$DEVICE'" >&2; exit 2 ;;
esac
MEASURE=$DEVICE   # where the tables are measured (the CPU in a DRY run)
export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(tables train report)
NETS=${NETS:-srresnet_x4 dncnn_s70}          # e.g. NETS=dncnn_s70: one network only
[ "$DEVICE" = cpu ] && BACKENDS=${BACKENDS:-fused onnxruntime} || BACKENDS=${BACKENDS:-fused}  # tables built
declare -A ARCH=([srresnet_x4]=srresnet [dncnn_s70]=dncnn) SIZE=([srresnet_x4]=170x256 [dncnn_s70]=321x481)
declare -A TASK=([srresnet_x4]=sr [dncnn_s70]=denoise) SETS=([srresnet_x4]="Set5 Set14 B100 Urban100"
                                                            [dncnn_s70]="BSD68 Set12")
declare -A KWARGS=([srresnet_x4]='{}' [dncnn_s70]='{}')
fast=() check=(--sets 20) bench=() force=(${TRAIN_FORCE:-})
[ "$DEVICE" = cuda ] && fast=(--grid-step 16 --sweep-step 4)   # each CUDA point captures a graph: a coarser grid
if [ "${DRY:-0}" = 1 ]; then
  MEASURE=cpu PRECISIONS=fp32 SEARCH_PRECISION=fp32
  WORK=${DRY_DIR:-$(mktemp -d)}
  echo "DRY run in $WORK"
  $PY -m research.device_latency.device_toy data "$WORK"
  SIZE=([srresnet_x4]=8x8 [dncnn_s70]=12x12) SETS=([srresnet_x4]="Set5 Set14" [dncnn_s70]="BSD68 Set12")
  KWARGS=([srresnet_x4]='{"num_feat": 8, "num_blocks": 2}' [dncnn_s70]='{"num_feat": 8, "num_layers": 4}')
  fast=(--rounds 1 --warmup 0 --grid-step 4 --fit-points 2) check=(--sets 3 --rounds 1 --warmup 0)
  bench=(--max-images 1) report_rounds=(--rounds 2 --warmup 0)
else
  WORK=$REPO report_rounds=()
fi
cd "$WORK"
mkdir -p weights/device reports/device logs

table_of() {  # table_of NET BACKEND PRECISION: where this machine's table is kept
  $PY -m restore_dhp.latency where --arch "${ARCH[$1]}" --device "$MEASURE" --backend "$2" --precision "$3" \
    --threads "$THREADS" --size "${SIZE[$1]}"
}

tables() {
  local net backend precision table
  for net in $NETS; do
    for backend in $BACKENDS; do
      for precision in $PRECISIONS; do
        [ "$backend" = onnxruntime ] && [ "$precision" != fp32 ] && continue
        table=$(table_of "$net" "$backend" "$precision")
        if [ ! -f "$table" ] || [ "${REBUILD:-0}" = 1 ]; then
          echo "== $(date -u +%T) profile $table"
          $PY -m restore_dhp.latency profile --arch "${ARCH[$net]}" --arch-kwargs "${KWARGS[$net]}" \
            --device "$MEASURE" --backend "$backend" --precision "$precision" --threads "$THREADS" \
            --size "${SIZE[$net]}" --out "$table" "${fast[@]}"
        fi
        echo "== $(date -u +%T) check $table"
        $PY -m restore_dhp.latency check --table "$table" "${check[@]}" --out "${table%.json}.check.json" | tail -n 1
      done
    done
  done
}

train_one() {  # train_one OPTION_FILE NAME OUT [KEY=VALUE ...]: the entries go to --force_yml with TRAIN_FORCE's
  local opt=$1 name=$2 out=$3; shift 3
  local entries=(${force[@]+"${force[@]}"} "$@")
  # installed before: not trained again (a finished run resumed would only re-save its last checkpoint)
  [ -f "weights/device/$out.safetensors" ] && { echo "== $name: weights/device/$out.safetensors is there"; return 0; }
  echo "== $(date -u +%T) train $name ($opt)"
  if ! $PY -m restore_dhp.train -opt "$opt" --auto_resume ${entries[@]+--force_yml "${entries[@]}"} \
      > "logs/$name.log" 2>&1; then
    echo "   FAILED: $WORK/logs/$name.log"; tail -n 5 "logs/$name.log"; return 1
  fi
  cp "experiments/$name/models/net_g_latest.safetensors" "weights/device/$out.safetensors"
  echo "   -> weights/device/$out.safetensors"
}

run_copy() {  # run_copy SRC [TABLE]: the option file to train (toy size in a DRY run; dhp.target.table -> TABLE)
  local src=$1 dst=experiments/device_options/$(basename "$1")
  mkdir -p experiments/device_options
  if [ "${DRY:-0}" = 1 ]; then $PY -m research.device_latency.device_toy options "$src" "$dst" ${2:+--table "$2"}
  elif [ -n "${2:-}" ]; then sed "s|^    table: .*|    table: $2|" "$src" > "$dst"
  else cp "$src" "$dst"; fi
  echo "$dst"
}

train() {
  local net t table pids=() status=0 pid
  # side by side, each run its share of the cores (as run_side_by_side.child_env does)
  local n=$(( $(wc -w <<< "$NETS") * 3 * ($([ "$DEVICE" = cpu ] && echo 2 || echo 1)) ))
  [ "$PARALLEL" = 1 ] && local -x OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( $(nproc) / n > 1 ? $(nproc) / n : 1 ))}
  for net in $NETS; do
    table=$(table_of "$net" fused "$SEARCH_PRECISION")
    for t in 60 40 20; do
      launch "$(run_copy "$REPO/options/train/${net}_${FAMILY}${t}_${FAMILY}.yml" "$table")" \
        "${net}_${FAMILY}${t}_${FAMILY}" "${net}_${FAMILY}$t"
      [ "$DEVICE" = cpu ] || continue  # the FLOPs family again at the same budget and seeds
      launch "$(run_copy "$REPO/options/train/${net}_dhp${t}_cpu.yml")" "${net}_dhp${t}_cpu_device" "${net}_dhp$t" \
        "name=${net}_dhp${t}_cpu_device"
    done
  done
  for pid in "${pids[@]}"; do wait "$pid" || status=1; done
  return $status
}

launch() {  # one training run, in the background when PARALLEL=1 (its pid in the caller's pids)
  if [ "$PARALLEL" = 1 ]; then train_one "$@" & pids+=($!); else train_one "$@"; fi
}

report() {
  local net weights
  [ "$DEVICE" = cpu ] || { speed_report; return; }
  for net in $NETS; do
    weights=("weights/${net}_baseline.safetensors" weights/device/${net}_cpu[0-9]*.safetensors
             weights/device/${net}_dhp[0-9]*.safetensors)
    echo "== $(date -u +%T) quality of ${weights[*]}"
    # shellcheck disable=SC2086  # SETS holds several names
    $PY -m restore_dhp.benchmark --task "${TASK[$net]}" --data-root datasets --sets ${SETS[$net]} \
      --weights "${weights[@]}" --no-timing --no-lpips --quiet --in-process \
      --out "reports/device/quality_${TASK[$net]}" "${bench[@]}" > /dev/null
    echo "== $(date -u +%T) latency side by side"
    $PY -m restore_dhp.device_report --task "${TASK[$net]}" --table "$(table_of "$net" fused fp32)" \
      --weights "${weights[@]}" --quality "reports/device/quality_${TASK[$net]}/report.json" --out reports/device \
      "${report_rounds[@]}" | tail -n 6
  done
  $PY -m restore_dhp.device_report --join --out reports/device
}

speed_report() {  # GPU: speedup of the GPU-latency models over the baseline (and the FLOPs DHP-20) in every backend
  local net precisions=(--precisions $PRECISIONS) backends=(--backends fused compiled)
  [ "${DRY:-0}" = 1 ] && backends=(--backends fused)
  for net in $NETS; do
    echo "== $(date -u +%T) speedup of weights/device/${net}_gpu*"
    $PY -m restore_dhp.speedup --device "$MEASURE" --weights "weights/${net}_baseline.safetensors" \
      weights/device/${net}_gpu[0-9]*.safetensors $(ls weights/${net}_dhp20.safetensors 2>/dev/null) \
      "${backends[@]}" "${precisions[@]}" --sizes "${SIZE[$net]}" --settle 60 "${report_rounds[@]/--rounds/--repeats}" \
      --out "reports/device/speedup_${FAMILY}_$net.txt" | grep -E "^(Baseline|baseline|DHP|${net}|control|!!)" || true
  done
}

for step in "${steps[@]}"; do
  case $step in tables|train|report) "$step" ;; *) echo "unknown step $step (tables, train, report)" >&2; exit 2 ;; esac
done
