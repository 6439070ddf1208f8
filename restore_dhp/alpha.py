"""An image's alpha channel through a restoration, as Real-ESRGAN keeps it: restored apart, then added back.

``infer`` decodes an image with its alpha channel apart (:func:`restore_dhp.data.imageio.decode_image`,
``keep_alpha``), restores the colour, and brings the alpha plane to the output's size with the
``--alpha-upsampler``: ``bicubic`` (OpenCV's cubic resize) or ``model`` (the model itself, run on the alpha
plane as a gray image; a model that does not change the size leaves alpha as it is).  The output is then RGBA
(a gray result is replicated to three channels: PNG and WebP write no gray + alpha).  A format without alpha
(JPEG) gets the colour composited on white instead, with a notice.
"""
from __future__ import annotations

import cv2
import numpy as np

from .data.pixels import composite_on_white
from .run_model import restore_image

ALPHA_UPSAMPLERS = ('bicubic', 'model')


def alpha_dropped_notice(fmt: str) -> str:
    return f'transparency composited on white: {fmt.upper()} holds no alpha channel (--ext png or webp keeps it)'


def composite(pixels: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``pixels`` (``HxW`` or ``HxWx3``) over white with ``alpha``, same shape and dtype."""
    gray = pixels.ndim == 2
    rgb = np.repeat(pixels[:, :, None], 3, axis=2) if gray else pixels
    out = composite_on_white(np.concatenate([rgb, alpha[:, :, None]], axis=2))
    return out[:, :, 0] if gray else out


def upsample_alpha(alpha: np.ndarray, size: tuple[int, int], how: str, model=None, tile: int | None = None,
                   overlap: int = 0) -> np.ndarray:
    """``alpha`` (``HxW``) brought to ``size`` (height, width): ``bicubic`` or by ``model`` (as a gray image)."""
    if how not in ALPHA_UPSAMPLERS:
        raise ValueError(f'alpha upsampler {how!r}: choose one of {", ".join(ALPHA_UPSAMPLERS)}')
    if alpha.shape[:2] == tuple(size):
        return alpha
    if how == 'model':
        alpha = restore_image(model, alpha, tile, overlap)
        if alpha.shape[:2] == tuple(size):
            return alpha
    return cv2.resize(alpha, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)


def with_alpha(pixels: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``HxWx4`` RGBA of ``pixels`` (gray replicated) and ``alpha`` of the same size."""
    rgb = np.repeat(pixels[:, :, None], 3, axis=2) if pixels.ndim == 2 else pixels
    out = np.empty((*rgb.shape[:2], 4), rgb.dtype)
    out[:, :, :3], out[:, :, 3] = rgb, alpha
    return out
