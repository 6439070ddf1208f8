#!/usr/bin/env bash
# The warm-start study on this machine's CPU (reports/device/warm_start.md): trained weights pruned by DHP to 60 / 40 /
# 20% of their measured latency with `restore-dhp prune`, the magnitude-pruning control at the same widths and budget,
# and the report.  Stages (default: all, in order): models | controls | report (`quality`: its benchmarks only, no
# timing; `report` times side by side: run it on a quiet machine); and `variants`, the search variants the report
# compares (not part of all).  One run at a time, one thread
# (THREADS=N to change); a killed run continues when the stage is started again.
#   bash research/warm_start/run.sh            # everything
#   bash research/warm_start/run.sh report     # the report only, from what is there
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-python}
export OMP_NUM_THREADS=${THREADS:-1} MKL_NUM_THREADS=${THREADS:-1}
TARGETS=${TARGETS:-"60 40 20"}
SR_STARTS=${SR_STARTS:-"srresnet_x4_dhp100 srresnet_x4_baseline"}
DN_STARTS=${DN_STARTS:-"dncnn_s70_baseline"}
EDSR_STARTS=${EDSR_STARTS:-"edsr_x4_baseline"} EDSR_TARGETS=${EDSR_TARGETS:-40}   # a traced network, one target
# this CPU's folder of latency tables, e.g. latency_tables/cpu-amd-epyc-1t: the weights go to weights/device/<folder>
FOLDER=$($PY -c "import os; from restore_dhp.latency import table_path
print(os.path.basename(os.path.dirname(table_path('srresnet', 'cpu', 'fused', 'fp32', 1, (170, 256)))))")
OUT=weights/device/$FOLDER
mkdir -p "$OUT" research/warm_start/ckpt
stage=${1:-all}

runs() {   # "start target" per line
  for start in $SR_STARTS $DN_STARTS; do for t in $TARGETS; do echo "$start $t"; done; done
  for start in $EDSR_STARTS; do for t in $EDSR_TARGETS; do echo "$start $t"; done; done
}

models() {
  while read -r start t <&3; do
    [ -f "$OUT/${start}_cpu$t.safetensors" ] || $PY -m restore_dhp.prune -n "$start" --latency "0.$t" \
      -o "$OUT/${start}_cpu$t.safetensors"
  done 3< <(runs)
}

controls() {
  while read -r start t <&3; do
    model=${start}_cpu$t task=$([[ $start == dncnn* ]] && echo denoise || echo sr)
    [ -f "$OUT/$model.safetensors" ] || continue
    control=research/warm_start/ckpt/${model}_control.safetensors   # a study's result, not shipped weights
    [ -f "$control" ] && continue
    naive=research/warm_start/ckpt/${model}_naive.safetensors
    [ -f "$naive" ] || $PY -m research.warm_start.naive_prune --weights "weights/$start.safetensors" \
      --like "$OUT/$model.safetensors" -o "$naive"
    arch=$($PY -c "from restore_dhp.checkpoint import read_metadata; print(read_metadata('$naive')['arch'])")
    $PY -m restore_dhp.train -opt "research/warm_start/options/control_${task}_cpu.yml" --auto_resume \
      --force_yml "name=${model}_control" "path:pretrain_network_g=$naive" "network_g:type=$arch"
    cp "experiments/${model}_control/models/net_g_latest.safetensors" "$control"
  done 3< <(runs)
}

report() {   # $1 = quality: the benchmarks only (each checkpoint once, cached); else also the timing and the report
  for net in srresnet_x4 edsr_x4 dncnn_s70; do
    case $net in
      srresnet_x4) task=sr tag=sr sets="Set5 Set14 B100 Urban100" table=srresnet_fused_fp32_170x256
        shipped="weights/${net}_baseline.safetensors weights/${net}_dhp{60,40,20}.safetensors
          weights/device/${net}_cpu{60,40,20}.safetensors" quality="reports/sr/report.json reports/device/quality_sr/report.json" ;;
      edsr_x4) task=sr tag=edsr sets="Set5 Set14 B100 Urban100" table=EDSR_fused_fp32_170x256
        shipped="weights/${net}_baseline.safetensors weights/${net}_dhp40.safetensors" quality=reports/edsr_x4/report.json ;;
      dncnn_s70) task=denoise tag=denoise sets="BSD68 Set12" table=dncnn_fused_fp32_321x481
        shipped="weights/${net}_baseline.safetensors weights/${net}_dhp{60,40,20}.safetensors
          weights/device/${net}_cpu{60,40,20}.safetensors" quality="reports/denoise/report.json reports/device/quality_denoise/report.json" ;;
    esac
    new=$(ls $OUT/${net}_*.safetensors research/warm_start/ckpt/${net}_*_control.safetensors 2>/dev/null || true)
    [ -n "$new" ] || continue
    for w in $new; do   # quality of the new checkpoints, each benchmarked once (again when the file changes)
      q=research/warm_start/ckpt/quality/$(basename "$w" .safetensors)
      # shellcheck disable=SC2086
      [ "$q/report.json" -nt "$w" ] || $PY -m restore_dhp.benchmark --task $task --weights "$w" --sets $sets \
        --no-timing --no-lpips --out "$q" --quiet
      quality="$quality $q/report.json"
    done
    [ "${1:-}" = quality ] && continue
    # shellcheck disable=SC2086
    eval "$PY -m restore_dhp.device_report --task $task --table latency_tables/$FOLDER/$table.json \
      --weights $shipped $new --quality $quality --out reports/device/warm_start_$tag"
  done
  [ "${1:-}" = quality ] || $PY -m research.warm_start.summary reports/device/warm_start_*/device_*.json
}

variants() {   # the 40% search variants of the report's "what was tried" tables: the recipe with one change each
  local tmp; tmp=$(mktemp -d)
  while read -r start name changes; do
    [ -f "experiments/$name/models/net_g_latest.safetensors" ] && continue
    $PY -m restore_dhp.prune -n "$start" --latency 0.4 --name "$name" --dry-run > "$tmp/$name.yml"
    # shellcheck disable=SC2086
    $PY -m restore_dhp.train -opt "$tmp/$name.yml" --auto_resume --force_yml $changes
  done <<'VARIANTS'
srresnet_x4_dhp100 ws_sr_scaled dhp:warm_start=scaled train:freeze_bn_iter=~
srresnet_x4_dhp100 ws_sr_saliency_trainbn train:freeze_bn_iter=~
srresnet_x4_dhp100 ws_sr_saliency_frozen train:freeze_bn_iter=0
srresnet_x4_dhp100 ws_sr_saliency_frozen_normed train:freeze_bn_iter=0 dhp:normalize_latents=true
srresnet_x4_dhp100 ws_sr_saliency_frozen_hyperlr train:freeze_bn_iter=0 dhp:hyper_lr_scale=0.1
dncnn_s70_baseline ws_dn_scaled dhp:warm_start=scaled
dncnn_s70_baseline ws_dn_saliency_frozen train:freeze_bn_iter=0
VARIANTS
  rm -r "$tmp"
}

case $stage in
  models) models ;; controls) controls ;; quality) report quality ;; report) report ;; variants) variants ;;
  all) models; controls; report ;;
  *) echo "usage: $0 [models|controls|quality|report|variants|all]" >&2; exit 2 ;;
esac
