"""EXIF orientation: which of the eight ways the stored pixels are turned to show the picture.

The one decoder (:func:`restore_dhp.data.imageio.decode_image`) reads the tag from the header and
applies it, as a photo viewer does, with the notice :func:`notice_orientation`.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError


def orientation_of(im: Image.Image) -> int:
    """An open image's EXIF orientation tag (1 when absent, unknown or unreadable)."""
    try:
        value = int(im.getexif().get(EXIF_ORIENTATION, 1))
    except (ValueError, TypeError, OSError, SyntaxError):  # a broken EXIF block: pixels as stored
        return 1
    return value if value in ORIENTATIONS else 1


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation tag of an encoded image (1 when absent, unknown or unreadable)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return orientation_of(im)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return 1


EXIF_ORIENTATION = 0x0112
# EXIF orientation -> how the stored pixels become the picture as shown (numpy, rows x columns)
ORIENTATIONS = {
    1: lambda a: a,
    2: np.fliplr,
    3: lambda a: np.rot90(a, 2),
    4: np.flipud,
    5: lambda a: np.swapaxes(a, 0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(np.swapaxes(a, 0, 1), 2),
    8: lambda a: np.rot90(a, 1),
}


def apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """The image as a viewer shows it, given its EXIF orientation tag (1-8; anything else: as stored)."""
    return np.ascontiguousarray(ORIENTATIONS.get(orientation, ORIENTATIONS[1])(img))


def notice_orientation(orientation: int) -> str:
    return f'EXIF orientation {orientation} applied (rotated/mirrored as the camera recorded)'
