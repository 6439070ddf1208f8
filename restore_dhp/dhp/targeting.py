"""Landing a search on its FLOPs target when one mask update prunes past it.

Between two mask checks the proximal step can push many latents under the
keep threshold at once; with coupled groups (SRResNet's ``trunk`` feeds the
upsampler, whose cost grows with its square) or rounded widths, the ratio can
jump from above ``target + tolerance`` to well below ``target``.  Then the
channels pruned since the previous check are added back, most important first
(largest latent magnitude at the previous check), each one that keeps the ratio
at or below the target.
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch


def fill_to_target(kept: Mapping[str, torch.Tensor], candidates: Mapping[str, torch.Tensor],
                   scores: Mapping[str, torch.Tensor], ratio_of: Callable[[dict], float],
                   target: float) -> dict[str, torch.Tensor]:
    """Boolean keep-masks: ``kept`` plus candidate channels, highest score first, each added if the ratio stays <= ``target``.

    ``ratio_of`` maps per-group widths to the FLOPs ratio.  A channel that would
    overshoot is skipped and cheaper, lower-ranked ones are still tried: one
    channel of a coupled group can cost as much as many channels elsewhere.
    """
    masks = {g: m.clone() for g, m in kept.items()}
    widths = {g: int(m.sum()) for g, m in masks.items()}
    ranking = sorted(((float(scores[g][i]), g, int(i)) for g, c in candidates.items()
                      for i in torch.nonzero(c).flatten()), reverse=True)
    for _, group, index in ranking:
        trial = dict(widths, **{group: widths[group] + 1})
        if ratio_of(trial) <= target:
            masks[group][index] = True
            widths = trial
    return masks
