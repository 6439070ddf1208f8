"""Every prunable group's latent entries in one flat vector, and per-group operations on it without loops.

A DHP network keeps the latents of all its prunable groups in one parameter
(and the masks in one buffer), group after group.  :class:`GroupLayout` knows
where each group lives and gives

* per-group views of the flat vector (``split``), which is what the
  architecture's ``forward`` multiplies by;
* a padded ``(groups, max_width)`` matrix (``padded``), so per-group
  reductions, ``topk`` and ranks run as one tensor op over every group at once
  (on the device, no host synchronisation).
"""
from __future__ import annotations

from typing import Mapping

import torch


class GroupLayout:
    """Offsets of named groups of widths ``widths`` (in order) inside one flat vector."""

    def __init__(self, widths: Mapping[str, int]):
        self.names = list(widths)
        self.widths = dict(widths)
        self.offsets = {}
        start = 0
        for name, width in self.widths.items():
            self.offsets[name] = start
            start += width
        self.total = start
        self.max_width = max(self.widths.values(), default=0)
        index = torch.full((len(self.names), self.max_width), self.total, dtype=torch.long)
        for row, name in enumerate(self.names):
            index[row, :self.widths[name]] = torch.arange(self.offsets[name], self.offsets[name] + self.widths[name])
        #: flat position of entry j of group i; padding points one past the end (see :meth:`padded`)
        self.index = index
        self.valid = index < self.total
        self._on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def slice(self, name: str) -> slice:
        return slice(self.offsets[name], self.offsets[name] + self.widths[name])

    def split(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-group views of ``flat`` (writing into a view writes into ``flat``)."""
        return {name: flat[self.slice(name)] for name in self.names}

    def join(self, parts: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([parts[name].flatten() for name in self.names])

    def index_on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``(index, valid)`` on ``device`` (cached)."""
        if device not in self._on:
            self._on[device] = (self.index.to(device), self.valid.to(device))
        return self._on[device]

    def padded(self, flat: torch.Tensor, fill: float | bool) -> torch.Tensor:
        """``(groups, max_width)`` matrix of ``flat``'s entries, padding set to ``fill``."""
        index, _ = self.index_on(flat.device)
        extended = torch.cat([flat, flat.new_full((1,), fill)])
        return extended[index]

    def unpad(self, matrix: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`padded`: the flat vector of the valid entries, in group order."""
        _, valid = self.index_on(matrix.device)
        return matrix[valid]

    def counts(self, flat_bool: torch.Tensor) -> torch.Tensor:
        """Number of true entries per group, as a ``(groups,)`` tensor (no host sync)."""
        return self.padded(flat_bool, False).sum(dim=1)

    def to_dict(self, per_group: torch.Tensor) -> dict[str, int]:
        """A ``(groups,)`` tensor as ``{group: int}`` (one host transfer)."""
        return dict(zip(self.names, (int(v) for v in per_group.tolist())))
