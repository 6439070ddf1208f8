"""``DenoiseDataset``: gray images + additive white Gaussian noise, for BasicSR.

YAML example::

    name: Train400
    type: DenoiseDataset
    dataroot_gt: datasets/Train400     # folder or list of folders of clean images
    sigma: 70                          # noise std on the 0-255 scale (default 70)
    gt_size: 64                        # training patch size
    use_hflip: true
    use_rot: true
    cache: true                        # decode all images once, keep in memory; gpu: keep them on the GPU
                                       # and make whole noisy batches there (num_worker_per_gpu: 0)
    repeat: 100                        # epoch = repeat x images (or BasicSR's dataset_enlarge_ratio)
    noise_seed: 0                      # val/test: fixed noise per image

Clean images are converted to gray with BT.601 luma when they are RGB.
Training: a random patch with *fresh* noise drawn with ``torch.randn`` (PyTorch
seeds every DataLoader worker differently, so workers are independent).
Val/test: the full image with noise generated once per image from a seed
derived from ``noise_seed`` and the file name (:func:`~restore_dhp.degradations.fixed_noise`,
shared with :func:`restore_dhp.data.testsets.load_denoise_set`), so every model
and every run sees the same noisy input.

The noise is added in float and NOT clipped to [0, 1] (``lq = clean + noise``),
the usual DnCNN benchmark convention.  Items: ``{'lq', 'gt'}`` float32 1xHxW
tensors (``gt`` in [0, 1]) and ``{'lq_path', 'gt_path'}`` (both the clean file).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from basicsr.utils.registry import DATASET_REGISTRY

from ..degradations import add_fixed_noise
from .common import PatchDataset, folders, images_in, int_option, to_tensor
from .imageio import read_image


@DATASET_REGISTRY.register()
class DenoiseDataset(PatchDataset):
    """Gaussian denoising dataset on gray images; see module docstring for options."""

    #: the option keys this type reads (checked by restore_dhp.options, beside BasicSR's own loader keys)
    OPTION_KEYS = frozenset({'dataroot_gt', 'sigma', 'noise_seed', 'gt_size', 'use_hflip', 'use_flip', 'use_rot',
                             'cache', 'repeat'})
    KIND, IMAGE, KEYS = 'DenoiseDataset', 'image', ('gt',)

    def _setup(self, opt: dict, name: str) -> None:
        sigma = opt.get('sigma', 70)
        try:
            self.sigma = float(sigma)
        except (TypeError, ValueError):
            raise ValueError(f'{name}: option sigma must be a number on the 0-255 scale, got {sigma!r}') from None
        if not self.sigma >= 0:
            raise ValueError(f'{name}: option sigma must be >= 0, got {sigma!r}')
        self.noise_seed = int_option(opt, 'noise_seed', name, default=0, minimum=0)
        for gf in folders(opt, 'dataroot_gt', True, name):
            self.gt_paths += images_in(gf, name)

    def _read(self, i: int) -> tuple[np.ndarray]:
        return (read_image(self.gt_paths[i], 'gray'),)

    def _item(self, i: int, arrays: tuple[np.ndarray]) -> dict:
        (clean,), path = arrays, self.gt_paths[i]
        gt = to_tensor(clean)
        if self.phase == 'train':   # fresh noise
            lq = gt + torch.randn_like(gt) * (self.sigma / 255.)
        else:                       # the same noise every time
            lq = torch.from_numpy(add_fixed_noise(clean, self.sigma, Path(path).stem, self.noise_seed))[None]
        return {'lq': lq, 'gt': gt, 'lq_path': path, 'gt_path': path}

    def _batch_items(self, batch: dict[str, torch.Tensor], images: list[int]) -> list[dict]:
        gt = batch['gt']
        lq = gt + torch.randn_like(gt) * (self.sigma / 255.)   # fresh noise, made on the device
        return [{'lq': a, 'gt': b, 'lq_path': self.gt_paths[i], 'gt_path': self.gt_paths[i]}
                for a, b, i in zip(lq.unbind(0), gt.unbind(0), images)]
