"""The memory budget of a restoration, shared by ``infer`` and :func:`restore_dhp.restore`.

An image is refused, before any pixel is decoded, when this process's present size (its resident set:
Python, torch, the loaded model) plus what the image needs (:func:`restore_dhp.run_model.estimate_memory`:
decoded input, output, one tile's working memory, a resized copy, a kept alpha channel) is over the limit.
The limit is for the whole process: by default what it holds now plus 90% of the memory the system has
available now, or what the caller gives (``infer --max-memory-gb``, ``restore(max_memory_gb=...)``).
"""
from __future__ import annotations

import os
from typing import Mapping

import numpy as np
from torch import nn

from . import network
from .data.imageio import ImageHeader
from .run_model import estimate_memory


class MemoryBudgetError(ValueError):
    """An image over the memory limit; the message is one line naming the image, the need and the limit."""


def process_bytes() -> int:
    """This process's resident set size now, in bytes (Linux ``/proc``; elsewhere its peak so far)."""
    try:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    except (OSError, ValueError, IndexError):
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def available_bytes() -> int:
    """Memory the system has available now (Linux ``MemAvailable``; elsewhere the physical memory)."""
    try:
        with open('/proc/meminfo') as f:
            return next(int(line.split()[1]) for line in f if line.startswith('MemAvailable:')) * 1024
    except (OSError, StopIteration, ValueError):
        return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')


def memory_limit(gb: float | None = None) -> int:
    """The limit in bytes for the whole process: ``gb`` GB, or by default its size now + 90% of what is available."""
    if gb is not None:
        return int(gb * 1e9)
    return process_bytes() + int(0.9 * available_bytes())


def structure_net(structure: Mapping) -> nn.Module:
    """The network a checkpoint's metadata (or a model's ``describe()``) names, on the meta device (no memory)."""
    return network.build(structure['arch'], structure['arch_kwargs'], structure['widths'], 'meta').eval()


def array_header(pixels: np.ndarray) -> ImageHeader:
    """What :func:`restore_dhp.run_model.estimate_memory` needs of an image already decoded."""
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    return ImageHeader(pixels.shape[1], pixels.shape[0], channels, pixels.dtype.itemsize, channels == 1)


def check_image(name: str, header: ImageHeader, net: nn.Module, tile: int | None, overlap: int, limit: int,
                outscale: float | None = None, raise_with: str = '--max-memory-gb {}', alpha: bool = False) -> None:
    """Raise :class:`MemoryBudgetError` if this process's size plus the image's need is over ``limit`` bytes.

    ``raise_with``: how the caller raises the limit, ``{}`` for the value (the message suggests one);
    ``alpha``: the image's alpha channel is kept (upsampled and written).
    """
    need = estimate_memory(header, net, tile, overlap, outscale, alpha)
    fixed = process_bytes()
    if fixed + need['total'] <= limit:
        return
    gb = {k: v / 1e9 for k, v in need.items()}
    parts = [f'this process {fixed / 1e9:.1f} GB', f"output {gb['output']:.1f} GB", f"input {gb['input']:.1f} GB",
             f"one tile {gb['tile']:.1f} GB"]
    if outscale is not None:
        parts.append(f"resized to --outscale {outscale:g} {gb['resized']:.1f} GB")
    if alpha:
        parts.append(f"alpha {gb['alpha']:.1f} GB")
    total = fixed + need['total']
    suggest = raise_with.format(f'{max(1, -(-total * 1.2 // 1e9)):.0f}')
    raise MemoryBudgetError(f'{name}: {header.width}×{header.height} needs about {total / 1e9:.1f} GB '
                            f'({", ".join(parts)}), over the memory limit of {limit / 1e9:.1f} GB; raise it with '
                            f'{suggest} if this machine has the memory')
