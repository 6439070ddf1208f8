"""Benchmark compact checkpoints the way the DHP paper reports them: quality, FLOPs, params, runtime, memory.

    python -m restore_dhp.benchmark --task sr --data-root datasets --sets Set5 Set14 B100 --out reports/sr
    python -m restore_dhp.benchmark --task denoise --data-root datasets --sets BSD68 --out reports/denoise

Without ``--weights`` the checkpoints present among
``weights/srresnet_x4_{baseline,dhp60,dhp40,dhp20}.safetensors`` (SR) or
``weights/dncnn_s70_{baseline,dhp60,dhp40,dhp20}.safetensors`` (denoising) are used.

Quality: every checkpoint on every set (SR: Y-PSNR/SSIM with a ``scale``-pixel
border crop, and RGB PSNR; denoising at sigma=70 on fixed noise: PSNR/SSIM;
LPIPS only when it can be computed offline), plus a floor row (MATLAB bicubic
upsampling for SR, the noisy input for denoising).

Runtime: ``--warmup`` untimed runs, then the median of ``--repeats`` timed runs
per image, averaged over the images of the timing set (default: Urban100 for
SR, BSD68 for denoising, as in the paper, when available; otherwise the first
evaluated set).  On a GPU: CUDA events and ``max_memory_allocated``; on the CPU:
wall time with the thread count recorded and the process's peak memory.  Each
model is timed in a fresh subprocess (``--in-process`` to disable) so that one
model's allocations cannot hide another's peak.  One run uses one device; every
figure is labelled with it.

Outputs in ``--out``: report.md, report.csv, report.json, psnr_vs_flops.png.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TASKS = ('sr', 'denoise')
DEFAULT_WEIGHTS = {
    'sr': [f'weights/srresnet_x4_{v}.safetensors' for v in ('baseline', 'dhp60', 'dhp40', 'dhp20')],
    'denoise': [f'weights/dncnn_s70_{v}.safetensors' for v in ('baseline', 'dhp60', 'dhp40', 'dhp20')],
}
PAPER_TIMING_SET = {'sr': 'Urban100', 'denoise': 'BSD68'}
DEFAULT_SETS = {'sr': ['Set5', 'Set14', 'B100'], 'denoise': ['BSD68']}
EXIT_ERROR = 2


class BenchmarkError(Exception):
    """A problem that stops the benchmark; printed as one line."""


# ----------------------------------------------------------------------------- models
def default_weights(task: str, root: str | os.PathLike = '.') -> list[str]:
    return [str(Path(root) / p) for p in DEFAULT_WEIGHTS[task] if (Path(root) / p).is_file()]


def model_name(path: str | os.PathLike) -> str:
    """'srresnet_x4_dhp40.safetensors' -> 'DHP-40', '..._baseline' -> 'Baseline', otherwise the file stem."""
    stem = Path(path).name.split('.')[0]
    m = re.search(r'(?:^|_)(baseline|dhp-?(\d+))$', stem, re.IGNORECASE)
    if not m:
        return stem
    return 'Baseline' if m.group(1).lower() == 'baseline' else f'DHP-{m.group(2)}'


def unique_names(paths: list[str]) -> list[str]:
    names = [model_name(p) for p in paths]
    if len(set(names)) == len(names):
        return names
    return [Path(p).name.split('.')[0] for p in paths]


def describe_checkpoints(paths: list[str], task: str) -> list[dict]:
    from .checkpoint import read_metadata
    from .complexity import checkpoint_complexity
    out = []
    for path, name in zip(paths, unique_names(paths)):
        meta = read_metadata(path)
        if meta['task'] != task:
            raise BenchmarkError(f"{path}: a {meta['task']} checkpoint, but --task is {task}")
        cx = checkpoint_complexity(path, 128)
        out.append({'name': name, 'kind': 'model', 'checkpoint': str(path), 'arch': meta['arch'],
                    'arch_kwargs': meta['arch_kwargs'], 'scale': meta['scale'], 'widths': meta['widths'],
                    'gflops': cx['gflops'], 'params': cx['params'], 'flops_ratio': cx['flops_ratio'],
                    'macs': cx['macs'], 'baseline_flops': cx['baseline_flops'], 'info': meta['info']})
    scales = {r['scale'] for r in out}
    if len(scales) > 1:
        raise BenchmarkError(f'checkpoints have different scales {sorted(scales)}; benchmark one scale at a time')
    return out


# ----------------------------------------------------------------------------- data
def load_set(task: str, root: str, name: str, scale: int, sigma: float, seed: int, max_images: int | None):
    from .data import testsets
    if task == 'sr':
        items = testsets.load_sr_pairs(root, name, scale=scale)
    else:
        items = testsets.load_denoise_set(root, name, sigma_255=sigma, seed=seed)
    if not items:
        raise BenchmarkError(f'{name}: no images found under {root}')
    return items[:max_images] if max_images else items


def model_input(task: str, item) -> np.ndarray:
    """1 x C x H x W float32 array the model takes for one test item (the noisy input is not clipped)."""
    if task == 'sr':
        lr = item[1]
        return (lr.astype(np.float32) / 255.0).transpose(2, 0, 1)[None].copy()
    return item[1].astype(np.float32)[None, None].copy()


def to_u8(t) -> np.ndarray:
    arr = t.detach().squeeze(0).clamp(0, 1).mul(255).round().to('cpu').numpy().astype(np.uint8)
    arr = arr.transpose(1, 2, 0)
    return arr[:, :, 0] if arr.shape[2] == 1 else arr


def score(task: str, out_u8: np.ndarray, item, scale: int, lpips_fn) -> dict:
    from .metrics import denoise_metrics, sr_metrics
    ref = item[2]
    if out_u8.shape[:2] != ref.shape[:2]:  # defensive: a loader that did not crop HR to a multiple of scale
        h, w = min(out_u8.shape[0], ref.shape[0]), min(out_u8.shape[1], ref.shape[1])
        out_u8, ref = out_u8[:h, :w], ref[:h, :w]
    m = sr_metrics(out_u8, ref, scale=scale) if task == 'sr' else denoise_metrics(out_u8, ref)
    if lpips_fn is not None:
        m['lpips'] = float(lpips_fn(out_u8, ref))
    return {k: float(v) for k, v in m.items()}


def summarise(per_image: list[dict]) -> dict:
    keys = [k for k in per_image[0] if k not in ('name', 'size')]
    out = {k: float(np.mean([p[k] for p in per_image])) for k in keys}
    out['num_images'] = len(per_image)
    out['per_image'] = per_image
    return out


def floor_output(task: str, item, scale: int) -> np.ndarray:
    """The trivial baseline: MATLAB bicubic upsampling (SR) or the noisy input itself (denoising)."""
    if task == 'sr':
        from basicsr.utils.matlab_functions import imresize
        up = imresize(item[1].astype(np.float32), scale, antialiasing=True)
        return np.clip(np.round(up), 0, 255).astype(np.uint8)
    return np.clip(np.round(item[1] * 255.0), 0, 255).astype(np.uint8)


def evaluate(model, task: str, sets: dict, device, tile: int | None, lpips_fn, desc: str, quiet: bool) -> dict:
    import torch
    from tqdm import tqdm

    from .run_model import forward_tiled
    results = {}
    for set_name, items in sets.items():
        per_image = []
        for item in tqdm(items, desc=f'{desc} / {set_name}', unit='img', leave=False, disable=quiet,
                         file=sys.stderr):
            x = torch.from_numpy(model_input(task, item)).to(device)
            with torch.no_grad():
                y = forward_tiled(model, x, model.scale, tile, overlap=32)
            per_image.append({'name': item[0], **score(task, to_u8(y), item, model.scale, lpips_fn)})
        results[set_name] = summarise(per_image)
    return results


def evaluate_floor(task: str, sets: dict, scale: int, lpips_fn, quiet: bool) -> dict:
    from tqdm import tqdm
    results = {}
    for set_name, items in sets.items():
        per_image = [{'name': item[0], **score(task, floor_output(task, item, scale), item, scale, lpips_fn)}
                     for item in tqdm(items, desc=f'floor / {set_name}', unit='img', leave=False,
                                      disable=quiet, file=sys.stderr)]
        results[set_name] = summarise(per_image)
    return results


# ----------------------------------------------------------------------------- timing
def measure_checkpoint(path: str, inputs: list[np.ndarray], device: str, repeats: int, warmup: int) -> dict:
    """Time one checkpoint on each input (in this process); returns the per-image measurements and the summary."""
    import torch

    from .checkpoint import load_compact
    from .timing import measure
    model = load_compact(path, device).float()
    per_image = []
    for x_np in inputs:
        x = torch.from_numpy(x_np).to(device)
        m = measure(model, x, repeats=repeats, warmup=warmup)
        per_image.append({'size': list(x_np.shape[2:]), 'median_ms': m.median_ms, 'mean_ms': m.mean_ms,
                          'runs_ms': m.runs_ms, 'peak_memory_bytes': m.peak_memory_bytes})
        del x
    peaks = [p['peak_memory_bytes'] for p in per_image if p['peak_memory_bytes'] is not None]
    return {'runtime_ms': float(np.mean([p['median_ms'] for p in per_image])),
            'peak_memory_mb': (max(peaks) / 2**20) if peaks else None,
            'device': m.device, 'device_name': m.device_name, 'threads': m.threads, 'method': m.method,
            'pid': os.getpid(), 'per_image': per_image}


def measure_in_subprocess(path: str, task: str, inputs_file: str, device: str, repeats: int, warmup: int,
                          threads: int | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result = os.path.join(tmp, 'result.json')
        cmd = [sys.executable, '-m', 'restore_dhp.benchmark', '--_measure-one', '--task', task, '--weights', str(path),
               '--_inputs', inputs_file, '--_result', result, '--device', device,
               '--repeats', str(repeats), '--warmup', str(warmup)]
        if threads:
            cmd += ['--threads', str(threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not os.path.exists(result):
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ['no output']
            raise BenchmarkError(f'{path}: timing subprocess failed (exit {proc.returncode}): {tail[0]}')
        with open(result) as f:
            return json.load(f)


def _measure_one(args) -> int:
    """Child side of :func:`measure_in_subprocess`."""
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    data = np.load(args._inputs)
    inputs = [data[k] for k in sorted(data.files)]
    out = measure_checkpoint(args.weights[0], inputs, args.device, args.repeats, args.warmup)
    tmp = args._result + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(out, f)
    os.replace(tmp, args._result)
    return 0


def choose_timing_set(task: str, requested: str | None, sets: dict, root: str, scale: int, sigma: float,
                      seed: int, max_images: int | None) -> tuple[str, list, str]:
    """(name, items, reason): the explicit --timing-set, else the paper's set when available, else the first set."""
    if requested:
        items = sets.get(requested) or load_set(task, root, requested, scale, sigma, seed, max_images)
        return requested, items, 'chosen with --timing-set'
    paper = PAPER_TIMING_SET[task]
    if paper in sets:
        return paper, sets[paper], f'the paper averaged runtimes on {paper}'
    try:
        items = load_set(task, root, paper, scale, sigma, seed, max_images)
        return paper, items, f'the paper averaged runtimes on {paper} (loaded for timing only)'
    except (FileNotFoundError, BenchmarkError):
        first = next(iter(sets))
        return first, sets[first], f'{paper} (the paper\'s timing set) not available; first evaluated set'


# ----------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='python -m restore_dhp.benchmark', description=__doc__.split('\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog='\n'.join(__doc__.split('\n')[1:]))
    p.add_argument('--task', choices=TASKS, required=True)
    p.add_argument('--data-root', default='datasets', help='folder holding the test sets (default: datasets)')
    p.add_argument('--weights', nargs='+', help='compact checkpoints (default: the paper set under weights/)')
    p.add_argument('--sets', nargs='+', help='test sets (default: Set5 Set14 B100 for sr, BSD68 for denoise)')
    p.add_argument('--out', help='output folder (default: reports/<task>)')
    p.add_argument('--repeats', type=int, default=5, help='timed runs per image (median taken; default 5)')
    p.add_argument('--warmup', type=int, default=2, help='untimed warm-up runs per image (default 2)')
    p.add_argument('--device', choices=('auto', 'cpu', 'cuda'), default='auto')
    p.add_argument('--threads', type=int, help='CPU threads for torch (default: torch\'s default)')
    p.add_argument('--timing-set', help='set whose images are timed (default: Urban100/BSD68, else the first set)')
    p.add_argument('--max-images', type=int, help='use at most N images per set (quick runs)')
    p.add_argument('--timing-max-images', type=int, help='time at most N images (default: --max-images)')
    p.add_argument('--sigma', type=float, default=70.0, help='denoising noise level on the 0-255 scale')
    p.add_argument('--seed', type=int, default=0, help='noise seed for denoising test sets')
    p.add_argument('--tile', type=int, default=0, help='evaluate in tiles of N input pixels (0: whole images)')
    p.add_argument('--no-lpips', action='store_true', help='skip LPIPS even when it is available')
    p.add_argument('--no-timing', action='store_true', help='quality and complexity only')
    p.add_argument('--in-process', action='store_true',
                   help='time all models in this process (faster start; peak memory less trustworthy)')
    p.add_argument('--quiet', action='store_true', help='no progress bars')
    p.add_argument('--_measure-one', action='store_true', help=argparse.SUPPRESS)
    p.add_argument('--_inputs', help=argparse.SUPPRESS)
    p.add_argument('--_result', help=argparse.SUPPRESS)
    return p


def resolve_device(name: str) -> str:
    import torch
    if name == 'auto':
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    if name == 'cuda' and not torch.cuda.is_available():
        raise BenchmarkError('--device cuda: no CUDA device is available')
    return name


def run(args) -> dict:
    import torch

    from . import report
    from .timing import device_name

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.repeats < 1 or args.warmup < 0:
        raise BenchmarkError('--repeats must be >= 1 and --warmup >= 0')
    weights = args.weights or default_weights(args.task)
    if not weights:
        raise BenchmarkError(f'no checkpoints: pass --weights, or put {", ".join(DEFAULT_WEIGHTS[args.task])} '
                             'in place')
    device = resolve_device(args.device)
    rows = describe_checkpoints(weights, args.task)
    scale = rows[0]['scale']
    set_names = args.sets or DEFAULT_SETS[args.task]
    sets = {name: load_set(args.task, args.data_root, name, scale, args.sigma, args.seed, args.max_images)
            for name in set_names}

    lpips_fn = None
    if not args.no_lpips:
        from .metrics import lpips_metric
        lpips_fn = lpips_metric(device)
    notes = []
    if lpips_fn is None:
        notes.append('LPIPS not computed (' + ('--no-lpips' if args.no_lpips else
                                                'not available offline: see the message printed at run time') + ').')

    from .checkpoint import load_compact
    tile = args.tile or None
    for row in rows:
        model = load_compact(row['checkpoint'], device).float()
        row['metrics'] = evaluate(model, args.task, sets, device, tile, lpips_fn, row['name'], args.quiet)
        del model
    floor_name = 'Bicubic' if args.task == 'sr' else 'Noisy input'
    floor = {'name': floor_name, 'kind': 'floor', 'checkpoint': None, 'arch': None, 'gflops': None,
             'params': None, 'flops_ratio': None, 'timing': None,
             'metrics': evaluate_floor(args.task, sets, scale, lpips_fn, args.quiet)}
    for warning in report.below_floor_notes(args.task, list(sets), rows, floor):
        print(warning.replace('**', ''), file=sys.stderr)
        notes.append(warning)

    dev = torch.device(device)
    timing = {'repeats': args.repeats, 'warmup': args.warmup, 'dtype': 'float32', 'device': device,
              'device_name': device_name(dev), 'threads': torch.get_num_threads() if device == 'cpu' else None}
    if args.no_timing:
        timing.update(set=None, set_reason='timing skipped (--no-timing)', num_images=0, image_sizes=[],
                      isolation='', method='not measured')
        for row in rows:
            row['timing'] = None
    else:
        t_name, t_items, reason = choose_timing_set(args.task, args.timing_set, sets, args.data_root, scale,
                                                    args.sigma, args.seed, args.timing_max_images or args.max_images)
        if args.timing_max_images:
            t_items = t_items[:args.timing_max_images]
        inputs = [model_input(args.task, it) for it in t_items]
        timing.update(set=t_name, set_reason=reason, num_images=len(inputs),
                      image_names=[it[0] for it in t_items],
                      image_sizes=[list(x.shape[2:]) for x in inputs],
                      isolation='each model timed in its own in-process loop' if args.in_process
                      else 'each model timed in a fresh subprocess')
        with tempfile.TemporaryDirectory() as tmp:
            inputs_file = os.path.join(tmp, 'inputs.npz')
            np.savez(inputs_file, **{f'x{i:05d}': x for i, x in enumerate(inputs)})
            from tqdm import tqdm
            for row in tqdm(rows, desc=f'timing on {t_name} ({device})', unit='model', disable=args.quiet,
                            file=sys.stderr):
                if args.in_process:
                    row['timing'] = measure_checkpoint(row['checkpoint'], inputs, device, args.repeats, args.warmup)
                else:
                    row['timing'] = measure_in_subprocess(row['checkpoint'], args.task, inputs_file, device, args.repeats,
                                                          args.warmup, args.threads)
        first = rows[0]['timing']
        timing.update(method=first['method'], device_name=first['device_name'], threads=first['threads'])
        if device == 'cpu':
            notes.append(f"Runtimes are CPU wall time with {first['threads']} thread(s); the paper's runtimes "
                         'were GPU figures and are not comparable.')

    label = timing['device_name']
    if device == 'cpu' and not label.upper().startswith('CPU'):
        label = f'CPU: {label}'
    device_info = {'type': device, 'scale': scale, 'name': timing['device_name'], 'threads': timing['threads'], 'label': label}
    all_rows = rows + [floor]
    out_dir = args.out or os.path.join('reports', args.task)
    extra = {'created': time.strftime('%Y-%m-%dT%H:%M:%S%z'), 'command': [sys.argv[0]] + list(sys.argv[1:]),
             'data_root': str(args.data_root), 'sigma_255': args.sigma if args.task == 'denoise' else None,
             'noise_seed': args.seed if args.task == 'denoise' else None, 'max_images': args.max_images,
             'eval_tile': tile,
             'lpips': lpips_fn is not None}
    paths = report.write_all(out_dir, args.task, list(sets), all_rows, device_info, timing, extra, notes)
    return {'paths': paths, 'rows': all_rows, 'timing': timing}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args._measure_one:
        return _measure_one(args)
    from .checkpoint import CheckpointError
    try:
        result = run(args)
    except (BenchmarkError, CheckpointError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        return EXIT_ERROR
    paths = result['paths']
    print(paths['md'].read_text())
    print('wrote ' + ', '.join(str(p) for p in paths.values()), file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
