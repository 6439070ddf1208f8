"""The degradations the tasks undo, made the same way everywhere: MATLAB bicubic downscaling and fixed test noise.

Shared by the training datasets (:mod:`restore_dhp.data`), the benchmark loaders
(:mod:`restore_dhp.data.testsets`), :mod:`restore_dhp.prepare_data`, the tasks' uploads
(:mod:`restore_dhp.tasks`) and the demo's examples, so that every path through the project sees
exactly the same low-resolution pixels and the same noise.

LR images are made with BasicSR's MATLAB-compatible ``imresize`` (bicubic, antialiased), rounded
to ``uint8`` like MATLAB does for ``uint8`` input.  Test noise is Gaussian, seeded from the image's
name and a seed (:func:`noise_seed_for`), added in float and not clipped (the DnCNN benchmark
convention).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable

import numpy as np

from ._compat import basicsr_module

imresize = basicsr_module('basicsr.utils.matlab_functions').imresize  # without importing all of BasicSR


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop bottom/right so height and width are multiples of ``scale``."""
    h, w = img.shape[:2]
    return img[:h - h % scale, :w - w % scale, ...]


def matlab_resize(img: np.ndarray, factor: float) -> np.ndarray:
    """MATLAB ``imresize(img, factor, 'bicubic')`` on a uint8 image (gray HxW or HxWxC).

    Uses :func:`basicsr.utils.matlab_functions.imresize` (antialiased bicubic),
    rounded and clipped to ``uint8`` like MATLAB does for ``uint8`` inputs.
    """
    squeeze = img.ndim == 2
    x = img[:, :, None] if squeeze else img
    y = np.clip(np.round(imresize(x.astype(np.float32), factor, antialiasing=True)), 0, 255).astype(np.uint8)
    return y[:, :, 0] if squeeze else y


def bicubic_downscale(hr: np.ndarray, scale: int) -> np.ndarray:
    """The LR image of ``hr``: cropped to a multiple of ``scale``, then MATLAB bicubic by ``1/scale``."""
    return matlab_resize(modcrop(hr, scale), 1.0 / scale)


def noise_seed_for(name: str, seed: int = 0) -> int:
    """64-bit RNG seed derived from ``seed`` and an image name (file stem, no extension).

    Deterministic across runs, processes and machines (SHA-256, not Python's
    randomised ``hash``).
    """
    stem = Path(str(name)).stem
    digest = hashlib.sha256(f'restore_dhp-noise:{int(seed)}:{stem}'.encode('utf-8')).digest()
    return int.from_bytes(digest[:8], 'little')


def fixed_noise(shape: Iterable[int], sigma_255: float, name: str, seed: int = 0) -> np.ndarray:
    """Gaussian noise for test/validation, float32 on the 0-1 scale (std ``sigma_255/255``).

    The same (``name``, ``seed``, ``shape``, ``sigma_255``) always gives the same
    noise (NumPy PCG64 ``Generator`` seeded by :func:`noise_seed_for`), so every
    model and every run sees the same noisy input.
    """
    rng = np.random.Generator(np.random.PCG64(noise_seed_for(name, seed)))
    return (rng.standard_normal(tuple(shape)) * (float(sigma_255) / 255.0)).astype(np.float32)


def add_fixed_noise(clean_u8: np.ndarray, sigma_255: float, name: str, seed: int = 0) -> np.ndarray:
    """``clean/255 + fixed_noise`` as float32, NOT clipped to [0, 1] (DnCNN benchmark convention)."""
    return clean_u8.astype(np.float32) / 255.0 + fixed_noise(clean_u8.shape, sigma_255, name, seed)
