"""Training images kept on the GPU, and whole batches of random augmented patches made there.

With ``cache: gpu`` in a training set's options the decoded images (uint8, all
images of one kind concatenated into one flat tensor) live on the training
device, and a batch is made by a few tensor ops for the whole batch: random
crop positions per sample, the 8 dihedral transforms (flips, transposes) as an
index map, one gather per kind of image (LR and HR for SR), conversion to
float, and for denoising the σ noise; no DataLoader workers, no host copies.

BasicSR's pipeline stays as it is: its sampler picks the image indices, its
DataLoader asks the dataset for a batch through ``__getitems__`` (the batched
fetch PyTorch's DataLoader uses when a dataset has it) and collates the
result, and the model's ``feed_data`` finds the tensors already on its device.
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import torch

logger = logging.getLogger(__name__)

CACHE_VALUES = (True, False, 'gpu')


def cache_device(dataset: str) -> torch.device:
    """The current CUDA device, or the CPU with a notice when CUDA is absent."""
    if torch.cuda.is_available():
        return torch.device('cuda', torch.cuda.current_device())
    logger.warning('%s: cache: gpu without CUDA: the training images stay in CPU memory and batches are '
                   'made there with the same tensor ops', dataset)
    return torch.device('cpu')


def check_cache_options(opt: dict, dataset: str):
    """``opt['cache']`` (default True), checked together with the loader options it needs."""
    cache = opt.get('cache', True)
    if cache not in CACHE_VALUES:
        raise ValueError(f"{dataset}: option cache must be true, false or gpu, got {cache!r}")
    if cache == 'gpu':
        if opt.get('num_worker_per_gpu', 0):
            raise ValueError(f'{dataset}: cache: gpu makes batches on the device; set num_worker_per_gpu: 0')
        if opt.get('pin_memory') or opt.get('prefetch_mode') == 'cuda':
            raise ValueError(f'{dataset}: cache: gpu batches are on the device already; drop pin_memory and '
                             'prefetch_mode: cuda')
    return cache


def dihedral_grid(size: int, transpose: torch.Tensor, vflip: torch.Tensor, hflip: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Source (row, col) of every output pixel of a ``size x size`` patch, per sample ``(B, size, size)``.

    The same transforms as :func:`restore_dhp.data.common.augment` (horizontal flip, then vertical
    flip, then transpose), as an index map: ``out[r, c] = patch[rows[r, c], cols[r, c]]``.
    """
    ramp = torch.arange(size, device=transpose.device)
    rows, cols = ramp.view(1, -1, 1).expand(len(transpose), size, size), ramp.view(1, 1, -1).expand(len(transpose), size, size)
    t, v, h = (flag.view(-1, 1, 1) for flag in (transpose, vflip, hflip))
    rows, cols = torch.where(t, cols, rows), torch.where(t, rows, cols)
    rows = torch.where(v, size - 1 - rows, rows)
    cols = torch.where(h, size - 1 - cols, cols)
    return rows, cols


class _ImageStack:
    """Images of one kind (same channel count), concatenated flat on ``device``."""

    def __init__(self, images: Sequence[np.ndarray], device: torch.device):
        images = [im[:, :, None] if im.ndim == 2 else im for im in images]
        self.channels = images[0].shape[2]
        sizes = torch.tensor([im.size for im in images])
        self.offsets = (torch.cumsum(sizes, 0) - sizes).to(device)
        self.heights = torch.tensor([im.shape[0] for im in images], device=device)
        self.widths = torch.tensor([im.shape[1] for im in images], device=device)
        self.flat = torch.cat([torch.from_numpy(np.ascontiguousarray(im)).flatten() for im in images]).to(device)

    def patches(self, n, top, left, rows, cols) -> torch.Tensor:
        """``(B, C, size, size)`` float patches in [0, 1]; ``top``/``left`` at this stack's scale."""
        y = top.view(-1, 1, 1) + rows
        x = left.view(-1, 1, 1) + cols
        pixel = self.offsets[n].view(-1, 1, 1) + (y * self.widths[n].view(-1, 1, 1) + x) * self.channels
        index = pixel.unsqueeze(-1) + torch.arange(self.channels, device=pixel.device)
        return self.flat[index].permute(0, 3, 1, 2).float().div_(255.0)


class DevicePatchSampler:
    """Random aligned training patches from images held on ``device``.

    ``kinds`` maps a name (``'lq'``, ``'gt'``) to ``(images, scale)``: image ``i``
    of a kind with scale ``s`` is ``s`` times the size of image ``i`` of the
    scale-1 kind, and its patch is ``s * patch`` pixels wide at the same place.
    """

    def __init__(self, kinds: dict[str, tuple[Sequence[np.ndarray], int]], patch: int, hflip: bool, rot: bool,
                 device: torch.device):
        self.patch, self.hflip, self.rot, self.device = patch, hflip, rot, device
        self.scales = {name: scale for name, (_, scale) in kinds.items()}
        self.stacks = {name: _ImageStack(images, device) for name, (images, _) in kinds.items()}
        base = next(name for name, scale in self.scales.items() if scale == 1)
        self.base = self.stacks[base]

    def __len__(self) -> int:
        return len(self.base.heights)

    def sample(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        n = torch.as_tensor(list(indices), device=self.device) % len(self)
        count, p = len(n), self.patch
        top = (torch.rand(count, device=self.device) * (self.base.heights[n] - p + 1)).long()
        left = (torch.rand(count, device=self.device) * (self.base.widths[n] - p + 1)).long()
        flags = torch.rand(count, 3, device=self.device) < 0.5
        transpose, vflip = flags[:, 0] & self.rot, flags[:, 1] & self.rot
        hflip = flags[:, 2] & self.hflip
        out = {}
        for name, stack in self.stacks.items():
            s = self.scales[name]
            rows, cols = dihedral_grid(p * s, transpose, vflip, hflip)
            out[name] = stack.patches(n, top * s, left * s, rows, cols)
        return out
