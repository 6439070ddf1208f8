#!/usr/bin/env bash
# The recipe-stability check of reports/paper_claims.md (issue 30): each SR CPU recipe (options/train, with its
# train.precise_bn and train.freeze_bn_iter) trained with seeds 10 and 11, one run at a time on one thread, then the
# table.
#   bash research/paper_claims/run_stability.sh            # the runs missing, then the table
#   RUNS="dhp40 dhp20" SEEDS=11 bash research/paper_claims/run_stability.sh
#   PATCH=34 BATCH=4 bash research/paper_claims/run_stability.sh   # a variant: BATCH LR patches of PATCHxPATCH
#                            per batch (the recipe: 8 of 24x24), runs named pbn_p<PATCH>b<BATCH>_<r>_s<seed> (measured
#                            with FREEZE=)
#   FREEZE=1200 bash research/paper_claims/run_stability.sh        # BatchNorm frozen after iteration 1200 instead of
#                            the recipes' 1400 (train.freeze_bn_iter); runs are named pbn_[p<PATCH>b<BATCH>_]f<FREEZE>_
#                            <r>_s<seed>, the recipes' own pbn_f1400_<r>_s<seed>
#   FREEZE= bash research/paper_claims/run_stability.sh            # the recipes before the freeze (pbn_<r>_s<seed>)
# A killed run continues when the script is started again (--auto_resume).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-python}
export OMP_NUM_THREADS=${THREADS:-1} MKL_NUM_THREADS=${THREADS:-1}
names=() variant=()
tag=
if [ -n "${PATCH:-}${BATCH:-}" ]; then
  PATCH=${PATCH:-24} BATCH=${BATCH:-8} tag=p${PATCH}b${BATCH}_
  variant=("datasets:train:gt_size=$((PATCH * 4))" "datasets:train:batch_size_per_gpu=$BATCH")
fi
own=$($PY -c "from tools.recipes import recipe; v = recipe('srresnet_x4_baseline_cpu').options()['train'].get('freeze_bn_iter'); print('' if v is None else v)")
FREEZE=${FREEZE-$own}   # unset: the recipes' train.freeze_bn_iter (1400); empty: none
if [ -n "$FREEZE" ]; then tag=${tag}f${FREEZE}_ variant+=("train:freeze_bn_iter=$FREEZE")
elif [ -n "$own" ]; then variant+=("train:freeze_bn_iter=~"); fi
for r in ${RUNS:-baseline dhp60 dhp40 dhp20}; do for seed in ${SEEDS:-10 11}; do
  n=pbn_$tag${r}_s$seed
  names+=("$n")
  [ -n "$(ls experiments/$n/models/net_g_latest.safetensors 2>/dev/null)" ] && continue
  # the recipe of srresnet_x4_<r>_cpu (python -m tools.recipes show), renamed and reseeded
  mapfile -t args < <($PY -m tools.recipes args "srresnet_x4_${r}_cpu")
  [[ " ${args[*]} " == *" --force_yml "* ]] || args+=(--force_yml)
  $PY -m restore_dhp.train "${args[@]}" "name=$n" "manual_seed=$seed" "${variant[@]}" --auto_resume
done; done
$PY -m research.paper_claims.stability --runs "${names[@]}" --root experiments
