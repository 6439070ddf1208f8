"""Running a loaded restoration model on images: device choice, checks, tiling.

The library behind ``python -m restore_dhp.infer`` (the command), the benchmark and the demo.
Images are numpy arrays as :func:`restore_dhp.data.imageio.decode_image` gives them
(``uint8`` or ``uint16``, ``HxW`` gray or ``HxWx3`` RGB); models take ``N x C x H x W``
float32 tensors in the 0-1 range (the one conversion each way: :mod:`restore_dhp.data.pixels`).

Memory: :func:`restore_image` runs large inputs in overlapping tiles, converting each
tile's input to float32 on its own, and writes each tile's output, already converted
to the final dtype, into one preallocated output array, so beyond the model's working
memory for one tile a request needs the decoded input plus the output at its final
size; :func:`estimate_memory` says how much from the image header alone, before
anything is decoded.  Each tile's output is cropped to its core before it is placed,
so seams come only from the receptive field beyond the overlap.
"""
from __future__ import annotations

import argparse
import math
import re
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from . import network
from .data.pixels import ImageFormatError, image_to_tensor, peak, tensor_to_image, to_gray
from .deploy import DeployedModel

# input pixels per tile side.  Peak memory of SR x4 with DHP-20 on the CPU above the process's fixed cost
# (scripts/benchmark_memory.py-style probe, 1000x1000 input): tile 256 1.23 GB, 192 0.48 GB, 128 0.26 GB;
# 192 keeps a 4000x4000 input under 3 GB (2.80 GB peak RSS in all with infer's heap reuse off) at a modest
# cost in overlap (1.8x the pixels of the cores at 192, 1.6x at 256).
DEFAULT_TILE = 192
DEFAULT_OVERLAP = 32    # input pixels of context on each side of a tile
DEVICE_CHOICES = ('auto', 'cpu', 'cuda', 'cuda:N')


def device_arg(text: str) -> str:
    """An argparse ``type`` for ``--device``: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (checked when resolved)."""
    if text in ('auto', 'cpu', 'cuda') or re.fullmatch(r'cuda:\d+', text):
        return text
    raise argparse.ArgumentTypeError(f'{text!r}: choose auto, cpu, cuda or cuda:N')


def resolve_device(name: str | torch.device | None = 'auto') -> torch.device:
    """``'auto'``/``None``: CUDA when available, else the CPU; ``'cuda'``/``'cuda:N'`` without that device: a
    one-line ``ValueError``."""
    if name is None or str(name) == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if not isinstance(name, torch.device) and not re.fullmatch(r'cpu|cuda(:\d+)?', str(name)):
        raise ValueError(f'device {name!r}: choose auto, cpu, cuda or cuda:N')
    device = torch.device(name)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'device {name}: no CUDA device is available (use auto or cpu)')
    if device.type == 'cuda' and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f'device {name}: there are {torch.cuda.device_count()} CUDA device(s), cuda:0 to '
                         f'cuda:{torch.cuda.device_count() - 1}')
    return device


def model_device(model: nn.Module | DeployedModel) -> torch.device:
    """Where a model runs: a deployed model states it, a plain module's parameters tell it."""
    return model.device if isinstance(model, DeployedModel) else next(model.parameters()).device


def check_image_array(img: np.ndarray) -> None:
    """An ``HxW`` or ``HxWx3`` (``HxWx1``) ``uint8``/``uint16`` array with pixels; else one-line
    :class:`ImageFormatError`."""
    if not isinstance(img, np.ndarray):
        raise ImageFormatError(f'expected a numpy array or an image file, got {type(img).__name__}')
    peak(img.dtype)
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (1, 3))):
        raise ImageFormatError(f'unsupported image shape {img.shape}: expected H x W or H x W x 3 '
                               '(decode files with restore_dhp.data.imageio.decode_image)')
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ImageFormatError(f'empty image (shape {img.shape}): nothing to restore')


def check_tiling(tile: int | None, overlap: int) -> None:
    """``tile``: ``None`` (one pass) or a positive integer; ``overlap`` a non-negative one; else a one-line
    ``ValueError``."""
    if tile is not None and (isinstance(tile, bool) or not isinstance(tile, (int, np.integer)) or tile < 1):
        raise ValueError(f'tile must be None (one pass) or a positive number of pixels, got {tile!r}')
    if isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)) or overlap < 0:
        raise ValueError(f'overlap must be a non-negative number of pixels, got {overlap!r}')


def tile_grid(h: int, w: int, tile: int, overlap: int) -> Iterator[tuple[slice, slice, slice, slice]]:
    """For each tile: the input window (rows, cols, with ``overlap`` context) and the tile's core inside it."""
    if tile <= 0 or overlap < 0:
        raise ValueError('tile must be positive and overlap non-negative')
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            bottom, right = min(top + tile, h), min(left + tile, w)
            t0, l0 = max(top - overlap, 0), max(left - overlap, 0)
            t1, l1 = min(bottom + overlap, h), min(right + overlap, w)
            yield (slice(t0, t1), slice(l0, l1),
                   slice(top - t0, bottom - t0), slice(left - l0, right - l0))


def tile_count(h: int, w: int, tile: int | None) -> int:
    """How many tiles :func:`restore_image` runs for an ``h x w`` input (1: one pass)."""
    return 1 if tile is None or (h <= tile and w <= tile) else -(-h // tile) * -(-w // tile)


def _scaled(s: slice, scale: int, offset: int = 0) -> slice:
    """``s`` shifted by ``offset`` input pixels, in output pixels."""
    return slice((s.start + offset) * scale, (s.stop + offset) * scale)


@torch.no_grad()
def forward_tiled(model: nn.Module | DeployedModel, x: torch.Tensor, scale: int, tile: int | None = DEFAULT_TILE,
                  overlap: int = DEFAULT_OVERLAP) -> torch.Tensor:
    """``model(x)`` computed tile by tile into one output tensor (``tile=None`` or a small input: one pass)."""
    _, _, h, w = x.shape
    if tile is None or (h <= tile and w <= tile):
        return model(x)
    out = None
    for rows, cols, core_r, core_c in tile_grid(h, w, tile, overlap):
        y = model(x[:, :, rows, cols])
        if out is None:
            out = y.new_empty(y.shape[0], y.shape[1], h * scale, w * scale)
        out[:, :, _scaled(core_r, scale, rows.start), _scaled(core_c, scale, cols.start)] = \
            y[:, :, _scaled(core_r, scale), _scaled(core_c, scale)]
    return out


@torch.no_grad()
def restore_image(model: nn.Module | DeployedModel, img: np.ndarray, tile: int | None = DEFAULT_TILE,
                  overlap: int = DEFAULT_OVERLAP, on_tile: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Restore one image with a loaded or deployed model (``in_channels``, ``scale``); returns the input's dtype.

    Gray input gives gray output (for an RGB model: the BT.601 luma of its three
    output channels, which all saw the same input); RGB input gives the model's
    channels.  Tiles are written, already converted, into one preallocated array.
    ``on_tile(done, total)`` is called after each tile (progress for large inputs).
    """
    check_image_array(img)
    check_tiling(tile, overlap)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    device = model_device(model)
    facts = network.facts(model)
    dtype, scale = img.dtype, int(facts.scale)
    h, w = img.shape[:2]
    gray_out = img.ndim == 2 or facts.in_channels == 1
    out = np.empty((h * scale, w * scale) if gray_out else (h * scale, w * scale, 3), dtype)
    total = tile_count(h, w, tile)
    windows = [(slice(0, h), slice(0, w), slice(0, h), slice(0, w))] if total == 1 else tile_grid(h, w, tile, overlap)
    for done, (rows, cols, core_r, core_c) in enumerate(windows, 1):
        x = image_to_tensor(img[rows, cols], facts.in_channels, device)   # one tile as float32 at a time
        y = model(x)[:, :, _scaled(core_r, scale), _scaled(core_c, scale)]
        del x
        part = tensor_to_image(y, dtype)
        del y
        if gray_out and part.ndim == 3:
            part = to_gray(part)
        out[_scaled(core_r, scale, rows.start), _scaled(core_c, scale, cols.start)] = part
        if on_tile is not None:
            on_tile(done, total)
    return out


# ----------------------------------------------------------------------------- memory budget
#: one tile's peak working memory on the CPU, as a multiple of its largest activation (measured for SR x4
#: DHP-20 at tiles 128-256: 4.6-7.8x; the allocator's caching and oneDNN's scratch space come on top of the
#: tensors themselves)
ACTIVATION_FACTOR = 6


def largest_activation_bytes(net: nn.Module, channels: int, height: int, width: int) -> int:
    """Bytes of the largest tensor ``net`` produces on a ``height x width`` input, from a forward on the meta
    device (``net`` built there, e.g. ``restore_dhp.network.build(..., device="meta")``): nothing is allocated."""
    sizes = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: sizes.append(out.numel() * out.element_size()))
             for m in net.modules() if not any(True for _ in m.children())]
    try:
        with torch.no_grad():
            net(torch.empty(1, channels, height, width, device='meta'))
    finally:
        for hook in hooks:
            hook.remove()
    return max(sizes, default=0)


def outscale_size(height: int, width: int, outscale: float) -> tuple[int, int]:
    """(height, width) of a result resized to ``outscale`` times an input of ``height`` x ``width``."""
    return max(1, round(height * outscale)), max(1, round(width * outscale))


def estimate_memory(header, net: nn.Module, tile: int | None, overlap: int = DEFAULT_OVERLAP,
                    outscale: float | None = None, alpha: bool = False) -> dict[str, int]:
    """Bytes :func:`restore_image` needs for an image of ``header`` (:class:`~restore_dhp.data.imageio.ImageHeader`)
    beyond the process's fixed cost: ``input`` (decoded pixels), ``output`` (at the model's scale, in the image's
    dtype), ``tile`` (one tile's working memory), ``resized`` (the output resized to ``outscale`` times the input,
    as ``infer --outscale`` does; 0 without), ``alpha`` (a kept alpha channel: its plane in and out, and the
    output with it added; 0 without) and ``total``, the peak (decoding briefly holds a second copy; the resize
    holds the output and its resized copy).  ``net``: the model on the meta device (its ``in_channels`` and
    ``scale``)."""
    facts = network.facts(net)
    h, w, scale = header.height, header.width, int(facts.scale)
    pixels = h * w * (1 if header.gray else 3) * header.bytes_per_sample
    out_channels = 1 if header.gray or facts.in_channels == 1 else 3
    output = h * scale * w * scale * out_channels * header.bytes_per_sample
    bytes_per_pixel = out_channels * header.bytes_per_sample
    out_pixels = math.prod(outscale_size(h, w, outscale)) if outscale is not None else h * scale * w * scale
    resized = 0 if outscale is None else out_pixels * bytes_per_pixel
    with_alpha = 0 if not alpha else (h * w + out_pixels * (out_channels + 2)) * header.bytes_per_sample
    win_h, win_w = (h, w) if tile is None else (min(h, tile + 2 * overlap), min(w, tile + 2 * overlap))
    work = ACTIVATION_FACTOR * largest_activation_bytes(net, facts.in_channels, win_h, win_w)
    total = max(2 * header.decoded_bytes, pixels + output + max(work, resized) + with_alpha)
    return {'input': pixels, 'output': output, 'tile': work, 'resized': resized, 'alpha': with_alpha, 'total': total}
