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

import numpy as np
import torch

from basicsr.utils.registry import DATASET_REGISTRY

from .common import PatchDataset, folders, images_in, int_option, to_tensor
from .sr_pairs import load_sr_pair, match_lr_files


@DATASET_REGISTRY.register()
class SRBicubicDataset(PatchDataset):
    """Bicubic SR dataset (HR folders, optional LR folder); see module docstring for options."""

    #: the option keys this type reads (checked by restore_dhp.options, beside BasicSR's own loader keys)
    OPTION_KEYS = frozenset({'dataroot_gt', 'dataroot_lq', 'scale', 'gt_size', 'use_hflip', 'use_flip', 'use_rot',
                             'cache', 'repeat'})
    KIND, IMAGE, KEYS = 'SRBicubicDataset', 'HR image', ('lq', 'gt')

    def _setup(self, opt: dict, name: str) -> None:
        self.scale = int_option(opt, 'scale', name)
        gt_folders = folders(opt, 'dataroot_gt', True, name)
        lq_folders = folders(opt, 'dataroot_lq', False, name)
        if lq_folders and len(lq_folders) != len(gt_folders):
            raise ValueError(f'{name}: dataroot_lq must list one LR folder per dataroot_gt folder '
                             f'({len(gt_folders)} HR vs {len(lq_folders)} LR)')
        self.lq_paths: list[str | None] = []
        for i, gf in enumerate(gt_folders):
            hrs = images_in(gf, name, 'HR folder')
            self.gt_paths += hrs
            self.lq_paths += match_lr_files(hrs, lq_folders[i], self.scale) if lq_folders else [None] * len(hrs)

    def _keep(self, keep: list[int]) -> None:
        super()._keep(keep)
        self.lq_paths = [self.lq_paths[i] for i in keep]

    def _read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return load_sr_pair(self.gt_paths[i], self.lq_paths[i], self.scale)

    def _lq_path(self, i: int) -> str:
        return self.lq_paths[i] if self.lq_paths[i] is not None else self.gt_paths[i]

    def _item(self, i: int, arrays: tuple[np.ndarray, np.ndarray]) -> dict:
        lr, hr = arrays
        return {'lq': to_tensor(lr), 'gt': to_tensor(hr), 'lq_path': self._lq_path(i), 'gt_path': self.gt_paths[i]}

    def _batch_items(self, batch: dict[str, torch.Tensor], images: list[int]) -> list[dict]:
        return [{'lq': lq, 'gt': gt, 'lq_path': self._lq_path(i), 'gt_path': self.gt_paths[i]}
                for lq, gt, i in zip(batch['lq'].unbind(0), batch['gt'].unbind(0), images)]
