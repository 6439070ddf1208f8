"""A measured latency table as a cost: microseconds of any widths on one device, backend and input size.

The table (built by ``python -m restore_dhp.latency profile``; a JSON file, see that module for its
fields) models a network as the (scaled) sum of its layers plus a constant:

    latency(widths) = layer_scale * sum over convs  layer_us[class of conv](width in, width out)
                    + elementwise_us_per_element * sum over activations  (width * pixels at its scale)
                    + constant_us

Convs of one *class* (kernel size, spatial scale, sub-pixel outputs, which of their widths are fixed
image channels, whether input and output are the same width group) share one measured grid: a 2-D
grid over input and output widths, or a 1-D one where a width is fixed or input and output are tied.
Between grid widths a lookup takes the next measured width up (``interpolation: ceil``, for a device
whose kernels work in blocks of ``width_step`` channels: a width costs what the next block does) or
interpolates linearly (``linear``).  Where the table has ``off_step_factor`` (the profile's sweep of one
class at input = output width w: latency at w over latency at the next multiple of the step, for every
w), a conv's lookup is multiplied by the square root of that factor for each of its free widths: widths
off the step can cost more than the next multiple (on an AVX-512 CPU at 1 thread, 15 channels cost
1.35x what 16 do, 63 cost 1.08x 64's), and the factor is taken to split evenly between a conv's
input and output.  Nothing here measures or reads files: the table arrives as a
mapping, checked against the architecture's :class:`~restore_dhp.dhp.spec.ArchSpec`.
"""
from __future__ import annotations

import bisect
from typing import Mapping, Sequence

from .cost import WidthCost
from .spec import ArchSpec, pixels_at, space_width

INTERPOLATIONS = ('ceil', 'linear')


def layer_class(spec: ArchSpec, conv: str) -> str:
    """The name of the measured grid that prices conv ``conv`` of ``spec`` (see the module docstring)."""
    c = spec.convs[conv]
    in_fixed = all(s.group in spec.fixed_groups for s in c.inputs)
    side_in = f'{space_width(c.inputs, spec.group_widths)}' if in_fixed else 'w'
    side_out = f'{spec.group_widths[c.out_group]}' if c.out_group in spec.fixed_groups else 'w'
    tied = '_tied' if c.in_group == c.out_group and not in_fixed else ''
    sub = f'x{c.out_per_channel}' if c.out_per_channel > 1 else ''
    k = c.kernel_size if isinstance(c.kernel_size, int) else f'{c.kernel_size[0]}x{c.kernel_size[1]}'
    where = f'p{c.pixels}' if c.pixels else f's{c.scale:g}'
    kind = ('_t' if c.transposed else '') + ('_dw' if c.depthwise else '')
    return f'k{k}_{where}_in{side_in}_out{side_out}{sub}{tied}{kind}'


def elementwise_elements(spec: ArchSpec, widths: Mapping[str, int], height: int, width: int) -> int:
    """Elements the activations of ``spec`` write at ``widths`` for a ``height x width`` input."""
    return sum(space_width(s.space, widths) * pixels_at(s, height, width) for s in spec.activations.values())


def lookup(grid: Sequence[int], values: Sequence[float], width: int, interpolation: str) -> float:
    """The value at ``width`` on a sorted ``grid`` (ceil: the next grid width up; linear: between neighbours)."""
    i = bisect.bisect_left(grid, width)
    if i == len(grid):
        raise ValueError(f'width {width} is above the table grid (largest {grid[-1]})')
    if grid[i] == width or i == 0 or interpolation == 'ceil':
        return values[i]
    lo, hi = grid[i - 1], grid[i]
    return values[i - 1] + (values[i] - values[i - 1]) * (width - lo) / (hi - lo)


class LatencyTable(WidthCost):
    """Microseconds of ``spec``'s network at any widths, from a measured table ``data`` (a parsed JSON)."""
    unit = 'us'

    def __init__(self, spec: ArchSpec, data: Mapping, source: str | None = None):
        self.spec, self.data, self.source = spec, data, source
        self.interpolation = data.get('interpolation', 'linear')
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f'latency table interpolation must be one of {INTERPOLATIONS}, got {self.interpolation!r}')
        self.width_step = int(data.get('width_step', 1))
        self.height, self.width = data['size']
        self.constant_us = float(data['constant_us'])
        self.layer_scale = float(data.get('layer_scale', 1.0))
        self.elementwise_us = float(data['elementwise_us_per_element'])
        self.layers = data['layers']
        self.off_step = [float(f) for f in data.get('off_step_factor') or ()]
        self._check(spec)
        self.full = self.cost(None)  # also checks that every grid reaches the full widths

    def _check(self, spec: ArchSpec) -> None:
        convs = self.data['convs']
        if set(convs) != set(spec.convs):
            missing = sorted(set(spec.convs) ^ set(convs))
            raise ValueError(f'latency table {self.source or ""} does not match the architecture: '
                             f'convs {missing} are in one and not the other')
        for name in spec.convs:
            key = layer_class(spec, name)
            if convs[name] != key or key not in self.layers:
                raise ValueError(f'latency table {self.source or ""}: conv {name!r} needs the grid {key!r}')

    def layer_us(self, conv: str, widths: Mapping[str, int]) -> float:
        """Measured microseconds of conv ``conv`` at ``widths`` (all groups)."""
        c, layer = self.spec.convs[conv], self.layers[self.data['convs'][conv]]
        w_in, w_out = space_width(c.inputs, widths), widths[c.out_group]
        if 'widths' in layer:  # one free width: tied input and output, or one side fixed
            in_fixed = all(s.group in self.spec.fixed_groups for s in c.inputs)
            free = w_out if in_fixed else w_in
            us = lookup(layer['widths'], layer['us'], free, self.interpolation)
            return us * self._off_step(free) ** (2 if c.in_group == c.out_group else 1)
        row = [lookup(layer['out_widths'], r, w_out, self.interpolation) for r in layer['us']]
        us = lookup(layer['in_widths'], row, w_in, self.interpolation)
        return us * self._off_step(w_in) * self._off_step(w_out)

    def _off_step(self, width: int) -> float:
        """The square root of the table's factor for ``width`` (1 without one, or beyond the sweep)."""
        return self.off_step[width - 1] ** 0.5 if 0 < width <= len(self.off_step) else 1.0

    def cost(self, widths: Mapping[str, int] | None) -> float:
        """Predicted microseconds of one forward at ``widths`` (prunable groups; missing ones at full width)."""
        w = dict(self.spec.group_widths)
        w.update(widths or {})  # unchecked, as FlopsTable: a refill prices trial widths, a group may be empty
        layers = sum(self.layer_us(name, w) for name in self.spec.convs)
        elements = elementwise_elements(self.spec, w, self.height, self.width)
        return self.layer_scale * layers + self.elementwise_us * elements + self.constant_us

    def describe(self) -> dict:
        d = self.data
        return {'kind': 'latency', 'table': self.source, 'device': d.get('device'), 'device_name': d.get('device_name'),
                'backend': d.get('backend'),
                'precision': d.get('precision'), 'threads': d.get('threads'), 'size': list(d['size']),
                'width_step': self.width_step, **super().describe()}
