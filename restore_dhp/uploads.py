"""What the demo accepts as an image: only files the web framework stored as uploads, decoded with
the project's one decoder (:func:`restore_dhp.data.imageio.decode_image`) under a size bound.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .data.imageio import NOTICE_16BIT, ImageReadError, decode_image
from .data.pixels import to_uint8
from .tasks import InputError, size_text

MAX_DECODE_BYTES = 256 * 2**20    # refuse, from the header, any upload whose decoded pixels take more


def _sentence(notice: str) -> str:
    return notice[0].upper() + notice[1:] + ('' if notice.endswith('.') else '.')


UPLOAD_REFUSED = 'Only images uploaded through this page are accepted; upload the image again.'


def uploaded_file(value: Any, upload_folder: str | os.PathLike) -> str | None:
    """The server-side path of an upload, accepted only if it is a file inside ``upload_folder``.

    ``value``: what the page sends for the image (Gradio's file-data dict, or a path string); ``None``
    or an empty value gives ``None``.  ``upload_folder``: where the web framework stores uploads (for
    Gradio, ``gradio.utils.get_upload_folder()``).  Any other path, or a link leading out of that folder,
    is refused with :data:`UPLOAD_REFUSED`, the same line whether the file exists or not, so a caller
    of the API can neither read server files nor learn which exist.
    """
    path = value.get('path') if isinstance(value, dict) else value
    if not path:
        return None
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(UPLOAD_REFUSED)
    real, folder = os.path.realpath(path), os.path.realpath(upload_folder)
    if os.path.commonpath([real, folder]) != folder or real == folder or not os.path.isfile(real):
        raise InputError(UPLOAD_REFUSED)
    return real


def decode_upload(path: str | os.PathLike, max_pixels: int | None = None,
                  keep_16bit: bool = False) -> tuple[np.ndarray, list[str]]:
    """Read an uploaded file with the project's one decoder (H x W gray or H x W x 3 RGB), with notices.

    The decoded size (pixels × bytes per pixel) is checked from the header before any pixel is
    decoded (:data:`MAX_DECODE_BYTES`).  ``max_pixels``: then downscaled (Lanczos) so H*W <= max_pixels.
    The result is uint8, except that with ``keep_16bit`` a 16-bit image that needs no downscaling stays
    uint16 (restored at 16-bit precision, as ``infer`` does).
    Raises :class:`InputError` for anything that is not a readable still image.
    """
    if not path or not os.path.isfile(path):
        raise InputError('No image received (the upload is missing); please upload an image file.')
    name = Path(str(path)).name
    try:
        decoded = decode_image(path, max_bytes=MAX_DECODE_BYTES)
    except ImageReadError as e:
        reason = str(e).split(': ', 1)[-1]
        raise InputError(f'"{name}": {reason}.') from None
    notices = list(decoded.notices)
    h, w = decoded.pixels.shape[:2]
    too_large = bool(max_pixels) and w * h > max_pixels
    if decoded.pixels.dtype == np.uint16 and keep_16bit and not too_large:
        img = decoded.pixels
        notices.append(f'{NOTICE_16BIT}; shown reduced to 8-bit')
    else:
        img = to_uint8(decoded.pixels, notices)
    notices = [_sentence(n) for n in notices]
    if too_large:
        f = math.sqrt(max_pixels / (w * h))
        nw, nh = max(1, int(w * f)), max(1, int(h * f))
        img = np.asarray(Image.fromarray(img).resize((nw, nh), Image.LANCZOS, reducing_gap=3.0))
        notices.append(f'Large input {size_text(w, h)} was downscaled to {size_text(nw, nh)} '
                       f'(this demo caps the size so a request stays fast on this machine).')
    return img, notices
