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
derived from ``noise_seed`` and the file name (:func:`~restore_dhp.data.imageio.fixed_noise`,
shared with :func:`restore_dhp.data.testsets.load_denoise_set`), so every model
and every run sees the same noisy input.

The noise is added in float and NOT clipped to [0, 1] (``lq = clean + noise``),
the usual DnCNN benchmark convention.  Items: ``{'lq', 'gt'}`` float32 1xHxW
tensors (``gt`` in [0, 1]) and ``{'lq_path', 'gt_path'}`` (both the clean file).
"""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from basicsr.utils.registry import DATASET_REGISTRY

from .common import augment, dataset_name, folders, images_in, int_option, large_enough, patch_options, \
    resolve_phase, to_tensor
from .device_cache import DevicePatchSampler, cache_device, check_cache_options
from .imageio import add_fixed_noise, read_image


@DATASET_REGISTRY.register()
class DenoiseDataset(Dataset):
    """Gaussian denoising dataset on gray images; see module docstring for options."""

    #: the option keys this type reads (checked by restore_dhp.options, beside BasicSR's own loader keys)
    OPTION_KEYS = frozenset({'dataroot_gt', 'sigma', 'noise_seed', 'gt_size', 'use_hflip', 'use_flip', 'use_rot',
                             'cache', 'repeat'})

    def __init__(self, opt: dict):
        super().__init__()
        name = dataset_name('DenoiseDataset', opt)
        self.opt = opt
        self.phase = resolve_phase(opt)
        sigma = opt.get('sigma', 70)
        try:
            self.sigma = float(sigma)
        except (TypeError, ValueError):
            raise ValueError(f'{name}: option sigma must be a number on the 0-255 scale, got {sigma!r}') from None
        if not self.sigma >= 0:
            raise ValueError(f'{name}: option sigma must be >= 0, got {sigma!r}')
        self.noise_seed = int_option(opt, 'noise_seed', name, default=0, minimum=0)
        self.gt_paths: list[str] = []
        for gf in folders(opt, 'dataroot_gt', True, name):
            self.gt_paths += images_in(gf, name)
        self.gt_size, self.use_hflip, self.use_rot, self.repeat = patch_options(opt, self.phase, name)
        cache = check_cache_options(opt, name)
        self.cache = bool(cache)
        self._imgs = None
        self._device_sampler = None
        if self.cache:
            imgs = [read_image(p, 'gray') for p in self.gt_paths]
            keep = list(range(len(imgs)))
            if self.phase == 'train':
                keep = large_enough([min(im.shape) for im in imgs], self.gt_size, self.gt_paths, name, 'image')
            self._imgs = [imgs[i] for i in keep]
            self.gt_paths = [self.gt_paths[i] for i in keep]
        if cache == 'gpu' and self.phase == 'train':
            self._device_sampler = DevicePatchSampler({'gt': (self._imgs, 1)}, self.gt_size, self.use_hflip,
                                                      self.use_rot, cache_device(name))
            self._imgs = None

    def _load(self, i: int) -> np.ndarray:
        img = read_image(self.gt_paths[i], 'gray')
        if self.phase == 'train' and min(img.shape) < self.gt_size:
            raise ValueError(f'Image {self.gt_paths[i]} ({img.shape[1]}x{img.shape[0]}) is smaller than '
                             f'gt_size={self.gt_size}')
        return img

    def __len__(self) -> int:
        return len(self.gt_paths) * self.repeat

    def __getitems__(self, indices: list[int]) -> list[dict]:
        """A batch: with ``cache: gpu`` made on the device in one go (fresh noise there), else item by item."""
        if self._device_sampler is None:
            return [self[i] for i in indices]
        gt = self._device_sampler.sample(indices)['gt']
        lq = gt + torch.randn_like(gt) * (self.sigma / 255.)
        paths = [self.gt_paths[i % len(self.gt_paths)] for i in indices]
        return [{'lq': a, 'gt': b, 'lq_path': p, 'gt_path': p} for a, b, p in zip(lq.unbind(0), gt.unbind(0), paths)]

    def __getitem__(self, index: int) -> dict:
        if self._device_sampler is not None:
            return self.__getitems__([index])[0]
        i = index % len(self.gt_paths)
        clean = self._imgs[i] if self.cache else self._load(i)
        path = self.gt_paths[i]
        if self.phase == 'train':
            p = self.gt_size
            top = random.randint(0, clean.shape[0] - p)
            left = random.randint(0, clean.shape[1] - p)
            (patch,) = augment([clean[top:top + p, left:left + p]], self.use_hflip, self.use_rot)
            gt = to_tensor(patch)
            lq = gt + torch.randn_like(gt) * (self.sigma / 255.)
        else:
            gt = to_tensor(clean)
            noisy = add_fixed_noise(clean, self.sigma, Path(path).stem, self.noise_seed)
            lq = torch.from_numpy(noisy)[None]
        return {'lq': lq, 'gt': gt, 'lq_path': path, 'gt_path': path}
