#!/usr/bin/env bash
# Parts 2-3 of reports/paper_claims.md (issue 30): DHP against the uniformly thinned network, and l1 against l2,
# on the CPU recipes (options/train, through `python -m tools.recipes`), seeds 10 and 11, one run at a time on one
# thread.  Per task (TASKS: sr, denoise) and seed:
#   dhpNN        the DHP-NN recipe (<prefix>_dhpNN_cpu), NN in 60 40 20: the searched widths (SR: the same runs as
#                run_stability.sh, pbn_dhpNN_sS)
#   uniW         the baseline recipe (<prefix>_baseline_cpu) at num_feat W: every prunable group at width W, trained
#                plainly
#                (W = 64 is the baseline recipe itself: the report stage takes SR's part-1 runs pbn_baseline_sS)
#   uniW_dhp     the full width trained with the DHP procedure (<prefix>_dhp100_cpu: the search's lambda and search
#                phase, whatever the proximal step prunes refilled) at num_feat W: the procedure without the width choice
#   dhp40_l2     the DHP-40 recipe with dhp.prox=l2 (group lasso per layer) and lambda x 8: a latent at its layer's
#                root mean square then shrinks per step as fast as under l1 (the block threshold takes lambda*lr off
#                the layer's norm, sqrt(64) = 8 times that rms)
# W in WIDTHS (default 56 48 40 32 24: multiples of 8 as the recipes round, FLOPs ratios 0.77-0.15 around the DHP
# targets, so every DHP model lies inside the uniform curves and is compared with them interpolated).
#   bash research/paper_claims/run_uniform.sh                      # every run missing
#   TASKS=denoise SEEDS=10 WIDTHS="40" bash research/paper_claims/run_uniform.sh
#   KINDS="uni l2" SEEDS="10 11" bash research/paper_claims/run_uniform.sh  # some families only (dhp l2 uni uni_dhp)
#   DRY=1 bash research/paper_claims/run_uniform.sh                # the train commands only
#   FREEZE=1200 TASKS=sr bash research/paper_claims/run_uniform.sh # BatchNorm frozen after iteration 1200 instead of
#                            the SR recipes' 1400 (runs ..._f1200_uniW_sS, SR's DHP and width-64 rows from
#                            run_stability.sh's pbn_f1200_*, tables in reports/paper_claims/sr_f1200; the recipes'
#                            own, train.freeze_bn_iter 1400: ..._f1400_..., sr_f1400); FREEZE= the recipes without a
#                            freeze (SR's before it: untagged names, reports/paper_claims/sr); DnCNN's recipes have
#                            none, so FREEZE=N gives them one.
#   bash research/paper_claims/run_uniform.sh quality              # benchmark the finished runs (each once, cached)
#   bash research/paper_claims/run_uniform.sh report               # that, the timing and the tables
# A finished run (experiments/<name>/models/net_g_latest.safetensors) is skipped; a killed one resumes.  The report
# stage copies each finished run's checkpoint to research/paper_claims/ckpt/<run>.safetensors, benchmarks them, times
# them side by side with the baseline on this CPU's latency table (restore_dhp.device_report: run it on a quiet
# machine) and writes reports/paper_claims/<task>/uniform.md and its plot (research/paper_claims/uniform.py).
# Each run's quality report is kept in research/paper_claims/quality/<task>[_fFREEZE]/<run>.json (commit it), the
# baseline recipe's runs under quality/<task>[_fFREEZE]_m<milestones> where its lr milestones are its own (SR since
# part 1; tables in reports/paper_claims/ under the same name): a run trained in an earlier session, its checkpoint
# gone, joins the tables through it, timed as an untrained stand-in of its architecture
# (research/paper_claims/standin.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-python}
export OMP_NUM_THREADS=${THREADS:-1} MKL_NUM_THREADS=${THREADS:-1}
WIDTHS=${WIDTHS:-"56 48 40 32 24"}
KINDS=" ${KINDS:-dhp l2 uni uni_dhp} "
ASKED=${FREEZE-recipe}   # FREEZE unset: each task's recipe's own train.freeze_bn_iter
freeze() {   # a task's baseline recipe: set FREEZE, the runs' name tags and the override for this task
  local own
  # its freeze, and mtag: its lr milestones where they are not the DHP recipes' (research/paper_claims/schedule.py)
  IFS='|' read -r own _ _ mtag < <($PY -m research.paper_claims.schedule "$1")
  tag= variant=()
  if [ "$ASKED" = recipe ]; then FREEZE=$own; else FREEZE=$ASKED; fi
  if [ -n "$FREEZE" ]; then tag=f${FREEZE}_ variant=("train:freeze_bn_iter=$FREEZE")
  elif [ -n "$own" ]; then variant=("train:freeze_bn_iter=~"); fi
}

train() {   # name recipe [force_yml entries...]
  local name=$1 recipe=$2; shift 2
  [ -f "experiments/$name/models/net_g_latest.safetensors" ] && return 0
  mapfile -t args < <($PY -m tools.recipes args "$recipe")
  [[ " ${args[*]} " == *" --force_yml "* ]] || args+=(--force_yml)
  if [ -n "${DRY:-}" ]; then echo "$PY -m restore_dhp.train ${args[*]} name=$name $* ${variant[*]} --auto_resume"; return 0; fi
  echo "== $(date -u +%T) $name"
  $PY -m restore_dhp.train "${args[@]}" "name=$name" "$@" "${variant[@]}" --auto_resume
}

runs() {   # task prefix dhp_name l2_lambda
  for seed in ${SEEDS:-10 11}; do
    if [[ $KINDS == *" dhp "* ]]; then
      for nn in 60 40 20; do train "${3}${nn}_s$seed" "${2}_dhp${nn}_cpu" "manual_seed=$seed"; done
    fi
    [[ $KINDS != *" l2 "* ]] ||
      train "pc_${2}_${tag}dhp40_l2_s$seed" "${2}_dhp40_cpu" "manual_seed=$seed" "dhp:prox=l2" "dhp:regularization=$4"
    for w in $WIDTHS; do
      [[ $KINDS != *" uni "* ]] ||
        train "pc_${2}_${mtag}${tag}uni${w}_s$seed" "${2}_baseline_cpu" "manual_seed=$seed" "network_g:num_feat=$w"
      [[ $KINDS != *" uni_dhp "* ]] ||
        train "pc_${2}_${tag}uni${w}_dhp_s$seed" "${2}_dhp100_cpu" "manual_seed=$seed" "network_g:num_feat=$w"
    done
  done
}

report() {   # task prefix dhp_name baseline_runs [quality: the benchmarks only]
  local suffix=${FREEZE:+_f$FREEZE}${mtag:+_${mtag%_}}   # sr_f1400_m600-1000-1200-1400: the baseline's own milestones
  local ckpt=research/paper_claims/ckpt out=reports/paper_claims/$1$suffix sets table copied=() quality=() run c q k
  # each run's quality report is kept once: the DHP recipes' runs under quality/<task>[_fFREEZE], the baseline
  # recipe's (plain widths, width 64) beside them or, where its milestones are its own, under quality/<task><suffix>
  local base=research/paper_claims/quality/$1${FREEZE:+_f$FREEZE} kept=research/paper_claims/quality/$1$suffix home
  local plain="pc_$2_$mtag${tag}uni[0-9][0-9]_s*"
  mkdir -p "$ckpt/quality" "$out" "$base" "$kept"
  if [ "$1" = sr ]; then sets="Set5 Set14 B100 Urban100" arch=srresnet size="170, 256"
  else sets="BSD68 Set12" arch=dncnn size="321, 481"; fi
  # the DHP recipes' runs (DHP, the procedure's widths, l2), the baseline recipe's (plain widths, width 64)
  for f in $(printf '%s\n' experiments/{"$3"*,"pc_$2_$tag"{*_dhp,dhp40_l2},"pc_$2_$mtag${tag}"uni[0-9][0-9]}_s1?/models/net_g_latest.safetensors | sort -u) \
           experiments/"$4"_s1?/models/net_g_latest.safetensors; do
    [ -f "$f" ] || continue
    run=$(basename "$(dirname "$(dirname "$f")")")
    [[ " ${SEEDS:-10 11} " == *" ${run##*_s} "* ]] || continue   # the seeds asked for (part 1 also ran 12)
    [[ -z $tag && $run =~ _f[0-9]+_ ]] && continue   # a variant's run, not in the recipes' tables
    [[ $run == "$4"_s* ]] && run=pc_$2_$mtag${tag}uni64_${run##*_}   # the baseline recipe's runs: the uniform width 64
    c=$ckpt/$run.safetensors q=$ckpt/quality/$run
    cmp -s "$f" "$c" || cp "$f" "$c"
    # shellcheck disable=SC2086
    [ "$q/report.json" -nt "$c" ] || $PY -m restore_dhp.benchmark --task "$1" --weights "$c" --sets $sets \
      --no-timing --no-lpips --out "$q" --quiet   # each checkpoint once (again when it changes)
    # shellcheck disable=SC2053
    if [[ $run == $plain ]]; then home=$kept; else home=$base; fi
    cmp -s "$q/report.json" "$home/$run.json" || cp "$q/report.json" "$home/$run.json"
    copied+=("$c") quality+=("$q/report.json")
  done
  for k in "$kept"/*.json "$base"/*.json; do   # the runs of earlier sessions
    [ -f "$k" ] || continue
    # shellcheck disable=SC2053
    [[ $k == "$base"/* && $kept != "$base" && $(basename "$k") == pc_$2_${tag}uni[0-9][0-9]_s*.json ]] &&
      continue   # the plain family at the DHP recipes' milestones: not this table's
    c=$ckpt/$(basename "$k" .json).safetensors
    [[ " ${copied[*]} " == *" $c "* ]] && continue
    $PY -m research.paper_claims.standin "$k"
    copied+=("$c") quality+=("$k")
  done
  [ ${#copied[@]} -gt 0 ] || { echo "no finished runs for $1" >&2; return 0; }
  [ "${5:-}" = quality ] && return 0
  table=$($PY -c "from restore_dhp.latency import table_path; print(table_path('$arch', 'cpu', 'fused', 'fp32', 1, ($size)))")
  $PY -m restore_dhp.device_report --task "$1" --table "$table" --weights "weights/$2_baseline.safetensors" "${copied[@]}" \
    --quality "reports/$1/report.json" "${quality[@]}" --out "$out"
  $PY -m research.paper_claims.uniform --device "$out/device_$1.json" --out "$out" --report reports/paper_claims.md \
    --block "$(basename "$out")"
}

for task in ${TASKS:-sr denoise}; do
  case $task in
    sr) freeze srresnet_x4_baseline_cpu; st=${FREEZE:+f${FREEZE}_}   # run_stability.sh's names
        args=(sr srresnet_x4 "pbn_${st}dhp" 24.0 "pbn_$mtag${st}baseline") ;;      # l2: the recipe's lambda 3.0 x 8
    denoise) freeze dncnn_s70_baseline_cpu; args=(denoise dncnn_s70 pc_dncnn_s70_dhp 240.0 pc_dncnn_s70_baseline) ;;  # 30.0 x 8
    *) echo "unknown task $task (sr, denoise)" >&2; exit 2 ;;
  esac
  case ${1:-runs} in
    runs) runs "${args[@]}" ;;
    quality) report "${args[@]:0:3}" "${args[4]}" quality ;;
    report) report "${args[@]:0:3}" "${args[4]}" ;;
    *) echo "usage: $0 [runs|quality|report]" >&2; exit 2 ;;
  esac
done
