"""A network described once and built in any of its three forms.

An architecture states its structure as an :class:`ArchSpec`: its *width
groups* (sets of channels that must be kept or removed together, e.g. every
feature map joined by a residual addition) and, for every conv and batch-norm,
which group its input and output channels belong to.  From that one
description :class:`PrunableNet` builds

* the **plain** form (``nn.Conv2d``) at full width — the baseline — or at any
  per-group widths — the compact, pruned network;
* the **DHP** form (``HyperConv2d``) at full width, with one latent vector per
  prunable group and a channel mask per group.

The architecture's ``forward`` is written once against three hooks,
``self.conv(name, x)``, ``self.norm(name, x)`` and ``self.mask(group, x)``,
which do the right thing for the form.  Masks are applied to every feature map
after its activation, so a removed channel carries exactly zero into every
layer that reads it; :meth:`PrunableNet.compact` can therefore drop it without
changing the output (no bias contribution of a pruned channel is lost).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import torch
from torch import nn

from .hyperconv import HyperConv2d
from .proximal import proximal_step

DEFAULT_KEEP_THRESHOLD = 5e-3


@dataclass(frozen=True)
class ConvSpec:
    in_group: str
    out_group: str
    kernel_size: int
    out_per_channel: int = 1  # >1 for a conv feeding PixelShuffle: 4 sub-pixel outputs per channel


@dataclass(frozen=True)
class ArchSpec:
    """Structure of an architecture: width groups and the convs/norms that use them."""
    group_widths: Mapping[str, int]          # full (baseline) width of every group
    fixed_groups: frozenset                  # groups never pruned (image input/output channels)
    convs: Mapping[str, ConvSpec]
    norms: Mapping[str, str] = field(default_factory=dict)  # norm name -> group

    @property
    def prunable_groups(self) -> list[str]:
        return [g for g in self.group_widths if g not in self.fixed_groups]

    def full_widths(self) -> dict[str, int]:
        return {g: self.group_widths[g] for g in self.prunable_groups}

    def resolve_widths(self, widths: Mapping[str, int] | None) -> dict[str, int]:
        """All groups' widths, with ``widths`` overriding the prunable ones (checked)."""
        resolved = dict(self.group_widths)
        for group, width in (widths or {}).items():
            if group not in resolved or group in self.fixed_groups:
                raise ValueError(f'unknown prunable width group {group!r}; '
                                 f'expected some of {self.prunable_groups}')
            if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= resolved[group]:
                raise ValueError(f'width of group {group!r} must be an integer in '
                                 f'[1, {resolved[group]}], got {width!r}')
            resolved[group] = width
        return resolved


class _BufferDict(nn.Module):
    """Named buffers (saved in the state dict), e.g. one mask per group."""

    def __init__(self, tensors: Mapping[str, torch.Tensor]):
        super().__init__()
        for name, tensor in tensors.items():
            self.register_buffer(name, tensor)

    def __getitem__(self, name: str) -> torch.Tensor:
        return getattr(self, name)

    def items(self):
        return self._buffers.items()


class PrunableNet(nn.Module):
    """Base class: builds the convs and norms of an :class:`ArchSpec` in plain or DHP form.

    Subclasses call :meth:`_build` from ``__init__`` (after defining any other
    modules) and write ``forward`` with :meth:`conv`, :meth:`norm`, :meth:`mask`.
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
               arch_kwargs: dict, embedding_dim: int = 8) -> None:
        self.spec = spec
        self.dhp = dhp
        self.arch_kwargs = dict(arch_kwargs)
        if dhp and widths:
            raise ValueError('the DHP form is always built at full width; widths apply to the plain form')
        self.widths = spec.resolve_widths(widths)
        self.convs = nn.ModuleDict()
        for name, c in spec.convs.items():
            cin, cout = self.widths[c.in_group], self.widths[c.out_group]
            if dhp:
                self.convs[name] = HyperConv2d(cin, cout, c.kernel_size, out_per_latent=c.out_per_channel,
                                               embedding_dim=embedding_dim)
            else:
                conv = nn.Conv2d(cin, cout * c.out_per_channel, c.kernel_size, padding=c.kernel_size // 2)
                if self.plain_init == 'he':
                    nn.init.kaiming_normal_(conv.weight, mode='fan_in', nonlinearity='relu')
                self.convs[name] = conv
        self.norms = nn.ModuleDict({name: nn.BatchNorm2d(self.widths[g]) for name, g in spec.norms.items()})
        if dhp:
            self.latents = nn.ParameterDict(
                {g: nn.Parameter(torch.randn(self.widths[g])) for g in spec.prunable_groups})
            self.masks = _BufferDict({g: torch.ones(self.widths[g]) for g in spec.prunable_groups})

    # ----------------------------------------------------------------- hooks used by forward
    def latent(self, group: str, like: torch.Tensor) -> torch.Tensor:
        if group in self.spec.fixed_groups:
            return torch.ones(self.widths[group], device=like.device, dtype=like.dtype)
        return self.latents[group]

    def conv(self, name: str, x: torch.Tensor) -> torch.Tensor:
        module = self.convs[name]
        if not self.dhp:
            return module(x)
        c = self.spec.convs[name]
        return module(x, self.latent(c.in_group, x), self.latent(c.out_group, x))

    def norm(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return self.norms[name](x)

    def mask(self, group: str, x: torch.Tensor) -> torch.Tensor:
        if not self.dhp:
            return x
        return x * self.masks[group].view(1, -1, 1, 1)

    # ----------------------------------------------------------------- DHP search state
    def prunable_latents(self) -> dict[str, nn.Parameter]:
        return dict(self.latents.items()) if self.dhp else {}

    def hypernetwork_parameters(self) -> list[nn.Parameter]:
        """Parameters that are neither latents: hypernetworks, biases, norms, activations."""
        latent_ids = {id(p) for p in self.prunable_latents().values()}
        return [p for p in self.parameters() if id(p) not in latent_ids]

    @torch.no_grad()
    def proximal_step(self, amount: float, *, prox: str = 'l1', min_width: int = 4,
                      threshold: float = DEFAULT_KEEP_THRESHOLD) -> None:
        """Apply the proximal operator with step ``amount = lambda * lr`` to every latent."""
        self._require_dhp()
        for z in self.latents.values():
            z.copy_(proximal_step(z, amount, prox=prox, min_width=min_width, threshold=threshold))

    @torch.no_grad()
    def update_masks(self, threshold: float = DEFAULT_KEEP_THRESHOLD, round_to: int = 1) -> dict[str, int]:
        """Recompute each group's mask from its latent: keep channels with ``|z| >= threshold``.

        Masks only ever shrink (a pruned channel is gone for good).  With
        ``round_to > 1`` the kept count is rounded up to a multiple of it
        (capped at full width), keeping the largest ``|z|``: hardware runs
        such widths faster.  Returns the kept width per group.
        """
        self._require_dhp()
        widths = {}
        for group, z in self.latents.items():
            mask = self.masks[group]
            keep = (z.abs() >= threshold) & (mask > 0)
            count = int(keep.sum())
            if round_to > 1:
                count = min(-(-count // round_to) * round_to, int((mask > 0).sum()))
                score = torch.where(mask > 0, z.abs(), torch.full_like(z, -1.0))
                keep = torch.zeros_like(keep)
                keep[score.topk(count).indices] = True
            mask.copy_(keep.to(mask.dtype))
            widths[group] = count
        return widths

    @torch.no_grad()
    def revive(self, masks: Mapping[str, torch.Tensor], latents: Mapping[str, torch.Tensor]) -> None:
        """Keep again the channels that ``masks`` keeps but the current masks drop, with latent values from ``latents``."""
        self._require_dhp()
        for group, keep in masks.items():
            current = self.masks[group]
            revived = keep.to(current.device) & (current == 0)
            current[revived] = 1.0
            self.latents[group][revived] = latents[group].to(current.device)[revived]

    def kept_widths(self) -> dict[str, int]:
        """Width of every prunable group: kept channels (DHP form) or the built width."""
        if self.dhp:
            return {g: int((m > 0).sum()) for g, m in self.masks.items()}
        return {g: self.widths[g] for g in self.spec.prunable_groups}

    # ----------------------------------------------------------------- compaction
    @torch.no_grad()
    def compact(self) -> 'PrunableNet':
        """The plain network with the masked channels removed; same output as this masked net."""
        self._require_dhp()
        kept = {g: torch.nonzero(m > 0).flatten() for g, m in self.masks.items()}
        for g in self.spec.fixed_groups:
            kept[g] = torch.arange(self.widths[g], device=next(self.parameters()).device)
        plain = self.compact_cls(widths={g: len(kept[g]) for g in self.spec.prunable_groups},
                                 **self.arch_kwargs).to(next(self.parameters()).device)
        for name, c in self.spec.convs.items():
            dhp_conv, out_conv = self.convs[name], plain.convs[name]
            z_in = self.latent(c.in_group, dhp_conv.weight1)
            z_out = self.latent(c.out_group, dhp_conv.weight1)
            out_idx = _expand(kept[c.out_group], c.out_per_channel)
            weight = dhp_conv.generate_weight(z_in, z_out)
            out_conv.weight.copy_(weight[out_idx][:, kept[c.in_group]])
            out_conv.bias.copy_(dhp_conv.bias[out_idx])
        for name, group in self.spec.norms.items():
            src, dst = self.norms[name], plain.norms[name]
            for attr in ('weight', 'bias', 'running_mean', 'running_var'):
                getattr(dst, attr).copy_(getattr(src, attr)[kept[group]])
            dst.num_batches_tracked.copy_(src.num_batches_tracked)
        # everything that is not channel-indexed (activations, ...) is copied as it is
        rest = {k: v for k, v in self.state_dict().items()
                if not k.startswith(('convs.', 'norms.', 'latents.', 'masks.'))}
        missing = [k for k in plain.state_dict() if not k.startswith(('convs.', 'norms.')) and k not in rest]
        if missing:
            raise RuntimeError(f'compaction cannot fill {missing}')
        plain.load_state_dict(rest, strict=False)
        return plain.train(self.training)

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
