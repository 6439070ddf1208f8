#!/usr/bin/env python
"""Peak memory of ``python -m restore_dhp.infer`` on large images: it should grow with the output, not faster.

Each case runs the real command (decode, tiled restoration into one preallocated 8-bit output, PNG
encoding) in its own child process; the child's peak resident set size comes from ``wait4``.  A small
case measures the fixed cost (Python, torch, the model); the table shows how the peak grows beyond it
next to the output's size in bytes.  Above one tile the tiles' working memory is constant, so between
the two largest cases the peak should grow by no more than the output does.

    python -m research.probes.benchmark_memory                                   # SR x4, DHP-20, 2000² and 4000²
    python -m research.probes.benchmark_memory --weights weights/srresnet_x4_baseline.safetensors --sizes 1000 2000

Target (issues 14 and 21): at most 3 GB for a 4000×4000 input with the shipped DHP-20 weights.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from restore_dhp.checkpoint import read_metadata
from restore_dhp.data.imageio import write_png
from restore_dhp.progress import stderr_is_terminal
from restore_dhp.run_model import DEFAULT_TILE

REFERENCE_SIDE = 64   # the small case: fixed cost of the process


def synthetic_photo(side: int, seed: int = 0) -> np.ndarray:
    """A smooth RGB image with some texture (compresses like a photo, unlike pure noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    base = np.stack([np.sin(6 * xx + 2 * c) * np.cos(4 * yy - c) for c in range(3)], axis=2)
    texture = rng.normal(0, 0.08, (side // 8 + 1, side // 8 + 1, 3)).repeat(8, 0).repeat(8, 1)[:side, :side]
    return np.clip((base * 0.4 + 0.5 + texture) * 255, 0, 255).astype(np.uint8)


def peak_rss_of(cmd: list[str]) -> tuple[int, float, int]:
    """(peak RSS in bytes, seconds, exit code) of one child process; on a terminal the child's stderr (its
    progress bars over the image and its tiles) is shown as it runs, else it is kept and shown on failure."""
    start = time.perf_counter()
    shown = stderr_is_terminal()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=None if shown else subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode and not shown:
        sys.stderr.write(proc.stderr.read().decode(errors='replace'))
    return usage.ru_maxrss * 1024, time.perf_counter() - start, proc.returncode


def run_case(weights: str, side: int, scale: int, tile: int, work: Path) -> dict:
    folder = work / f'in_{side}'
    folder.mkdir(exist_ok=True)
    write_png(folder / f'photo_{side}.png', synthetic_photo(side))
    cmd = [sys.executable, '-m', 'restore_dhp.infer', '--weights', weights, '--input', str(folder),
           '--output', str(work / f'out_{side}'), '--overwrite', '--device', 'cpu', '--tile', str(tile),
           *([] if stderr_is_terminal() else ['--quiet'])]   # progress: infer's own bars, on a terminal
    peak, seconds, code = peak_rss_of(cmd)
    if code:
        raise SystemExit(f'error: infer failed on the {side}×{side} case (exit {code})')
    return {'side': side, 'peak': peak, 'seconds': seconds, 'output_bytes': (side * scale) ** 2 * 3}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--weights', default='weights/srresnet_x4_dhp20.safetensors')
    p.add_argument('--sizes', type=int, nargs='+', default=[2000, 4000], help='input sides in pixels')
    p.add_argument('--tile', type=int, default=DEFAULT_TILE, help=f'infer --tile (default {DEFAULT_TILE}, as infer)')
    p.add_argument('--target-gb', type=float, default=3.0, help='peak allowed for the largest case')
    args = p.parse_args(argv)
    meta = read_metadata(args.weights)
    scale = int(meta['scale'])
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        ref = run_case(args.weights, REFERENCE_SIDE, scale, args.tile, Path(tmp))
        print(f"{Path(args.weights).name} ({meta['task']} x{scale}), CPU, tile {args.tile}; fixed cost "
              f"({REFERENCE_SIDE}×{REFERENCE_SIDE} input): {ref['peak'] / 2**20:,.0f} MB peak RSS")
        print('| input | output (MB, 8-bit RGB) | peak RSS (MB) | above fixed cost (MB) | '
              'above fixed / output | time (s) |')
        print('|---|---|---|---|---|---|', flush=True)
        for side in args.sizes:  # one row as each case finishes
            c = run_case(args.weights, side, scale, args.tile, Path(tmp))
            cases.append(c)
            extra = c['peak'] - ref['peak']
            print(f"| {side}×{side} | {c['output_bytes'] / 2**20:,.0f} | {c['peak'] / 2**20:,.0f} | "
                  f"{extra / 2**20:,.0f} | {extra / c['output_bytes']:.2f} | {c['seconds']:,.1f} |", flush=True)
    cases.sort(key=lambda c: c['side'])
    if len(cases) > 1:  # beyond one tile the working memory is constant: the peak should grow with the output
        a, b = cases[-2], cases[-1]
        print(f"{a['side']}→{b['side']}: peak RSS +{(b['peak'] - a['peak']) / 2**20:,.0f} MB for "
              f"+{(b['output_bytes'] - a['output_bytes']) / 2**20:,.0f} MB of output")
    largest = cases[-1]
    verdict = 'within' if largest['peak'] <= args.target_gb * 1e9 else 'OVER'
    print(f"largest case {largest['side']}×{largest['side']}: {largest['peak'] / 1e9:.2f} GB, "
          f"{verdict} the {args.target_gb:g} GB target")
    return 0 if verdict == 'within' else 1


if __name__ == '__main__':
    sys.exit(main())
