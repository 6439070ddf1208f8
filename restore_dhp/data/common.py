"""What the training datasets share: option parsing, the phase, folders of images, patch augmentation, and the
skeleton itself (:class:`PatchDataset`: the cache of decoded images, random aligned patches, the items).

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
from torch.utils.data import Dataset

from .device_cache import DevicePatchSampler, cache_device, check_cache_options
from .imageio import list_images
from .pixels import image_to_tensor

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
    """uint8 HxW / HxWxC -> float32 CxHxW tensor in [0, 1] (:func:`~restore_dhp.data.pixels.image_to_tensor`)."""
    return image_to_tensor(img)[0]


class PatchDataset(Dataset):
    """The skeleton of a training dataset: image files, the phase, patch and cache options, the decoded images kept
    in memory (or on the device, ``cache: gpu``), random aligned patches in training, whole images otherwise.

    One image ``i`` gives arrays named :attr:`KEYS` (smallest first; the last, the target, is :attr:`scale` times
    the others).  A subclass reads its own options and files into :attr:`gt_paths` (:meth:`_setup`), reads image
    ``i``'s arrays (:meth:`_read`) and makes an item of them (:meth:`_item`), or items of a batch made on the device
    (:meth:`_batch_items`).
    """

    KIND = ''             # the registered type name, for messages
    IMAGE = 'image'       # how messages name one target image
    KEYS: tuple = ()      # the arrays of one image
    scale = 1             # the target's size over the other arrays'

    def __init__(self, opt: dict):
        super().__init__()
        name = dataset_name(self.KIND, opt)
        self.opt = opt
        self.phase = resolve_phase(opt)
        self.gt_paths: list[str] = []
        self._setup(opt, name)
        self.gt_size, self.use_hflip, self.use_rot, self.repeat = patch_options(opt, self.phase, name)
        if self.phase == 'train' and self.gt_size % self.scale:
            raise ValueError(f'{name}: option gt_size={self.gt_size} must be a multiple of scale={self.scale}')
        cache = check_cache_options(opt, name)
        self.cache = bool(cache)
        self._cached, self._device_sampler = None, None
        if self.cache:
            self._fill_cache(name)
        if cache == 'gpu' and self.phase == 'train':
            scales = self._scales()
            kinds = {key: ([arrays[k] for arrays in self._cached], scales[k]) for k, key in enumerate(self.KEYS)}
            self._device_sampler = DevicePatchSampler(kinds, self.gt_size // self.scale, self.use_hflip,
                                                      self.use_rot, cache_device(name))
            self._cached = None

    def _setup(self, opt: dict, name: str) -> None:
        """Read the subclass's own options and fill :attr:`gt_paths`."""
        raise NotImplementedError

    def _read(self, i: int) -> tuple[np.ndarray, ...]:
        """Image ``i``'s arrays, in the order of :attr:`KEYS`."""
        raise NotImplementedError

    def _item(self, i: int, arrays: tuple[np.ndarray, ...]) -> dict:
        """The item of image ``i`` (``arrays``: patches in training, whole images otherwise)."""
        raise NotImplementedError

    def _batch_items(self, batch: dict[str, torch.Tensor], images: list[int]) -> list[dict]:
        """The items of a batch made on the device (``batch``: patches by key; ``images``: their image indices)."""
        raise NotImplementedError

    def _keep(self, keep: list[int]) -> None:
        """Keep only the images ``keep`` (those large enough to train on)."""
        self.gt_paths = [self.gt_paths[i] for i in keep]

    def _scales(self) -> tuple[int, ...]:
        return (1,) * (len(self.KEYS) - 1) + (self.scale,)

    def _fill_cache(self, name: str) -> None:
        cached = [self._read(i) for i in range(len(self.gt_paths))]
        keep = list(range(len(cached)))
        if self.phase == 'train':
            keep = large_enough([min(arrays[-1].shape[:2]) for arrays in cached], self.gt_size, self.gt_paths, name,
                                self.IMAGE)
        self._cached = [cached[i] for i in keep]
        self._keep(keep)

    def _arrays(self, i: int) -> tuple[np.ndarray, ...]:
        """Image ``i``'s arrays, kept or read now (then checked against ``gt_size`` in training)."""
        if self.cache:
            return self._cached[i]
        arrays = self._read(i)
        h, w = arrays[-1].shape[:2]
        if self.phase == 'train' and min(h, w) < self.gt_size:
            raise ValueError(f'{self.IMAGE[0].upper()}{self.IMAGE[1:]} {self.gt_paths[i]} ({w}x{h}) is smaller than '
                             f'gt_size={self.gt_size}')
        return arrays

    def _patches(self, arrays: tuple[np.ndarray, ...]) -> list[np.ndarray]:
        """Random aligned training patches of one image's arrays, all flipped and turned alike."""
        p = self.gt_size // self.scale
        top = random.randint(0, arrays[0].shape[0] - p)
        left = random.randint(0, arrays[0].shape[1] - p)
        crops = [a[top * s:(top + p) * s, left * s:(left + p) * s] for a, s in zip(arrays, self._scales())]
        return augment(crops, self.use_hflip, self.use_rot)

    def __len__(self) -> int:
        return len(self.gt_paths) * self.repeat

    def __getitems__(self, indices: list[int]) -> list[dict]:
        """A batch: with ``cache: gpu`` made on the device in one go, else item by item."""
        if self._device_sampler is None:
            return [self[i] for i in indices]
        return self._batch_items(self._device_sampler.sample(indices), [i % len(self.gt_paths) for i in indices])

    def __getitem__(self, index: int) -> dict:
        if self._device_sampler is not None:
            return self.__getitems__([index])[0]
        i = index % len(self.gt_paths)
        arrays = self._arrays(i)
        return self._item(i, self._patches(arrays) if self.phase == 'train' else arrays)
