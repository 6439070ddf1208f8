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
#   MILESTONES=600,1000,1200,1400 bash research/paper_claims/run_stability.sh   # the lr halved at these iterations
#                            instead of at each recipe's own (train:scheduler:milestones). A run whose milestones are
#                            not the DHP recipes' (1000, 1400) is named pbn_m<milestones, - for ,>_[...]: so is the
#                            baseline recipe's own since part 1 (python -m research.paper_claims.schedule)
#   ITERS=3200 bash research/paper_claims/run_stability.sh   # the recipes' schedule stretched to ITERS iterations:
#                            total_iter, the lr milestones and the freeze scaled by ITERS / the recipe's total_iter;
#                            runs are named pbn_[m..._]i<ITERS>_[...] (the freeze in the name is the recipe's, unscaled)
#   DRY=1 bash research/paper_claims/run_stability.sh       # each run's name and overrides only
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
# the DHP recipes' schedule and freeze (python -m research.paper_claims.schedule)
IFS='|' read -r own total _ _ < <($PY -m research.paper_claims.schedule srresnet_x4_dhp60_cpu)
FREEZE=${FREEZE-$own}   # unset: the recipes' train.freeze_bn_iter (1400); empty: none
scale() { echo $(( $1 * ${ITERS:-$total} / total )); }
ftag= fvariant=()
if [ -n "$FREEZE" ]; then ftag=f${FREEZE}_ fvariant=("train:freeze_bn_iter=$(scale "$FREEZE")")
elif [ -n "$own" ]; then fvariant=("train:freeze_bn_iter=~"); fi
for r in ${RUNS:-baseline dhp60 dhp40 dhp20}; do
  # this recipe's milestones (MILESTONES, else its own, scaled with ITERS) and their tag (the DHP recipes': none)
  IFS='|' read -r _ _ ms mtag < <($PY -m research.paper_claims.schedule "srresnet_x4_${r}_cpu" \
                                   ${MILESTONES:+--milestones "$MILESTONES"})
  ms=${MILESTONES:-$ms} rtag=$tag$mtag rvariant=("${variant[@]}")
  if [ -n "${ITERS:-}" ]; then
    rtag=${rtag}i${ITERS}_ rvariant+=("train:total_iter=$ITERS") m=
    [ -n "${MILESTONES:-}" ] || { for x in ${ms//,/ }; do m=${m:+$m,}$(scale "$x"); done; ms=$m; }
  fi
  [ -z "${MILESTONES:-}${ITERS:-}" ] || rvariant+=("train:scheduler:milestones=[$ms]")
  for seed in ${SEEDS:-10 11}; do
    n=pbn_$rtag$ftag${r}_s$seed
    names+=("$n")
    done=$(ls experiments/$n/models/net_g_latest.safetensors 2>/dev/null || true)
    if [ -n "${DRY:-}" ]; then echo "$n${done:+ (trained)}: ${rvariant[*]} ${fvariant[*]}"; continue; fi
    [ -z "$done" ] || continue
    # the recipe of srresnet_x4_<r>_cpu (python -m tools.recipes show), renamed and reseeded
    mapfile -t args < <($PY -m tools.recipes args "srresnet_x4_${r}_cpu")
    [[ " ${args[*]} " == *" --force_yml "* ]] || args+=(--force_yml)
    $PY -m restore_dhp.train "${args[@]}" "name=$n" "manual_seed=$seed" "${rvariant[@]}" "${fvariant[@]}" --auto_resume
  done
done
[ -z "${DRY:-}" ] || exit 0
$PY -m research.paper_claims.stability --runs "${names[@]}" --root experiments
