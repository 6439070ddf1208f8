"""Runtime and peak memory of a model on an input, on CPU and GPU: the one home of timing.

* :func:`measure` -- one model on one input: ``warmup`` untimed runs, then ``repeats`` timed runs
  (median and mean), then peak memory from one more forward.
* :func:`measure_side_by_side` -- several models on one input, interleaved: each round runs every
  model once (order rotated), so drift in clock speed or load hits all of them alike.
* :func:`measure_checkpoint` / :func:`measure_checkpoint_isolated` -- a checkpoint in its deployed
  form on a list of inputs, in this process or in a fresh one (multiprocessing ``spawn``), so one
  model's allocations cannot hide another's.

Time: CUDA events around each run (synchronised) on a GPU; ``time.perf_counter`` on the CPU, with
the thread count recorded.  Memory: the weights as held for inference + the input + the peak of what
the forward allocates beyond that.  On a GPU that peak is ``torch.cuda.max_memory_allocated``; on
the CPU it is the running sum of the allocator's allocation and free events recorded by
``torch.profiler`` (``profile_memory=True``) during one forward: deterministic, so identical
requests give identical figures.  ONNX Runtime allocates outside torch: its memory is not measured
(``None``).  Timing never includes decoding, conversion or encoding: callers pass a ready tensor.
"""
from __future__ import annotations

import multiprocessing
import os
import platform
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from .checkpoint import load_compact
from .deploy import DeployedModel, prepare

METHOD_CPU = ('CPU wall time (perf_counter); memory: weights + input + peak allocated by the forward '
              '(torch.profiler allocator events)')
METHOD_CPU_NO_MEMORY = 'CPU wall time (perf_counter); memory not measured (ONNX Runtime allocates outside torch)'
METHOD_CUDA = 'CUDA events (synchronised); memory: torch.cuda.max_memory_allocated'


@dataclass
class Measurement:
    median_ms: float
    mean_ms: float
    runs_ms: list
    peak_memory_bytes: int | None
    device: str           # 'cuda' or 'cpu'
    device_name: str
    threads: int | None
    method: str           # how time and memory were measured, in words

    @property
    def peak_memory_mb(self) -> float | None:
        return None if self.peak_memory_bytes is None else self.peak_memory_bytes / 2**20


def device_name(device: torch.device) -> str:
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return f'CPU ({platform.processor() or platform.machine()}, {threads} thread{"" if threads == 1 else "s"})'


def weight_bytes(model) -> int:
    """Bytes of the weights as the model holds them for inference."""
    if isinstance(model, DeployedModel):
        return model.weight_bytes
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))


@torch.no_grad()
def measure(model, x: torch.Tensor, repeats: int = 5, warmup: int = 2) -> Measurement:
    """Median/mean runtime over ``repeats`` runs after ``warmup`` runs, and peak memory of one forward.

    ``model``: a :class:`~restore_dhp.deploy.DeployedModel` or a plain ``nn.Module``.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError('repeats must be >= 1 and warmup >= 0')
    for _ in range(warmup):
        model(x)
    runs = [_time_one(model, x) for _ in range(repeats)]
    cuda = x.device.type == 'cuda'
    onnx = isinstance(model, DeployedModel) and model.backend == 'onnxruntime'
    if cuda:
        peak, method = _cuda_peak_bytes(model, x), METHOD_CUDA
    elif onnx:
        peak, method = None, METHOD_CPU_NO_MEMORY
    else:
        peak, method = _cpu_peak_bytes(model, x), METHOD_CPU
    return Measurement(statistics.median(runs), statistics.fmean(runs), runs, peak, x.device.type,
                       device_name(x.device), None if cuda else torch.get_num_threads(), method)


@torch.no_grad()
def measure_side_by_side(models: dict, x: torch.Tensor, repeats: int, warmup: int) -> dict[str, list[float]]:
    """ms of every run of each model, rounds interleaved (one run of every model per round, order rotated)."""
    if repeats < 1 or warmup < 0:
        raise ValueError('repeats must be >= 1 and warmup >= 0')
    names = list(models)
    runs = {name: [] for name in names}
    for r in range(warmup + repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            ms = _time_one(models[name], x)
            if r >= warmup:
                runs[name].append(ms)
    return runs


def _time_one(model, x: torch.Tensor) -> float:
    if x.device.type == 'cuda':
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(x.device)
        start.record()
        model(x)
        end.record()
        torch.cuda.synchronize(x.device)
        return start.elapsed_time(end)
    start = time.perf_counter()
    model(x)
    return (time.perf_counter() - start) * 1e3


def _cuda_peak_bytes(model, x: torch.Tensor) -> int:
    torch.cuda.synchronize(x.device)
    torch.cuda.reset_peak_memory_stats(x.device)
    before = torch.cuda.memory_allocated(x.device)
    model(x)
    torch.cuda.synchronize(x.device)
    return weight_bytes(model) + x.numel() * x.element_size() + torch.cuda.max_memory_allocated(x.device) - before


def _cpu_peak_bytes(model, x: torch.Tensor) -> int | None:
    """Weights + input + the running-sum peak of the allocator events of one forward (``None`` if unrecorded)."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        model(x)
    results = getattr(prof.profiler, 'kineto_results', None)
    if results is None:
        return None
    events = sorted((e for e in results.events() if e.name() == '[memory]'), key=lambda e: e.start_ns())
    running = peak = 0
    for e in events:
        running += e.nbytes()
        peak = max(peak, running)
    return weight_bytes(model) + x.numel() * x.element_size() + peak


# ----------------------------------------------------------------------------- checkpoints
def measure_checkpoint(path: str, inputs: list[np.ndarray], device: str, repeats: int, warmup: int,
                       backend: str = 'fused', precision: str = 'fp32', threads: int | None = None) -> dict:
    """Time one checkpoint's deployed form on each input; the per-image measurements and their summary."""
    model = prepare(load_compact(path, device), device, backend, precision, threads)
    per_image = []
    for x_np in inputs:
        x = torch.from_numpy(x_np).to(device)
        m = measure(model, x, repeats=repeats, warmup=warmup)
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
