"""The library entry: ``restore_dhp.restore(image_or_path, weights=...)`` returns the restored image.

    import restore_dhp
    out = restore_dhp.restore('photo.png', weights='srresnet_x4_dhp40')   # a shipped name or a file; H x W x 3 uint8

It is :func:`restore_dhp.checkpoint.load_checkpoint`, :func:`restore_dhp.deploy.prepare` and
:func:`restore_dhp.run_model.restore_image` in one call, with the deployed model kept for the next call
with the same file and settings (the key is the resolved file with its size and modification time, so
the same file named another way is not loaded again, and a file replaced on disk is).  The memory budget
is ``infer``'s (:mod:`restore_dhp.budget`): an image that would take this process over the limit is refused
in one line before it is decoded.
"""
from __future__ import annotations

import copy
import os
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .budget import array_header, check_image, memory_limit, structure_net
from .catalogue import resolve_model_name
from .checkpoint import load_checkpoint
from .data.imageio import decode_image, read_file_header
from .deploy import DeployedModel, UnusableWeightsError, prepare
from .latency import target_mismatch
from .run_model import DEFAULT_OVERLAP, DEFAULT_TILE, check_image_array, check_tiling, resolve_device, restore_image


@lru_cache(maxsize=4)
def _deployed(path: str, stamp: tuple[int, int, int], device: str, backend: str,
              precision: str) -> tuple[DeployedModel, dict]:
    loaded = load_checkpoint(path, device)
    try:
        deployed = prepare(loaded.model, device, backend, precision)
    except UnusableWeightsError as e:
        raise UnusableWeightsError(f'{path}: {e}') from None
    mismatch = target_mismatch(loaded.meta, torch.device(device).type, backend)
    if mismatch:
        warnings.warn(f'{path}: {mismatch.removeprefix("warning: ")}', stacklevel=3)
    return deployed, loaded.meta


def weights_file(weights: str | os.PathLike) -> Path:
    """The checkpoint file ``weights`` names: a shipped model's name (``srresnet_x4_dhp40``: a word with no folder
    and no extension, when no such file exists here) or a path."""
    path = Path(weights)
    if isinstance(weights, str) and not path.exists() and path.name == weights and not path.suffix:
        return resolve_model_name(weights)
    return path


def _model(weights, device: str, backend: str, precision: str) -> tuple[DeployedModel, dict | None]:
    """The deployed model and its structure (arch, widths, arch_kwargs; ``None`` when it does not say)."""
    if isinstance(weights, DeployedModel):
        return weights, weights.structure
    dev = str(resolve_device(device))
    if isinstance(weights, nn.Module):
        deployed = prepare(weights, dev, backend, precision)
        return deployed, deployed.structure
    path = weights_file(weights)
    if path.is_file():
        stat = path.stat()
        return _deployed(str(path.resolve()), (stat.st_size, stat.st_mtime_ns, stat.st_ino), dev, backend, precision)
    return _deployed(str(path), (0, 0, 0), dev, backend, precision)  # the loader says what is wrong


def _budget_net(model: DeployedModel, structure) -> nn.Module | None:
    """The model on the meta device, for the memory estimate (``None`` when it cannot be had)."""
    if structure is not None:
        try:
            return structure_net(structure)
        except (KeyError, TypeError, ValueError):
            pass
    module = model.module
    if module is None or not hasattr(module, 'scale'):
        return None
    return copy.deepcopy(module).to('meta')


def restore(image: np.ndarray | str | os.PathLike, weights: str | os.PathLike | nn.Module | DeployedModel,
            device: str = 'auto', backend: str = 'fused', precision: str = 'fp32', tile: int | None = DEFAULT_TILE,
            overlap: int = DEFAULT_OVERLAP, max_memory_gb: float | None = None) -> np.ndarray:
    """Restore one image (super-resolution or denoising, whichever the weights are for).

    ``image``: a file path (decoded by :func:`restore_dhp.data.imageio.decode_image`: gray stays gray,
    16-bit stays 16-bit, transparency on white) or a ``uint8``/``uint16`` array, ``HxW`` gray or ``HxWx3``
    RGB (not BGR).  ``weights``: a shipped model's name (e.g. ``srresnet_x4_dhp40``, as ``infer -n`` takes
    it), a compact checkpoint file, or a model already loaded or deployed.
    ``device``: ``auto`` (CUDA if present), ``cpu``, ``cuda`` or ``cuda:N``; ``backend`` and ``precision``
    as :func:`restore_dhp.deploy.prepare` takes them.  ``tile``: input tile side (``None``: one pass).
    ``max_memory_gb``: the limit for this whole process (default: its size now + 90% of the available memory).
    Returns an array of the input's dtype: ``scale`` times larger for SR, gray for gray input.
    Every refusal is a ``ValueError`` subclass with a one-line message.
    """
    check_tiling(tile, overlap)
    if max_memory_gb is not None and not max_memory_gb > 0:
        raise ValueError(f'max_memory_gb must be positive, got {max_memory_gb!r}')
    is_file = isinstance(image, (str, os.PathLike))
    if not is_file:
        image = np.asarray(image) if isinstance(image, (list, tuple)) else image
        check_image_array(image)
    model, structure = _model(weights, device, backend, precision)
    net = _budget_net(model, structure)
    if net is not None:
        header = read_file_header(image) if is_file else array_header(image)
        check_image(str(image) if is_file else 'image', header, net, tile, overlap, memory_limit(max_memory_gb),
                    raise_with='max_memory_gb={}')
    pixels = decode_image(image).pixels if is_file else image
    return restore_image(model, pixels, tile, overlap)
