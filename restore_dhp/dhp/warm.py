"""Warm start: a DHP network that, at iteration 0, computes exactly what a trained plain network computes.

DHP as published starts from random weights.  A user with a trained network (the project's full-width
models, or their own) wants a pruned one in minutes, so :func:`warm_start` sets a :class:`DHPNet`'s
hypernetworks and latents from the trained weights, in one of three parameterisations (measured against each
other in ``reports/device/warm_start.md``):

* ``scaled``: every latent is 1 and each conv's hypernetwork is set so that, with the latent
  matrix ``m_ij = z_out[i] * z_in[j]`` (bias ``b0 = 0``), its kernel is ``m_ij * W*_ij`` for the trained
  kernel ``W*``: the embedding weight ``w1_ij`` keeps its random init ``u``, ``W2_ij = W*_ij u^T / |u|^2``,
  and ``b1 = b2 = 0``.  A latent then scales its channel everywhere it is read or written, so its gradient
  is the channel's first-order importance, and the l1 proximal step shrinks the least important channels
  first;
* ``saliency`` (the default): as ``scaled``, but a group's latents start spread evenly over ``(0, 1]`` in the
  order of their channels' magnitude scores (:func:`~restore_dhp.dhp.saliency.magnitude_scores`; the least important at
  ``1 / width``, the most at 1) and ``W2`` divides each kernel's ``m_ij`` back out, so at iteration 0 the kernel is
  still ``W*_ij``.  The proximal step, which shrinks every latent by the same amount, then prunes one channel
  after another from the least important, each fading out as its latent nears zero, instead of every channel
  reaching the threshold together from 1 (the trained scores themselves are too alike to separate them: BatchNorm
  ``|gamma|`` of the shipped DnCNN spans 0.86-0.99 of its largest in most layers);
* ``additive``: the latents and the hypernetworks keep their random init and the kernel bias ``b2`` takes
  the difference, ``b2_ij = W*_ij - W2_ij (m_ij w1_ij + b1_ij)``: the trained weights plus a generated term
  that starts at zero.

Every other tensor of the network (BatchNorm, PReLU, biases, convs on image channels only) is copied.
"""
from __future__ import annotations

from typing import Mapping

import torch

from .net import DHPNet
from .saliency import magnitude_scores

WARM_STARTS = ('scaled', 'saliency', 'additive')


def saliency_latents(net: DHPNet, state: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The flat latents of ``saliency``: each group's channels at ``(rank + 1) / width`` by magnitude score."""
    scores = magnitude_scores(net.spec, state)
    parts = []
    for group in net.layout.names:
        rank = scores[group].argsort(stable=True).argsort()
        parts.append((rank + 1).float() / len(rank))
    return torch.cat(parts).to(net.latents)


@torch.no_grad()
def warm_start(net: DHPNet, state: Mapping[str, torch.Tensor], mode: str = 'saliency') -> float:
    """Set ``net`` (the DHP form of a network of the same widths) from the plain network's ``state``; returns
    the largest absolute difference between the generated and the trained kernels (float rounding only)."""
    if mode not in WARM_STARTS:
        raise ValueError(f'warm start must be one of {WARM_STARTS}, got {mode!r}')
    own = net.net.state_dict()
    expected = {k: tuple(v.shape) for k, v in own.items()}
    for name, shape in expected.items():
        if name not in state or tuple(state[name].shape) != shape:
            raise ValueError(f'the trained network has no tensor {name} of shape {shape}: not the same architecture '
                             'and widths')
    net.net.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=True)
    if mode == 'scaled':
        net.latents.fill_(1.0)
    elif mode == 'saliency':
        net.latents.copy_(saliency_latents(net, state))
    extended = torch.cat([net.read_latents(), net.latents.new_ones(1)])
    for key, bank in net.banks.items():
        targets = []
        for path in net.bank_members[key]:
            weight = state[f'{path}.weight']
            targets.append(weight.transpose(0, 1) if net.spec.modules[path].transposed else weight)
        target = torch.stack(targets).to(bank.weight2).flatten(3)                       # (n, co, ci, kk)
        if f'{net.bank_members[key][0]}.bias' in state:
            bank.bias.copy_(torch.stack([state[f'{p}.bias'] for p in net.bank_members[key]]).to(bank.bias))
        z_in = extended[getattr(net, f'_in_index_{key}')]
        z_out = extended[getattr(net, f'_out_index_{key}')]
        if mode in ('scaled', 'saliency'):
            if mode == 'saliency':
                target = target / (z_out.unsqueeze(2) * z_in.unsqueeze(1)).unsqueeze(-1)
            u = bank.weight1                                                            # (n, co, ci, m)
            bank.weight2.copy_(target.unsqueeze(-1) * (u / u.square().sum(-1, keepdim=True)).unsqueeze(-2))
            for p in (bank.bias0, bank.bias1, bank.bias2):
                p.zero_()
        else:
            latent = z_out.unsqueeze(2) * z_in.unsqueeze(1) + bank.bias0
            embedding = latent.unsqueeze(-1) * bank.weight1 + bank.bias1
            bank.bias2.copy_(target - (bank.weight2 * embedding.unsqueeze(-2)).sum(-1))
    net.masks.fill_(1.0)
    kernels = net.generate_kernels(masked=False)
    return max(float((kernels[p][0] - state[f'{p}.weight'].to(kernels[p][0])).abs().max()) for p in net._generated)
