"""Proximal operators applied to the latent vectors right after each optimizer step.

The search minimises ``loss(W(z)) + lambda * R(z)`` by proximal gradient descent:
the optimizer takes the step on ``loss``, then ``z <- prox_{lr * lambda * R}(z)``.

* ``l1``: ``R(z) = ||z||_1``, the element-wise soft threshold
  ``z <- sign(z) * max(|z| - lambda * lr, 0)`` (the paper's choice).
* ``l2``: ``R(z) = ||z||_2`` (group lasso over the whole vector), the block soft
  threshold ``z <- z * max(1 - lambda * lr / ||z||_2, 0)``; it shrinks a layer
  as a whole, which makes the l1 threshold act on relative magnitudes.

Both respect ``min_width``: the ``min_width`` entries of largest magnitude are
never shrunk below the keep threshold, so no layer is ever pruned below it.
"""
from __future__ import annotations

import torch

PROX_TYPES = ('l1', 'l2')


def soft_threshold(z: torch.Tensor, amount: float) -> torch.Tensor:
    return torch.sign(z) * torch.clamp(z.abs() - amount, min=0.0)


def group_soft_threshold(z: torch.Tensor, amount: float) -> torch.Tensor:
    norm = z.norm()
    if norm <= amount:
        return torch.zeros_like(z)
    return z * (1.0 - amount / norm)


@torch.no_grad()
def proximal_step(z: torch.Tensor, amount: float, *, prox: str = 'l1', min_width: int = 4,
                  threshold: float = 5e-3) -> torch.Tensor:
    """Return ``prox(z)`` for step ``amount = lambda * lr``, keeping at least ``min_width`` entries.

    An entry is kept while ``|z| >= threshold`` (see :mod:`restore_dhp.dhp.masks`).
    If the plain operator would leave fewer than ``min_width`` kept entries, the
    ``min_width`` largest entries of the *input* are protected: they keep their
    input value when shrinking them would drop them below the threshold.
    """
    if prox == 'l1':
        out = soft_threshold(z, amount)
    elif prox == 'l2':
        out = group_soft_threshold(z, amount)
    else:
        raise ValueError(f'unknown proximal operator {prox!r}; expected one of {PROX_TYPES}')
    floor = min(min_width, z.numel())
    if int((out.abs() >= threshold).sum()) < floor:
        protected = z.abs().topk(floor).indices
        dropped = out[protected].abs() < threshold
        out[protected[dropped]] = z[protected[dropped]]
    return out
