"""Benchmark test sets as numpy arrays (for evaluation scripts, outside BasicSR's loop).

Layout under ``root`` (what :mod:`restore_dhp.prepare_data` writes)::

    Set5/HR/img_001.png      Set5/LR_bicubic/X4/img_001x4.png     (also Set14, B100, Urban100)
    DIV2K/HR/0801.png        DIV2K/LR_bicubic/X4/0801x4.png       (DIV2K valid, 0801-0900)
    BSD68/test001.png        Set12/01.png                         (gray, clean)

* :func:`load_sr_pairs` -> ``[(name, lr_u8 HxWx3 RGB, hr_u8 HxWx3 RGB cropped to a multiple of scale)]``.
  If ``NAME/LR_bicubic/X{scale}`` is absent, LR is made from HR with MATLAB bicubic
  (the standard benchmark degradation) and a line is logged.
* :func:`load_denoise_set` -> ``[(name, noisy float32 HxW on 0-1 unclipped, clean_u8 HxW)]`` with the
  same fixed noise as :class:`~restore_dhp.data.denoise_dataset.DenoiseDataset` in test mode.
  For DIV2K the clean images are ``DIV2K/HR`` converted to gray (BT.601).
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np

from .sets import where_to_get
from ..degradations import add_fixed_noise
from .imageio import list_images, read_image
from .sr_pairs import load_sr_pair, match_lr_files

logger = logging.getLogger(__name__)

SR_SETS = ('Set5', 'Set14', 'B100', 'Urban100', 'DIV2K')
DENOISE_SETS = ('BSD68', 'Set12', 'DIV2K')


def _missing(folder: Path, name: str, what: str, root) -> FileNotFoundError:
    return FileNotFoundError(
        f'{name}: folder {folder} is missing or has no images; it should contain {what}. '
        f'Get it from: {where_to_get(name)} and lay it out with '
        f'`python -m restore_dhp.prepare_data --source DOWNLOADS --dest {root} --sets {name}`.')


def _images_or_raise(folder: Path, name: str, what: str, root) -> list[str]:
    if not folder.is_dir():
        raise _missing(folder, name, what, root)
    paths = list_images(folder)
    if not paths:
        raise _missing(folder, name, what, root)
    return paths


def _div2k_valid(paths: list[str]) -> list[str]:
    """Keep DIV2K validation images 0801-0900 when a folder also holds training images."""
    valid = [p for p in paths if re.fullmatch(r'\d{4}', Path(p).stem) and 801 <= int(Path(p).stem) <= 900]
    return valid or paths


def load_sr_pairs(root: str | os.PathLike, name: str, scale: int = 4) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Load SR test set ``name`` (one of :data:`SR_SETS`, or any folder in the same layout)."""
    base = Path(root) / name
    hr_dir = base / 'HR'
    hr_paths = _images_or_raise(hr_dir, name, f'the HR images of {name} (e.g. {hr_dir}/img_001.png)', root)
    if name == 'DIV2K':
        hr_paths = _div2k_valid(hr_paths)
    lr_dir = base / 'LR_bicubic' / f'X{scale}'
    if lr_dir.is_dir() and list_images(lr_dir):
        lr_paths = match_lr_files(hr_paths, lr_dir, scale)
    else:
        logger.info('%s: no LR folder %s; making LR x%d from HR with MATLAB bicubic.', name, lr_dir, scale)
        lr_paths = [None] * len(hr_paths)
    out = []
    for hp, lp in zip(hr_paths, lr_paths):
        lr, hr = load_sr_pair(hp, lp, scale)
        out.append((Path(hp).stem, lr, hr))
    return out


def denoise_clean_paths(root: str | os.PathLike, name: str) -> list[str]:
    """Clean image files of denoising set ``name`` (``NAME/*.png``, ``NAME/HR/*.png`` or DIV2K valid HR)."""
    base = Path(root) / name
    if name == 'DIV2K' or (not (base.is_dir() and list_images(base)) and (base / 'HR').is_dir()):
        folder = base / 'HR'
    else:
        folder = base
    paths = _images_or_raise(folder, name, f'the clean images of {name} (gray or RGB PNGs)', root)
    return _div2k_valid(paths) if name == 'DIV2K' else paths


def load_denoise_set(root: str | os.PathLike, name: str, sigma_255: float = 70,
                     seed: int = 0) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Load denoising test set ``name`` with fixed Gaussian noise (std ``sigma_255``/255, unclipped)."""
    out = []
    for p in denoise_clean_paths(root, name):
        clean = read_image(p, 'gray')
        stem = Path(p).stem
        out.append((stem, add_fixed_noise(clean, sigma_255, stem, seed), clean))
    return out


__all__ = ['SR_SETS', 'DENOISE_SETS', 'load_sr_pairs', 'load_denoise_set', 'denoise_clean_paths']
