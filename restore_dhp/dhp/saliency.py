"""How much each channel of a trained network matters, by magnitude: the ranking a magnitude-pruning library uses.

For every prunable group, a channel's score is the sum of ``|gamma|`` of the BatchNorms on the group where it has
any (network slimming, Liu et al. 2017), else the L1 norm of the filters that write it.  A warm-started search
(``dhp.warm_start: saliency``, :mod:`restore_dhp.dhp.warm`) starts its latents at these scores, and the control
of ``reports/device/warm_start.md`` prunes by them.
"""
from __future__ import annotations

from typing import Mapping

import torch

from .spec import ArchSpec


def magnitude_scores(spec: ArchSpec, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``{group: (width,) scores}`` for every prunable group of ``spec`` from a plain network's ``state`` dict."""
    scores = {g: torch.zeros(spec.group_widths[g]) for g in spec.prunable_groups}
    has_norm = set()
    for path, layer in spec.norms.items():
        if len(layer.space) == 1 and layer.space[0].per == 1 and layer.group in scores:
            scores[layer.group] += state[f'{path}.weight'].detach().float().abs().cpu()
            has_norm.add(layer.group)
    for path, c in spec.modules.items():
        if c.out_group in scores and c.out_group not in has_norm and not c.transposed:
            weight = state[f'{path}.weight'].detach().float().abs().cpu()
            scores[c.out_group] += weight.flatten(1).sum(1).view(-1, c.out_per_channel).sum(1)
    return scores
