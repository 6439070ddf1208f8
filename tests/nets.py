"""Networks for the tests, in the project's two forms: plain (baseline or compact) and DHP-searchable."""
from __future__ import annotations

import restore_dhp  # noqa: F401  (first: it makes BasicSR importable on current torchvision)
from restore_dhp import network
from restore_dhp.dhp import DHPNet, DHPPruner, KeepRule


def compact(arch, widths=None, **kwargs):
    """The plain network ``arch(**kwargs)`` narrowed to ``widths`` (default full), built as a loader builds it."""
    return network.build(arch, kwargs, widths)


def dhp(arch, embedding_dim=8, **kwargs):
    """The DHP form of ``arch(**kwargs)`` at full width."""
    plain = network.build(arch, kwargs)
    return DHPNet(plain, network.structure(plain).spec, embedding_dim=embedding_dim)


def update_masks(net, rule=KeepRule()):
    """Masks from the latents by ``rule``, no refill (a target of 1.0 that any ratio reaches): the kept widths."""
    return DHPPruner(net, 1.0, ratio_tolerance=1.0, rule=rule).check().widths


def compacted(net):
    """The compact network of DHP net ``net``, its widths recorded in its structure."""
    model, widths = net.compact()
    network.with_widths(model, widths)
    return model


def widths(model):
    """The present widths of the prunable groups of a network built here."""
    return dict(network.structure(model).widths)
