"""The structure DHP needs of a network: width groups and the layers that read and write them.

An :class:`ArchSpec` names the *width groups* (sets of channels that must be
kept or removed together, e.g. every feature map joined by a residual
addition) and, for every conv, batch-norm, activation and per-channel
parameter, which channels it touches and at which spatial scale (relative to
the network input) it runs.  :func:`restore_dhp.dhp.trace.trace_spec` derives
it from a plain torch module; the DHP form, compaction and the costs
(:class:`~restore_dhp.dhp.cost.FlopsTable`, the latency tables) read nothing else.

A layer's channels are a *space*: an ordered tuple of :class:`Segment` s.  A
segment ``(group, per)`` is the group's channels with every one repeated
``per`` times in a row (a conv before ``pixel_shuffle(2)`` writes 4 sub-pixel
channels per kept channel: ``per = 4``); a conv that reads a concatenation
reads several segments.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence


@dataclass(frozen=True)
class Segment:
    group: str
    per: int = 1  # channels per group entry: entry c covers channels c*per ... c*per + per - 1


Space = tuple  # tuple[Segment, ...]


def pixels_at(layer, height: int, width: int) -> int:
    """Output pixels of a layer (:class:`ConvSpec` or :class:`LayerSpec`) for a ``height x width`` input."""
    if layer.pixels:
        return layer.pixels
    return round(height * layer.scale) * round(width * layer.scale)


def space_width(space: Sequence[Segment], widths: Mapping[str, int]) -> int:
    """Channels of ``space`` at ``widths`` (every group)."""
    return sum(widths[s.group] * s.per for s in space)


@dataclass(frozen=True)
class ConvSpec:
    """One call of a conv (``module`` is its path; several calls of one module share its weights)."""
    inputs: Space                 # the channels it reads
    out_group: str
    kernel_size: int | tuple = 3  # an int for a square kernel, else (kh, kw)
    out_per_channel: int = 1      # >1 for a conv feeding PixelShuffle: sub-pixel outputs per channel
    scale: float = 1              # spatial size of its output relative to the network input (0: see pixels)
    pixels: int = 0               # >0: its output has this many pixels at any input size (after global pooling)
    transposed: bool = False
    depthwise: bool = False       # one filter per channel: input and output are one group
    bias: bool = True
    module: str = ''              # module path
    taps: float = 0               # multiply-accumulates per output element and input channel (0: the kernel
                                  # area; a transposed conv: the kernel area over its stride squared)

    @property
    def in_group(self) -> str | None:
        """The group it reads when it reads exactly one group once per channel, else None."""
        if len(self.inputs) == 1 and self.inputs[0].per == 1:
            return self.inputs[0].group
        return None

    @property
    def kernel_area(self) -> int:
        k = self.kernel_size
        return k * k if isinstance(k, int) else k[0] * k[1]

    @property
    def macs_per_output(self) -> float:
        """Multiply-accumulates per output element and input channel."""
        return self.taps or self.kernel_area

    def in_width(self, widths: Mapping[str, int]) -> int:
        return space_width(self.inputs, widths)

    def out_width(self, widths: Mapping[str, int]) -> int:
        return widths[self.out_group] * self.out_per_channel


@dataclass(frozen=True)
class LayerSpec:
    """A batch-norm, activation or per-channel parameter: the channels it touches and the scale it runs at."""
    space: Space
    scale: float = 1
    pixels: int = 0  # >0: this many pixels at any input size (see ConvSpec)
    dim: int = 0     # per-channel parameters: the dimension that indexes channels

    @property
    def group(self) -> str | None:
        return self.space[0].group if len(self.space) == 1 and self.space[0].per == 1 else None


@dataclass(frozen=True)
class ArchSpec:
    """Width groups and the layers that use them (see the module docstring)."""
    group_widths: Mapping[str, int]          # full (baseline) width of every group
    fixed_groups: frozenset                  # groups never pruned (image channels, and what the tracer fixed)
    convs: Mapping[str, ConvSpec]
    norms: Mapping[str, LayerSpec] = field(default_factory=dict)        # BatchNorm module path -> channels
    activations: Mapping[str, LayerSpec] = field(default_factory=dict)  # every activation call in forward
    channel_params: Mapping[str, LayerSpec] = field(default_factory=dict)  # parameter/buffer name -> channels
    unprunable: tuple = ()                   # why groups were fixed: one line each (op, module, groups)
    in_channels: int = 3
    scale: int = 1                           # output size / input size

    def __post_init__(self):
        layers = [*(('conv', n, s.group) for n, c in self.convs.items() for s in c.inputs),
                  *(('conv', n, c.out_group) for n, c in self.convs.items()),
                  *((kind, n, s.group) for kind, table in (('norm', self.norms), ('activation', self.activations),
                                                          ('parameter', self.channel_params))
                    for n, layer in table.items() for s in layer.space)]
        for kind, name, group in layers:
            if group not in self.group_widths:
                raise ValueError(f'{kind} {name!r} uses width group {group!r}, which the spec does not define')

    @property
    def prunable_groups(self) -> list[str]:
        return [g for g in self.group_widths if g not in self.fixed_groups]

    @property
    def modules(self) -> dict[str, ConvSpec]:
        """Conv module path -> its first call (the weights every call shares)."""
        out = {}
        for c in self.convs.values():
            out.setdefault(c.module, c)
        return out

    @property
    def body_convs(self) -> list[str]:
        """Conv modules from prunable channels to prunable channels, one output per channel, not depthwise."""
        return [m for m, c in self.modules.items() if c.out_per_channel == 1 and not c.depthwise
                and c.out_group not in self.fixed_groups and c.inputs
                and all(s.group not in self.fixed_groups for s in c.inputs)]

    def at(self, widths: Mapping[str, int]) -> 'ArchSpec':
        """This structure with the prunable groups at ``widths`` (a narrowed network's own spec)."""
        return replace(self, group_widths=self.resolve_widths(widths))

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
