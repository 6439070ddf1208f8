#!/usr/bin/env bash
# Pruning for the device users run on (issue 20), on this CPU, end to end:
#   bash research/device_latency/device_search.sh [tables] [train] [report]      (default: all three, in this order)
# 1. tables: latency tables of SRResNet at 170x256 and DnCNN at 321x481 (python -m restore_dhp.latency profile),
#    fused and onnxruntime, THREADS (default 1) threads, into latency_tables/cpu-<cpu>-<THREADS>t/ (a table already
#    there is kept; REBUILD=1 measures it again), each checked (20 random width sets) -> <table>.check.json;
# 2. train: the latency-targeted runs (recipes <net>_cpu{60,40,20}_cpu, options/train/<net>_latency_cpu.yml: 60/40/20%
#    of the fused table's full-width latency) and the FLOPs-targeted runs again at the same budget and seeds
#    (<net>_dhp{60,40,20}_cpu, as experiment <run>_device), one after another
#    -> weights/device/<net>_{cpu,dhp}{60,40,20}.safetensors;
# 3. report: quality of both families and the baseline (restore_dhp.benchmark, no timing), then their latency side
#    by side on the table's settings and the comparison (restore_dhp.device_report) -> reports/device/report.md.
# Run it on a quiet machine (nothing else running: the tables and the report time the CPU) with datasets/ prepared;
# safe to re-run after a kill (tables present are kept, training resumes, installed weights are not trained again:
# delete one to retrain it).
# DEVICE=cuda (on a lent GPU; research/gpu_campaign/gpu_session.sh runs it): fused fp16 and fp32 tables (PRECISIONS), the searches
# to GPU latency targets on the fp16 table (<net>_gpu{60,40,20}_gpu, this study's options/, side by side), no FLOPs
# family (the shipped weights are it), and for the report the speedup tables of the results against the baseline
# and DHP-20 in every GPU backend (restore_dhp.speedup) -> reports/device/speedup_gpu_<net>.txt.
# The searches always read the tables built here (each run's options are written with dhp.target.table pointed at
# them: device_runs.py). TRAIN_FORCE="train:total_iter=N ..." shortens the runs (BasicSR --force_yml); PARALLEL=1
# trains side by side (each run its share of the cores: tools/run_side_by_side.py).
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
declare -A SIZE=([srresnet_x4]=170x256 [dncnn_s70]=321x481) SETS=([srresnet_x4]="Set5 Set14 B100 Urban100"
                                                                 [dncnn_s70]="BSD68 Set12")
declare -A ARCH TASK TINY KWARGS   # each network's short arch name and task (the catalogue's), its DRY size
eval "$($PY -m research.device_latency.device_runs shell $NETS)" || exit 2
for net in $NETS; do KWARGS[$net]='{}'; done
fast=() check=(--sets 20) bench=() force=(${TRAIN_FORCE:-})
[ "$DEVICE" = cuda ] && fast=(--grid-step 16 --sweep-step 4)   # each CUDA point captures a graph: a coarser grid
if [ "${DRY:-0}" = 1 ]; then
  MEASURE=cpu PRECISIONS=fp32 SEARCH_PRECISION=fp32
  WORK=${DRY_DIR:-$(mktemp -d)}
  echo "DRY run in $WORK"
  $PY -m research.device_latency.device_runs data "$WORK"
  SIZE=([srresnet_x4]=8x8 [dncnn_s70]=12x12) SETS=([srresnet_x4]="Set5 Set14" [dncnn_s70]="BSD68 Set12")
  for net in $NETS; do KWARGS[$net]=${TINY[$net]}; done
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

train() {  # the runs side by side or one after another (tools/run_side_by_side.py), each installed when it ends
  local net t table run opts=() toy=() order=()
  [ "${DRY:-0}" = 1 ] && toy=(--toy)
  [ "$PARALLEL" = 1 ] || order=(--one-at-a-time)
  mkdir -p experiments/device_options
  for net in $NETS; do
    table=$(table_of "$net" fused "$SEARCH_PRECISION")
    for t in 60 40 20; do
      # the latency family on this machine's table; on the CPU the FLOPs family again at the same budget and seeds
      for run in "${net}_${FAMILY}${t}_${FAMILY}" $([ "$DEVICE" = cpu ] && echo "${net}_dhp${t}_cpu_device"); do
        $PY -m research.device_latency.device_runs options "$run" "experiments/device_options/$run.yml" \
          --table "$table" "${toy[@]}" || return 1
        opts+=("experiments/device_options/$run.yml")
      done
    done
  done
  echo "== $(date -u +%T) train ${opts[*]}"
  # a model installed before is not trained again (delete its file to retrain it)
  $PY -m tools.run_side_by_side --opts "${opts[@]}" "${order[@]}" --install weights/device --skip-installed \
    --python "$PY" ${force[@]+--force "${force[@]}"}
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
