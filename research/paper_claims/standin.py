"""Stand-ins for runs whose checkpoints went with their machine: the run's architecture with untrained weights.

    python -m research.paper_claims.standin research/paper_claims/quality/sr_f1400/*.json

A run's quality report (``restore_dhp.benchmark``'s report.json of its one checkpoint, kept in the repository) holds
the PSNR per set and everything the device report needs of the model but its latency: architecture, constructor
arguments, per-layer widths and provenance (``info``).  Latency depends on the architecture alone, so a stand-in
built from those at the report's checkpoint path (absent there: a real checkpoint is never replaced) is timed as
the run would be, side by side with the others on this machine, and ``--quality`` of the device report reads the
kept PSNR for it.  A stand-in's ``info`` says what it is; it must not be benchmarked for quality.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from restore_dhp.checkpoint import build_checked, save_compact

STAND_IN = 'untrained stand-in of the run for timing only (research/paper_claims/standin.py)'


def stand_in(report_path: Path) -> Path | None:
    """The stand-in of a one-checkpoint quality report, written at its checkpoint path when nothing is there;
    that path, or None when a file was there already."""
    report = json.loads(report_path.read_text())
    models = [r for r in report['results'] if r.get('checkpoint')]
    if len(models) != 1:
        raise SystemExit(f'error: {report_path}: {len(models)} checkpoints in it, a stand-in needs exactly one')
    r = models[0]
    path = Path(r['checkpoint'])
    if path.exists():
        return None
    net = build_checked(r['arch'], r['arch_kwargs'], r['widths'], report_path).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_compact(net, path, info={**r.get('info', {}), 'stand_in': STAND_IN})
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('reports', nargs='+', type=Path, help='one-checkpoint restore_dhp.benchmark report.json files')
    args = p.parse_args(argv)
    for report in args.reports:
        if (path := stand_in(report)) is not None:
            print(f'{path}: stand-in of {report}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
