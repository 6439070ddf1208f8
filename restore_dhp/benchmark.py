"""Benchmark compact checkpoints the way the DHP paper reports them: quality, FLOPs, params, runtime, memory.

    python -m restore_dhp.benchmark --task sr --data-root datasets --sets Set5 Set14 B100 Urban100 --out reports/sr
    python -m restore_dhp.benchmark --task denoise --data-root datasets --sets BSD68 Set12 --out reports/denoise

Without ``--weights`` the catalogue's checkpoints present under ``weights/`` are used; each model is
named from its own metadata (:func:`restore_dhp.catalogue.model_label`).

Quality: every checkpoint on every set (SR: Y-PSNR/SSIM with a ``scale``-pixel border crop and RGB
PSNR; denoising at ``--sigma`` on fixed noise: PSNR/SSIM; LPIPS only when it can be computed
offline), plus a floor row (MATLAB bicubic for SR, the noisy input for denoising).  Models run in
their deployed form (:mod:`restore_dhp.deploy`: fused when it is among ``--backends``).

Runtime: ``--warmup`` untimed runs, then the median of ``--repeats`` timed runs per image, averaged
over the timing set's images (default: Urban100 for SR, BSD68 for denoising, as in the paper, when
available; otherwise the first evaluated set), for every backend in ``--backends``.  The table's
runtime column uses the backend whose models ran fastest in total and names it; report.json keeps
every backend's figures.  Each model is timed in a fresh process (``--in-process`` to disable).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from . import reporting
from .catalogue import TASKS, default_weights
from .checkpoint import CheckpointError, load_compact
from .commands import prog, run_entry
from .deploy import BACKEND_TABLE, BACKENDS, DeployError, prepare, usable_backends
from .progress import progress
from .evaluation import (EvaluationError, describe_checkpoint, evaluate, evaluate_floor, load_set,
                         measure_checkpoint, measure_checkpoint_isolated)
from .metrics import lpips_metric
from .run_model import resolve_device
from .tasks import Task
from .timing import device_name

EXIT_ERROR = 2


def default_backends(device: str) -> list[str]:
    """Every exact (fp32) backend that can run on ``device`` here, but those slow to start there (``compiled`` on
    the CPU would compile every model again in each fresh timing process; ask for it with ``--backends``)."""
    return [b for b in usable_backends(device) if device not in BACKEND_TABLE[b].slow_start_on]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog('benchmark'), description=__doc__.split('\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog='\n'.join(__doc__.split('\n')[1:]))
    p.add_argument('--task', choices=sorted(TASKS), required=True)
    p.add_argument('--data-root', default='datasets', help='folder holding the test sets (default: datasets)')
    p.add_argument('--weights', nargs='+', help='compact checkpoints (default: the catalogue\'s, under weights/)')
    p.add_argument('--sets', nargs='+', help='test sets (default: Set5 Set14 B100 for sr, BSD68 for denoise)')
    p.add_argument('--out', help='output folder (default: reports/<task>)')
    p.add_argument('--backends', nargs='+', choices=BACKENDS,
                   help='deployed forms to time, all fp32 (default: every one that runs on the device here)')
    p.add_argument('--repeats', type=int, default=5, help='timed runs per image (median taken; default 5)')
    p.add_argument('--warmup', type=int, default=2, help='untimed warm-up runs per image (default 2)')
    p.add_argument('--device', choices=('auto', 'cpu', 'cuda'), default='auto')
    p.add_argument('--threads', type=int, help='CPU threads of the timed runs (default: torch\'s default; '
                   'quality is always evaluated with torch\'s default)')
    p.add_argument('--timing-set', help='set whose images are timed (default: Urban100/BSD68, else the first set)')
    p.add_argument('--max-images', type=int, help='use at most N images per set (quick runs)')
    p.add_argument('--timing-max-images', type=int, help='time at most N images (default: --max-images)')
    p.add_argument('--sigma', type=float, default=70.0, help='denoising noise level on the 0-255 scale')
    p.add_argument('--seed', type=int, default=0, help='noise seed for denoising test sets')
    p.add_argument('--tile', type=int, default=0, help='evaluate in tiles of N input pixels (0: whole images)')
    p.add_argument('--no-lpips', action='store_true', help='skip LPIPS even when it is available')
    p.add_argument('--no-timing', action='store_true', help='quality and complexity only')
    p.add_argument('--in-process', action='store_true', help='time all models in this process (faster start)')
    p.add_argument('--quiet', action='store_true', help='no progress bars (none either when stderr is not a terminal)')
    return p


def choose_timing_set(args, task: Task, sets: dict) -> tuple[str, list, str]:
    """(name, items, reason): the explicit --timing-set, else the paper's set when available, else the first set."""
    limit = args.timing_max_images or args.max_images
    if args.timing_set:
        items = sets.get(args.timing_set) or load_set(task, args.data_root, args.timing_set, args.seed, limit)
        return args.timing_set, items[:limit] if limit else items, 'chosen with --timing-set'
    paper = TASKS[args.task].entry.paper_timing_set
    if paper in sets:
        return paper, sets[paper][:limit] if limit else sets[paper], f'the paper averaged runtimes on {paper}'
    try:
        items = load_set(task, args.data_root, paper, args.seed, limit)
        return paper, items, f'the paper averaged runtimes on {paper} (loaded for timing only)'
    except (FileNotFoundError, EvaluationError):
        first = next(iter(sets))
        items = sets[first][:limit] if limit else sets[first]
        return first, items, f"{paper} (the paper's timing set) not available; first evaluated set"


def time_models(args, task: Task, rows: list[dict], sets: dict, device: str) -> dict:
    """Time every model in every backend; set each row's 'timing' (fastest backend) and 'timing_by_backend'."""
    name, items, reason = choose_timing_set(args, task, sets)
    inputs = [task.model_input(it).numpy() for it in items]
    threads = args.threads or torch.get_num_threads()
    run = measure_checkpoint if args.in_process else measure_checkpoint_isolated
    for row in progress(rows, desc=f'timing on {name} ({device})', quiet=args.quiet, unit='model'):
        row['timing_by_backend'] = {b: run(row['checkpoint'], inputs, device, args.repeats, args.warmup, b,
                                           'fp32', threads) for b in args.backends}
    totals = {b: sum(r['timing_by_backend'][b]['runtime_ms'] for r in rows) for b in args.backends}
    best = min(totals, key=totals.get)
    # a backend that allocates outside torch (ONNX Runtime) has no memory figure: it comes from the fastest other
    with_memory = [b for b in sorted(totals, key=totals.get) if rows[0]['timing_by_backend'][b]['peak_memory_mb']]
    memory_backend = with_memory[0] if with_memory else None
    for row in rows:
        row['timing'] = {**row['timing_by_backend'][best], 'memory_backend': memory_backend, 'peak_memory_mb':
                         row['timing_by_backend'][memory_backend]['peak_memory_mb'] if memory_backend else None}
    first = rows[0]['timing_by_backend'][memory_backend or best]
    return {'set': name, 'set_reason': reason, 'num_images': len(inputs), 'image_names': [it[0] for it in items],
            'image_sizes': [list(x.shape[2:]) for x in inputs], 'backend': best, 'precision': 'fp32',
            'memory_backend': memory_backend,
            'deployed': rows[0]['timing']['deployed'], 'backends_total_ms': totals, 'method': first['method'],
            'device_name': first['device_name'], 'threads': first['threads'],
            'isolation': 'each model timed in its own in-process loop' if args.in_process
            else 'each model timed in a fresh process'}


def checkpoints(args) -> tuple[list[dict], int]:
    """The rows of the checkpoints to benchmark (described from their metadata) and their common scale."""
    weights = args.weights or default_weights(args.task)
    if not weights:
        raise EvaluationError('no checkpoints: pass --weights, or put the catalogue\'s files in weights/ '
                              f'({TASKS[args.task].entry.filename("baseline")}, ...)')
    rows = [describe_checkpoint(p) for p in weights]
    for row in rows:
        if row['task'] != args.task:
            raise EvaluationError(f"{row['checkpoint']}: a {row['task']} checkpoint, but --task is {args.task}")
    scales = {r['scale'] for r in rows}
    if len(scales) > 1:
        raise EvaluationError(f'checkpoints have different scales {sorted(scales)}; benchmark one scale at a time')
    return rows, scales.pop()


def run(args) -> dict:
    if args.threads is not None and args.threads < 1:
        raise EvaluationError('--threads must be at least 1')
    if args.repeats < 1 or args.warmup < 0:
        raise EvaluationError('--repeats must be >= 1 and --warmup >= 0')
    if TASKS[args.task].uses_noise and not args.sigma >= 0:
        raise EvaluationError(f'--sigma must be >= 0, got {args.sigma:g}')
    device = str(resolve_device(args.device))
    args.backends = args.backends or default_backends(device)
    rows, scale = checkpoints(args)
    task = TASKS[args.task].at(scale=scale, sigma=args.sigma)   # the checkpoints' scale, the noise asked for
    sets = {name: load_set(task, args.data_root, name, args.seed, args.max_images)
            for name in args.sets or TASKS[args.task].entry.default_sets}
    lpips_fn = None if args.no_lpips else lpips_metric(device)
    notes = [] if lpips_fn is not None else [
        'LPIPS not computed (' + ('--no-lpips' if args.no_lpips else
                                  'not available offline: see the message printed at run time') + ').']
    tile = args.tile or None
    eval_backend = 'fused' if 'fused' in args.backends else args.backends[0]
    for row in rows:
        model = prepare(load_compact(row['checkpoint'], device), device, eval_backend, snap_widths='off')
        row['metrics'] = evaluate(model, task, sets, tile, lpips_fn, row['name'], args.quiet)
        row['evaluated_with'] = model.describe()
    floor = {'name': task.floor_label(), 'kind': 'floor', 'checkpoint': None,
             'arch': None, 'gflops': None, 'params': None, 'flops_ratio': None, 'timing': None,
             'metrics': evaluate_floor(task, sets, lpips_fn, args.quiet)}
    for warning in reporting.below_floor_notes(args.task, list(sets), rows, floor):
        print(warning.replace('**', ''), file=sys.stderr)
        notes.append(warning)
    timing = {'repeats': args.repeats, 'warmup': args.warmup, 'dtype': 'float32', 'device': device}
    if args.no_timing:
        timing.update(set=None, set_reason='timing skipped (--no-timing)', num_images=0, image_sizes=[],
                      isolation='', method='not measured', backend=None, precision=None,
                      device_name=device_name(torch.device(device)),
                      threads=torch.get_num_threads() if device == 'cpu' else None)
        for row in rows:
            row['timing'] = None
    else:
        timing.update(time_models(args, task, rows, sets, device))
        if device == 'cpu':
            notes.append(f"Runtimes are CPU wall time with {timing['threads']} thread(s); the paper's runtimes "
                         'were GPU figures and are not comparable.')
    label = timing['device_name']
    if device == 'cpu' and not label.upper().startswith('CPU'):
        label = f'CPU: {label}'
    device_info = {'type': device, 'name': timing['device_name'], 'threads': timing['threads'], 'label': label}
    run_info = {'scale': scale, **task.conventions(args.seed)}
    extra = {'created': time.strftime('%Y-%m-%dT%H:%M:%S%z'), 'command': [sys.argv[0]] + list(sys.argv[1:]),
             'data_root': str(args.data_root), **run_info, 'max_images': args.max_images, 'eval_tile': tile,
             'lpips': lpips_fn is not None}
    paths = reporting.write_all(args.out or os.path.join('reports', args.task), args.task, list(sets),
                                rows + [floor], device_info, timing, run_info, extra, notes)
    return {'paths': paths, 'rows': rows + [floor], 'timing': timing}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = run(args)
    except (EvaluationError, CheckpointError, DeployError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        return EXIT_ERROR
    paths = result['paths']
    print(paths['md'].read_text())
    print('wrote ' + ', '.join(str(p) for p in paths.values()), file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(run_entry(main))
