"""A network by name: a registered architecture, its constructor arguments and its per-group widths.

Any BasicSR-registered architecture (this project's, BasicSR's own, or one a user
registers) is a plain module.  Its width groups come from tracing it once per set
of constructor arguments (:func:`spec_of`, on the meta device: nothing is
allocated), and a network at other widths is the full-width module with its
layers narrowed (:func:`build`).  Every network this project builds or loads
carries its :class:`Structure` (attribute ``restore_dhp_structure``): what a
checkpoint, an export or a report says about it.
"""
from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch import nn

from .archs import aliases, arch_class  # noqa: F401  (aliases: short names for the command lines)
from .dhp import ArchSpec, first_channels, padded_widths, trace_spec

ATTRIBUTE = 'restore_dhp_structure'
EXAMPLE_SIZE = 32                 # the traced example's height and width (an architecture's dhp_hints may say)
IN_CHANNEL_KEYS = ('in_channels', 'num_in_ch', 'in_nc', 'in_chans')


@dataclass(frozen=True)
class Structure:
    """What a network is: ``arch`` (registered name), ``arch_kwargs``, the full-width ``spec``, present ``widths``."""
    arch: str
    arch_kwargs: Mapping[str, Any]
    spec: ArchSpec = field(repr=False)
    widths: Mapping[str, int]

    @property
    def scale(self) -> int:
        return self.spec.scale

    @property
    def in_channels(self) -> int:
        return self.spec.in_channels

    @property
    def task(self) -> str:
        return 'sr' if self.spec.scale > 1 else 'denoise'

    def describe(self) -> dict:
        """Self-description stored with a compact checkpoint or an ONNX file."""
        return {'arch': self.arch, 'arch_kwargs': dict(self.arch_kwargs), 'widths': dict(self.widths),
                'task': self.task, 'scale': self.scale}


def registered_name(arch: str) -> str:
    """The registered class name of a short, registered or legacy architecture name (``KeyError`` if none)."""
    return arch_class(arch).__name__


def example_input(net: nn.Module, arch_kwargs: Mapping[str, Any], device='cpu') -> torch.Tensor:
    """An input to trace ``net`` with: its image channels from the constructor arguments (``in_channels``,
    BasicSR's ``num_in_ch`` ...) or else its first conv; ``dhp_hints['example_size']`` or 32 x 32."""
    channels = next((arch_kwargs[k] for k in IN_CHANNEL_KEYS if k in arch_kwargs), None)
    if channels is None:
        channels = next((m.in_channels for m in net.modules() if isinstance(m, nn.Conv2d)), 3)
    size = (getattr(net, 'dhp_hints', None) or {}).get('example_size', EXAMPLE_SIZE)
    return torch.zeros(1, channels, size, size, device=device)


@functools.lru_cache(maxsize=32)
def _spec(arch: str, kwargs_json: str) -> ArchSpec:
    kwargs = json.loads(kwargs_json)
    with torch.device('meta'):
        net = arch_class(arch)(**kwargs)
    return trace_spec(net, example_input(net, kwargs, 'meta'))


def spec_of(arch: str, arch_kwargs: Mapping[str, Any] | None = None) -> ArchSpec:
    """The traced :class:`ArchSpec` of architecture ``arch`` built with ``arch_kwargs`` (cached)."""
    return _spec(registered_name(arch), json.dumps(dict(arch_kwargs or {}), sort_keys=True))


def attach(net: nn.Module, arch: str, arch_kwargs: Mapping[str, Any] | None = None,
           widths: Mapping[str, int] | None = None) -> Structure:
    """Record on ``net`` (built by ``arch(**arch_kwargs)``, at ``widths``: default full) what it is."""
    spec = spec_of(arch, arch_kwargs)
    full = {g: spec.group_widths[g] for g in spec.prunable_groups}
    structure = Structure(registered_name(arch), dict(arch_kwargs or {}), spec, {**full, **(widths or {})})
    setattr(net, ATTRIBUTE, structure)
    return structure


def structure(net: nn.Module) -> Structure:
    """The :class:`Structure` of a network built here (``ValueError`` for a module built elsewhere)."""
    found = getattr(net, ATTRIBUTE, None)
    if found is None:
        raise ValueError(f'{type(net).__name__} was not built by restore_dhp (restore_dhp.network.build, a '
                         'checkpoint loader, or a training model)')
    return found


def build(arch: str, arch_kwargs: Mapping[str, Any] | None = None, widths: Mapping[str, int] | None = None,
          device: str | torch.device | None = None) -> nn.Module:
    """Architecture ``arch`` built with ``arch_kwargs`` and narrowed to ``widths`` (prunable groups; default full
    width), untrained, in train mode, with its :class:`Structure` attached.  ``device='meta'`` allocates nothing."""
    kwargs = dict(arch_kwargs or {})
    spec = spec_of(arch, kwargs)
    with torch.device(device or 'cpu'):
        net = arch_class(arch)(**kwargs)
    narrowed = first_channels(net, spec, widths) if widths else None
    attach(net, arch, kwargs, narrowed)
    return net


def facts(model):
    """What consumers ask of a model, ``.scale``, ``.in_channels`` and ``.describe()``: a network built here answers
    through its :class:`Structure`; a deployed model (or a probe module) answers itself."""
    return getattr(model, ATTRIBUTE, None) or model


def padded(model: nn.Module, multiple: int) -> nn.Module:
    """A copy of ``model`` (built here) with zero channels added so every prunable width is a multiple of
    ``multiple`` (at most the full width): the same output (:func:`restore_dhp.dhp.padded_widths`)."""
    structure_ = structure(model)
    copy_ = copy.deepcopy(model)
    with_widths(copy_, padded_widths(copy_, structure_.spec, structure_.widths, multiple))
    return copy_


def with_widths(net: nn.Module, widths: Mapping[str, int]) -> Structure:
    """Record that ``net`` (built here) now has ``widths`` (after compaction or padding)."""
    old = structure(net)
    new = Structure(old.arch, old.arch_kwargs, old.spec, {**old.widths, **widths})
    setattr(net, ATTRIBUTE, new)
    return new
