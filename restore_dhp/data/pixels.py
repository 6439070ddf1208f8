"""Pixel values and channels: the one 8-bit conversion, gray and RGB, transparency, and the image <-> tensor pair.

Images are numpy arrays: ``uint8`` or ``uint16`` (``HxW`` gray or ``HxWx3`` RGB), as
:func:`restore_dhp.data.imageio.decode_image` gives them, or ``float32`` on the 0-1 scale (a noisy
denoising input, not clipped).  Models take ``1 x C x H x W`` float32 tensors on the 0-1 scale.

* :func:`to_uint8` -- the one reduction to 8 bits (``round(v / 257)`` from 16 bits, ``round(v * 255)``
  clipped from the 0-1 scale);
* :func:`to_rgb3` / :func:`to_gray` -- gray replicated to RGB, RGB to gray with BT.601 luma
  (``0.299 R + 0.587 G + 0.114 B``, rounded), as MATLAB ``rgb2gray`` and OpenCV do;
* :func:`composite_on_white` -- RGBA over white;
* :func:`image_to_tensor` / :func:`tensor_to_image` -- the one image <-> tensor pair, used by the demo,
  ``infer``, the evaluation, the library call and the training datasets alike.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

NOTICE_16BIT_TO_8BIT = '16-bit image reduced to 8-bit'


class ImageFormatError(ValueError):
    """An image the model cannot take (wrong dtype, channel count, size)."""


def peak(dtype) -> float:
    """Full intensity of an integer image's dtype: 255 (``uint8``) or 65535 (``uint16``); else
    :class:`ImageFormatError`."""
    if dtype == np.uint8:
        return 255.0
    if dtype == np.uint16:
        return 65535.0
    raise ImageFormatError(f'unsupported pixel type {np.dtype(dtype)}: expected 8- or 16-bit integers')


def to_uint8(img: np.ndarray, notices: list[str] | None = None) -> np.ndarray:
    """An image as ``uint8``: ``uint16`` -> ``round(v / 257)`` (appending the notice), ``float32`` on the 0-1
    scale -> ``round(v * 255)`` clipped; ``uint8`` passes through."""
    if img.dtype == np.uint8:
        return img
    if np.issubdtype(img.dtype, np.floating):
        return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    if notices is not None:
        notices.append(NOTICE_16BIT_TO_8BIT)
    out = np.empty(img.shape, np.uint8)
    for rows in range(0, img.shape[0], 1024):  # in bands: no full-size float copy
        band = img[rows:rows + 1024].astype(np.float32)
        out[rows:rows + 1024] = np.round(band / 257.0)
    return out


def unit_range(img: np.ndarray) -> np.ndarray:
    """A uint8 or uint16 image as float32 in [0, 1]."""
    return img.astype(np.float32) / (65535.0 if img.dtype == np.uint16 else 255.0)


def to_rgb3(img: np.ndarray) -> np.ndarray:
    """HxW gray -> HxWx3 (replicated); HxWx3 passes through."""
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2))
    return img


def to_gray(img: np.ndarray) -> np.ndarray:
    """HxWx3 RGB -> HxW with BT.601 luma (rounded, same dtype: uint8 or uint16); gray passes through."""
    if img.ndim == 2:
        return img
    return cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)


def composite_on_white(bgra: np.ndarray) -> np.ndarray:
    """``HxWx4`` (8- or 16-bit; BGRA or RGBA) over a white background -> ``HxWx3``, rounded, same dtype."""
    top = np.iinfo(bgra.dtype).max
    alpha = bgra[:, :, 3:4].astype(np.float32) / top
    out = bgra[:, :, :3].astype(np.float32) * alpha + top * (1.0 - alpha)
    return np.clip(np.round(out), 0, top).astype(bgra.dtype)


def to_model_channels(img: np.ndarray, channels: int | None) -> np.ndarray:
    """``HxW``/``HxWx3`` -> ``HxWxchannels``: gray replicated to RGB, or RGB to gray with BT.601 luma
    (``channels=None``: the image's own channels)."""
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise ImageFormatError(f'unsupported image shape {img.shape}: expected H x W or H x W x 3 '
                               '(decode files with restore_dhp.data.imageio.decode_image)')
    if channels == 1:
        return to_gray(img)[:, :, None]
    if channels is None:
        return img if img.ndim == 3 else img[:, :, None]
    return np.repeat(img[:, :, None], 3, axis=2) if img.ndim == 2 else img


def image_to_tensor(img: np.ndarray, channels: int | None = None, device=None) -> torch.Tensor:
    """``uint8``/``uint16`` image (or ``float32`` on the 0-1 scale, taken as it is) -> ``1 x channels x H x W``
    float32 tensor in [0, 1] on ``device`` (``channels=None``: the image's own)."""
    top = None if img.dtype == np.float32 else peak(img.dtype)
    img = to_model_channels(img, channels)
    t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).to(device or 'cpu').float()
    return (t if top is None else t.div_(top)).unsqueeze(0)


def tensor_to_image(t: torch.Tensor, dtype=np.uint8) -> np.ndarray:
    """``1 x C x H x W`` tensor in [0, 1] -> ``HxWxC`` (``HxW`` for one channel) ``dtype`` image, rounded, clipped.

    The rounding happens in float32 on the tensor's device; no float64 copy is made.
    """
    top = peak(dtype)
    q = t.detach()[0].clamp(0, 1).mul(top).round_()
    arr = q.to(torch.uint8 if dtype == np.uint8 else torch.int32).permute(1, 2, 0).cpu().numpy()
    arr = arr if dtype == np.uint8 else arr.astype(np.uint16)
    return arr[:, :, 0] if arr.shape[2] == 1 else arr
