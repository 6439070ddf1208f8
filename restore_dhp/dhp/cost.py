"""FLOPs of an architecture at any widths, in closed form from its :class:`~restore_dhp.dhp.spec.ArchSpec`.

Paper convention (Li et al.): conv multiply-accumulates without the bias, +1
per output element of each activation, +2 per element of each batch-norm;
pixel shuffle and residual additions are free.  Each layer contributes
``coefficient * width(group_a) [* width(group_b)]``, so the table is a short
list of terms and evaluating a width set costs microseconds: a search can
price every candidate channel of a refill.  ``restore_dhp.complexity`` counts
the same FLOPs by running the network (tests check that the two agree).
"""
from __future__ import annotations

from typing import Mapping

from .spec import ArchSpec


class FlopsTable:
    """Per-layer FLOPs terms of ``spec`` for a ``size x size`` input (for SR: the low-resolution image)."""

    def __init__(self, spec: ArchSpec, size: int = 128):
        self.spec = spec
        self.size = size
        terms: list[tuple[int, str, str | None]] = []
        for c in spec.convs.values():
            pixels = (size * c.scale) ** 2
            terms.append((pixels * c.kernel_size ** 2 * c.out_per_channel, c.in_group, c.out_group))
        for per_element, layers in ((2, spec.norms), (1, spec.activations)):
            for s in layers.values():
                terms.append((per_element * (size * s.scale) ** 2, s.group, None))
        self.terms = terms
        self.full_flops = self.flops(None)

    def flops(self, widths: Mapping[str, int] | None) -> int:
        """FLOPs at ``widths`` (prunable groups; missing ones at full width)."""
        w = dict(self.spec.group_widths)
        w.update(widths or {})
        return sum(coef * w[a] * (w[b] if b is not None else 1) for coef, a, b in self.terms)

    def ratio(self, widths: Mapping[str, int] | None) -> float:
        """FLOPs at ``widths`` over FLOPs at full width."""
        return self.flops(widths) / self.full_flops
