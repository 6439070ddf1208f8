"""The evaluation library behind ``benchmark`` (and the scripts): test sets, model inputs, scores, floors.

* :func:`load_set` -- a test set as (name, input, reference) items of a configured task (SR: LR/HR pairs at its
  ``scale``; denoising: fixed seeded noise at its ``sigma``); what differs by task is in :mod:`restore_dhp.tasks`.
* :func:`score` / :func:`summarise` -- per-image metrics and their means (SR: Y-PSNR/SSIM with a
  ``scale``-pixel border and RGB PSNR; denoising: PSNR/SSIM), LPIPS when a function is given.
* :func:`evaluate` -- a model on several sets; :func:`evaluate_floor` -- the trivial floor (MATLAB
  bicubic for SR, the noisy input for denoising).
* :func:`describe_checkpoint` -- what a checkpoint says about itself, with its label and complexity.
* :func:`measure_checkpoint` / :func:`measure_checkpoint_isolated` -- runtime and memory of a
  checkpoint's deployed form on a list of inputs (:func:`restore_dhp.timing.measure`), in this
  process or in a fresh one (multiprocessing ``spawn``), so one model's allocations cannot hide another's.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Callable

import numpy as np
import torch

from .catalogue import model_label
from .checkpoint import load_compact, read_metadata
from .complexity import metadata_complexity
from .data.pixels import tensor_to_image
from .deploy import prepare
from .tasks import Task
from .run_model import forward_tiled
from .progress import progress
from .timing import measure

EVAL_OVERLAP = 32  # input pixels of context around each tile when evaluating in tiles


class EvaluationError(Exception):
    """A problem that stops an evaluation; printed as one line."""


def describe_checkpoint(path: str | os.PathLike, size: int = 128) -> dict:
    """A checkpoint's label, metadata and complexity at a ``size`` x ``size`` input."""
    meta = read_metadata(path)
    cx = metadata_complexity(meta, size)
    return {'name': model_label(meta, path), 'kind': 'model', 'checkpoint': str(path), 'arch': meta['arch'],
            'task': meta['task'], 'arch_kwargs': meta['arch_kwargs'], 'scale': meta['scale'],
            'widths': meta['widths'], 'gflops': cx['flops'] / 1e9, 'params': cx['params'],
            'flops_ratio': cx['flops_ratio'], 'macs': cx['macs'], 'baseline_flops': cx['baseline_flops'],
            'info': meta['info']}


def load_set(task: Task, root: str | os.PathLike, name: str, seed: int = 0, max_images: int | None = None) -> list:
    """A test set as the task's items (:mod:`restore_dhp.tasks`), at most ``max_images`` of them; ``seed``: of the
    noise."""
    items = task.load_set(root, name, seed)
    if not items:
        raise EvaluationError(f'{name}: no images found under {root}')
    return items[:max_images] if max_images else items


def score(task: Task, out_u8: np.ndarray, item, lpips_fn: Callable | None) -> dict:
    ref = item[2]
    if out_u8.shape[:2] != ref.shape[:2]:  # defensive: a loader that did not crop HR to a multiple of scale
        h, w = min(out_u8.shape[0], ref.shape[0]), min(out_u8.shape[1], ref.shape[1])
        out_u8, ref = out_u8[:h, :w], ref[:h, :w]
    m = task.metrics(out_u8, ref)
    if lpips_fn is not None:
        m['lpips'] = float(lpips_fn(out_u8, ref))
    return {k: float(v) for k, v in m.items()}


def summarise(per_image: list[dict]) -> dict:
    keys = [k for k in per_image[0] if k not in ('name', 'size')]
    out = {k: float(np.mean([p[k] for p in per_image])) for k in keys}
    out['num_images'] = len(per_image)
    out['per_image'] = per_image
    return out


def evaluate(model, task: Task, sets: dict, tile: int | None, lpips_fn, desc: str, quiet: bool) -> dict:
    """Per-set metrics of ``model`` (a :class:`~restore_dhp.deploy.DeployedModel` or a module with ``.scale``)."""
    if model.scale != task.scale:
        raise EvaluationError(f'a x{model.scale} model cannot be evaluated as {task}')
    device = getattr(model, 'device', None) or next(model.parameters()).device
    results = {}
    for set_name, items in sets.items():
        per_image = []
        for item in progress(items, desc=f'{desc} / {set_name}', unit='img', leave=False, quiet=quiet):
            x = task.model_input(item, device)
            with torch.no_grad():
                y = forward_tiled(model, x, model.scale, tile, overlap=EVAL_OVERLAP)
            per_image.append({'name': item[0], **score(task, tensor_to_image(y), item, lpips_fn)})
        results[set_name] = summarise(per_image)
    return results


def evaluate_floor(task: Task, sets: dict, lpips_fn, quiet: bool) -> dict:
    """Per-set metrics of the task's trivial floor (:meth:`~restore_dhp.tasks.Task.floor_output`)."""
    results = {}
    for set_name, items in sets.items():
        per_image = [{'name': item[0], **score(task, task.floor_output(item), item, lpips_fn)}
                     for item in progress(items, desc=f'floor / {set_name}', unit='img', leave=False, quiet=quiet)]
        results[set_name] = summarise(per_image)
    return results


def measure_checkpoint(path: str, inputs: list[np.ndarray], device: str, repeats: int, warmup: int,
                       backend: str = 'fused', precision: str = 'fp32', threads: int | None = None) -> dict:
    """Time one checkpoint's deployed form on each input; the per-image measurements and their summary."""
    model = prepare(load_compact(path, device), device, backend, precision, threads, snap_widths='off')
    per_image = []
    for x_np in inputs:
        m = measure(model, torch.from_numpy(x_np).to(device), repeats=repeats, warmup=warmup)
        per_image.append({'size': list(x_np.shape[2:]), 'median_ms': m.median_ms, 'mean_ms': m.mean_ms,
                          'runs_ms': m.runs_ms, 'peak_memory_bytes': m.peak_memory_bytes})
    peaks = [p['peak_memory_bytes'] for p in per_image if p['peak_memory_bytes'] is not None]
    return {'runtime_ms': float(np.mean([p['median_ms'] for p in per_image])),
            'peak_memory_mb': (max(peaks) / 2**20) if peaks else None, 'deployed': model.describe(),
            'backend': backend, 'precision': precision, 'device': m.device, 'device_name': m.device_name,
            'threads': m.threads, 'method': m.method, 'pid': os.getpid(), 'per_image': per_image}


def measure_checkpoint_isolated(path: str, inputs: list[np.ndarray], device: str, repeats: int, warmup: int,
                                backend: str = 'fused', precision: str = 'fp32',
                                threads: int | None = None) -> dict:
    """:func:`measure_checkpoint` in a fresh interpreter (multiprocessing ``spawn``); errors are re-raised here.

    ``threads`` defaults to this process's torch thread count (a fresh interpreter would take all cores).
    """
    threads = threads or torch.get_num_threads()
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context('spawn')) as pool:
        return pool.submit(measure_checkpoint, path, inputs, device, repeats, warmup, backend, precision,
                           threads).result()
