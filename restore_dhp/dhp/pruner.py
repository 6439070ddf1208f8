"""``DHPPruner``: drives a DHP search on a :class:`~restore_dhp.dhp.net.DHPNet`, apart from any trainer.

In the manner of Torch-Pruning's ``MetaPruner``: the trainer owns the loop and
calls :meth:`DHPPruner.step` after each optimizer step.  The pruner owns the
whole search policy:

* the proximal step on every latent (one batched op, on the device, no host sync);
* the schedule (:class:`Schedule`): a mask check every ``mask_interval``
  iterations, never a stop before ``min_iter``, always one at ``max_iter``;
* the mask check: masks from the latents by its :class:`KeepRule`, the kept widths
  priced by its cost (a :class:`~restore_dhp.dhp.cost.WidthCost`: the closed-form
  :class:`FlopsTable` by default, or a measured :class:`~restore_dhp.dhp.latency_table.LatencyTable`),
  and, when one check pruned past the target, a refill of the channels pruned since
  the previous check, best first, each priced by the same cost (:func:`fill_to_target`); where that refill
  still ends below the target's tolerance, the check lands from the previous check's masks instead
  (:meth:`DHPPruner.land_on_target`, over every group);
* the stop, with its reason (:class:`SearchStep`).

The network holds the latents, masks and their layout; nothing of the policy.

    pruner = DHPPruner(net, 0.4, regularization=0.1, schedule=Schedule(mask_interval=100))
    for it, batch in enumerate(loader, 1):
        loss(net(batch)).backward(); optimizer.step(); optimizer.zero_grad()
        step = pruner.step(it, lr)
        if step and step.stop:
            compact, widths = net.compact()
            break
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch

from .cost import FlopsTable, WidthCost
from .keep import KeepRule
from .net import DHPNet
from .proximal import check_prox, grouped_proximal_step
from .targeting import fill_to_target

STOP_REASONS = ('target_reached', 'max_search_iter')


@dataclass(frozen=True)
class Schedule:
    """When the pruner checks the masks and when it may stop (iterations count from 1)."""
    mask_interval: int = 100
    min_iter: int = 0                # no stop before this iteration, even once the target is reached
    max_iter: int | None = None      # the search stops here whatever the ratio (None: never)

    def __post_init__(self):
        if self.mask_interval < 1:
            raise ValueError(f'mask_interval must be >= 1, got {self.mask_interval}')
        if self.min_iter < 0 or (self.max_iter is not None and not 1 <= self.max_iter) or \
                (self.max_iter is not None and self.min_iter > self.max_iter):
            raise ValueError(f'need 0 <= min_iter <= max_iter and max_iter >= 1, got {self.min_iter}, {self.max_iter}')

    def checks_at(self, iteration: int) -> bool:
        return iteration % self.mask_interval == 0 or (self.max_iter is not None and iteration >= self.max_iter)


@dataclass(frozen=True)
class MaskCheck:
    """Outcome of one mask check."""
    ratio: float                   # remaining cost ratio after the check (and any refill)
    widths: dict                   # kept width per prunable group
    refilled_from: float | None    # the ratio before refilling, when the check pruned past the target
    target_reached: bool           # ratio <= target_ratio + ratio_tolerance
    landed_from: float | None = None   # the ratio before the last check landed on the target (land_on_target)


@dataclass(frozen=True)
class SearchStep:
    """A mask check at ``iteration`` and, when the search ends there, why (one of :data:`STOP_REASONS`)."""
    iteration: int
    check: MaskCheck
    stop: str | None


class DHPPruner:
    """Proximal step, schedule, mask check, refill and stop for the DHP network ``net``."""

    def __init__(self, net: DHPNet, target_ratio: float, *, ratio_tolerance: float = 0.02,
                 regularization: float = 0.1, prox: str = 'l1', rule: KeepRule = KeepRule(),
                 cost: WidthCost | None = None, input_size: int = 128, schedule: Schedule = Schedule()):
        """``cost``: what widths cost (default: FLOPs at an ``input_size`` square input); ``target_ratio``
        is a fraction of its full-width cost.  ``rule``: which channels are kept (:class:`KeepRule`)."""
        if not isinstance(net, DHPNet):
            raise ValueError(f'{type(net).__name__} is not a DHP network (wrap it: DHPNet(net, trace_spec(net, x)))')
        if not 0 < target_ratio <= 1:
            raise ValueError(f'target_ratio must be in (0, 1], got {target_ratio}')
        check_prox(prox)
        self.net = net
        self.target_ratio, self.ratio_tolerance = target_ratio, ratio_tolerance
        self.regularization, self.prox, self.rule, self.schedule = regularization, prox, rule, schedule
        self.cost = cost if cost is not None else FlopsTable(net.spec, input_size)
        #: latents at the last check: rank the channels a check that prunes past the target refills
        self.latents_at_last_check: torch.Tensor | None = None

    # ----------------------------------------------------------------- the loop's one call
    def step(self, iteration: int, lr: float | torch.Tensor) -> SearchStep | None:
        """After the optimizer step of ``iteration``: the proximal step, and the mask check where the schedule
        has one (then whether the search stops: the target reached past ``min_iter``, or ``max_iter``)."""
        self.proximal_step(lr)
        if not self.schedule.checks_at(iteration):
            return None
        check = self.check()
        stop = None
        if check.target_reached and iteration >= self.schedule.min_iter:
            stop = 'target_reached'
        elif self.schedule.max_iter is not None and iteration >= self.schedule.max_iter:
            stop = 'max_search_iter'
            if not check.target_reached:
                check = self.land_on_target()
        return SearchStep(iteration, check, stop)

    @torch.no_grad()
    def land_on_target(self, hold: torch.Tensor | None = None) -> MaskCheck:
        """The search's last check, above the target: the latents rank what the shrink had no time to remove.
        Each group keeps its ``min_width`` best channels (and the channels ``hold`` marks, where that alone fits
        the target), then the other kept channels come back best first (largest latent magnitude) while the cost
        stays at or below the target (:func:`fill_to_target`); the rest are pruned."""
        net, layout = self.net, self.net.layout
        alive = net.masks > 0
        score = self.rule.scores(net.latents)
        ranked = layout.padded(torch.where(alive, score, torch.full_like(score, -1.0)), -2.0)
        rank = ranked.argsort(dim=1, descending=True, stable=True).argsort(dim=1)
        floor = layout.unpad(rank < self.rule.min_width) & alive
        held = floor | (hold & alive) if hold is not None else floor
        if self.cost_ratio(layout.to_dict(layout.counts(held))) <= self.target_ratio:
            floor = held
        before = self.cost_ratio()
        keep = layout.join(fill_to_target(layout.split(floor), layout.split(alive & ~floor), layout.split(score),
                                          self.cost_ratio, self.target_ratio, self.rule.round_to))
        net.masks.copy_(keep.to(net.masks.dtype))
        net.latents.masked_fill_(~keep.to(net.latents.device), 0.0)
        widths = net.kept_widths()
        ratio = self.cost_ratio(widths)
        self.latents_at_last_check = net.latents.detach().clone()
        return MaskCheck(ratio, widths, None, ratio <= self.target_ratio + self.ratio_tolerance, landed_from=before)

    @torch.no_grad()
    def proximal_step(self, lr: float | torch.Tensor) -> None:
        """``z <- prox_{regularization * lr}(z)`` on every latent; ``lr`` may be a 0-d device tensor."""
        net = self.net
        net.latents.copy_(grouped_proximal_step(net.latents, net.layout, self.regularization * lr, prox=self.prox,
                                                min_width=self.rule.min_width, threshold=self.rule.threshold))

    def cost_ratio(self, widths: Mapping[str, int] | None = None) -> float:
        """Remaining cost ratio of ``widths`` (default: the kept widths now)."""
        return self.cost.ratio(self.net.kept_widths() if widths is None else widths)

    @torch.no_grad()
    def check(self) -> MaskCheck:
        """Update the masks from the latents (they only shrink: a pruned channel is gone for good), refill up
        to the target if they pruned past it, and report."""
        net, layout = self.net, self.net.layout
        before = net.masks > 0
        net.masks.copy_(self.rule.keep(net.latents, before, layout).to(net.masks.dtype))
        widths = net.kept_widths()
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
            self._revive(layout.join(keep), previous)
            refilled_from, widths = ratio, net.kept_widths()
            ratio = self.cost_ratio(widths)
            if ratio < self.target_ratio - self.ratio_tolerance:
                # the channels pruned since the last check come back only in chunks too costly for the target (a
                # coupled group stepping by a table's width step): back to the last check, and land from there,
                # the groups that could not come back held at their width there, the others giving way
                lost = layout.padded((before & ~(net.masks > 0)).float(), 0.0).sum(1) > 0     # (groups,)
                self._revive(before, previous)
                landed = self.land_on_target(hold=layout.unpad(lost.unsqueeze(1).expand(-1, layout.max_width)))
                return MaskCheck(landed.ratio, landed.widths, refilled_from, landed.target_reached,
                                 landed_from=landed.landed_from)
        self.latents_at_last_check = net.latents.detach().clone()
        return MaskCheck(ratio, widths, refilled_from, ratio <= self.target_ratio + self.ratio_tolerance)

    def _revive(self, keep: torch.Tensor, latents: torch.Tensor) -> None:
        """Keep again the channels ``keep`` keeps but the masks drop, with their latent values from ``latents``."""
        net = self.net
        revived = keep.to(net.masks.device) & (net.masks == 0)
        net.masks.masked_fill_(revived, 1.0)
        net.latents.copy_(torch.where(revived, latents.to(net.latents.device), net.latents))

    # ----------------------------------------------------------------- resume
    def state_dict(self) -> dict:
        latents = self.latents_at_last_check
        return {'latents_at_last_check': None if latents is None else latents.cpu()}

    def load_state_dict(self, state: Mapping) -> None:
        latents = state.get('latents_at_last_check')
        if latents is not None and latents.shape != self.net.latents.shape:
            raise ValueError(f'pruner state holds {latents.numel()} latents, the network has {self.net.latents.numel()}')
        self.latents_at_last_check = None if latents is None else latents.to(self.net.latents.device)
