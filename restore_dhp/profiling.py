"""Where the time of one forward goes: per-layer CPU times of the fused form, CUDA kernels of a deployed form.

Used by ``python -m restore_dhp.speedup --profile`` (:func:`profile_layers` on the CPU,
:func:`profile_kernels` on CUDA); each returns the lines of its table.
"""
from __future__ import annotations

import time

import torch
from torch import fx, nn

from .deploy import PRECISIONS, prepare
from .timing import device_name

PROFILE_ROWS = 20  # slowest nodes listed per model


class _LayerTimer(fx.Interpreter):
    """Runs a traced network node by node, adding each node's wall time (ms) to ``self.ms``."""

    def __init__(self, gm: fx.GraphModule):
        super().__init__(gm)
        self.ms: dict[str, float] = {}
        self.shapes: dict[str, tuple] = {}

    def run_node(self, n):
        start = time.perf_counter()
        out = super().run_node(n)
        if n.op in ('call_module', 'call_function', 'call_method'):
            self.ms[n.name] = self.ms.get(n.name, 0.0) + (time.perf_counter() - start) * 1e3
            self.shapes[n.name] = (n.target if isinstance(n.target, str) else n.target.__name__, tuple(out.shape))
        return out


@torch.no_grad()
def profile_layers(entry, x: torch.Tensor, args) -> list[str]:
    """Per-layer ms of the fused form (eager's layer order) on the CPU: where the time of one forward goes.

    ``entry``: ``.label`` and ``.model`` (a :class:`restore_dhp.speedup.Entry`); ``x``: the CPU input;
    ``args``: ``.repeats``.
    """
    fused = prepare(entry.model, 'cpu', 'fused', snap_widths='off').module
    fused(x.to(memory_format=torch.channels_last))
    timer = _LayerTimer(fused)
    for _ in range(args.repeats):
        timer.run(x.to(memory_format=torch.channels_last))
    total = sum(timer.ms.values()) / args.repeats
    modules = dict(fused.named_modules())
    head = f'{"node":<26}{"op":<24}{"output":>22}{"MMAC":>9}{"ms":>9}{"share":>8}{"GMAC/s":>8}'
    lines = ['', f'{entry.label}: per layer, fused fp32 channels_last, {device_name(torch.device("cpu"))}, '
             f'input {tuple(x.shape)}, mean of {args.repeats} runs (sum {total:.2f} ms); the {PROFILE_ROWS} '
             'slowest nodes, then every op kind in total', head, '-' * len(head)]
    by_op: dict[str, list[float]] = {}
    for rank, (name, ms) in enumerate(sorted(timer.ms.items(), key=lambda kv: -kv[1])):
        target, shape = timer.shapes[name]
        module = modules.get(target) if isinstance(target, str) else None
        macs = _conv_macs(module, shape) if isinstance(module, nn.Conv2d) else 0
        op = type(module).__name__ if module is not None else str(target)
        ms /= args.repeats
        kind = by_op.setdefault(op, [0.0, 0.0, 0])
        kind[0], kind[1], kind[2] = kind[0] + ms, kind[1] + macs, kind[2] + 1
        if rank < PROFILE_ROWS:
            lines.append(f'{name[:25]:<26}{op[:23]:<24}{str(shape[1:]):>22}{macs / 1e6:>9.1f}{ms:>9.3f}'
                         f'{ms / total:>8.1%}{_rate(macs, ms)}')
    lines.append('')
    for op, (ms, macs, count) in sorted(by_op.items(), key=lambda kv: -kv[1][0]):
        lines.append(f'{"all " + op:<26}{f"{count} nodes":<24}{"":>22}{macs / 1e6:>9.1f}{ms:>9.3f}'
                     f'{ms / total:>8.1%}{_rate(macs, ms)}')
    return lines


@torch.no_grad()
def profile_kernels(entry, x: torch.Tensor, backend: str, precision: str, args) -> list[str]:
    """The CUDA kernels of one forward of a deployed form (run uncaptured): count and device time per kernel.

    Where a GPU forward's time goes: convolution kernels (and which ones cuDNN picked for each width),
    elementwise passes, layout conversions.  ``x``: the input on the GPU; ``args``: ``.repeats``, ``.warmup``.
    """
    deployed = prepare(entry.model, 'cuda', backend, precision, snap_widths='off')
    module = deployed.module
    layout = torch.channels_last if deployed.layout == 'channels_last' else torch.contiguous_format
    x = x.to(dtype=PRECISIONS[precision], memory_format=layout)
    for _ in range(args.warmup + 1):
        module(x)
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(args.repeats):
            module(x)
        torch.cuda.synchronize()
    rows = sorted((e for e in prof.key_averages() if e.self_device_time_total > 0),
                  key=lambda e: -e.self_device_time_total)
    n = args.repeats
    total_ms = sum(e.self_device_time_total for e in rows) / n / 1e3
    lines = ['', f'{entry.label}: CUDA kernels of one forward, {deployed.describe()}, input {tuple(x.shape)}, '
             f'mean of {n} uncaptured runs: {sum(e.count for e in rows) / n:.0f} kernels, {total_ms:.3f} ms of '
             f'kernel time; the {PROFILE_ROWS} longest kernels in total',
             f'{"ms":>8}{"share":>8}{"calls":>7}  kernel']
    for e in rows[:PROFILE_ROWS]:
        ms = e.self_device_time_total / n / 1e3
        lines.append(f'{ms:>8.3f}{ms / total_ms:>8.1%}{e.count / n:>7.0f}  {e.key[:140]}')
    return lines


def _rate(macs: float, ms: float) -> str:
    return f'{macs / ms / 1e6:>8.1f}' if macs else f'{"":>8}'


def _conv_macs(conv: nn.Conv2d, out_shape: tuple) -> int:
    kh, kw = conv.kernel_size
    return out_shape[0] * out_shape[1] * out_shape[2] * out_shape[3] * conv.in_channels // conv.groups * kh * kw
