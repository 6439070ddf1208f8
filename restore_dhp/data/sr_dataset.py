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

import logging
import os
import random

import numpy as np
import torch
from torch.utils.data import Dataset

from basicsr.utils.registry import DATASET_REGISTRY

from .device_cache import DevicePatchSampler, cache_device, check_cache_options
from .imageio import list_images, load_sr_pair, match_lr_files

logger = logging.getLogger(__name__)


def _folders(opt: dict, key: str, required: bool, dataset: str) -> list[str]:
    val = opt.get(key)
    if val is None or val == '' or val == []:
        if required:
            raise ValueError(f'{dataset}: option {key!r} is required (a folder or list of folders of images)')
        return []
    if isinstance(val, (str, os.PathLike)):
        val = [val]
    if not isinstance(val, (list, tuple)):
        raise ValueError(f'{dataset}: option {key!r} must be a folder path or a list of folders, got {val!r}')
    out = []
    for v in val:
        v = os.path.expanduser(str(v))
        if not os.path.isdir(v):
            raise ValueError(f'{dataset}: folder given in option {key!r} does not exist: {v}')
        out.append(v)
    return out


def _int_opt(opt: dict, key: str, dataset: str, default=None, minimum: int = 1) -> int:
    val = opt.get(key, default)
    if val is None:
        raise ValueError(f'{dataset}: option {key!r} is required')
    try:
        ival = int(val)
    except (TypeError, ValueError):
        raise ValueError(f'{dataset}: option {key!r} must be an integer, got {val!r}') from None
    if ival != val and not (isinstance(val, str) and str(ival) == val.strip()):
        raise ValueError(f'{dataset}: option {key!r} must be an integer, got {val!r}')
    if ival < minimum:
        raise ValueError(f'{dataset}: option {key!r} must be >= {minimum}, got {val!r}')
    return ival


def resolve_phase(opt: dict) -> str:
    """``train`` or ``test`` (``val``/``test`` both mean full images, fixed inputs)."""
    phase = opt.get('phase')
    if phase is None:
        phase = 'train' if opt.get('gt_size') else 'test'
    phase = str(phase).lower()
    if phase not in ('train', 'val', 'test'):
        raise ValueError(f"option 'phase' must be train, val or test, got {opt.get('phase')!r}")
    return 'train' if phase == 'train' else 'test'


def train_options(opt: dict, dataset: str) -> tuple[int, bool, bool, int]:
    """``(gt_size, use_hflip, use_rot, repeat)`` of a training set.

    ``repeat`` lengthens the dataset itself; BasicSR's ``dataset_enlarge_ratio``
    is applied by its sampler, not here (using both would multiply them).
    """
    return (_int_opt(opt, 'gt_size', dataset),
            bool(opt.get('use_hflip', opt.get('use_flip', True))),
            bool(opt.get('use_rot', True)),
            _int_opt(opt, 'repeat', dataset, default=1))


def augment(imgs: list[np.ndarray], hflip: bool, rot: bool) -> list[np.ndarray]:
    """Same random flip / vflip / transpose (the 8 dihedral transforms) applied to every image."""
    do_h = hflip and random.random() < 0.5
    do_v = rot and random.random() < 0.5
    do_t = rot and random.random() < 0.5
    out = []
    for im in imgs:
        if do_h:
            im = im[:, ::-1]
        if do_v:
            im = im[::-1]
        if do_t:
            im = im.swapaxes(0, 1)
        out.append(im)
    return out


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 HxW / HxWxC -> float32 CxHxW tensor in [0, 1]."""
    if img.ndim == 2:
        img = img[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div_(255.)


@DATASET_REGISTRY.register()
class SRBicubicDataset(Dataset):
    """Bicubic SR dataset (HR folders, optional LR folder); see module docstring for options."""

    #: the option keys this type reads (checked by restore_dhp.options, beside BasicSR's own loader keys)
    OPTION_KEYS = frozenset({'dataroot_gt', 'dataroot_lq', 'scale', 'gt_size', 'use_hflip', 'use_flip', 'use_rot',
                             'cache', 'repeat'})

    def __init__(self, opt: dict):
        super().__init__()
        name = f"SRBicubicDataset {opt.get('name', '')}".strip()
        self.opt = opt
        self.scale = _int_opt(opt, 'scale', name)
        self.phase = resolve_phase(opt)
        gt_folders = _folders(opt, 'dataroot_gt', True, name)
        lq_folders = _folders(opt, 'dataroot_lq', False, name)
        if lq_folders and len(lq_folders) != len(gt_folders):
            raise ValueError(f'{name}: dataroot_lq must list one LR folder per dataroot_gt folder '
                             f'({len(gt_folders)} HR vs {len(lq_folders)} LR)')
        self.gt_paths: list[str] = []
        self.lq_paths: list[str | None] = []
        for i, gf in enumerate(gt_folders):
            hrs = list_images(gf)
            if not hrs:
                raise ValueError(f'{name}: no images found in HR folder {gf} (option dataroot_gt)')
            self.gt_paths += hrs
            self.lq_paths += match_lr_files(hrs, lq_folders[i], self.scale) if lq_folders else [None] * len(hrs)
        if self.phase == 'train':
            self.gt_size, self.use_hflip, self.use_rot, self.repeat = train_options(opt, name)
            if self.gt_size % self.scale:
                raise ValueError(f'{name}: option gt_size={self.gt_size} must be a multiple of scale={self.scale}')
        else:
            self.gt_size, self.use_hflip, self.use_rot, self.repeat = None, False, False, 1
        cache = check_cache_options(opt, name)
        self.cache = bool(cache)
        self._pairs = None
        self._device_sampler = None
        if self.cache:
            pairs = [load_sr_pair(g, l, self.scale) for g, l in zip(self.gt_paths, self.lq_paths)]
            keep = list(range(len(pairs)))
            if self.phase == 'train':
                keep = [i for i, (_, hr) in enumerate(pairs) if min(hr.shape[:2]) >= self.gt_size]
                skipped = [self.gt_paths[i] for i in range(len(pairs)) if i not in set(keep)]
                if skipped:
                    logger.warning('%s: skipping %d image(s) smaller than gt_size=%d, e.g. %s', name,
                                   len(skipped), self.gt_size, skipped[0])
                if not keep:
                    raise ValueError(f'{name}: every HR image is smaller than gt_size={self.gt_size}')
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
