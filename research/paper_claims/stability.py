"""The recipe-stability check of reports/paper_claims.md: two seeds of each SR CPU recipe, read from checkpoints.

    python -m research.paper_claims.stability --runs pbn_baseline_s10 pbn_baseline_s11 ... [--root experiments]

Each run's last compact checkpoint records every validation (``info.validation``); with ``train.precise_bn`` a
validation is logged twice, with the running BatchNorm statistics (set ``<name>_running``) and with the
recomputed ones.  The table gives both curves, each seed pair's spread at the end and the largest fall from one
validation to the next, against the issue's criteria (pair within 0.15 dB, no fall over 1 dB).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from restore_dhp.checkpoint import read_metadata
from restore_dhp.models.restoration_model import RUNNING_SUFFIX
from tools.curves import last_checkpoint

PAIR_WITHIN, FALL_LIMIT = 0.15, 1.0


def curves(name: str, root: Path) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(precise, running) PSNR curves of a run: (iteration, value) per validation (the last one at each iteration)."""
    path = last_checkpoint(name, root)
    if path is None:
        raise SystemExit(f'error: {name}: no compact checkpoint under {root / name / "models"}')
    precise, running = {}, {}
    for iteration, set_name, metrics in read_metadata(path)['info'].get('validation', []):
        (running if set_name.endswith(RUNNING_SUFFIX) else precise)[int(iteration)] = float(next(iter(metrics.values())))
    return sorted(precise.items()), sorted(running.items())


def largest_fall(curve: list[tuple[int, float]]) -> float:
    return max([0.0, *(a - b for (_, a), (_, b) in zip(curve, curve[1:]))])


def table(runs: list[str], root: Path) -> str:
    rows, finals = [], {}
    for name in runs:
        precise, running = curves(name, root)
        finals[name] = precise[-1][1]
        cells = ' '.join(f'{p:.2f} ({r:.2f})' for (_, p), (_, r) in zip(precise, running)) if running else \
            ' '.join(f'{p:.2f}' for _, p in precise)
        fall = largest_fall(precise)
        rows.append(f'| {name} | {cells} | {precise[-1][1]:.2f} | {fall:.2f}{" !!" if fall > FALL_LIMIT else ""} |')
    iters = ', '.join(str(i) for i, _ in curves(runs[0], root)[0])
    out = [f'| run | PSNR-Y by validation, recomputed statistics (running) at iterations {iters} | last | largest fall |',
           '|---|---|---|---|', *rows, '', '| recipe | seeds | last, each | spread | within 0.15 dB |', '|---|---|---|---|---|']
    pairs: dict[str, list[str]] = {}
    for name in runs:
        pairs.setdefault(re.sub(r'_s\d+$', '', name), []).append(name)
    for recipe, names in pairs.items():
        values = [finals[n] for n in names]
        spread = max(values) - min(values)
        verdict = 'one seed so far' if len(values) < 2 else 'yes' if spread <= PAIR_WITHIN else 'NO'
        out.append(f"| {recipe} | {len(names)} | {' / '.join(f'{v:.2f}' for v in values)} | "
                   f"{f'{spread:.2f}' if len(values) > 1 else '–'} | {verdict} |")
    return '\n'.join(out) + '\n'


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--runs', nargs='+', required=True)
    p.add_argument('--root', type=Path, default=Path('experiments'))
    args = p.parse_args(argv)
    print(table(args.runs, args.root), end='')
    return 0


if __name__ == '__main__':
    sys.exit(main())
