"""Super-resolution pairs on disk: which LR file belongs to an HR file, and one (LR, HR) pair read and checked.

Used by :class:`~restore_dhp.data.sr_dataset.SRBicubicDataset` and the benchmark loaders
(:func:`restore_dhp.data.testsets.load_sr_pairs`).  An HR file without an LR partner gets the
standard benchmark degradation (:func:`restore_dhp.degradations.bicubic_downscale`).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from ..degradations import bicubic_downscale, modcrop
from .imageio import list_images, read_image


def lr_candidates(hr_stem: str, scale: int) -> list[str]:
    """LR file stems that may hold the LR version of HR image ``hr_stem``.

    Order: ``img_001x4`` (EDSR/SelfExSR benchmark layout, DIV2K ``0801x4``),
    ``img_001`` (same name), ``img_001_LR`` / ``img_001_SRF_4_LR``.
    """
    base = re.sub(r'(_SRF_\d+)?_HR$', '', hr_stem)
    return [f'{base}x{scale}', base, f'{base}_LR', f'{base}_SRF_{scale}_LR', hr_stem]


def match_lr_files(hr_paths: Sequence[str], lr_folder: str | os.PathLike, scale: int) -> list[str]:
    """For each HR path, the matching file in ``lr_folder`` (see :func:`lr_candidates`).

    Raises ``FileNotFoundError`` naming the first HR file without an LR partner.
    """
    by_stem = {}
    for p in list_images(lr_folder):
        by_stem.setdefault(Path(p).stem, p)
    out = []
    for hp in hr_paths:
        stem = Path(hp).stem
        for cand in lr_candidates(stem, scale):
            if cand in by_stem:
                out.append(by_stem[cand])
                break
        else:
            raise FileNotFoundError(
                f'No LR image for HR file {hp} in {lr_folder} '
                f'(looked for {", ".join(c + ".*" for c in lr_candidates(stem, scale)[:2])})')
    return out


def load_sr_pair(hr_path: str, lr_path: str | None, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Read one (LR, HR) pair as uint8 RGB; HR is cropped to a multiple of ``scale``.

    With ``lr_path=None`` the LR image is made by MATLAB bicubic from the HR.
    Raises ``ValueError`` naming the files when sizes do not agree.
    """
    hr = modcrop(read_image(hr_path, 'rgb'), scale)
    if lr_path is None:
        return bicubic_downscale(hr, scale), hr
    lr = read_image(lr_path, 'rgb')
    if lr.shape[0] * scale != hr.shape[0] or lr.shape[1] * scale != hr.shape[1]:
        raise ValueError(
            f'HR/LR size mismatch for scale x{scale}: HR {hr_path} is {hr.shape[1]}x{hr.shape[0]} '
            f'(after cropping to a multiple of {scale}) but LR {lr_path} is {lr.shape[1]}x{lr.shape[0]}')
    return lr, hr
