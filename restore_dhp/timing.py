"""Runtime and peak-memory measurement of one model on one input, honest on both CPU and GPU.

* GPU: warm-up, then each run between two CUDA events (synchronised); peak
  memory is ``torch.cuda.max_memory_allocated()`` after
  ``reset_peak_memory_stats()``: model tensors + input + everything the forward
  allocates.
* CPU: warm-up, then wall time (``time.perf_counter``) per run with the thread
  count recorded; peak memory is the same quantity measured from the process:
  model tensors + input + the peak resident-set increase during one extra
  forward (Linux: the RSS high-water mark is reset through
  ``/proc/self/clear_refs`` before that run and read from ``VmHWM`` after;
  for that run only, glibc's mmap threshold is lowered so freed activations
  really leave the process; timed runs never run under the lowered threshold,
  so models measured one after another in one process are timed alike).
  Where that is not possible the figure is ``None``.

Timing never includes decoding, conversion or encoding: callers pass a ready tensor.
"""
from __future__ import annotations

import ctypes
import gc
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass

import torch
from torch import nn


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

    def as_dict(self) -> dict:
        return {**asdict(self), 'peak_memory_mb': self.peak_memory_mb}


def device_name(device: torch.device) -> str:
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return f'CPU ({platform.processor() or platform.machine()}, {threads} thread{"" if threads == 1 else "s"})'


def tensor_bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))


@torch.no_grad()
def measure(model: nn.Module, x: torch.Tensor, repeats: int = 5, warmup: int = 2) -> Measurement:
    """Median/mean runtime over ``repeats`` runs after ``warmup`` runs, and peak memory of one forward."""
    if repeats < 1 or warmup < 0:
        raise ValueError('repeats must be >= 1 and warmup >= 0')
    device = x.device
    for _ in range(warmup):
        model(x)
    if device.type == 'cuda':
        runs, peak = _measure_cuda(model, x, repeats)
        method = 'CUDA events (synchronised); torch.cuda.max_memory_allocated'
        threads = None
    else:
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            runs.append((time.perf_counter() - start) * 1e3)
        peak = _cpu_peak_bytes(model, x)
        method = 'CPU wall time (perf_counter); model + input + peak RSS increase during a forward'
        threads = torch.get_num_threads()
    return Measurement(statistics.median(runs), statistics.fmean(runs), runs, peak, device.type,
                       device_name(device), threads, method)


def _measure_cuda(model, x, repeats):
    torch.cuda.synchronize(x.device)
    torch.cuda.reset_peak_memory_stats(x.device)
    runs = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        model(x)
        end.record()
        torch.cuda.synchronize(x.device)
        runs.append(start.elapsed_time(end))
    return runs, torch.cuda.max_memory_allocated(x.device)


def _read_status_kb(field: str) -> int | None:
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


_M_MMAP_THRESHOLD = -3
_MMAP_LOW = 256 * 1024          # during the memory run: large blocks mmapped, returned to the OS on free
_MMAP_HIGH = 32 * 1024 * 1024   # otherwise: glibc's ceiling, blocks reused from the heap as usual


def _set_mmap_threshold(nbytes: int) -> None:
    """glibc's M_MMAP_THRESHOLD; a no-op where libc or mallopt is not available."""
    try:
        ctypes.CDLL('libc.so.6').mallopt(_M_MMAP_THRESHOLD, nbytes)
    except (OSError, AttributeError):
        pass


def _release_free_heap() -> None:
    """Give free heap pages back to the OS (glibc malloc_trim), so they cannot hide new allocations."""
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _cpu_peak_bytes(model, x) -> int | None:
    if not os.path.exists('/proc/self/clear_refs'):
        return None
    _set_mmap_threshold(_MMAP_LOW)  # so freed activations leave the process and RSS follows them
    try:
        gc.collect()
        _release_free_heap()
        try:
            with open('/proc/self/clear_refs', 'w') as f:
                f.write('5')  # reset the peak-RSS (VmHWM) counter to the current RSS
        except OSError:
            return None
        before = _read_status_kb('VmRSS')
        model(x)
        high = _read_status_kb('VmHWM')
    finally:
        # back to heap reuse, so timings taken after this (other models in the same process) are not
        # slowed by fresh page faults on every allocation
        _set_mmap_threshold(_MMAP_HIGH)
    if before is None or high is None:
        return None
    increase = max(high - before, 0) * 1024
    return tensor_bytes(model) + x.numel() * x.element_size() + increase
