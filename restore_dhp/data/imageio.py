"""Image reading, colour conversion, bicubic LR generation and fixed test noise.

Shared by the datasets (:mod:`restore_dhp.data.sr_dataset`,
:mod:`restore_dhp.data.denoise_dataset`), the benchmark loaders
(:mod:`restore_dhp.data.testsets`) and :mod:`restore_dhp.prepare_data`, so
that every path through the project sees exactly the same pixels and the
same noise.

Conventions: images are numpy ``uint8`` arrays, RGB channel order, ``HxWx3``
(or ``HxW`` for gray).  Gray conversion uses BT.601 luma
(``0.299 R + 0.587 G + 0.114 B``, rounded), as MATLAB ``rgb2gray`` and
OpenCV do.  LR images are made with BasicSR's MATLAB-compatible
``imresize`` (bicubic, antialiased), rounded to ``uint8`` like MATLAB does for
``uint8`` input.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.ppm', '.pgm', '.webp')


def is_image_file(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(IMG_EXTENSIONS) and not Path(path).name.startswith('.')


def list_images(folder: str | os.PathLike) -> list[str]:
    """Sorted image files directly inside ``folder`` (not recursive)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f'Image folder not found: {folder}')
    return sorted(str(p) for p in folder.iterdir() if p.is_file() and is_image_file(p))


def read_image(path: str | os.PathLike, mode: str = 'rgb') -> np.ndarray:
    """Read an image file as ``uint8``.

    ``mode``: ``'rgb'`` -> HxWx3 RGB (gray files are replicated to 3 channels),
    ``'gray'`` -> HxW (RGB files converted with BT.601 luma),
    ``'unchanged'`` -> HxW for gray files, HxWx3 RGB otherwise.
    Alpha channels are dropped; 16-bit images are scaled to 8 bit.
    Raises ``ValueError`` naming the file when it cannot be decoded.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'Image file not found: {path}')
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise ValueError(f'Cannot read image file (corrupt or not an image): {path}')
    if img.dtype == np.uint16:
        img = np.round(img.astype(np.float64) / 257.0).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ValueError(f'Unsupported image dtype {img.dtype} in {path}')
    if img.ndim == 3:
        if img.shape[2] == 1:
            img = img[..., 0]
        elif img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
        elif img.shape[2] == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        else:
            raise ValueError(f'Unsupported channel count {img.shape[2]} in {path}')
    if mode == 'rgb':
        return to_rgb3(img)
    if mode == 'gray':
        return to_gray(img)
    if mode == 'unchanged':
        return np.ascontiguousarray(img)
    raise ValueError(f"mode must be 'rgb', 'gray' or 'unchanged', got {mode!r}")


def write_png(path: str | os.PathLike, img: np.ndarray) -> None:
    """Write a uint8 RGB (HxWx3) or gray (HxW) image as PNG, creating folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode('.png', out)
    if not ok:
        raise ValueError(f'Cannot encode PNG for {path}')
    buf.tofile(str(path))


def to_rgb3(img: np.ndarray) -> np.ndarray:
    """HxW gray -> HxWx3 (replicated); HxWx3 passes through."""
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2))
    return img


def to_gray(img: np.ndarray) -> np.ndarray:
    """HxWx3 RGB uint8 -> HxW uint8 with BT.601 luma (rounded); gray passes through."""
    if img.ndim == 2:
        return img
    return cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop bottom/right so height and width are multiples of ``scale``."""
    h, w = img.shape[:2]
    return img[:h - h % scale, :w - w % scale, ...]


def matlab_resize(img: np.ndarray, factor: float) -> np.ndarray:
    """MATLAB ``imresize(img, factor, 'bicubic')`` on a uint8 image (gray HxW or HxWxC).

    Uses :func:`basicsr.utils.matlab_functions.imresize` (antialiased bicubic),
    rounded and clipped to ``uint8`` like MATLAB does for ``uint8`` inputs.
    """
    from basicsr.utils.matlab_functions import imresize

    squeeze = img.ndim == 2
    x = img[:, :, None] if squeeze else img
    y = np.clip(np.round(imresize(x.astype(np.float32), factor, antialiasing=True)), 0, 255).astype(np.uint8)
    return y[:, :, 0] if squeeze else y


def bicubic_downscale(hr: np.ndarray, scale: int) -> np.ndarray:
    """The LR image of ``hr``: cropped to a multiple of ``scale``, then MATLAB bicubic by ``1/scale``."""
    return matlab_resize(modcrop(hr, scale), 1.0 / scale)


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


# ----------------------------------------------------------------------------- noise
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
