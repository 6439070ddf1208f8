"""Change the widths of a plain network in place, in its own module classes: remove channels, or add zero ones.

:func:`select_channels` takes, for every group of the network's
:class:`~restore_dhp.dhp.spec.ArchSpec`, the list of its channels to keep (in
order; ``-1`` adds a channel that carries zero) and rewrites every conv,
transposed conv, BatchNorm, per-channel PReLU and per-channel parameter that
touches the group: their tensors are indexed along the channel dimension and
their channel counts (``in_channels``, ``num_features`` ...) set to match, so
the module keeps its class and its forward.  Removing channels whose inputs
carry zero into every reader, or adding zero channels, leaves the output
unchanged: that is compaction (:meth:`~restore_dhp.dhp.net.DHPNet.compact`),
building a network at given widths (:func:`first_channels`) and deploy-time
padding (:func:`padded_widths`).
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from .spec import ArchSpec, Segment, Space

#: the value an added channel's entry takes in a tensor of this name (else 0): a unit variance keeps a zero
#: channel at zero through BatchNorm (with weight 0 and bias 0)
FILL = {'running_var': 1.0}


def space_index(space: Space, channels: Mapping[str, torch.Tensor], widths: Mapping[str, int]) -> torch.Tensor:
    """The channel list of a layer reading ``space``, from each group's list ``channels`` (``-1``: a zero
    channel); a segment starts after the channels of the ones before it at the groups' present ``widths``."""
    parts, offset = [], 0
    for seg in space:
        index = channels[seg.group]
        if seg.per > 1:
            sub = torch.arange(seg.per, device=index.device)
            expanded = (index.clamp(min=0).unsqueeze(1) * seg.per + sub).flatten()
            index = torch.where(index.repeat_interleave(seg.per) < 0, -1, expanded)
        parts.append(torch.where(index < 0, index, index + offset))
        offset += widths[seg.group] * seg.per
    return torch.cat(parts)


def _take(tensor: torch.Tensor, index: torch.Tensor, dim: int, fill: float) -> torch.Tensor:
    """``tensor`` indexed by ``index`` along ``dim``; ``-1`` entries give ``fill``."""
    added = index < 0
    taken = tensor.index_select(dim, index.clamp(min=0).to(tensor.device))
    if added.any():  # (asked on the CPU: a network on the meta device has no values to read)
        shape = [1] * tensor.dim()
        shape[dim] = -1
        taken = torch.where(added.to(tensor.device).view(shape), torch.full_like(taken, fill), taken)
    return taken


def _replace(owner: nn.Module, name: str, tensor: torch.Tensor) -> None:
    old = getattr(owner, name)
    if isinstance(old, nn.Parameter):
        setattr(owner, name, nn.Parameter(tensor.detach().clone(), requires_grad=old.requires_grad))
    elif name in owner._buffers:
        owner._buffers[name] = tensor.detach().clone()
    else:
        setattr(owner, name, tensor.detach().clone())


@torch.no_grad()
def select_channels(module: nn.Module, spec: ArchSpec, widths: Mapping[str, int],
                    channels: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Rewrite ``module`` (plain, every group at ``widths`` now) so that group ``g`` holds ``channels[g]`` (old
    channel numbers in order, ``-1`` for a zero channel); returns the new widths of every group."""
    widths = {**spec.group_widths, **widths}  # (the fixed groups at their own width)
    full = {g: torch.arange(widths[g]) for g in spec.group_widths}
    index = {**full, **{g: torch.as_tensor(c, dtype=torch.long).cpu() for g, c in channels.items()}}
    new_widths = {g: len(index[g]) for g in spec.group_widths}
    for path, c in spec.modules.items():
        conv = module.get_submodule(path)
        in_index = space_index(c.inputs, index, widths)
        out_index = space_index((Segment(c.out_group, c.out_per_channel),), index, widths)
        if c.depthwise:
            _replace(conv, 'weight', _take(conv.weight, out_index, 0, 0.0))
            conv.groups = len(out_index)
        elif c.transposed:
            _replace(conv, 'weight', _take(_take(conv.weight, in_index, 0, 0.0), out_index, 1, 0.0))
        else:
            _replace(conv, 'weight', _take(_take(conv.weight, out_index, 0, 0.0), in_index, 1, 0.0))
        if conv.bias is not None:
            _replace(conv, 'bias', _take(conv.bias, out_index, 0, 0.0))
        conv.in_channels, conv.out_channels = len(in_index), len(out_index)
    for path, layer in spec.norms.items():
        norm = module.get_submodule(path)
        idx = space_index(layer.space, index, widths)
        for name in ('weight', 'bias', 'running_mean', 'running_var'):
            if getattr(norm, name, None) is not None:
                _replace(norm, name, _take(getattr(norm, name), idx, 0, FILL.get(name, 0.0)))
        norm.num_features = len(idx)
    for name, layer in spec.channel_params.items():
        owner_path, _, attr = name.rpartition('.')
        owner = module.get_submodule(owner_path)
        idx = space_index(layer.space, index, widths)
        _replace(owner, attr, _take(getattr(owner, attr), idx, layer.dim, FILL.get(attr, 0.0)))
        if isinstance(owner, nn.PReLU):
            owner.num_parameters = len(idx)
    return {g: new_widths[g] for g in spec.prunable_groups}


def first_channels(module: nn.Module, spec: ArchSpec, widths: Mapping[str, int]) -> dict[str, int]:
    """Narrow a full-width ``module`` to ``widths`` (prunable groups) by keeping each group's first channels:
    the structure of a compact network at those widths (its values are then loaded)."""
    resolved = spec.resolve_widths(widths)
    keep = {g: torch.arange(resolved[g]) for g in spec.prunable_groups}
    return select_channels(module, spec, spec.group_widths, keep)


def padded_widths(module: nn.Module, spec: ArchSpec, widths: Mapping[str, int], multiple: int) -> dict[str, int]:
    """Add zero channels to ``module`` (prunable groups at ``widths``; ``spec`` of the full width) so each width
    is a multiple of ``multiple`` (at most the full width): the same output, widths a device's fastest kernels
    take."""
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
        raise ValueError(f'multiple must be a positive integer, got {multiple!r}')
    present = {**spec.group_widths, **widths}
    grow = {}
    for g in spec.prunable_groups:
        target = min(spec.group_widths[g], -(-present[g] // multiple) * multiple)
        grow[g] = torch.cat([torch.arange(present[g]), torch.full((target - present[g],), -1)])
    return select_channels(module, spec, present, grow)
