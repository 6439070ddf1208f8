"""The recipe-stability check of reports/paper_claims.md: two seeds of each SR CPU recipe, read from checkpoints.

    python -m research.paper_claims.stability --runs pbn_baseline_s10 pbn_baseline_s11 ... [--root experiments]

Each run's last compact checkpoint records every validation (``info.validation``); with ``train.precise_bn`` a
validation is logged twice, with the running BatchNorm statistics (set ``<name>_running``) and with the
recomputed ones.  The table gives both curves, each seed pair's spread at the end and the largest fall from one
validation to the next, against the issue's criteria (pair within 0.15 dB, no fall over 1 dB).

The curves outlive the runs: every run read from a checkpoint is written to ``--store`` (a small JSON committed with
the report, ``research/paper_claims/stability_runs.json``), and a run whose checkpoint is gone is read from there,
so a table can join runs trained on different machines.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from restore_dhp.checkpoint import read_metadata
from restore_dhp.fileio import write_text
from restore_dhp.models.restoration_model import RUNNING_SUFFIX
from tools.curves import last_checkpoint

PAIR_WITHIN, FALL_LIMIT = 0.15, 1.0
STORE = Path('research/paper_claims/stability_runs.json')
Curve = list[tuple[int, float]]


def curves(name: str, root: Path, store: dict | None = None) -> tuple[Curve, Curve]:
    """(precise, running) PSNR curves of a run: (iteration, value) per validation (the last one at each iteration),
    from its last checkpoint, else from ``store`` (run name -> ``{'precise': [[it, v], ...], 'running': ...}``).
    A run read from its checkpoint is put into ``store``."""
    path = last_checkpoint(name, root)
    if path is None:
        if store is not None and name in store:
            return ([(int(i), float(v)) for i, v in store[name]['precise']],
                    [(int(i), float(v)) for i, v in store[name]['running']])
        raise SystemExit(f'error: {name}: no compact checkpoint under {root / name / "models"}, '
                         'and no stored curves')
    precise, running = {}, {}
    for iteration, set_name, metrics in read_metadata(path)['info'].get('validation', []):
        (running if set_name.endswith(RUNNING_SUFFIX) else precise)[int(iteration)] = float(next(iter(metrics.values())))
    if not precise:
        raise SystemExit(f'error: {name}: {path} records no validation yet')
    if store is not None:
        store[name] = {'precise': sorted(precise.items()), 'running': sorted(running.items())}
    return sorted(precise.items()), sorted(running.items())


def largest_fall(curve: list[tuple[int, float]]) -> float:
    return max([0.0, *(a - b for (_, a), (_, b) in zip(curve, curve[1:]))])


def table(runs: list[str], root: Path, store: dict | None = None) -> str:
    rows, finals, first = [], {}, None
    for name in runs:
        precise, running = curves(name, root, store)
        first = first or precise
        finals[name] = precise[-1][1]
        live = dict(running)   # none once BatchNorm is frozen (train.freeze_bn_iter): nothing is recomputed then
        cells = ' '.join(f'{p:.2f}' + (f' ({live[i]:.2f})' if i in live else '') for i, p in precise)
        fall = largest_fall(precise)
        rows.append(f'| {name} | {cells} | {precise[-1][1]:.2f} | {fall:.2f}{" !!" if fall > FALL_LIMIT else ""} |')
    iters = ', '.join(str(i) for i, _ in first)
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
    p.add_argument('--store', type=Path, default=STORE,
                   help=f'JSON of the curves read so far, for runs whose checkpoints are gone (default {STORE})')
    args = p.parse_args(argv)
    store = json.loads(args.store.read_text()) if args.store.is_file() else {}
    text = table(args.runs, args.root, store)
    write_text(args.store, '{\n' + ',\n'.join(f' {json.dumps(k)}: {json.dumps(v)}' for k, v in sorted(store.items()))
               + '\n}\n')   # one run a line
    print(text, end='')
    return 0


if __name__ == '__main__':
    sys.exit(main())
