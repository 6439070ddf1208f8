"""Running a restoration model on images: conversion, tiling, device choice.

Images are numpy arrays (uint8 or uint16, H x W or H x W x C, RGB order); models
take N x C x H x W float tensors in the 0-1 range.  Large inputs are processed
in overlapping tiles so memory stays bounded; each tile's output is cropped to
its core before it is placed, so seams come only from the receptive field
beyond the overlap.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .data.imageio import to_gray

DEFAULT_TILE = 256      # input pixels per tile side
DEFAULT_OVERLAP = 32    # input pixels of context on each side of a tile


class ImageFormatError(ValueError):
    """An image the model cannot take (wrong dtype, channel count, size)."""


def auto_device() -> torch.device:
    return torch.device('cuda' if torch.cuda.is_available() else 'cpu')


def to_model_channels(img: np.ndarray, channels: int) -> np.ndarray:
    """Convert gray/RGB/RGBA to the model's channel count (RGBA: alpha dropped; RGB->gray: ITU-R BT.601 luma)."""
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4):
        raise ImageFormatError(f'unsupported image shape {img.shape}: expected H x W, H x W x 3 or H x W x 4')
    if img.shape[2] == 4:
        img = img[:, :, :3]
    if channels == 3 and img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif channels == 1 and img.shape[2] == 3:
        if img.dtype == np.uint8:
            img = to_gray(img)[:, :, None]
        else:  # 16-bit: same BT.601 weights, kept at 16 bits
            img = np.round(img.astype(np.float64) @ np.array([0.299, 0.587, 0.114]))[:, :, None].astype(img.dtype)
    return img


def image_to_tensor(img: np.ndarray, channels: int, device=None) -> torch.Tensor:
    """uint8/uint16 image -> 1 x C x H x W float32 tensor in [0, 1]."""
    if img.dtype == np.uint8:
        scale = 255.0
    elif img.dtype == np.uint16:
        scale = 65535.0
    else:
        raise ImageFormatError(f'unsupported pixel type {img.dtype}: expected 8- or 16-bit integers')
    img = to_model_channels(img, channels)
    t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div_(scale)
    return t.unsqueeze(0).to(device or 'cpu')


def tensor_to_image(t: torch.Tensor, dtype=np.uint8) -> np.ndarray:
    """1 x C x H x W tensor in [0, 1] -> H x W x C (or H x W for one channel) image, rounded and clipped."""
    peak = 255.0 if dtype == np.uint8 else 65535.0
    arr = t.detach().squeeze(0).clamp(0, 1).mul(peak).round().to('cpu', torch.float64).numpy()
    arr = arr.transpose(1, 2, 0).astype(dtype)
    return arr[:, :, 0] if arr.shape[2] == 1 else arr


@torch.no_grad()
def forward_tiled(model: nn.Module, x: torch.Tensor, scale: int, tile: int | None = DEFAULT_TILE,
                  overlap: int = DEFAULT_OVERLAP) -> torch.Tensor:
    """``model(x)`` computed tile by tile (``tile=None`` or an input that fits in one tile: one pass)."""
    _, _, h, w = x.shape
    if tile is None or (h <= tile and w <= tile):
        return model(x)
    if tile <= 0 or overlap < 0:
        raise ValueError('tile must be positive and overlap non-negative')
    out = None
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            bottom, right = min(top + tile, h), min(left + tile, w)
            t0, l0 = max(top - overlap, 0), max(left - overlap, 0)
            t1, l1 = min(bottom + overlap, h), min(right + overlap, w)
            y = model(x[:, :, t0:t1, l0:l1])
            if out is None:
                out = y.new_zeros(y.shape[0], y.shape[1], h * scale, w * scale)
            out[:, :, top * scale:bottom * scale, left * scale:right * scale] = y[
                :, :, (top - t0) * scale:(bottom - t0) * scale, (left - l0) * scale:(right - l0) * scale]
    return out


def restore_image(model: nn.Module, img: np.ndarray, tile: int | None = DEFAULT_TILE,
                  overlap: int = DEFAULT_OVERLAP, device=None) -> np.ndarray:
    """Restore one image with a loaded model; returns uint8 (or uint16 for 16-bit input) in the model's channels."""
    device = device or next(model.parameters()).device
    x = image_to_tensor(img, model.in_channels, device)
    y = forward_tiled(model, x, model.scale, tile, overlap)
    return tensor_to_image(y, np.uint16 if img.dtype == np.uint16 else np.uint8)
