#!/usr/bin/env python
"""Does pruning's FLOPs reduction turn into real speed?  Measured side by side, in one run, on the CPU by default.

For every compact model: its FLOPs ratio to the full-width baseline, the
measured time ratio (speedup = baseline ms / model ms), and the efficiency
speedup / (1 / FLOPs ratio): 1.0 means the FLOPs saving is fully realised; the
target on CPU is >= 0.9.  The models' timed runs are interleaved (round-robin:
one run of every model per round) so that drift in clock speed or load hits
all of them alike; the median over rounds is reported.

    # compact checkpoints (the baseline: a full-width checkpoint among them, else a full-width copy)
    python scripts/benchmark_speedup.py --weights weights/srresnet_x4_*.safetensors --size 64
    # no checkpoints needed: random per-group widths at given FLOPs ratios
    python scripts/benchmark_speedup.py --random-widths 0.6 0.4 0.2 --arch srresnet dncnn --size 64
    # are odd channel counts slow? add copies with widths rounded to a multiple of 8
    python scripts/benchmark_speedup.py --random-widths 0.6 0.4 0.2 --round-to 8

Weights do not affect the timing of these dense convolutions, so random-width
models use their random initialisation.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from dataclasses import dataclass

import torch

import restore_dhp  # noqa: F401  (registers the architectures)
from restore_dhp.complexity import ARCH_ALIASES, build_meta, count_flops, count_params

TARGET_EFFICIENCY = 0.9


@dataclass
class Entry:
    label: str
    model: torch.nn.Module
    flops: int
    params: int
    widths: dict
    is_baseline: bool = False
    ms: float | None = None


def _flops(arch: str, widths, size: int, arch_kwargs: dict) -> int:
    return count_flops(build_meta(arch, widths, **arch_kwargs), size, size)['flops']


def random_widths(arch: str, target: float, size: int, arch_kwargs: dict, rng: random.Random) -> dict:
    """Per-group widths with uneven random keep fractions whose FLOPs ratio is as close to ``target`` as found."""
    full = build_meta(arch, None, **arch_kwargs).kept_widths()
    full_flops = _flops(arch, None, size, arch_kwargs)
    shape = {g: rng.uniform(0.5, 1.5) for g in full}

    def widths_at(m: float) -> dict:
        return {g: max(1, min(n, round(n * m * shape[g]))) for g, n in full.items()}

    lo, hi = 0.0, 2.0 / min(shape.values())
    best = (float('inf'), widths_at(1.0))
    for _ in range(24):
        mid = (lo + hi) / 2
        w = widths_at(mid)
        ratio = _flops(arch, w, size, arch_kwargs) / full_flops
        if abs(ratio - target) < best[0]:
            best = (abs(ratio - target), w)
        if ratio < target:
            lo = mid
        else:
            hi = mid
    return best[1]


def round_widths(widths: dict, full: dict, multiple: int) -> dict:
    """Each width rounded to the nearest multiple of ``multiple`` (at least one multiple, at most full width)."""
    return {g: min(full[g], max(multiple, multiple * round(w / multiple))) for g, w in widths.items()}


def build(arch: str, widths, arch_kwargs: dict, device) -> torch.nn.Module:
    from basicsr.utils.registry import ARCH_REGISTRY
    cls = ARCH_REGISTRY.get(ARCH_ALIASES.get(arch, arch))
    return cls(widths=widths, **arch_kwargs).to(device).eval()


@torch.no_grad()
def time_round_robin(entries: list[Entry], x: torch.Tensor, repeats: int, warmup: int) -> None:
    """Median ms per model over ``repeats`` rounds, each round running every model once (order rotated)."""
    runs = {id(e): [] for e in entries}
    sync = torch.cuda.synchronize if x.device.type == 'cuda' else (lambda: None)
    for r in range(warmup + repeats):
        shift = r % len(entries)
        for e in entries[shift:] + entries[:shift]:  # rotate the order so no model always runs first
            sync()
            start = time.perf_counter()
            e.model(x)
            sync()
            if r >= warmup:
                runs[id(e)].append((time.perf_counter() - start) * 1e3)
    for e in entries:
        e.ms = statistics.median(runs[id(e)])


def summarise_widths(widths: dict) -> str:
    vals = list(widths.values())
    odd = sum(v % 8 != 0 for v in vals)
    return f'{min(vals)}-{max(vals)} ({odd}/{len(vals)} not /8)'


def print_table(title: str, entries: list[Entry], size: int) -> list[dict]:
    base = next(e for e in entries if e.is_baseline)
    print(f'\n{title}')
    head = (f'{"model":<28}{"widths (min-max)":>24}{"GFLOPs@" + str(size):>12}{"FLOPs ratio":>13}'
            f'{"ms (median)":>13}{"ms/GFLOP":>10}{"speedup":>9}{"ideal":>8}{"speedup/ideal":>15}{"  >=0.9":>8}')
    print(head)
    print('-' * len(head))
    rows = []
    for e in entries:
        ratio = e.flops / base.flops
        speedup = base.ms / e.ms
        ideal = 1 / ratio
        eff = speedup / ideal
        ok = '' if e.is_baseline else ('yes' if eff >= TARGET_EFFICIENCY else 'NO')
        print(f'{e.label:<28}{summarise_widths(e.widths):>24}{e.flops / 1e9:>12.3f}{ratio:>13.3f}{e.ms:>13.2f}'
              f'{e.ms / (e.flops / 1e9):>10.2f}{speedup:>9.2f}{ideal:>8.2f}{eff:>15.2f}{ok:>8}')
        rows.append({'model': e.label, 'flops_ratio': ratio, 'ms': e.ms, 'speedup': speedup, 'efficiency': eff})
    return rows


def input_for(model, size: int, device) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, model.in_channels, size, size, generator=g).to(device)


def random_mode(args, device) -> None:
    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)
    for arch in args.arch:
        full = build_meta(arch, None).kept_widths()
        base = build(arch, None, {}, device)
        entries = [Entry('baseline (full width)', base, _flops(arch, None, args.size, {}), count_params(base),
                         full, is_baseline=True)]
        for target in args.random_widths:
            w = random_widths(arch, target, args.size, {}, rng)
            m = build(arch, w, {}, device)
            entries.append(Entry(f'random-{target:g}', m, _flops(arch, w, args.size, {}), count_params(m), w))
            if args.round_to:
                wr = round_widths(w, full, args.round_to)
                mr = build(arch, wr, {}, device)
                entries.append(Entry(f'random-{target:g} rounded-to-{args.round_to}', mr,
                                     _flops(arch, wr, args.size, {}), count_params(mr), wr))
        run_and_print(f'{type(base).__name__} (random widths)', entries, args, device)


def weights_mode(args, device) -> None:
    from restore_dhp.checkpoint import load_compact, read_metadata
    groups: dict[tuple, list] = {}
    for path in args.weights:
        meta = read_metadata(path)
        key = (meta['arch'], tuple(sorted(meta['arch_kwargs'].items())))
        groups.setdefault(key, []).append((path, meta))
    for (arch, kw), items in groups.items():
        kwargs = dict(kw)
        full = build_meta(arch, None, **kwargs).kept_widths()
        full_flops = _flops(arch, None, args.size, kwargs)
        entries = []
        for path, meta in items:
            m = load_compact(path, device).float()
            f = _flops(arch, meta['widths'], args.size, kwargs)
            entries.append(Entry(path.rsplit('/', 1)[-1].split('.')[0], m, f, count_params(m), m.kept_widths(),
                                 is_baseline=(f == full_flops and not any(e.is_baseline for e in entries))))
            if args.round_to and f != full_flops:
                wr = round_widths(m.kept_widths(), full, args.round_to)
                mr = build(arch, wr, kwargs, device)
                entries.append(Entry(f'{entries[-1].label} rounded-to-{args.round_to}', mr,
                                     _flops(arch, wr, args.size, kwargs), count_params(mr), wr))
        if not any(e.is_baseline for e in entries):
            base = build(arch, None, kwargs, device)
            entries.insert(0, Entry('full width (random weights)', base, full_flops, count_params(base), full,
                                    is_baseline=True))
        entries.sort(key=lambda e: not e.is_baseline)
        run_and_print(f'{arch}', entries, args, device)


def run_and_print(title: str, entries: list[Entry], args, device) -> None:
    from restore_dhp.timing import device_name
    x = input_for(entries[0].model, args.size, device)
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        for e in entries:
            e.model.to(memory_format=torch.channels_last)
    time_round_robin(entries, x, args.repeats, args.warmup)
    dev = device_name(torch.device(device))
    print_table(f'{title}: input {tuple(x.shape)}, {dev}, fp32{", channels_last" if args.channels_last else ""}, median of {args.repeats} round-robin rounds '
                f'after {args.warmup} warm-up rounds', entries, args.size)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0], epilog='\n'.join(__doc__.split('\n')[1:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--weights', nargs='+', help='compact checkpoints to compare')
    src.add_argument('--random-widths', nargs='+', type=float, metavar='RATIO',
                     help='build random-width models at these FLOPs ratios (e.g. 0.6 0.4 0.2)')
    p.add_argument('--arch', nargs='+', choices=sorted(ARCH_ALIASES), default=['srresnet', 'dncnn'],
                   help='architectures for --random-widths (default: both)')
    p.add_argument('--size', type=int, default=64, help='input height and width (LR for SR; default 64)')
    p.add_argument('--repeats', type=int, default=10, help='timed round-robin rounds (default 10)')
    p.add_argument('--warmup', type=int, default=3, help='untimed rounds first (default 3)')
    p.add_argument('--round-to', type=int, default=0, metavar='N',
                   help='also time each compact model with widths rounded to a multiple of N')
    p.add_argument('--threads', type=int, help='torch CPU threads (default: torch default)')
    p.add_argument('--device', choices=('cpu', 'cuda'), default='cpu', help='default cpu (the target is CPU)')
    p.add_argument('--channels-last', action='store_true',
                   help='run every model and the input in channels_last memory format (NHWC)')
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args(argv)
    if args.size < 1 or args.repeats < 1 or args.warmup < 0 or args.round_to < 0:
        p.error('--size and --repeats must be positive, --warmup and --round-to non-negative')
    if args.random_widths and not all(0 < r <= 1 for r in args.random_widths):
        p.error('--random-widths ratios must be in (0, 1]')
    if args.device == 'cuda' and not torch.cuda.is_available():
        p.error('--device cuda: no CUDA device available')
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        if args.random_widths:
            random_mode(args, args.device)
        else:
            weights_mode(args, args.device)
    except (OSError, ValueError) as e:  # CheckpointError is a ValueError
        print(f'error: {e}', file=sys.stderr)
        return 2
    print(f'\nspeedup = baseline ms / model ms; ideal = 1 / FLOPs ratio; target: speedup/ideal >= '
          f'{TARGET_EFFICIENCY} on CPU.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
