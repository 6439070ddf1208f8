"""Landing a search on its cost target (FLOPs or measured latency) when one mask update prunes past it.

Between two mask checks the proximal step can push many latents under the
keep threshold at once; with coupled groups (SRResNet's ``trunk`` feeds the
upsampler, whose cost grows with its square) or rounded widths, the ratio can
jump from above ``target + tolerance`` to well below ``target``.  Then the
channels pruned since the previous check are added back, most important first
(largest latent magnitude at the previous check), each one that keeps the ratio
at or below the target.  With ``round_to > 1`` channels come back
``round_to`` at a time (the group's best remaining candidates), so every width
stays a multiple of ``round_to`` or the group's full width.
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch


def fill_to_target(kept: Mapping[str, torch.Tensor], candidates: Mapping[str, torch.Tensor],
                   scores: Mapping[str, torch.Tensor], ratio_of: Callable[[dict], float],
                   target: float, round_to: int = 1) -> dict[str, torch.Tensor]:
    """Boolean keep-masks: ``kept`` plus candidate channels, best first, each chunk added if the ratio stays <= ``target``.

    A chunk is the next ``round_to`` candidates of one group in score order (or
    fewer when they complete the group's full width); chunks of all groups are
    tried in the order of their best score.  ``ratio_of`` maps per-group widths
    to the cost ratio (the pruner's cost: FLOPs or latency).  A chunk that would overshoot is skipped and cheaper,
    lower-ranked ones are still tried: one channel of a coupled group can cost
    as much as many channels elsewhere.
    """
    if round_to < 1:
        raise ValueError(f'round_to must be >= 1, got {round_to}')
    masks = {g: m.clone() for g, m in kept.items()}
    widths = {g: int(m.sum()) for g, m in masks.items()}
    chunks = []
    for group, candidate in candidates.items():
        index = torch.nonzero(candidate).flatten()
        order = index[scores[group][index].argsort(descending=True, stable=True)].tolist()
        best = scores[group][order].tolist()
        start = 0
        while start < len(order):
            size = min(round_to - widths[group] % round_to if start == 0 else round_to, len(order) - start)
            chunks.append((best[start], group, order[start:start + size]))
            start += size
    chunks.sort(key=lambda c: c[0], reverse=True)
    for _, group, channels in chunks:
        trial = dict(widths, **{group: widths[group] + len(channels)})
        if ratio_of(trial) <= target:
            masks[group][channels] = True
            widths = trial
    return masks
