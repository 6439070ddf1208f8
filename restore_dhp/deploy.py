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

Precision (``precision=``): ``'fp32'`` everywhere (on CUDA its convs use TF32, PyTorch's default for
cuDNN); ``'fp16'`` and ``'bf16'`` on CUDA with the torch backends.  Inputs and outputs stay float32
whatever runs inside.
"""
from __future__ import annotations

import copy
import ctypes
import sys
import warnings
from collections import OrderedDict

import numpy as np
import torch
from torch import fx, nn

from .export import onnx_model_bytes

try:
    import onnxruntime as ort
except ImportError:  # the one optional dependency of this module; only the 'onnxruntime' backend needs it
    ort = None

BACKENDS = ('eager', 'fused', 'compiled', 'onnxruntime')
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


# ----------------------------------------------------------------------------- graph rewrites
def _fed_by_conv_alone(gm: fx.GraphModule, modules: dict, kind: type):
    """``(node, conv_node)`` for each ``kind`` module whose input is a Conv2d used by it alone (a snapshot)."""
    for node in list(gm.graph.nodes):
        if _is_module(node, modules, kind):
            src = node.args[0]
            if _is_module(src, modules, nn.Conv2d) and len(src.users) == 1:
                yield node, src


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> fx.GraphModule:
    """A traced copy of ``model`` (eval mode) with each BatchNorm folded into the conv that feeds it alone.

    ``w' = w * g / sqrt(v + eps)``, ``b' = (b - m) * g / sqrt(v + eps) + beta``, computed in float64.
    """
    gm = fx.symbolic_trace(copy.deepcopy(model).eval())
    modules = dict(gm.named_modules())
    for node, src in _fed_by_conv_alone(gm, modules, nn.BatchNorm2d):
        _fold_into(modules[src.target], modules[node.target])
        node.replace_all_uses_with(src)
        gm.graph.erase_node(node)
        gm.delete_submodule(node.target)
    gm.graph.lint()
    gm.recompile()
    return gm


def _fold_into(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    w = conv.weight.double()
    b = conv.bias.double() if conv.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64,
                                                                      device=w.device)
    gain = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    conv.weight.copy_((w * gain.view(-1, 1, 1, 1)).to(conv.weight.dtype))
    new_bias = ((b - bn.running_mean.double()) * gain + bn.bias.double()).to(conv.weight.dtype)
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias)
    else:
        conv.bias.copy_(new_bias)


class ShuffleNHWC(nn.Module):
    """``PixelShuffle(r)`` for a channels_last input whose channels are ordered (i, j, c) instead of (c, i, j).

    Each output pixel then takes ``C`` contiguous values: a block copy instead of a strided gather.
    """

    def __init__(self, upscale: int):
        super().__init__()
        self.r = upscale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c4, h, w = x.shape
        r, c = self.r, x.shape[1] // (self.r * self.r)
        nhwc = x.permute(0, 2, 3, 1).reshape(n, h, w, r, r, c)
        out = nhwc.permute(0, 1, 3, 2, 4, 5).reshape(n, h * r, w * r, c)
        return out.permute(0, 3, 1, 2)  # a channels_last view of the N x C x rH x rW result


@torch.no_grad()
def shuffle_as_block_copy(gm: fx.GraphModule) -> fx.GraphModule:
    """Rewrite each conv -> PixelShuffle pair (conv used only there) for channels_last (see :class:`ShuffleNHWC`)."""
    modules = dict(gm.named_modules())
    for node, src in _fed_by_conv_alone(gm, modules, nn.PixelShuffle):
        conv, r = modules[src.target], modules[node.target].upscale_factor
        c = conv.out_channels // (r * r)
        order = torch.arange(conv.out_channels).view(c, r * r).t().reshape(-1)  # (i, j, c) <- (c, i, j)
        conv.weight.copy_(conv.weight[order])
        if conv.bias is not None:
            conv.bias.copy_(conv.bias[order])
        name = f'{src.target.replace(".", "_")}_shuffle'
        gm.add_submodule(name, ShuffleNHWC(r))
        with gm.graph.inserting_after(node):
            new = gm.graph.call_module(name, (src,))
        node.replace_all_uses_with(new)
        gm.graph.erase_node(node)
    gm.graph.eliminate_dead_code()
    gm.delete_all_unused_submodules()
    gm.graph.lint()
    gm.recompile()
    return gm


def _is_module(node, modules: dict, cls) -> bool:
    return isinstance(node, fx.Node) and node.op == 'call_module' and isinstance(modules.get(node.target), cls)


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
        if ort is None:
            raise DeployError("backend 'onnxruntime' needs the onnxruntime package: pip install -r requirements.txt")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = ['CPUExecutionProvider']
        if device.type == 'cuda':
            if 'CUDAExecutionProvider' not in ort.get_available_providers():
                raise DeployError('ONNX Runtime on CUDA needs onnxruntime-gpu (this onnxruntime has only '
                                  f'{", ".join(ort.get_available_providers())})')
            providers.insert(0, ('CUDAExecutionProvider', {'device_id': device.index or 0}))
        self.session = ort.InferenceSession(onnx_model_bytes(model), options, providers=providers)
        self.scale = model.scale
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


# ----------------------------------------------------------------------------- the deployed model
class DeployedModel:
    """A compact network ready to run: call it on an N x C x H x W float32 tensor (0-1) on its device."""

    def __init__(self, runner, *, scale: int, in_channels: int, backend: str, precision: str,
                 device: torch.device, layout: str, weight_bytes: int):
        self._runner = runner
        self.scale, self.in_channels = scale, in_channels
        self.backend, self.precision, self.device, self.layout = backend, precision, device, layout
        self.weight_bytes = weight_bytes  # the weights as they are held for inference

    @property
    def module(self) -> nn.Module | None:
        """The torch module that runs (``None`` for ONNX Runtime), e.g. for a per-layer profile."""
        return getattr(self._runner, 'module', None)

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
        if isinstance(self._runner, _CudaGraphRunner):
            parts.append('CUDA graphs')
        if isinstance(self._runner, _OrtRunner):
            parts.append(self._runner.session.get_providers()[0])
        if self.device.type == 'cpu' and self.backend in ('fused', 'compiled') and _heap_reuse:
            parts.append('heap reuse')
        parts.append(torch.cuda.get_device_name(self.device) if self.device.type == 'cuda' else 'CPU')
        return ', '.join(parts)

    def __repr__(self) -> str:
        return f'DeployedModel({self.describe()}, scale={self.scale}, in_channels={self.in_channels})'


def prepare(model: nn.Module, device=None, backend: str = 'fused', precision: str = 'fp32',
            threads: int | None = None, heap_reuse: bool = True) -> DeployedModel:
    """The inference-ready form of a compact network (the caller's ``model`` is left as it is).

    ``heap_reuse``: on the CPU, keep freed memory for reuse (:func:`reuse_freed_memory`: faster, but the
    process keeps its peak heap); ``infer`` turns it off to keep peak memory low on large images.

    ``device``: where it runs (default: where ``model`` is).  ``threads``: CPU threads for torch
    (process-wide, ``torch.set_num_threads``) and for the ONNX Runtime session.
    A network whose widths a device runs slowly can be padded first (exact):
    ``prepare(model.padded_to(32), 'cuda')`` (:meth:`~restore_dhp.dhp.net.PrunableNet.padded_to`).
    """
    if backend not in BACKENDS:
        raise DeployError(f'unknown backend {backend!r}; choose one of {", ".join(BACKENDS)}')
    if precision not in PRECISIONS:
        raise DeployError(f'unknown precision {precision!r}; choose one of {", ".join(PRECISIONS)}')
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise DeployError('device cuda: no CUDA device is available')
    if precision != 'fp32' and (device.type != 'cuda' or backend == 'onnxruntime'):
        raise DeployError(f'precision {precision} runs on CUDA with the torch backends; use fp32 here')
    if threads is not None:
        if threads < 1:
            raise DeployError(f'threads must be at least 1, got {threads}')
        torch.set_num_threads(threads)
    source = copy.deepcopy(model).float().eval()
    weight_bytes = sum(t.numel() * PRECISIONS[precision].itemsize for t in source.state_dict().values()
                       if t.is_floating_point())
    if backend == 'onnxruntime':
        runner, layout = _OrtRunner(source.cpu(), device, threads), 'NCHW'
    else:
        runner, layout = _torch_runner(source, device, backend, PRECISIONS[precision], heap_reuse)
    return DeployedModel(runner, scale=source.scale, in_channels=source.in_channels, backend=backend,
                         precision=precision, device=device, layout=layout, weight_bytes=weight_bytes)


def _torch_runner(source: nn.Module, device: torch.device, backend: str, dtype: torch.dtype,
                  heap_reuse: bool = True):
    if backend == 'eager':
        return _TorchRunner(source.to(device=device, dtype=dtype), dtype, torch.contiguous_format), 'NCHW'
    module = shuffle_as_block_copy(fold_batchnorm(source))
    module = module.to(device=device, dtype=dtype, memory_format=torch.channels_last)
    if backend == 'compiled':
        module = _Compiled(module)
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = True  # process-wide: each captured shape gets cuDNN's fastest algorithms
        return _CudaGraphRunner(module, dtype, torch.channels_last), 'channels_last'
    if heap_reuse:
        reuse_freed_memory()
    return _TorchRunner(module, dtype, torch.channels_last), 'channels_last'
