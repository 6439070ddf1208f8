#!/usr/bin/env bash
# Pruning for the device users run on (issue 20), on this CPU, end to end:
#   bash scripts/device_search.sh [tables] [train] [report]      (default: all three, in this order)
# 1. tables: latency tables of SRResNet at 170x256 and DnCNN at 321x481 (python -m restore_dhp.latency profile),
#    fused and onnxruntime, THREADS (default 1) threads, into latency_tables/cpu-<cpu>-<THREADS>t/ (a table already
#    there is kept; REBUILD=1 measures it again), each checked (20 random width sets) -> <table>.check.json;
# 2. train: the latency-targeted runs (options/train/<net>_cpu{60,40,20}_cpu.yml: 60/40/20% of the fused table's
#    full-width latency) and the FLOPs-targeted runs again at the same budget and seeds (<net>_dhp{60,40,20}_cpu.yml,
#    as experiment <name>_device), one after another -> weights/device/<net>_{cpu,dhp}{60,40,20}.safetensors;
# 3. report: quality of both families and the baseline (restore_dhp.benchmark, no timing), then their latency side
#    by side on the table's settings and the comparison (restore_dhp.device_report) -> reports/device/report.md.
# Run it on a quiet machine (nothing else running: the tables and the report time the CPU) with datasets/ prepared;
# safe to re-run after a kill (tables present are kept, training resumes).
# DRY=1: every step at toy size (tiny networks and grids, 4 iterations, generated images) in a scratch folder
# (DRY_DIR, default a new temporary one): a check of this script in about two minutes.
set -eu
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-$REPO/.venv/bin/python}
THREADS=${THREADS:-1}
export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(tables train report)
NETS="srresnet_x4 dncnn_s70"
declare -A ARCH=([srresnet_x4]=srresnet [dncnn_s70]=dncnn) SIZE=([srresnet_x4]=170x256 [dncnn_s70]=321x481)
declare -A TASK=([srresnet_x4]=sr [dncnn_s70]=denoise) SETS=([srresnet_x4]="Set5 Set14 B100 Urban100"
                                                            [dncnn_s70]="BSD68 Set12")
declare -A KWARGS=([srresnet_x4]='{}' [dncnn_s70]='{}')
fast=() check=(--sets 20) bench=()
if [ "${DRY:-0}" = 1 ]; then
  WORK=${DRY_DIR:-$(mktemp -d)}
  echo "DRY run in $WORK"
  $PY "$REPO/scripts/device_toy.py" data "$WORK"
  SIZE=([srresnet_x4]=8x8 [dncnn_s70]=12x12) SETS=([srresnet_x4]="Set5 Set14" [dncnn_s70]="BSD68 Set12")
  KWARGS=([srresnet_x4]='{"num_feat": 8, "num_blocks": 2}' [dncnn_s70]='{"num_feat": 8, "num_layers": 4}')
  fast=(--rounds 1 --warmup 0 --grid-step 4 --fit-points 2) check=(--sets 3 --rounds 1 --warmup 0)
  bench=(--max-images 1) report_rounds=(--rounds 2 --warmup 0)
else
  WORK=$REPO report_rounds=()
fi
cd "$WORK"
mkdir -p weights/device reports/device logs

table_of() {  # table_of NET BACKEND: where this machine's table is kept
  $PY -m restore_dhp.latency where --arch "${ARCH[$1]}" --backend "$2" --threads "$THREADS" --size "${SIZE[$1]}"
}

tables() {
  local net backend table
  for net in $NETS; do
    for backend in fused onnxruntime; do
      table=$(table_of "$net" "$backend")
      if [ ! -f "$table" ] || [ "${REBUILD:-0}" = 1 ]; then
        echo "== $(date -u +%T) profile $table"
        $PY -m restore_dhp.latency profile --arch "${ARCH[$net]}" --arch-kwargs "${KWARGS[$net]}" --backend "$backend" \
          --threads "$THREADS" --size "${SIZE[$net]}" --out "$table" "${fast[@]}"
      fi
      echo "== $(date -u +%T) check $table"
      $PY -m restore_dhp.latency check --table "$table" "${check[@]}" --out "${table%.json}.check.json" | tail -n 1
    done
  done
}

train_one() {  # train_one OPTION_FILE NAME OUT [force_yml ...]
  local opt=$1 name=$2 out=$3; shift 3
  echo "== $(date -u +%T) train $name ($opt)"
  if ! $PY -m restore_dhp.train -opt "$opt" --auto_resume "$@" > "logs/$name.log" 2>&1; then
    echo "   FAILED: $WORK/logs/$name.log"; tail -n 5 "logs/$name.log"; return 1
  fi
  cp "experiments/$name/models/net_g_latest.safetensors" "weights/device/$out.safetensors"
  echo "   -> weights/device/$out.safetensors"
}

train() {
  local net t opt table
  for net in $NETS; do
    table=$(table_of "$net" fused)
    for t in 60 40 20; do
      opt=$REPO/options/train/${net}_cpu${t}_cpu.yml
      if [ "${DRY:-0}" = 1 ]; then
        $PY "$REPO/scripts/device_toy.py" options "$opt" "options/${net}_cpu${t}_cpu.yml" --table "$table"
        opt=options/${net}_cpu${t}_cpu.yml
      elif ! grep -q "table: $table\$" "$opt"; then
        echo "$opt does not name this machine's table $table: edit its dhp.target.table" >&2; return 2
      fi
      train_one "$opt" "${net}_cpu${t}_cpu" "${net}_cpu$t"
      opt=$REPO/options/train/${net}_dhp${t}_cpu.yml
      if [ "${DRY:-0}" = 1 ]; then
        $PY "$REPO/scripts/device_toy.py" options "$opt" "options/${net}_dhp${t}_cpu.yml"
        opt=options/${net}_dhp${t}_cpu.yml
      fi
      train_one "$opt" "${net}_dhp${t}_cpu_device" "${net}_dhp$t" --force_yml "name=${net}_dhp${t}_cpu_device"
    done
  done
}

report() {
  local net weights
  for net in $NETS; do
    weights=("weights/${net}_baseline.safetensors" weights/device/${net}_cpu[0-9]*.safetensors
             weights/device/${net}_dhp[0-9]*.safetensors)
    echo "== $(date -u +%T) quality of ${weights[*]}"
    # shellcheck disable=SC2086  # SETS holds several names
    $PY -m restore_dhp.benchmark --task "${TASK[$net]}" --data-root datasets --sets ${SETS[$net]} --weights "${weights[@]}" \
      --no-timing --no-lpips --quiet --in-process --out "reports/device/quality_${TASK[$net]}" "${bench[@]}" > /dev/null
    echo "== $(date -u +%T) latency side by side"
    $PY -m restore_dhp.device_report --task "${TASK[$net]}" --table "$(table_of "$net" fused)" --weights "${weights[@]}" \
      --quality "reports/device/quality_${TASK[$net]}/report.json" --out reports/device "${report_rounds[@]}" | tail -n 6
  done
  $PY -m restore_dhp.device_report --join --out reports/device
}

for step in "${steps[@]}"; do
  case $step in tables|train|report) "$step" ;; *) echo "unknown step $step (tables, train, report)" >&2; exit 2 ;; esac
done
