"""``SRBicubicDataset``: bicubic x``scale`` super-resolution pairs for BasicSR.

YAML example (``datasets: train:``)::

    name: DIV2K
    type: SRBicubicDataset
    dataroot_gt: datasets/DIV2K_train/HR      # folder or list of folders of HR images
    dataroot_lq: ~                            # optional LR folder; absent -> MATLAB bicubic from HR
    scale: 4
    gt_size: 96                               # HR patch size (train only; multiple of scale)
    use_hflip: true
    use_rot: true
    cache: true                               # decode everything (and make LR) once, keep in memory;
                                              # gpu: keep it on the GPU and make whole batches there
                                              # (with num_worker_per_gpu: 0; see data/device_cache.py)
    repeat: 10                                # epoch = repeat x images (BasicSR's dataset_enlarge_ratio works too, in its sampler)

``phase`` is set by BasicSR (``train`` / ``val``); ``test`` behaves as ``val``.
Training items are random aligned patches (HR ``gt_size``, LR ``gt_size/scale``),
val/test items are full images with HR cropped to a multiple of ``scale``.
Items: ``{'lq', 'gt'}`` float32 CHW RGB tensors in [0, 1] and ``{'lq_path', 'gt_path'}``.
Gray HR/LR files are replicated to three channels.
"""
from __future__ import annotations

import random

import numpy as np
from torch.utils.data import Dataset

from basicsr.utils.registry import DATASET_REGISTRY

from .common import augment, dataset_name, folders, images_in, int_option, large_enough, patch_options, \
    resolve_phase, to_tensor
from .device_cache import DevicePatchSampler, cache_device, check_cache_options
from .imageio import load_sr_pair, match_lr_files


@DATASET_REGISTRY.register()
class SRBicubicDataset(Dataset):
    """Bicubic SR dataset (HR folders, optional LR folder); see module docstring for options."""

    #: the option keys this type reads (checked by restore_dhp.options, beside BasicSR's own loader keys)
    OPTION_KEYS = frozenset({'dataroot_gt', 'dataroot_lq', 'scale', 'gt_size', 'use_hflip', 'use_flip', 'use_rot',
                             'cache', 'repeat'})

    def __init__(self, opt: dict):
        super().__init__()
        name = dataset_name('SRBicubicDataset', opt)
        self.opt = opt
        self.scale = int_option(opt, 'scale', name)
        self.phase = resolve_phase(opt)
        gt_folders = folders(opt, 'dataroot_gt', True, name)
        lq_folders = folders(opt, 'dataroot_lq', False, name)
        if lq_folders and len(lq_folders) != len(gt_folders):
            raise ValueError(f'{name}: dataroot_lq must list one LR folder per dataroot_gt folder '
                             f'({len(gt_folders)} HR vs {len(lq_folders)} LR)')
        self.gt_paths: list[str] = []
        self.lq_paths: list[str | None] = []
        for i, gf in enumerate(gt_folders):
            hrs = images_in(gf, name, 'HR folder')
            self.gt_paths += hrs
            self.lq_paths += match_lr_files(hrs, lq_folders[i], self.scale) if lq_folders else [None] * len(hrs)
        self.gt_size, self.use_hflip, self.use_rot, self.repeat = patch_options(opt, self.phase, name)
        if self.phase == 'train' and self.gt_size % self.scale:
            raise ValueError(f'{name}: option gt_size={self.gt_size} must be a multiple of scale={self.scale}')
        cache = check_cache_options(opt, name)
        self.cache = bool(cache)
        self._pairs = None
        self._device_sampler = None
        if self.cache:
            pairs = [load_sr_pair(g, l, self.scale) for g, l in zip(self.gt_paths, self.lq_paths)]
            keep = list(range(len(pairs)))
            if self.phase == 'train':
                keep = large_enough([min(hr.shape[:2]) for _, hr in pairs], self.gt_size, self.gt_paths, name,
                                    'HR image')
            self._pairs = [pairs[i] for i in keep]
            self.gt_paths = [self.gt_paths[i] for i in keep]
            self.lq_paths = [self.lq_paths[i] for i in keep]
        if cache == 'gpu' and self.phase == 'train':
            kinds = {'lq': ([lr for lr, _ in self._pairs], 1), 'gt': ([hr for _, hr in self._pairs], self.scale)}
            self._device_sampler = DevicePatchSampler(kinds, self.gt_size // self.scale, self.use_hflip,
                                                      self.use_rot, cache_device(name))
            self._pairs = None

    def _load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        lr, hr = load_sr_pair(self.gt_paths[i], self.lq_paths[i], self.scale)
        if self.phase == 'train' and min(hr.shape[:2]) < self.gt_size:
            raise ValueError(f'HR image {self.gt_paths[i]} ({hr.shape[1]}x{hr.shape[0]}) is smaller than '
                             f'gt_size={self.gt_size}')
        return lr, hr

    def __len__(self) -> int:
        return len(self.gt_paths) * self.repeat

    def __getitems__(self, indices: list[int]) -> list[dict]:
        """A batch: with ``cache: gpu`` made on the device in one go, else item by item."""
        if self._device_sampler is None:
            return [self[i] for i in indices]
        batch = self._device_sampler.sample(indices)
        paths = [(self._lq_path(i % len(self.gt_paths)), self.gt_paths[i % len(self.gt_paths)]) for i in indices]
        return [{'lq': lq, 'gt': gt, 'lq_path': lq_path, 'gt_path': gt_path}
                for lq, gt, (lq_path, gt_path) in zip(batch['lq'].unbind(0), batch['gt'].unbind(0), paths)]

    def _lq_path(self, i: int) -> str:
        return self.lq_paths[i] if self.lq_paths[i] is not None else self.gt_paths[i]

    def __getitem__(self, index: int) -> dict:
        if self._device_sampler is not None:
            return self.__getitems__([index])[0]
        i = index % len(self.gt_paths)
        lr, hr = self._pairs[i] if self.cache else self._load(i)
        if self.phase == 'train':
            s, lq_size = self.scale, self.gt_size // self.scale
            top = random.randint(0, lr.shape[0] - lq_size)
            left = random.randint(0, lr.shape[1] - lq_size)
            lr = lr[top:top + lq_size, left:left + lq_size]
            hr = hr[top * s:(top + lq_size) * s, left * s:(left + lq_size) * s]
            lr, hr = augment([lr, hr], self.use_hflip, self.use_rot)
        return {'lq': to_tensor(lr), 'gt': to_tensor(hr), 'lq_path': self._lq_path(i), 'gt_path': self.gt_paths[i]}
