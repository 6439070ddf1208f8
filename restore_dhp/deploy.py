"""Inference-ready forms of a compact model: the one way every consumer runs a network.

    deployed = prepare(load_compact(path), device='cpu')        # BatchNorm folded, fastest CPU layout
    y = deployed(x)                                               # x: N x C x H x W float32 in 0-1, on device

Backends (``backend=``):

* ``'eager'`` -- the network as trained (BatchNorm as its own op), contiguous NCHW, fp32 or the chosen
  precision; the reference the others are checked against.
* ``'fused'`` (default) -- the traced network with every BatchNorm folded into the conv before it
  (exact: computed in float64, then cast), run in ``channels_last`` (measured faster on the CPU, no
  reorder around every oneDNN conv, and on CUDA in every precision: in fp32 NCHW cuDNN converts to NHWC
  and back around each conv, which cost the SR baseline 3.34 against 2.28 ms on an H200 at 170x256),
  with each pixel shuffle that follows a conv turned into a block copy by reordering that conv's output
  channels.  On CUDA the forward of each input shape is captured once as a CUDA graph and replayed
  (the last 16 shapes are kept), with ``torch.backends.cudnn.benchmark`` turned on (process-wide);
  a new shape is captured again, and a forward that cannot be captured runs eagerly after a
  one-time warning.  On the CPU, where the C library is glibc, freed large blocks are kept in the
  process heap for reuse (:func:`reuse_freed_memory`, process-wide, as ``cudnn.benchmark`` is on CUDA).
* ``'compiled'`` -- the fused network compiled by ``torch.compile`` (TorchInductor, height and width
  dynamic, so one compilation serves every input size), then run as ``'fused'`` is (CUDA graphs on
  CUDA).  Each conv's bias, activation and residual addition become one generated kernel: on an H200 at
  170x256 in fp16 the fused SR baseline ran 114 kernels per forward, about half of its time in
  elementwise passes, and the compiled one 77.  The first call compiles (seconds on a GPU, tens of
  seconds on a CPU; needs Triton on CUDA and a C++ compiler on the CPU); a failure to compile is
  a :class:`DeployError`.
* ``'onnxruntime'`` -- the network exported to ONNX (:mod:`restore_dhp.export`) and run by ONNX
  Runtime: the CPU provider, or the CUDA provider when the model is on a GPU and the installed
  onnxruntime has it.  Inputs and outputs are bound in place (no copies through numpy).

Each backend is one row of :data:`BACKEND_TABLE` (:class:`Backend`: how it is built, where it is
available, its precisions by device, the words :meth:`DeployedModel.describe` adds); ``prepare``, the
benchmark, ``speedup`` and the timing read it, so adding a backend (OpenVINO, TensorRT) is adding a row.
The graph rewrites of ``fused`` are in :mod:`restore_dhp.graph_rewrites`.

Precision (``precision=``): ``'fp32'`` everywhere (on CUDA its convs use TF32, PyTorch's default for cuDNN);
``'fp16'`` and ``'bf16'`` on CUDA with the torch backends.  Inputs and outputs stay float32 whatever runs inside.
"""
from __future__ import annotations

import copy
import ctypes
import sys
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from . import network
from .export import onnx_model_bytes
from .snapping import snap
from .graph_rewrites import ShuffleNHWC, fold_batchnorm, shuffle_as_block_copy  # noqa: F401  (re-exported)

try:
    import onnxruntime as ort
except ImportError:  # the one optional dependency of this module; only the 'onnxruntime' backend needs it
    ort = None

PRECISIONS = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}
MAX_CUDA_GRAPHS = 16  # captured input shapes kept per model (oldest dropped first)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4  # glibc mallopt parameters
_heap_reuse: bool | None = None


def reuse_freed_memory() -> bool:
    """Keep freed large blocks in the process heap for reuse (glibc), as jemalloc or tcmalloc would.

    glibc serves each allocation above its mmap threshold with a fresh ``mmap`` and unmaps it on
    free, so every large activation of a high-resolution forward pays its page faults again: at an
    Urban100-sized input (170x256 -> 680x1024) the SR upsampler's 60-180 MB activations cost about a
    fifth of the baseline's and a third of DHP-20's one-thread CPU time (see README).  Raising the
    mmap and trim thresholds (or, where glibc refuses that value, turning mmap off) lets freed
    blocks be reused; the process keeps its peak heap instead of returning it.  Process-wide and
    idempotent; returns whether it is on (False where the C library is not glibc).
    """
    global _heap_reuse
    if _heap_reuse is None:
        _heap_reuse = False
        if sys.platform.startswith('linux'):
            try:
                mallopt = ctypes.CDLL('libc.so.6').mallopt
            except (OSError, AttributeError):
                return False
            mapped = mallopt(_M_MMAP_THRESHOLD, 1 << 30) == 1 or mallopt(_M_MMAP_MAX, 0) == 1
            _heap_reuse = mapped and mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1) == 1
    return _heap_reuse


class DeployError(ValueError):
    """A backend, precision or device that cannot be used; the message is one line."""


class UnusableWeightsError(DeployError):
    """Weights that cannot give an image (NaN or infinite values, a negative variance); the message is one line."""


# ----------------------------------------------------------------------------- runners
class _TorchRunner:
    """Runs a torch module in one dtype and memory format; float32 in and out."""

    def __init__(self, module: nn.Module, dtype: torch.dtype, memory_format: torch.memory_format):
        self.module, self.dtype, self.memory_format = module, dtype, memory_format

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = self.module(x.to(dtype=self.dtype, memory_format=self.memory_format))
        return y.to(dtype=torch.float32, memory_format=torch.contiguous_format)


class _CudaGraphRunner(_TorchRunner):
    """One CUDA graph per input shape (captured on first use, replayed after); eager where capture fails."""

    def __init__(self, module, dtype, memory_format):
        super().__init__(module, dtype, memory_format)
        self.graphs: OrderedDict = OrderedDict()   # shape -> (graph, static input, static output)
        self.uncapturable: set = set()

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = tuple(x.shape)
        if key in self.uncapturable:
            return super().__call__(x)
        if key not in self.graphs:
            try:
                self.graphs[key] = self._capture(x)
            except RuntimeError as e:
                warnings.warn(f'CUDA graph capture failed for input {key}; running it eagerly ({e})',
                              stacklevel=2)
                self.uncapturable.add(key)
                return super().__call__(x)
            if len(self.graphs) > MAX_CUDA_GRAPHS:
                self.graphs.popitem(last=False)
        self.graphs.move_to_end(key)
        graph, static_in, static_out = self.graphs[key]
        static_in.copy_(x)
        graph.replay()
        return static_out.to(dtype=torch.float32, memory_format=torch.contiguous_format, copy=True)

    def _capture(self, x: torch.Tensor):
        static_in = x.to(dtype=self.dtype, memory_format=self.memory_format, copy=True)
        side = torch.cuda.Stream(x.device)
        side.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(side):  # warm-up off the capture (cuDNN picks its algorithms here)
            for _ in range(2):
                self.module(static_in)
        torch.cuda.current_stream(x.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.module(static_in)
        return graph, static_in, static_out


class _OrtRunner:
    """An ONNX Runtime session with torch tensors bound in place as input and output."""

    def __init__(self, model: nn.Module, device: torch.device, threads: int | None):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = ['CPUExecutionProvider']
        if device.type == 'cuda':  # available: checked by prepare (_ort_missing)
            providers.insert(0, ('CUDAExecutionProvider', {'device_id': device.index or 0}))
        self.session = ort.InferenceSession(onnx_model_bytes(model), options, providers=providers)
        self.scale = network.facts(model).scale
        self.in_name = self.session.get_inputs()[0].name
        output = self.session.get_outputs()[0]
        self.out_name, self.out_channels = output.name, output.shape[1]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        n, _, h, w = x.shape
        y = torch.empty(n, self.out_channels, h * self.scale, w * self.scale, device=x.device)
        binding = self.session.io_binding()
        kind, index = x.device.type, x.device.index or 0
        binding.bind_input(self.in_name, kind, index, np.float32, list(x.shape), x.data_ptr())
        binding.bind_output(self.out_name, kind, index, np.float32, list(y.shape), y.data_ptr())
        if kind == 'cuda':
            torch.cuda.current_stream(x.device).synchronize()
        self.session.run_with_iobinding(binding)
        return y


class _Compiled(nn.Module):
    """``torch.compile`` of a module, height and width dynamic; a failure to compile is one :class:`DeployError`."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.compiled = torch.compile(module, dynamic=True, fullgraph=True)  # holds ``module`` as ``_orig_mod``

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            return self.compiled(x)
        except torch._dynamo.exc.TorchDynamoException as e:
            cause = getattr(e, 'inner_exception', None) or e  # what the compiler itself raised
            text = (str(cause).strip().splitlines() or [''])[0][:300]
            raise DeployError(f"backend 'compiled': torch.compile failed ({type(cause).__name__}: {text}); "
                              "use backend 'fused'") from e


# ----------------------------------------------------------------------------- the backends
def _always(device: torch.device) -> str | None:
    return None


def _ort_missing(device: torch.device) -> str | None:
    """Why ONNX Runtime cannot run on ``device`` here (``None`` when it can)."""
    if ort is None:
        return "backend 'onnxruntime' needs the onnxruntime package: pip install -r requirements.txt"
    if device.type == 'cuda' and 'CUDAExecutionProvider' not in ort.get_available_providers():
        return ('ONNX Runtime on CUDA needs onnxruntime-gpu (this onnxruntime has only '
                f'{", ".join(ort.get_available_providers())})')
    return None


def _build_eager(source: nn.Module, device: torch.device, dtype: torch.dtype, threads: int | None):
    return _TorchRunner(source.to(device=device, dtype=dtype), dtype, torch.contiguous_format), 'NCHW'


def check_finite(module: nn.Module, when: str) -> None:
    """Every floating-point parameter and buffer of ``module`` is finite; else a one-line :class:`DeployError`
    naming the first that is not (``when``: at which step, e.g. 'after folding BatchNorm')."""
    for name, t in [*module.named_parameters(), *module.named_buffers()]:
        if t.is_floating_point() and t.device.type != 'meta' and not torch.isfinite(t).all():
            raise UnusableWeightsError(f'{name} holds NaN or infinite values {when}; '
                              'these weights cannot give an image')
    for name, m in module.named_modules():
        var = getattr(m, 'running_var', None)
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and var is not None and var.device.type != 'meta' \
                and (var < 0).any():
            raise UnusableWeightsError(f'{name}.running_var holds values below 0 (min {var.min().item():.3g}) {when}; '
                              'a variance cannot be negative: these weights cannot give an image')


def _build_fused(source: nn.Module, device: torch.device, dtype: torch.dtype, threads: int | None,
                 compiled: bool = False):
    module = fold_batchnorm(source)
    check_finite(module, 'after folding BatchNorm into the convs')
    module = shuffle_as_block_copy(module)
    module = module.to(device=device, dtype=dtype, memory_format=torch.channels_last)
    if compiled:
        module = _Compiled(module)
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = True  # process-wide: each captured shape gets cuDNN's fastest algorithms
        return _CudaGraphRunner(module, dtype, torch.channels_last), 'channels_last'
    return _TorchRunner(module, dtype, torch.channels_last), 'channels_last'


def _build_compiled(source, device, dtype, threads):
    return _build_fused(source, device, dtype, threads, compiled=True)


def _build_ort(source: nn.Module, device: torch.device, dtype: torch.dtype, threads: int | None):
    return _OrtRunner(source.cpu(), device, threads), 'NCHW'


def _fused_labels(runner, device: torch.device) -> list[str]:
    if device.type == 'cuda':
        return ['CUDA graphs']
    return ['heap reuse'] if _heap_reuse else []


TORCH_PRECISIONS = {'cpu': ('fp32',), 'cuda': ('fp32', 'fp16', 'bf16')}


@dataclass(frozen=True)
class Backend:
    """One way to run a compact network: a row of :data:`BACKEND_TABLE`.  Adding a backend is adding a row."""
    name: str
    build: Callable           # (float32 eval copy, device, dtype, threads) -> (runner, layout); runner(x) -> y
    available: Callable[[torch.device], str | None] = _always   # None where it runs on a device, else why not
    precisions: dict = field(default_factory=lambda: dict(TORCH_PRECISIONS))   # device type -> precisions
    labels: Callable = lambda runner, device: []   # words describe() adds after the layout
    runs_torch_module: bool = True     # a torch module runs (per-layer and kernel profiles, torch memory)
    slow_start_on: tuple = ()          # device types where its first call takes tens of seconds (compiling)
    allocator: str | None = None       # the runtime that allocates outside torch (memory not measurable)
    cpu_heap_reuse: bool = False       # on the CPU, runs faster with freed memory kept (reuse_freed_memory)


BACKEND_TABLE: dict[str, Backend] = {b.name: b for b in (
    Backend('eager', _build_eager),
    Backend('fused', _build_fused, labels=_fused_labels, cpu_heap_reuse=True),
    Backend('compiled', _build_compiled, labels=_fused_labels, slow_start_on=('cpu',), cpu_heap_reuse=True),
    Backend('onnxruntime', _build_ort, _ort_missing, {'cpu': ('fp32',), 'cuda': ('fp32',)},
            lambda runner, device: [runner.session.get_providers()[0]], runs_torch_module=False,
            allocator='ONNX Runtime'),
)}
BACKENDS = tuple(BACKEND_TABLE)


def usable_backends(device: str | torch.device, torch_module_only: bool = False) -> list[str]:
    """The backends that can run on ``device`` here (optionally only those that run a torch module)."""
    device = torch.device(device)
    return [b.name for b in BACKEND_TABLE.values()
            if b.available(device) is None and (b.runs_torch_module or not torch_module_only)]


def precision_problem(backend: str, precision: str, device_type: str) -> str | None:
    """Why ``backend`` cannot run ``precision`` on ``device_type`` (``None`` when it can)."""
    offered = BACKEND_TABLE[backend].precisions
    if precision in offered.get(device_type, ()):
        return None
    where = ' and '.join(d.upper() for d, names in offered.items() if precision in names)
    here = '/'.join(offered.get(device_type, ()))
    if where:
        return f'precision {precision} runs on {where} only with backend {backend}; use {here} here'
    return f'backend {backend} does not run {precision}; use {here}'


# ----------------------------------------------------------------------------- the deployed model
class DeployedModel:
    """A compact network ready to run: call it on an N x C x H x W float32 tensor (0-1) on its device."""

    def __init__(self, runner, *, scale: int, in_channels: int, backend: str, precision: str,
                 device: torch.device, layout: str, weight_bytes: int, structure: dict | None = None):
        self._runner = runner
        self.structure = structure  # the network's own describe() (arch, widths, arch_kwargs), when it has one
        self.scale, self.in_channels = scale, in_channels
        self.backend, self.precision, self.device, self.layout = backend, precision, device, layout
        self.weight_bytes = weight_bytes  # the weights as they are held for inference
        self.note: str | None = None      # what prepare changed on the way (e.g. widths snapped to the device)

    @property
    def module(self) -> nn.Module | None:
        """The torch module that runs (``None`` for ONNX Runtime), e.g. for a per-layer profile."""
        return getattr(self._runner, 'module', None)

    @property
    def memory_allocator(self) -> str | None:
        """The runtime that allocates this model's memory outside torch (``None``: torch measures it)."""
        return BACKEND_TABLE[self.backend].allocator

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise DeployError(f'expected an N x {self.in_channels} x H x W tensor, got shape {tuple(x.shape)}')
        if x.dtype != torch.float32:
            raise DeployError(f'expected a float32 tensor, got {x.dtype}')
        if x.device.type != self.device.type:
            raise DeployError(f'the model runs on {self.device}, the input is on {x.device}')
        return self._runner(x)

    def describe(self) -> str:
        """E.g. 'fused fp32, channels_last, CPU' or 'fused fp16, channels_last, CUDA graphs, NVIDIA H100'."""
        parts = [f'{self.backend} {self.precision}', self.layout]
        parts += BACKEND_TABLE[self.backend].labels(self._runner, self.device)
        parts.append(torch.cuda.get_device_name(self.device) if self.device.type == 'cuda' else 'CPU')
        return ', '.join(parts)

    def __repr__(self) -> str:
        return f'DeployedModel({self.describe()}, scale={self.scale}, in_channels={self.in_channels})'


def prepare(model: nn.Module, device=None, backend: str = 'fused', precision: str = 'fp32',
            threads: int | None = None, heap_reuse: bool = True, snap_widths: str = 'table') -> DeployedModel:
    """The inference-ready form of a compact network (the caller's ``model`` is left as it is).

    ``heap_reuse``: on the CPU, keep freed memory for reuse (:func:`reuse_freed_memory`: faster, but the process
    keeps its peak heap); ``infer`` turns it off to keep peak memory low on large images.  ``device``: where it
    runs (default: where ``model`` is).  ``threads``: CPU threads for torch (process-wide, ``torch.set_num_threads``)
    and for the ONNX Runtime session.  ``snap_widths``: ``'table'`` pads a pruned network's widths with zero
    channels up to the device's kernel step when this machine's latency table predicts that faster
    (:mod:`restore_dhp.snapping`; exact, and the deployed model's ``note`` says so); ``'off'`` never.  By hand:
    ``prepare(restore_dhp.network.padded(model, 32))``."""
    if backend not in BACKEND_TABLE:
        raise DeployError(f'unknown backend {backend!r}; choose one of {", ".join(BACKENDS)}')
    if precision not in PRECISIONS:
        raise DeployError(f'unknown precision {precision!r}; choose one of {", ".join(PRECISIONS)}')
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise DeployError('device cuda: no CUDA device is available')
    if problem := precision_problem(backend, precision, device.type):
        raise DeployError(problem)
    if threads is not None:
        if threads < 1:
            raise DeployError(f'threads must be at least 1, got {threads}')
        torch.set_num_threads(threads)
    if missing := BACKEND_TABLE[backend].available(device):
        raise DeployError(missing)
    try:
        model, note = snap(model, device, backend, precision, threads, snap_widths)
    except ValueError as e:
        raise DeployError(str(e)) from None
    source = copy.deepcopy(model).float().eval()
    check_finite(source, 'in the model')
    weight_bytes = sum(t.numel() * PRECISIONS[precision].itemsize for t in source.state_dict().values()
                       if t.is_floating_point())
    row = BACKEND_TABLE[backend]
    if heap_reuse and row.cpu_heap_reuse and device.type == 'cpu':
        reuse_freed_memory()
    runner, layout = row.build(source, device, PRECISIONS[precision], threads)
    facts = network.facts(model)
    structure = facts.describe() if callable(getattr(facts, 'describe', None)) else None
    deployed = DeployedModel(runner, scale=facts.scale, in_channels=facts.in_channels, backend=backend,
                             precision=precision, device=device, layout=layout, weight_bytes=weight_bytes,
                             structure=structure)
    deployed.note = note
    return deployed
