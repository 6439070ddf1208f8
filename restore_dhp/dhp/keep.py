"""The keep rule: which channels of a DHP network survive a mask check, in one place.

A channel is kept while the magnitude of its latent entry is at least
``threshold`` (the proximal step shrinks latents towards zero; those it drives
under the threshold are pruned).  Its *score* (the latent magnitude) ranks
channels wherever a choice is made: rounding a kept count up to a multiple of
``round_to`` keeps the best-scored channels, a refill adds back the best ones
first, and the proximal step protects the ``min_width`` best of a group so no
layer falls below it.  As Torch-Pruning's ``importance=``, the rule is one
object the pruner is given; the network, the proximal operator and the refill
read it instead of carrying their own copies of these numbers.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .groups import GroupLayout

DEFAULT_KEEP_THRESHOLD = 5e-3


@dataclass(frozen=True)
class KeepRule:
    """Keep ``|z| >= threshold``; kept counts rounded up to a multiple of ``round_to``; at least ``min_width``."""
    threshold: float = DEFAULT_KEEP_THRESHOLD
    round_to: int = 1
    min_width: int = 4

    def __post_init__(self):
        if not self.threshold >= 0:
            raise ValueError(f'keep threshold must be >= 0, got {self.threshold}')
        for name in ('round_to', 'min_width'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f'{name} must be a positive integer, got {value!r}')

    @staticmethod
    def scores(latents: torch.Tensor) -> torch.Tensor:
        """Importance of every channel: the magnitude of its latent entry."""
        return latents.abs()

    def keep(self, latents: torch.Tensor, alive: torch.Tensor, layout: GroupLayout) -> torch.Tensor:
        """Flat keep-mask: alive channels scoring at least ``threshold``, each group's count rounded up to a
        multiple of ``round_to`` (capped at the channels alive) by the best-scored alive channels."""
        score = self.scores(latents)
        keep = (score >= self.threshold) & alive
        if self.round_to == 1:
            return keep
        r = self.round_to
        counts = torch.minimum(torch.div(layout.counts(keep) + r - 1, r, rounding_mode='floor') * r,
                               layout.counts(alive))
        ranked = layout.padded(torch.where(alive, score, torch.full_like(score, -1.0)), -2.0)
        rank = ranked.argsort(dim=1, descending=True, stable=True).argsort(dim=1)
        return layout.unpad(rank < counts.unsqueeze(1))
