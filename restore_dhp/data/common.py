"""What the training datasets share: option parsing, the phase, folders of images, patch augmentation.

Used by :class:`~restore_dhp.data.sr_dataset.SRBicubicDataset` and
:class:`~restore_dhp.data.denoise_dataset.DenoiseDataset`.  Every bad option is a ``ValueError`` whose
message names the dataset and the option.
"""
from __future__ import annotations

import logging
import os
import random
from typing import NamedTuple

import numpy as np
import torch

from .imageio import list_images

logger = logging.getLogger(__name__)


def dataset_name(kind: str, opt: dict) -> str:
    """'SRBicubicDataset DIV2K': the type and the option file's name, for messages."""
    return f"{kind} {opt.get('name', '')}".strip()


def folders(opt: dict, key: str, required: bool, dataset: str) -> list[str]:
    """The existing folder(s) given in option ``key`` (a path or a list of paths)."""
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


def images_in(folder: str, dataset: str, what: str = 'folder') -> list[str]:
    """The image files of one ``dataroot_gt`` folder; none is an error (``what``: how the message names it)."""
    paths = list_images(folder)
    if not paths:
        raise ValueError(f'{dataset}: no images found in {what} {folder} (option dataroot_gt)')
    return paths


def int_option(opt: dict, key: str, dataset: str, default=None, minimum: int = 1) -> int:
    """Option ``key`` as a whole number >= ``minimum`` (a whole-number string is accepted)."""
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


class PatchOptions(NamedTuple):
    gt_size: int | None   # patch size of the target (None: whole images)
    use_hflip: bool
    use_rot: bool
    repeat: int           # epoch = repeat x images


def train_options(opt: dict, dataset: str) -> PatchOptions:
    """``(gt_size, use_hflip, use_rot, repeat)`` of a training set.

    ``repeat`` lengthens the dataset itself; BasicSR's ``dataset_enlarge_ratio``
    is applied by its sampler, not here (using both would multiply them).
    """
    return PatchOptions(int_option(opt, 'gt_size', dataset),
                        bool(opt.get('use_hflip', opt.get('use_flip', True))),
                        bool(opt.get('use_rot', True)),
                        int_option(opt, 'repeat', dataset, default=1))


def patch_options(opt: dict, phase: str, dataset: str) -> PatchOptions:
    """The training options in the train phase; whole images, no augmentation, no repeat otherwise."""
    return train_options(opt, dataset) if phase == 'train' else PatchOptions(None, False, False, 1)


def large_enough(shortest_sides: list[int], gt_size: int, paths: list[str], dataset: str, what: str) -> list[int]:
    """Indices of the images whose shortest side is at least ``gt_size``; the others are skipped with a warning."""
    keep = [i for i, side in enumerate(shortest_sides) if side >= gt_size]
    skipped = [p for p, side in zip(paths, shortest_sides) if side < gt_size]
    if skipped:
        logger.warning('%s: skipping %d image(s) smaller than gt_size=%d, e.g. %s', dataset, len(skipped), gt_size,
                       skipped[0])
    if not keep:
        raise ValueError(f'{dataset}: every {what} is smaller than gt_size={gt_size}')
    return keep


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
