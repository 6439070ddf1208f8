"""A network described once and built in any of its three forms.

An architecture states its structure as an :class:`ArchSpec` (see
:mod:`restore_dhp.dhp.spec`).  From that one description :class:`PrunableNet`
builds

* the **plain** form (``nn.Conv2d``) at full width — the baseline — or at any
  per-group widths — the compact, pruned network;
* the **DHP** form at full width: the latents of every prunable group in one
  flat parameter ``latents`` (and one mask buffer ``masks``, laid out by a
  :class:`GroupLayout`), and the hypernetworks of convs of equal shape stacked
  in one :class:`HyperConvBank` each, so a forward generates all kernels with a
  handful of batched ops.

The architecture's ``forward_structure`` is written once against three hooks,
``self.conv(name, x)``, ``self.norm(name, x)`` and ``self.mask(group, x)``,
which do the right thing for the form.  Masks are applied to every feature map
after its activation, so a removed channel carries exactly zero into every
layer that reads it; :meth:`PrunableNet.compact` can therefore drop it without
changing the output (no bias contribution of a pruned channel is lost).
"""
from __future__ import annotations

import math
from typing import Mapping

import torch
from torch import nn
from torch.nn import functional as F

from .groups import GroupLayout
from .hyperconv import HyperConvBank
from .keep import KeepRule
from .proximal import grouped_proximal_step
from .spec import ArchSpec

_HYPER_PARAMS = ('bias0', 'weight1', 'bias1', 'weight2', 'bias2', 'bias')


class PrunableNet(nn.Module):
    """Base class: builds the convs and norms of an :class:`ArchSpec` in plain or DHP form.

    Subclasses call :meth:`_build` from ``__init__`` (after defining any other
    modules) and write ``forward_structure`` with :meth:`conv`, :meth:`norm`, :meth:`mask`.
    ``arch_kwargs`` (the structure arguments, e.g. number of blocks) are stored
    so a compact network and a checkpoint can rebuild the same structure.
    """

    #: plain class used by :meth:`compact`; set by each architecture.
    compact_cls: type | None = None
    #: initialisation of the plain form's convs when trained from scratch: ``'he'`` (fan-in, the
    #: scale the DHP form's hyper-fan-in init generates) or ``'default'`` (PyTorch's, 3x smaller
    #: variance); each architecture picks the one that trained better (see its module).
    plain_init: str = 'default'
    task: str = ''
    scale: int = 1

    def _build(self, spec: ArchSpec, widths: Mapping[str, int] | None, dhp: bool,
               arch_kwargs: dict, embedding_dim: int = 8, body_init_scale: float | None = None) -> None:
        """``body_init_scale`` (plain form only; an initialisation, not stored in ``arch_kwargs``): the
        body convs' weights start normal with std x sqrt(fan-in) equal to it (He init: sqrt(2))."""
        if body_init_scale is not None and (dhp or isinstance(body_init_scale, bool)
                                            or not isinstance(body_init_scale, (int, float)) or body_init_scale <= 0):
            raise ValueError(f'body_init_scale must be a positive number and applies to the plain form only, '
                             f'got {body_init_scale!r}' + (' for a DHP network' if dhp else ''))
        self.spec = spec
        self.dhp = dhp
        self.arch_kwargs = dict(arch_kwargs)
        if dhp and widths:
            raise ValueError('the DHP form is always built at full width; widths apply to the plain form')
        self.widths = spec.resolve_widths(widths)
        self.norms = nn.ModuleDict({name: nn.BatchNorm2d(self.widths[s.group]) for name, s in spec.norms.items()})
        self._generated: dict | None = None
        if dhp:
            self._build_dhp(embedding_dim)
            return
        self.convs = nn.ModuleDict()
        for name, c in spec.convs.items():
            cin, cout = self.widths[c.in_group], self.widths[c.out_group]
            conv = nn.Conv2d(cin, cout * c.out_per_channel, c.kernel_size, padding=c.kernel_size // 2)
            if self.plain_init == 'he':
                nn.init.kaiming_normal_(conv.weight, mode='fan_in', nonlinearity='relu')
            if body_init_scale is not None and name in spec.body_convs:
                nn.init.normal_(conv.weight, std=body_init_scale / math.sqrt(conv.weight[0].numel()))
            self.convs[name] = conv

    def _build_dhp(self, embedding_dim: int) -> None:
        spec = self.spec
        self.layout = GroupLayout({g: self.widths[g] for g in spec.prunable_groups})
        self.latents = nn.Parameter(torch.randn(self.layout.total))
        self.register_buffer('masks', torch.ones(self.layout.total))
        members: dict[tuple, list[str]] = {}
        for name, c in spec.convs.items():
            shape = (c.kernel_size, self.widths[c.in_group], self.widths[c.out_group], c.out_per_channel)
            members.setdefault(shape, []).append(name)
        self.banks = nn.ModuleDict()
        self.bank_members: dict[str, list[str]] = {}
        for (k, cin, cout, per), names in members.items():
            key = f'k{k}_in{cin}_out{cout}x{per}'
            self.banks[key] = HyperConvBank(len(names), cin, cout, k, out_per_latent=per,
                                            embedding_dim=embedding_dim)
            self.bank_members[key] = names
            # where each conv's z_in / z_out entries sit in [latents, 1] (fixed groups read the constant 1)
            self.register_buffer(f'_in_index_{key}', torch.stack(
                [self._latent_positions(spec.convs[n].in_group, 1) for n in names]), persistent=False)
            self.register_buffer(f'_out_index_{key}', torch.stack(
                [self._latent_positions(spec.convs[n].out_group, per) for n in names]), persistent=False)
        self._register_load_state_dict_pre_hook(self._convert_per_conv_state)

    def _latent_positions(self, group: str, repeat: int) -> torch.Tensor:
        if group in self.spec.fixed_groups:
            positions = torch.full((self.widths[group],), self.layout.total)
        else:
            positions = torch.arange(self.layout.total)[self.layout.slice(group)]
        return positions.repeat_interleave(repeat)

    # ----------------------------------------------------------------- forward and the hooks it uses
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.dhp:
            return self.forward_structure(x)
        self._generated = self.generate_kernels()
        try:
            return self.forward_structure(x)
        finally:
            self._generated = None

    def forward_structure(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def generate_kernels(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``{conv name: (weight, bias)}`` from the hypernetworks: one batched generation per bank."""
        extended = torch.cat([self.latents, self.latents.new_ones(1)])
        out = {}
        for key, bank in self.banks.items():
            kernels = bank.generate(extended[getattr(self, f'_in_index_{key}')],
                                    extended[getattr(self, f'_out_index_{key}')])
            out.update(zip(self.bank_members[key], zip(kernels.unbind(0), bank.bias.unbind(0))))
        return out

    def conv(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if not self.dhp:
            return self.convs[name](x)
        if self._generated is None:
            raise RuntimeError('conv() of the DHP form runs inside forward(), which generates the kernels')
        weight, bias = self._generated[name]
        return F.conv2d(x, weight, bias, padding=self.spec.convs[name].kernel_size // 2)

    def norm(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return self.norms[name](x)

    def mask(self, group: str, x: torch.Tensor) -> torch.Tensor:
        if not self.dhp:
            return x
        return x * self.masks[self.layout.slice(group)].view(1, -1, 1, 1)

    # ----------------------------------------------------------------- DHP search state
    def group_latents(self) -> dict[str, torch.Tensor]:
        """Per-group views of the flat latent vector."""
        self._require_dhp()
        return self.layout.split(self.latents)

    def group_masks(self) -> dict[str, torch.Tensor]:
        self._require_dhp()
        return self.layout.split(self.masks)

    def latent_parameters(self) -> list[nn.Parameter]:
        return [self.latents] if self.dhp else []

    def hypernetwork_parameters(self) -> list[nn.Parameter]:
        """Parameters that are not latents: hypernetworks, biases, norms, activations."""
        latent_ids = {id(p) for p in self.latent_parameters()}
        return [p for p in self.parameters() if id(p) not in latent_ids]

    @torch.no_grad()
    def proximal_step(self, amount: float | torch.Tensor, *, prox: str = 'l1', rule: KeepRule = KeepRule()) -> None:
        """The proximal operator with step ``amount = lambda * lr`` on every group at once (no host sync);
        ``rule`` gives the keep threshold and the width no group falls below."""
        self._require_dhp()
        self.latents.copy_(grouped_proximal_step(self.latents, self.layout, amount, prox=prox,
                                                 min_width=rule.min_width, threshold=rule.threshold))

    @torch.no_grad()
    def update_masks(self, rule: KeepRule = KeepRule()) -> dict[str, int]:
        """Recompute the masks from the latents by ``rule`` (:meth:`KeepRule.keep`) and return the kept widths.

        Masks only ever shrink (a pruned channel is gone for good).
        """
        self._require_dhp()
        self.masks.copy_(rule.keep(self.latents, self.masks > 0, self.layout).to(self.masks.dtype))
        return self.kept_widths()

    @torch.no_grad()
    def revive(self, keep: torch.Tensor, latents: torch.Tensor) -> None:
        """Keep again the channels that the flat mask ``keep`` keeps but the current masks drop, with latent values from ``latents``."""
        self._require_dhp()
        revived = keep.to(self.masks.device) & (self.masks == 0)
        self.masks.masked_fill_(revived, 1.0)
        self.latents.copy_(torch.where(revived, latents.to(self.latents.device), self.latents))

    def kept_widths(self) -> dict[str, int]:
        """Width of every prunable group: kept channels (DHP form) or the built width."""
        if self.dhp:
            return self.layout.to_dict(self.layout.counts(self.masks > 0))
        return {g: self.widths[g] for g in self.spec.prunable_groups}

    def _convert_per_conv_state(self, state_dict, prefix, *_args) -> None:
        """Load a search state written before the hypernetworks were stacked (``convs.<name>.weight1``,
        ``latents.<group>``, ``masks.<group>``): stack and concatenate those tensors into the new layout."""
        if not any(k.startswith(f'{prefix}convs.') for k in state_dict):
            return
        for key, names in self.bank_members.items():
            for param in _HYPER_PARAMS:
                old = [f'{prefix}convs.{n}.{param}' for n in names]
                if all(k in state_dict for k in old):
                    state_dict[f'{prefix}banks.{key}.{param}'] = torch.stack([state_dict.pop(k) for k in old])
        for kind in ('latents', 'masks'):
            old = [f'{prefix}{kind}.{g}' for g in self.layout.names]
            if all(k in state_dict for k in old):
                state_dict[f'{prefix}{kind}'] = torch.cat([state_dict.pop(k) for k in old])

    # ----------------------------------------------------------------- compaction
    @torch.no_grad()
    def compact(self) -> 'PrunableNet':
        """The plain network with the masked channels removed; same output as this masked net."""
        self._require_dhp()
        device = self.latents.device
        kept = {g: torch.nonzero(m > 0).flatten() for g, m in self.group_masks().items()}
        for g in self.spec.fixed_groups:
            kept[g] = torch.arange(self.widths[g], device=device)
        plain = self.compact_cls(widths={g: len(kept[g]) for g in self.spec.prunable_groups},
                                 **self.arch_kwargs).to(device)
        kernels = self.generate_kernels()
        for name, c in self.spec.convs.items():
            weight, bias = kernels[name]
            out_idx = _expand(kept[c.out_group], c.out_per_channel)
            plain.convs[name].weight.copy_(weight[out_idx][:, kept[c.in_group]])
            plain.convs[name].bias.copy_(bias[out_idx])
        for name, s in self.spec.norms.items():
            src, dst = self.norms[name], plain.norms[name]
            for attr in ('weight', 'bias', 'running_mean', 'running_var'):
                getattr(dst, attr).copy_(getattr(src, attr)[kept[s.group]])
            dst.num_batches_tracked.copy_(src.num_batches_tracked)
        # everything that is not channel-indexed (activations, ...) is copied as it is
        rest = {k: v for k, v in self.state_dict().items()
                if not k.startswith(('banks.', 'norms.')) and k not in ('latents', 'masks')}
        missing = [k for k in plain.state_dict() if not k.startswith(('convs.', 'norms.')) and k not in rest]
        if missing:
            raise RuntimeError(f'compaction cannot fill {missing}')
        plain.load_state_dict(rest, strict=False)
        return plain.train(self.training)

    @torch.no_grad()
    def padded_to(self, multiple: int) -> 'PrunableNet':
        """This plain network with every prunable width rounded up to a multiple of ``multiple`` (at most
        the full width) by zero channels appended: the same output, more FLOPs, and widths that a
        device's fastest kernels take (on an H200, cuDNN ran widths 40 and 48 on older kernels, slower
        per conv than 64).

        Each added channel stays zero through the network: its conv weights and bias are zero, its
        BatchNorm has weight 0, bias 0, mean 0 and variance 1, the activations keep zero at zero, and
        the weights that read it are zero.  Kept channels come first in every tensor (for a conv
        before a pixel shuffle, all sub-pixel channels of the kept channels), so each tensor's
        values go to its leading slice.
        """
        if self.dhp:
            raise RuntimeError('padded_to needs a plain network; compact the DHP form first')
        if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
            raise ValueError(f'multiple must be a positive integer, got {multiple!r}')
        full = self.spec.group_widths
        widths = {g: min(full[g], -(-w // multiple) * multiple) for g, w in self.kept_widths().items()}
        ref = next(self.parameters())
        wide = type(self)(widths=widths, **self.arch_kwargs).to(device=ref.device, dtype=ref.dtype)
        source = self.state_dict()
        for key, tensor in wide.state_dict().items():
            tensor.fill_(1 if key.endswith('running_var') else 0)
            old = source[key]
            tensor[tuple(slice(0, n) for n in old.shape)] = old
        return wide.train(self.training)

    def _require_dhp(self) -> None:
        if not self.dhp:
            raise RuntimeError(f'{type(self).__name__} is a plain network; this needs the DHP form')

    def describe(self) -> dict:
        """Self-description stored with a compact checkpoint."""
        return {'arch': type(self).__name__, 'arch_kwargs': self.arch_kwargs,
                'widths': self.kept_widths(), 'task': self.task, 'scale': self.scale}


def _expand(index: torch.Tensor, per_channel: int) -> torch.Tensor:
    if per_channel == 1:
        return index
    offsets = torch.arange(per_channel, device=index.device)
    return (index.unsqueeze(1) * per_channel + offsets).flatten()
