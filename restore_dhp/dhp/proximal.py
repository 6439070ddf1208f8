"""Proximal operators applied to the latent vectors right after each optimizer step.

The search minimises ``loss(W(z)) + lambda * R(z)`` by proximal gradient descent:
the optimizer takes the step on ``loss``, then ``z <- prox_{lr * lambda * R}(z)``.

* ``l1``: ``R(z) = ||z||_1``, the element-wise soft threshold
  ``z <- sign(z) * max(|z| - lambda * lr, 0)`` (the paper's choice).
* ``l2``: ``R(z) = ||z||_2`` per group (group lasso over each latent vector), the
  block soft threshold ``z <- z * max(1 - lambda * lr / ||z||_2, 0)``; it shrinks
  a layer as a whole, which makes the l1 threshold act on relative magnitudes.

Both respect ``min_width``: if the operator would leave a group with fewer than
``min_width`` entries at or above the keep threshold, the ``min_width`` entries
of largest input magnitude keep their input value wherever shrinking would drop
them below the threshold, so no layer is ever pruned below it.

:func:`grouped_proximal_step` treats every group of a flat latent vector in one
pass of tensor ops (``topk`` over a padded matrix, ``where``), on the latents'
device and without reading any value back to the host.
"""
from __future__ import annotations

import torch

from .groups import GroupLayout
from .keep import DEFAULT_KEEP_THRESHOLD

PROX_TYPES = ('l1', 'l2')


def check_prox(prox: str) -> None:
    if prox not in PROX_TYPES:
        raise ValueError(f'unknown proximal operator {prox!r}; expected one of {PROX_TYPES}')


@torch.no_grad()
def grouped_proximal_step(z: torch.Tensor, layout: GroupLayout, amount: float | torch.Tensor, *,
                          prox: str = 'l1', min_width: int = 4,
                          threshold: float = DEFAULT_KEEP_THRESHOLD) -> torch.Tensor:
    """``prox(z)`` for the flat latent vector ``z`` of ``layout``'s groups, step ``amount = lambda * lr``.

    ``amount`` may be a 0-d tensor on ``z``'s device (a captured step reads it there).
    """
    check_prox(prox)
    magnitude = z.abs()
    if prox == 'l1':
        out = torch.sign(z) * torch.clamp(magnitude - amount, min=0.0)
    else:
        norms = layout.padded(z.square(), 0.0).sum(dim=1).sqrt()                 # (groups,)
        factor = torch.where(norms > amount, 1.0 - amount / norms, torch.zeros_like(norms))
        out = z * layout.unpad(factor.unsqueeze(1).expand(-1, layout.max_width))
    floor = min(min_width, layout.max_width)
    if floor < 1:
        return out
    # groups the operator would leave under min_width: protect their largest input entries
    _, valid = layout.index_on(z.device)
    short = layout.counts(out.abs() >= threshold) < valid.sum(dim=1).clamp(max=floor)
    padded_magnitude = layout.padded(magnitude, -1.0)
    top = padded_magnitude.topk(floor, dim=1).indices                           # (groups, floor)
    protected = torch.zeros_like(padded_magnitude, dtype=torch.bool).scatter_(1, top, True)
    protected &= short.unsqueeze(1)
    restore = layout.unpad(protected) & (out.abs() < threshold)
    return torch.where(restore, z, out)


def proximal_step(z: torch.Tensor, amount: float, *, prox: str = 'l1', min_width: int = 4,
                  threshold: float = DEFAULT_KEEP_THRESHOLD) -> torch.Tensor:
    """``prox(z)`` of one latent vector (a single group), keeping at least ``min_width`` entries."""
    return grouped_proximal_step(z, GroupLayout({'z': z.numel()}), amount, prox=prox, min_width=min_width,
                                 threshold=threshold)
