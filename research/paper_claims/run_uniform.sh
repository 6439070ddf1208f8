#!/usr/bin/env bash
# Parts 2-3 of reports/paper_claims.md (issue 30): DHP against the uniformly thinned network, and l1 against l2,
# on the CPU recipes (options/train, through `python -m tools.recipes`), seeds 10 and 11, one run at a time on one
# thread.  Per task (TASKS: sr, denoise) and seed:
#   dhpNN        the DHP-NN recipe (<prefix>_dhpNN_cpu), NN in 60 40 20: the searched widths (SR: the same runs as
#                run_stability.sh, pbn_dhpNN_sS)
#   uniW         the baseline recipe (<prefix>_baseline_cpu) at num_feat W: every prunable group at width W, trained
#                plainly
#   uniW_dhp     the full width trained with the DHP procedure (<prefix>_dhp100_cpu: the search's lambda and search
#                phase, whatever the proximal step prunes refilled) at num_feat W: the procedure without the width choice
#   dhp40_l2     the DHP-40 recipe with dhp.prox=l2 (group lasso per layer) and lambda x 8: a latent at its layer's
#                root mean square then shrinks per step as fast as under l1 (the block threshold takes lambda*lr off
#                the layer's norm, sqrt(64) = 8 times that rms)
# W in WIDTHS (default 56 48 40 32 24: multiples of 8 as the recipes round, FLOPs ratios 0.77-0.15 around the DHP
# targets, so every DHP model lies inside the uniform curves and is compared with them interpolated).
#   bash research/paper_claims/run_uniform.sh                      # every run missing
#   TASKS=denoise SEEDS=10 WIDTHS="40" bash research/paper_claims/run_uniform.sh
#   DRY=1 bash research/paper_claims/run_uniform.sh                # the train commands only
# A finished run (experiments/<name>/models/net_g_latest.safetensors) is skipped; a killed one resumes.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-python}
export OMP_NUM_THREADS=${THREADS:-1} MKL_NUM_THREADS=${THREADS:-1}
WIDTHS=${WIDTHS:-"56 48 40 32 24"}

train() {   # name recipe [force_yml entries...]
  local name=$1 recipe=$2; shift 2
  [ -f "experiments/$name/models/net_g_latest.safetensors" ] && return 0
  mapfile -t args < <($PY -m tools.recipes args "$recipe")
  [[ " ${args[*]} " == *" --force_yml "* ]] || args+=(--force_yml)
  if [ -n "${DRY:-}" ]; then echo "$PY -m restore_dhp.train ${args[*]} name=$name $* --auto_resume"; return 0; fi
  echo "== $(date -u +%T) $name"
  $PY -m restore_dhp.train "${args[@]}" "name=$name" "$@" --auto_resume
}

for task in ${TASKS:-sr denoise}; do
  case $task in
    sr) prefix=srresnet_x4 dhp_name=pbn_dhp l2_lambda=24.0 ;;           # the recipe's 3.0 x 8
    denoise) prefix=dncnn_s70 dhp_name=pc_dncnn_s70_dhp l2_lambda=240.0 ;;  # 30.0 x 8
    *) echo "unknown task $task (sr, denoise)" >&2; exit 2 ;;
  esac
  for seed in ${SEEDS:-10 11}; do
    for nn in 60 40 20; do
      train "${dhp_name}${nn}_s$seed" "${prefix}_dhp${nn}_cpu" "manual_seed=$seed"
    done
    train "pc_${prefix}_dhp40_l2_s$seed" "${prefix}_dhp40_cpu" "manual_seed=$seed" "dhp:prox=l2" \
      "dhp:regularization=$l2_lambda"
    for w in $WIDTHS; do
      train "pc_${prefix}_uni${w}_s$seed" "${prefix}_baseline_cpu" "manual_seed=$seed" "network_g:num_feat=$w"
      train "pc_${prefix}_uni${w}_dhp_s$seed" "${prefix}_dhp100_cpu" "manual_seed=$seed" "network_g:num_feat=$w"
    done
  done
done
