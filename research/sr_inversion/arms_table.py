#!/usr/bin/env python
"""Write the issue-23 arms' validation table (from their checkpoints' metadata) into research/sr_inversion/report.md.

    python -m research.sr_inversion.arms_table     # experiments/sr_arm_*_s1?/ -> the report's arms section
    python -m research.sr_inversion.arms_table --experiments DIR --report FILE

The table has one row per run (its SR291_val curve, as its last compact checkpoint records it) and one per arm (the
mean of its seeds' last values), and replaces what lies between the report's ``<!-- arms:begin -->`` and
``<!-- arms:end -->`` markers (appended as a new section the first time). Runs that have not finished (no
``net_g_latest``) are listed, not left out silently.
An EMA arm's run (``<arm>_ema``, with ``val.also_live``) also gives its control ``<arm>``: the trained network's
curve, logged beside the average's. The average does not feed back into training, so that network is the one
the control's own run would train (tests/test_recipes.py checks it bit for bit).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from restore_dhp.fileio import write_text
from tools.curves import validation_curve
from tools.markdown_block import markers, splice

RUN_NAME = re.compile(r'sr_arm_(\w+)_s(\d+)$')
EMA = '_ema'  # an arm with EMA of the weights; without the suffix, its control


def curves_of(runs: list[str], root: Path) -> dict[tuple[str, str], list]:
    """(arm, seed) -> its validation curve; an EMA run's trained-network curve is its control arm's."""
    curves = {}
    for run in runs:
        arm, seed = RUN_NAME.search(run).groups()
        curves[arm, seed] = validation_curve(run, root=root)
        if arm.endswith(EMA):
            live = validation_curve(run, live=True, root=root)
            if live:
                curves[arm[:-len(EMA)], seed] = live
    return dict(sorted(curves.items()))


def table(runs: list[str], root: Path) -> str:
    curves = curves_of(runs, root)
    iters = sorted({i for c in curves.values() for i, _, _ in c})
    lines = ['| run | ' + ' | '.join(f'@{i}' for i in iters) + ' |', '|---|' + '---|' * len(iters)]
    finals: dict[str, list[float]] = {}
    for (arm, seed), curve in curves.items():
        by_iter = {i: v for i, _, v in curve}
        lines.append(f'| {arm}, seed {seed} | ' + ' | '.join(f'{by_iter[i]:.2f}' if i in by_iter else ''
                                                             for i in iters) + ' |')
        if curve:
            finals.setdefault(arm, []).append(curve[-1][2])
    means = ['| arm | seeds | last validation, mean (dB) | spread (dB) |', '|---|---|---|---|']
    for arm, values in finals.items():
        means.append(f'| {arm} | {len(values)} | {sum(values) / len(values):.2f} | {max(values) - min(values):.2f} |')
    derived = sorted({arm for arm, seed in curves if not arm.endswith(EMA) and (arm + EMA, seed) in curves})
    note = (f" (the {', '.join(f'`{a}`' for a in derived)} rows are the trained networks of the "
            f"{', '.join(f'`{a}{EMA}`' for a in derived)} runs)" if derived else '')
    return (f'Validation PSNR-Y on `SR291_val` (dB) by iteration, from each run\'s last checkpoint{note}:\n\n'
            + '\n'.join(lines) + '\n\n' + '\n'.join(means) + '\n')


def with_table(report: str, body: str) -> str:
    """``report`` with its arms block replaced by ``body``; without one, a new section holding it at the end."""
    try:
        return splice(report, 'arms', body)
    except ValueError:
        begin, end = markers('arms')
        return (report.rstrip('\n') + '\n\n## The arms of issue 23 (CPU recipe, SR291_val)\n\n'
                + f'{begin}\n{body}{end}\n')


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--experiments', type=Path, default=Path('experiments'))
    p.add_argument('--report', default='research/sr_inversion/report.md')
    args = p.parse_args(argv)
    runs = sorted(d.name for d in args.experiments.glob('sr_arm_*_s*') if RUN_NAME.search(d.name))
    if not runs:
        print(f'arms_table: no sr_arm_*_s* experiments under {args.experiments}', file=sys.stderr)
        return 2
    body = table(runs, args.experiments)
    unfinished = [run for run in runs if not (args.experiments / run / 'models' / 'net_g_latest.safetensors').is_file()]
    if unfinished:
        body += f"\nNot finished (partial curves): {', '.join(unfinished)}.\n"
    report = Path(args.report)
    write_text(report, with_table(report.read_text() if report.exists() else '', body))
    print(body)
    return 0


if __name__ == '__main__':
    sys.exit(main())
