"""How an architecture describes its structure once: width groups and the layers that use them.

An :class:`ArchSpec` names the *width groups* (sets of channels that must be
kept or removed together, e.g. every feature map joined by a residual
addition) and, for every conv, batch-norm and activation, which group its
channels belong to and at which spatial scale (relative to the input) it runs.
That is all :class:`~restore_dhp.dhp.net.PrunableNet` needs to build the
plain and DHP forms, and all :class:`~restore_dhp.dhp.cost.FlopsTable` needs to
count FLOPs in closed form.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping


@dataclass(frozen=True)
class ConvSpec:
    in_group: str
    out_group: str
    kernel_size: int
    out_per_channel: int = 1  # >1 for a conv feeding PixelShuffle: 4 sub-pixel outputs per channel
    scale: int = 1            # spatial size of its output relative to the network input (SR upsamplers: 1, 2, ...)


@dataclass(frozen=True)
class LayerSpec:
    """A batch-norm or activation: the group of its channels and the spatial scale it runs at."""
    group: str
    scale: int = 1


@dataclass(frozen=True)
class ArchSpec:
    """Structure of an architecture: width groups and the convs, norms and activations that use them."""
    group_widths: Mapping[str, int]          # full (baseline) width of every group
    fixed_groups: frozenset                  # groups never pruned (image input/output channels)
    convs: Mapping[str, ConvSpec]
    norms: Mapping[str, LayerSpec] = field(default_factory=dict)
    activations: Mapping[str, LayerSpec] = field(default_factory=dict)  # every activation call in forward

    def __post_init__(self):
        layers = [*(('conv', n, c.in_group) for n, c in self.convs.items()),
                  *(('conv', n, c.out_group) for n, c in self.convs.items()),
                  *(('norm', n, s.group) for n, s in self.norms.items()),
                  *(('activation', n, s.group) for n, s in self.activations.items())]
        for kind, name, group in layers:
            if group not in self.group_widths:
                raise ValueError(f'{kind} {name!r} uses width group {group!r}, which the spec does not define')

    @property
    def body_convs(self) -> list[str]:
        """The body convs: prunable to prunable, one output per channel (in SRResNet and DnCNN exactly the
        convs that feed a BatchNorm, so only the direction of their weights matters)."""
        return [n for n, c in self.convs.items() if c.out_per_channel == 1
                and c.in_group not in self.fixed_groups and c.out_group not in self.fixed_groups]

    @property
    def prunable_groups(self) -> list[str]:
        return [g for g in self.group_widths if g not in self.fixed_groups]

    def resolve_widths(self, widths: Mapping[str, int] | None) -> dict[str, int]:
        """All groups' widths, with ``widths`` overriding the prunable ones (checked)."""
        resolved = dict(self.group_widths)
        for group, width in (widths or {}).items():
            if group not in resolved or group in self.fixed_groups:
                raise ValueError(f'unknown prunable width group {group!r}; '
                                 f'expected some of {self.prunable_groups}')
            if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= resolved[group]:
                raise ValueError(f'width of group {group!r} must be an integer in '
                                 f'[1, {resolved[group]}], got {width!r}')
            resolved[group] = width
        return resolved
