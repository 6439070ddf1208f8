"""The library entry: ``restore_dhp.restore(image_or_path, weights=...)`` returns the restored image.

    import restore_dhp
    out = restore_dhp.restore('photo.png', weights='weights/srresnet_x4_dhp40.safetensors')   # H x W x 3 uint8

It is :func:`restore_dhp.checkpoint.load_checkpoint`, :func:`restore_dhp.deploy.prepare` and
:func:`restore_dhp.run_model.restore_image` in one call, with the deployed model kept for the next call
with the same file and settings (the file's size and modification time are part of the key).
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
from torch import nn

from .checkpoint import load_checkpoint
from .data.imageio import decode_image
from .deploy import DeployedModel, prepare
from .run_model import DEFAULT_OVERLAP, DEFAULT_TILE, resolve_device, restore_image


@lru_cache(maxsize=4)
def _deployed(path: str, stamp: tuple[int, int], device: str, backend: str, precision: str) -> DeployedModel:
    return prepare(load_checkpoint(path, device).model, device, backend, precision)


def restore(image: np.ndarray | str | os.PathLike, weights: str | os.PathLike | nn.Module | DeployedModel,
            device: str = 'auto', backend: str = 'fused', precision: str = 'fp32', tile: int | None = DEFAULT_TILE,
            overlap: int = DEFAULT_OVERLAP) -> np.ndarray:
    """Restore one image (super-resolution or denoising, whichever the weights are for).

    ``image``: a file path (decoded by :func:`restore_dhp.data.imageio.decode_image`: gray stays gray,
    16-bit stays 16-bit, transparency on white) or a ``uint8``/``uint16`` array, ``HxW`` gray or ``HxWx3``
    RGB (not BGR).  ``weights``: a compact checkpoint file, or a model already loaded or deployed.
    ``device``: ``auto`` (CUDA if present), ``cpu``, ``cuda`` or ``cuda:N``; ``backend`` and ``precision``
    as :func:`restore_dhp.deploy.prepare` takes them.  ``tile``: input tile side (``None``: one pass).
    Returns an array of the input's dtype: ``scale`` times larger for SR, gray for gray input.
    """
    pixels = decode_image(image).pixels if isinstance(image, (str, os.PathLike)) else np.asarray(image)
    if isinstance(weights, DeployedModel):
        model = weights
    else:
        dev = str(resolve_device(device))
        if isinstance(weights, nn.Module):
            model = prepare(weights, dev, backend, precision)
        else:
            stat = Path(weights).stat() if Path(weights).is_file() else None
            stamp = (stat.st_size, stat.st_mtime_ns) if stat else (0, 0)  # a missing file: the loader says so
            model = _deployed(str(weights), stamp, dev, backend, precision)
    return restore_image(model, pixels, tile, overlap)
