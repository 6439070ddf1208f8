"""What a set of widths costs, as a fraction of full width: the one question the pruner asks of a cost.

A cost (:class:`WidthCost`) prices the widths of an architecture's prunable
groups, absolutely (:meth:`~WidthCost.cost`, in its ``unit``) and as a fraction
of the full-width network (:meth:`~WidthCost.ratio`).  Two costs answer it:

* :class:`FlopsTable` -- FLOPs in closed form from the :class:`~restore_dhp.dhp.spec.ArchSpec`;
* :class:`LatencyTable` -- microseconds on one device and backend, from per-layer latencies measured
  over a grid of widths (``python -m restore_dhp.latency profile``), summed, plus an elementwise term
  and a constant.

FLOPs, paper convention (Li et al.): conv multiply-accumulates without the bias, +1
per output element of each activation, +2 per element of each batch-norm;
pixel shuffle and residual additions are free.  Each layer contributes
``coefficient * width(group_a) [* width(group_b)]``, so the table is a short
list of terms and evaluating a width set costs microseconds: a search can
price every candidate channel of a refill.  ``restore_dhp.complexity`` counts
the same FLOPs by running the network (tests check that the two agree).
"""
from __future__ import annotations

from typing import Mapping

from .spec import ArchSpec, pixels_at


class WidthCost:
    """Cost of per-group widths: ``cost(widths)`` in ``unit``, ``ratio(widths)`` = cost / cost at full width."""
    unit = ''
    full = 1.0
    width_step = 1  # widths this cost prices best at multiples of (a latency table's kernel step)

    def cost(self, widths: Mapping[str, int] | None) -> float:
        raise NotImplementedError

    def ratio(self, widths: Mapping[str, int] | None) -> float:
        """Cost at ``widths`` (prunable groups; missing ones at full width) over the cost at full width."""
        return self.cost(widths) / self.full

    def describe(self) -> dict:
        """What the cost is, for a checkpoint's metadata."""
        return {'unit': self.unit, 'full': self.full}


class FlopsTable(WidthCost):
    """Per-layer FLOPs terms of ``spec`` for a ``size x size`` input (for SR: the low-resolution image)."""
    unit = 'FLOPs'

    def __init__(self, spec: ArchSpec, size: int = 128):
        self.spec = spec
        self.size = size
        terms: list[tuple[float, str, str | None]] = []
        for c in spec.convs.values():
            out = pixels_at(c, size, size) * c.macs_per_output * c.out_per_channel
            if c.depthwise:
                terms.append((out, c.out_group, None))
                continue
            terms += [(out * s.per, s.group, c.out_group) for s in c.inputs]
        for per_element, layers in ((2, spec.norms), (1, spec.activations)):
            for layer in layers.values():
                terms += [(per_element * pixels_at(layer, size, size) * s.per, s.group, None) for s in layer.space]
        self.terms = terms
        self.full_flops = self.full = self.flops(None)

    def flops(self, widths: Mapping[str, int] | None) -> int:
        """FLOPs at ``widths`` (prunable groups; missing ones at full width)."""
        w = dict(self.spec.group_widths)
        w.update(widths or {})
        return round(sum(coef * w[a] * (w[b] if b is not None else 1) for coef, a, b in self.terms))

    cost = flops

    def describe(self) -> dict:
        return {'kind': 'flops', 'input_size': self.size, **super().describe()}
