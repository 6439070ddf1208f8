"""FLOPs and parameter counts with the DHP paper's conventions, for any widths and input size.

Paper convention (what its tables call FLOPs): conv multiply-accumulates
without the bias, +1 per output element of each activation, +2 per element of
each batch-norm; pixel shuffle and residual additions are free.  The input is
128x128 (for SR, the low-resolution image).  ``macs`` is the plain conv
multiply-accumulate count beside it.

Counting runs the network's own forward on the ``meta`` device and counts the
ops it dispatches, so it measures the structure that actually runs (functional
activations too) and costs no arithmetic.
:func:`remaining_flops_ratio` prices widths with the architecture's closed-form
:class:`~restore_dhp.dhp.FlopsTable` instead (microseconds per width set; the
tests check that both counts agree).

    python -m restore_dhp.complexity --arch srresnet --size 128
    python -m restore_dhp.complexity --weights weights/srresnet_x4_dhp40.safetensors
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
from typing import Any, Mapping

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from . import network
from .checkpoint import CheckpointError, build_checked, read_metadata
from .commands import prog, run_entry
from .dhp import ArchSpec, FlopsTable

#: aten ops counted as an activation (+1 FLOP per output element)
ACTIVATION_OPS = frozenset({'relu', 'leaky_relu', 'prelu', '_prelu_kernel', 'sigmoid', 'tanh', 'gelu', 'silu', 'elu',
                            'hardtanh', 'hardswish', 'hardsigmoid', 'softplus', 'mish', 'relu6'})
BATCH_NORM_OPS = frozenset({'native_batch_norm', '_native_batch_norm_legit_no_training', '_native_batch_norm_legit',
                            'batch_norm', 'cudnn_batch_norm', '_batch_norm_impl_index'})


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # parameters() de-duplicates shared modules


class _OpCounter(TorchDispatchMode):
    """Counts the paper's FLOPs of the aten ops a forward runs (convs, batch-norms, activations, functional or not)."""

    def __init__(self):
        super().__init__()
        self.flops = self.macs = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func._overloadpacket.__name__.rstrip('_')
        if name == 'convolution':
            x, weight, transposed, groups = args[0], args[1], args[6], args[8]
            taps = weight.shape[2] * weight.shape[3]
            # a conv: each output element reads in/groups channels; a transposed conv: each input element
            # writes out/groups channels, kernel area times
            macs = x.numel() * weight.shape[1] * taps if transposed else out.numel() * weight.shape[1] * taps
            self.macs += macs
            self.flops += macs
        elif name in BATCH_NORM_OPS:
            self.flops += 2 * (out[0] if isinstance(out, tuple) else out).numel()
        elif name in ACTIVATION_OPS:
            self.flops += (out[0] if isinstance(out, tuple) else out).numel()
        return out


def count_flops(model: nn.Module, height: int = 128, width: int = 128) -> dict[str, int]:
    """Paper-convention FLOPs and conv MACs of one forward pass of ``model`` (built here, or any module with an
    ``in_channels`` attribute: :func:`restore_dhp.network.facts`) on a 1 x C x height x width input, counted op by
    op as it runs (on the meta device it costs no arithmetic)."""
    counter = _OpCounter()
    device = next(model.parameters()).device
    with torch.no_grad(), counter:
        model(torch.zeros(1, network.facts(model).in_channels, height, width, device=device))
    return {'flops': counter.flops, 'macs': counter.macs}


def arch_spec(arch: str, **arch_kwargs) -> ArchSpec:
    """The :class:`~restore_dhp.dhp.ArchSpec` (width groups and the layers using them) of architecture ``arch``
    (registered name or a short one) built with ``arch_kwargs``: traced (:func:`restore_dhp.network.spec_of`)."""
    return network.spec_of(arch, arch_kwargs)


def complexity(arch: str, widths: Mapping[str, int] | None = None, size: int = 128, **arch_kwargs) -> dict:
    """FLOPs (paper convention), MACs and params of ``arch`` at ``widths`` for a size x size input."""
    model = network.build(arch, arch_kwargs, widths, 'meta').eval()
    counts, structure = count_flops(model, size, size), network.structure(model)
    return {'arch': structure.arch, 'input': [1, structure.in_channels, size, size],
            'flops': counts['flops'], 'gflops': counts['flops'] / 1e9,
            'macs': counts['macs'], 'gmacs': counts['macs'] / 1e9,
            'params': count_params(model), 'widths': dict(structure.widths)}


@functools.lru_cache(maxsize=64)
def _flops_table(arch: str, size: int, arch_kwargs: str) -> FlopsTable:
    return FlopsTable(arch_spec(arch, **json.loads(arch_kwargs)), size)


def flops_table(arch: str, size: int = 128, **arch_kwargs) -> FlopsTable:
    """The closed-form FLOPs table of ``arch`` (registry name or alias) for a size x size input (cached)."""
    return _flops_table(network.registered_name(arch), size, json.dumps(arch_kwargs, sort_keys=True))


def remaining_flops_ratio(arch: str, widths: Mapping[str, int], size: int = 128, **arch_kwargs) -> float:
    """FLOPs at ``widths`` divided by FLOPs at full width (closed form)."""
    return flops_table(arch, size, **arch_kwargs).ratio(widths)


def metadata_complexity(meta: Mapping[str, Any], size: int = 128) -> dict:
    """A compact model's numbers and their ratio to full width, from its checkpoint metadata (no file read)."""
    pruned = complexity(meta['arch'], meta['widths'], size, **meta['arch_kwargs'])
    base = complexity(meta['arch'], None, size, **meta['arch_kwargs'])
    pruned.update(baseline_flops=base['flops'], baseline_params=base['params'],
                  flops_ratio=pruned['flops'] / base['flops'], params_ratio=pruned['params'] / base['params'])
    return pruned


def checkpoint_complexity(path: str, size: int = 128) -> dict:
    """The compact model's numbers and their ratio to the same architecture at full width.

    The file is checked as the loader checks it (a :class:`CheckpointError` in one line for an unknown
    architecture, arguments it does not take, a form that is not the plain one), on the meta device."""
    meta = read_metadata(path)
    build_checked(meta['arch'], meta['arch_kwargs'], meta['widths'], path, 'meta')
    return {**metadata_complexity(meta, size), 'checkpoint': str(path)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=prog('complexity'), description=__doc__.split('\n')[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--arch', help='an architecture at full width: a registered name or one of '
                        + ', '.join(sorted(network.aliases())))
    source.add_argument('--weights', help='a compact checkpoint (.safetensors)')
    parser.add_argument('--arch-kwargs', default='{}', help='with --arch: its constructor arguments as JSON')
    parser.add_argument('--size', type=int, default=128, help='input height and width (LR size for SR)')
    args = parser.parse_args(argv)
    if args.size < 1:
        parser.error('--size must be positive')
    try:
        if args.weights:
            result = checkpoint_complexity(args.weights, args.size)
        else:
            kwargs = json.loads(args.arch_kwargs)
            build_checked(args.arch, kwargs, None, '--arch', 'meta')
            result = complexity(args.arch, None, args.size, **kwargs)
    except (CheckpointError, KeyError, TypeError, ValueError) as e:
        print(f'error: {str(e).strip(chr(34)).splitlines()[0]}', file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(run_entry(main))
