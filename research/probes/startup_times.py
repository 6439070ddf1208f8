"""Start-up time of every command against ``python -c 'import torch'``, measured side by side.

    python -m research.probes.startup_times                      # this checkout, 5 rounds
    python -m research.probes.startup_times --roots . /tmp/old   # two checkouts in the same loop (before/after)

Each round runs, for every root in turn, ``import torch``, then every command's ``--help`` and ``infer``
on one 32x32 image (DnCNN DHP-20 from ``weights/``), each in a fresh process; the order within a round
is fixed, so a busy machine slows all of them alike.  Prints the median wall time of each and
its ratio to the median ``import torch`` (the target: under 2x).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from restore_dhp.catalogue import weight_path
from restore_dhp.commands import COMMANDS

WEIGHTS = weight_path('denoise', 'dhp20')   # the image run: the smallest shipped model


def commands(root: Path, work: Path) -> dict[str, list[str]]:
    """Every restore-dhp entry's ``--help`` (:data:`restore_dhp.commands.COMMANDS`), and ``infer`` on one image."""
    cmds = {f'{m} --help': ['-m', f'restore_dhp.{m}', '--help'] for m, _ in COMMANDS.values()}
    cmds['infer 32x32'] = ['-m', 'restore_dhp.infer', '--weights', str(root / WEIGHTS), '--input',
                           str(work / 'in.png'), '--output', str(work / 'out'), '--overwrite', '--device', 'cpu',
                           '--quiet']
    return cmds


def wall(args: list[str], root: Path) -> float:
    env = {**os.environ, 'PYTHONPATH': str(root)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *args], cwd=root, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:  # timed all the same (e.g. an old ``train --help`` that exits 2)
        print(f'note: {" ".join(args[:3])} in {root} exited {done.returncode}', file=sys.stderr)
    return elapsed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--roots', nargs='+', default=['.'], help='checkouts to compare (default: this one)')
    p.add_argument('--rounds', type=int, default=5)
    args = p.parse_args(argv)
    roots = [Path(r).resolve() for r in args.roots]
    times: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8)).save(work / 'in.png')
        for _ in range(args.rounds):
            for root in roots:
                times.setdefault(('-', 'import torch'), []).append(wall(['-c', 'import torch'], root))
                for name, cmd in commands(root, work).items():
                    times.setdefault((str(root), name), []).append(wall(cmd, root))
    torch_s = statistics.median(times[('-', 'import torch')])
    print(f'median of {args.rounds} rounds; import torch: {torch_s:.2f} s')
    for (root, name), values in times.items():
        if root != '-':
            med = statistics.median(values)
            print(f'{root:<30} {name:<20} {med:6.2f} s  {med / torch_s:4.2f}x import torch')
    return 0


if __name__ == '__main__':
    sys.exit(main())
