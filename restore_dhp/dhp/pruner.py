"""``DHPPruner``: drives a DHP search on a network's DHP form, apart from any trainer.

In the manner of Torch-Pruning's ``MetaPruner``: the trainer owns the loop and
calls the pruner.  After each optimizer step, :meth:`DHPPruner.proximal_step`
shrinks every latent (one batched op, on the device, no host sync); every few
iterations :meth:`DHPPruner.check` updates the masks by its :class:`KeepRule`,
prices the kept widths with its cost (a :class:`~restore_dhp.dhp.cost.WidthCost`:
the closed-form :class:`FlopsTable` by default, or a measured
:class:`~restore_dhp.dhp.latency_table.LatencyTable`), and, when one check
pruned past the target, refills the channels pruned since the previous check,
best first, each priced by the same cost (:func:`fill_to_target`);
:meth:`DHPPruner.compact` returns the plain network.  The target is a fraction
of the full-width network's cost: FLOPs, or microseconds on the table's device.

    pruner = DHPPruner(net, target_ratio=0.4, regularization=0.1)            # 40% of the FLOPs
    pruner = DHPPruner(net, 0.4, cost=LatencyTable(net.spec, table))        # 40% of the measured latency
    for it, batch in enumerate(loader, 1):
        loss(net(batch)).backward(); optimizer.step(); optimizer.zero_grad()
        pruner.proximal_step(lr)
        if it % 100 == 0 and pruner.check().target_reached:
            compact = pruner.compact()
            break
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch

from .cost import FlopsTable, WidthCost
from .keep import KeepRule
from .net import PrunableNet
from .proximal import check_prox
from .targeting import fill_to_target


@dataclass(frozen=True)
class MaskCheck:
    """Outcome of one mask check."""
    ratio: float                   # remaining cost ratio after the check (and any refill)
    widths: dict                   # kept width per prunable group
    refilled_from: float | None    # the ratio before refilling, when the check pruned past the target
    target_reached: bool           # ratio <= target_ratio + ratio_tolerance


class DHPPruner:
    """Proximal step, mask check, refill and compaction for the DHP form ``net`` of a :class:`PrunableNet`."""

    def __init__(self, net: PrunableNet, target_ratio: float, *, ratio_tolerance: float = 0.02,
                 regularization: float = 0.1, prox: str = 'l1', rule: KeepRule = KeepRule(),
                 cost: WidthCost | None = None, input_size: int = 128):
        """``cost``: what widths cost (default: FLOPs at an ``input_size`` square input); ``target_ratio``
        is a fraction of its full-width cost.  ``rule``: which channels are kept (:class:`KeepRule`)."""
        if not getattr(net, 'dhp', False):
            raise ValueError(f'{type(net).__name__} is not a DHP network (build e.g. SRResNetDHP, DnCNNDHP)')
        if not 0 < target_ratio <= 1:
            raise ValueError(f'target_ratio must be in (0, 1], got {target_ratio}')
        check_prox(prox)
        self.net = net
        self.target_ratio, self.ratio_tolerance = target_ratio, ratio_tolerance
        self.regularization, self.prox, self.rule = regularization, prox, rule
        self.cost = cost if cost is not None else FlopsTable(net.spec, input_size)
        #: latents at the last check: rank the channels a check that prunes past the target refills
        self.latents_at_last_check: torch.Tensor | None = None

    def proximal_step(self, lr: float | torch.Tensor) -> None:
        """``z <- prox_{regularization * lr}(z)`` on every latent; ``lr`` may be a 0-d device tensor."""
        self.net.proximal_step(self.regularization * lr, prox=self.prox, rule=self.rule)

    def cost_ratio(self, widths: Mapping[str, int] | None = None) -> float:
        """Remaining cost ratio of ``widths`` (default: the kept widths now)."""
        return self.cost.ratio(self.net.kept_widths() if widths is None else widths)

    @torch.no_grad()
    def check(self) -> MaskCheck:
        """Update the masks from the latents, refill up to the target if they pruned past it, and report."""
        net, layout = self.net, self.net.layout
        before = net.masks > 0
        widths = net.update_masks(self.rule)
        ratio = self.cost_ratio(widths)
        refilled_from = None
        previous = self.latents_at_last_check
        if previous is None:  # the first check: rank what it pruned by the latents as they are now
            previous = net.latents.detach().clone()
        if ratio < self.target_ratio - self.ratio_tolerance:
            after = net.masks > 0
            keep = fill_to_target(layout.split(after), layout.split(before & ~after),
                                  layout.split(self.rule.scores(previous)), self.cost_ratio, self.target_ratio,
                                  self.rule.round_to)
            net.revive(layout.join(keep), previous)
            refilled_from, widths = ratio, net.kept_widths()
            ratio = self.cost_ratio(widths)
        self.latents_at_last_check = net.latents.detach().clone()
        return MaskCheck(ratio, widths, refilled_from, ratio <= self.target_ratio + self.ratio_tolerance)

    def compact(self) -> PrunableNet:
        """The plain network with the masked channels removed (same output as the masked DHP network)."""
        return self.net.compact()

    def state_dict(self) -> dict:
        latents = self.latents_at_last_check
        return {'latents_at_last_check': None if latents is None else latents.cpu()}

    def load_state_dict(self, state: Mapping) -> None:
        latents = state.get('latents_at_last_check')
        if latents is not None and latents.shape != self.net.latents.shape:
            raise ValueError(f'pruner state holds {latents.numel()} latents, the network has {self.net.latents.numel()}')
        self.latents_at_last_check = None if latents is None else latents.to(self.net.latents.device)
