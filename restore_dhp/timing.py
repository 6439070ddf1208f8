"""Runtime and peak memory of a model on an input, on CPU and GPU: the one home of timing.

* :func:`measure` -- one model on one input: ``warmup`` untimed runs, then ``repeats`` timed runs
  (median and mean), then peak memory from one more forward.
* :func:`measure_side_by_side` -- several models on one input, interleaved: each round runs every
  model once (order rotated), so drift in clock speed or load hits all of them alike.
  (:func:`restore_dhp.evaluation.measure_checkpoint` applies :func:`measure` to a checkpoint's
  deployed form, in this process or a fresh one.)
* :func:`paired_ratios`, :func:`quartiles` -- the spread of a speed ratio over the rounds of a
  side-by-side run (each round's ratio, then their interquartile range).

Time: CUDA events around each run (synchronised) on a GPU; ``time.perf_counter`` on the CPU, with
the thread count recorded.  Memory: the weights as held for inference + the input + the peak of what
the forward allocates beyond that.  On a GPU that peak is ``torch.cuda.max_memory_allocated``; on
the CPU it is the running sum of the allocator's allocation and free events recorded by
``torch.profiler`` (``profile_memory=True``) during one forward: deterministic, so identical
requests give identical figures.  A backend whose runtime allocates outside torch (ONNX Runtime;
:attr:`restore_dhp.deploy.DeployedModel.memory_allocator`) has its memory not measured (``None``).  Timing never includes decoding, conversion or encoding: callers pass a ready tensor.
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch.profiler import ProfilerActivity, profile

# The profiler (kineto) prints its progress ('USDT: profiler_start', 'STAGE: ...') and, on a machine
# without a GPU, 'gpuGetDeviceCount failed' to stderr on every use; level 6 keeps it quiet.  Kineto reads
# the variable when it first logs, so setting it here (before any profile) is enough; a user's own
# KINETO_LOG_LEVEL wins.
os.environ.setdefault('KINETO_LOG_LEVEL', '6')

METHOD_CPU = ('CPU wall time (perf_counter); memory: weights + input + peak allocated by the forward '
              '(torch.profiler allocator events)')
METHOD_CPU_NO_MEMORY_FOR = 'CPU wall time (perf_counter); memory not measured ({} allocates outside torch)'
METHOD_CPU_NO_MEMORY = METHOD_CPU_NO_MEMORY_FOR.format('ONNX Runtime')
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


def cpu_model(cpuinfo: str = '/proc/cpuinfo') -> str:
    """The CPU's model string (``/proc/cpuinfo``'s model name where there is one).  A virtual machine may give only
    a family name (``AMD EPYC``) for CPUs that run differently (two such hosts ran SRResNet in 2436 and 1749 ms,
    and scaled the same narrow widths differently): a name without a digit gets the CPU family and model added,
    ``AMD EPYC (family 25, model 17)``, so latency tables and their warnings tell the two apart."""
    fields = {}
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(':')
                key = key.strip()
                if key in ('model name', 'cpu family', 'model') and key not in fields:
                    fields[key] = value.strip()
                if not line.strip() and fields:   # the first processor's block is enough
                    break
    except OSError:
        pass
    name = fields.get('model name')
    if not name:
        return platform.processor() or platform.machine()
    if not any(c.isdigit() for c in name) and 'cpu family' in fields and 'model' in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model and the threads torch uses, e.g. ``CPU (AMD EPYC, 1 thread)``."""
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return f'CPU ({cpu_model()}, {threads} thread{"" if threads == 1 else "s"})'


def weight_bytes(model) -> int:
    """Bytes of the weights as the model holds them for inference (a deployed model states them)."""
    if hasattr(model, 'weight_bytes'):
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
    peak, method = peak_memory(model, x)
    return Measurement(statistics.median(runs), statistics.fmean(runs), runs, peak, x.device.type,
                       device_name(x.device), None if x.device.type == 'cuda' else torch.get_num_threads(), method)


@torch.no_grad()
def peak_memory(model, x: torch.Tensor) -> tuple[int | None, str]:
    """Peak memory of one forward (bytes; ``None`` where the runtime allocates outside torch) and how time and
    memory are measured on this device, in words."""
    allocator = getattr(model, 'memory_allocator', None)  # a deployed backend whose runtime allocates outside torch
    if x.device.type == 'cuda':
        return _cuda_peak_bytes(model, x), METHOD_CUDA
    if allocator:
        return None, METHOD_CPU_NO_MEMORY_FOR.format(allocator)
    return _cpu_peak_bytes(model, x), METHOD_CPU


def claim_profiler_thread() -> None:
    """Profile once, on the calling thread: the profiler (kineto) registers itself with the first thread that
    profiles, and a later profile on another thread (a web server's worker) prints ``ERROR: External init
    callback must run in same thread as registerClient``.  A server calls this at start-up, on its main thread."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True):
        torch.zeros(1).add_(1)


@torch.no_grad()
def measure_side_by_side(models: dict, x: torch.Tensor | dict, repeats: int, warmup: int,
                         on_run: Callable[[], None] | None = None) -> dict[str, list[float]]:
    """ms of every run of each model, rounds interleaved (one run of every model per round, order rotated);
    ``x`` is the input of all of them, or a mapping from each model's name to its own input.  ``on_run()`` is
    called after each run, warm-up included (a progress bar's update)."""
    if repeats < 1 or warmup < 0:
        raise ValueError('repeats must be >= 1 and warmup >= 0')
    names = list(models)
    runs = {name: [] for name in names}
    for r in range(warmup + repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            ms = _time_one(models[name], x[name] if isinstance(x, dict) else x)
            if r >= warmup:
                runs[name].append(ms)
            if on_run is not None:
                on_run()
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


# ----------------------------------------------------------------------------- ratios over rounds
def paired_ratios(base_runs: list[float], runs: list[float]) -> list[float]:
    """``base / model`` of each round of a side-by-side run (round i of both): drift between rounds cancels."""
    if len(base_runs) != len(runs):
        raise ValueError('paired ratios need the same number of rounds of both models')
    return [b / m for b, m in zip(base_runs, runs)]


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """First quartile, median and third quartile (the interquartile range is q1-q3); one value: itself thrice."""
    if len(values) < 2:
        return (values[0],) * 3
    q1, q2, q3 = statistics.quantiles(values, n=4, method='inclusive')
    return q1, q2, q3
