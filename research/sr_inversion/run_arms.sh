#!/usr/bin/env bash
# The arms of issue 23 on the CPU (research/sr_inversion/options/sr_arm_<arm>_s10/_s11.yml: the CPU recipe on SR291_train,
# validated on the held-out SR291_val): each arm's two seeds side by side (tools/run_side_by_side.py), the arms one
# after another, then their table into research/sr_inversion/report.md (research/sr_inversion/arms_table.py). The controls (plain, dhp60)
# have no runs of their own: each EMA arm's run validates its trained network too (val.also_live), and that network
# is the control's (the average does not feed back into training; tests/test_recipes.py checks it bit for bit).
#   bash research/sr_inversion/run_arms.sh                       all arms (ARMS to choose, REPORT for another report file)
#   bash research/sr_inversion/run_arms.sh --iters 4 --force network_g:num_feat=8 ...   extra arguments go to run_side_by_side.py
# A finished run (its experiment holds net_g_latest.safetensors) is not run again, so after a kill the same command goes on (unfinished runs
# resume from their last saved state). Needs datasets/ prepared (python -m restore_dhp.prepare_data; it makes the
# SR291_train / SR291_val split). On the 2-core CPU machine (one thread per run) a seed pair took 27 min (plain) and
# 19 min (DHP-60): 1 h 40 min for the four.
set -u
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
ARMS=${ARMS:-plain_ema dhp60_ema plain_wd plain_init}
REPORT=${REPORT:-research/sr_inversion/report.md}
status=0
for arm in $ARMS; do
  opts=()
  for opt in research/sr_inversion/options/sr_arm_${arm}_s1?.yml; do
    [ -f "$opt" ] || { echo "no option files research/sr_inversion/options/sr_arm_${arm}_s1?.yml" >&2; exit 2; }
    # finished: its last compact checkpoint, net_g_latest, is written at the end of training
    [ -f "experiments/$(basename "$opt" .yml)/models/net_g_latest.safetensors" ] || opts+=("$opt")
  done
  [ ${#opts[@]} -eq 0 ] && { echo "== $arm: done before"; continue; }
  echo "== $(date -u +%T) $arm: ${opts[*]}"
  $PY -m tools.run_side_by_side --opts "${opts[@]}" --python "$PY" "$@" || status=1
done
$PY -m research.sr_inversion.arms_table --report "$REPORT" || status=1
exit $status
