"""FLOPs and parameter counts with the DHP paper's conventions, for any widths and input size.

Paper convention (what its tables call FLOPs): conv multiply-accumulates
without the bias, +1 per output element of each activation, +2 per element of
each batch-norm; pixel shuffle and residual additions are free.  The input is
128x128 (for SR, the low-resolution image).  ``macs`` is the plain conv
multiply-accumulate count beside it.

Counting runs the network's own forward on the ``meta`` device with hooks, so
it measures the structure that actually runs and costs no arithmetic.
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

from basicsr.utils.registry import ARCH_REGISTRY

from . import archs
from .archs import aliases as arch_aliases
from .checkpoint import CheckpointError, build_from_metadata, read_metadata
from .commands import prog, run_entry
from .dhp import ArchSpec, FlopsTable

_ACTIVATIONS = (nn.ReLU, nn.PReLU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.GELU, nn.SiLU)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # parameters() de-duplicates shared modules


def count_flops(model: nn.Module, height: int = 128, width: int = 128) -> dict[str, int]:
    """Paper-convention FLOPs and conv MACs of one forward pass on a 1 x C x height x width input."""
    totals = {'flops': 0, 'macs': 0}

    def conv_hook(module: nn.Conv2d, _inp, out):
        macs = out.numel() * (module.in_channels // module.groups) * module.kernel_size[0] * module.kernel_size[1]
        totals['macs'] += macs
        totals['flops'] += macs

    def bn_hook(_module, _inp, out):
        totals['flops'] += 2 * out.numel()

    def act_hook(_module, _inp, out):
        totals['flops'] += out.numel()

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            handles.append(module.register_forward_hook(bn_hook))
        elif isinstance(module, _ACTIVATIONS):
            handles.append(module.register_forward_hook(act_hook))
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            model(torch.zeros(1, model.in_channels, height, width, device=device))
    finally:
        for h in handles:
            h.remove()
    return totals


def build_meta(arch: str, widths: Mapping[str, int] | None = None, **arch_kwargs) -> nn.Module:
    """A plain network of class ``arch`` (registry name or alias) on the meta device: no memory, no init cost."""
    cls = archs.compact_class(arch)
    with torch.device('meta'):
        return cls(widths=widths, **arch_kwargs).eval()


def arch_spec(arch: str, **arch_kwargs) -> ArchSpec:
    """The :class:`~restore_dhp.dhp.ArchSpec` (width groups and the layers using them) of architecture ``arch``
    (registry name of any form, or alias) built with ``arch_kwargs``.  The one place a spec is asked of a network:
    today it is the spec the architecture writes; when specs are traced from the network, this changes alone."""
    cls = ARCH_REGISTRY.get(arch_aliases().get(arch, arch))
    with torch.device('meta'):
        return cls(**arch_kwargs).spec


def complexity(arch: str, widths: Mapping[str, int] | None = None, size: int = 128, **arch_kwargs) -> dict:
    """FLOPs (paper convention), MACs and params of ``arch`` at ``widths`` for a size x size input."""
    model = build_meta(arch, widths, **arch_kwargs)
    counts = count_flops(model, size, size)
    return {'arch': type(model).__name__, 'input': [1, model.in_channels, size, size],
            'flops': counts['flops'], 'gflops': counts['flops'] / 1e9,
            'macs': counts['macs'], 'gmacs': counts['macs'] / 1e9,
            'params': count_params(model), 'widths': model.kept_widths()}


@functools.lru_cache(maxsize=64)
def _flops_table(arch: str, size: int, arch_kwargs: str) -> FlopsTable:
    return FlopsTable(arch_spec(arch, **json.loads(arch_kwargs)), size)


def flops_table(arch: str, size: int = 128, **arch_kwargs) -> FlopsTable:
    """The closed-form FLOPs table of ``arch`` (registry name or alias) for a size x size input (cached)."""
    return _flops_table(arch_aliases().get(arch, arch), size, json.dumps(arch_kwargs, sort_keys=True))


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
    with torch.device('meta'):
        build_from_metadata(meta, path)
    return {**metadata_complexity(meta, size), 'checkpoint': str(path)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=prog('complexity'), description=__doc__.split('\n')[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--arch', choices=sorted(arch_aliases()), help='baseline architecture at full width')
    source.add_argument('--weights', help='a compact checkpoint (.safetensors)')
    parser.add_argument('--size', type=int, default=128, help='input height and width (LR size for SR)')
    args = parser.parse_args(argv)
    if args.size < 1:
        parser.error('--size must be positive')
    try:
        result = checkpoint_complexity(args.weights, args.size) if args.weights else complexity(args.arch, None, args.size)
    except (CheckpointError, KeyError, TypeError, ValueError) as e:
        print(f'error: {str(e).strip(chr(34)).splitlines()[0]}', file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(run_entry(main))
