"""Image files: finding, decoding and writing them.

Shared by the datasets (:mod:`restore_dhp.data.sr_dataset`,
:mod:`restore_dhp.data.denoise_dataset`), the benchmark loaders
(:mod:`restore_dhp.data.testsets`), :mod:`restore_dhp.prepare_data`,
``python -m restore_dhp.infer`` and the demo, so that every path through the
project sees exactly the same pixels.  Pixel values and channels (8-bit reduction,
gray, RGB, transparency) are :mod:`restore_dhp.data.pixels`; the degradations (bicubic
LR, fixed test noise) are :mod:`restore_dhp.degradations`; SR pair matching is
:mod:`restore_dhp.data.sr_pairs`.

Decoding policy (:func:`decode_image`, the one decoder; OpenCV decodes, the
size is read from the header first so a caller can refuse a huge image before
any pixel is decoded):

* gray files stay gray (``HxW``), colour files are RGB (``HxWx3``);
* palette images are expanded to RGB;
* transparency (RGBA, gray + alpha, palette or colour-key transparency) is
  composited on white, with the notice ``transparency composited on white`` (``keep_alpha``: kept apart
  instead, as ``DecodedImage.alpha``, for ``infer``, which upsamples and writes it);
* 16-bit files stay 16-bit: ``infer`` and the demo's *restore* mode run the model on them at
  16-bit precision (notice :data:`NOTICE_16BIT`); ``infer`` writes a 16-bit PNG, the demo shows the
  result reduced to 8 bit.  A consumer that works in 8 bit (training sets, benchmarks, the demo's
  *simulate* mode) reduces them with :func:`~restore_dhp.data.pixels.to_uint8` (``round(v / 257)``), with the notice
  ``16-bit image reduced to 8-bit``;
* an animated or multi-page file gives its first frame, with a notice;
* EXIF orientation (JPEG, TIFF, WebP, PNG ``eXIf``) is applied, as a photo viewer shows the
  image, with the notice ``EXIF orientation N applied (rotated/mirrored as the camera recorded)``.

Conventions: images are numpy ``uint8`` (or ``uint16``) arrays, RGB channel
order, ``HxWx3`` (or ``HxW`` for gray; BT.601 luma, :func:`restore_dhp.data.pixels.to_gray`).
"""
from __future__ import annotations

import io
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from ..fileio import atomic_path, write_bytes
from .orientation import apply_orientation, exif_orientation, notice_orientation, orientation_of
from .pixels import composite_on_white, to_gray, to_rgb3, to_uint8

logger = logging.getLogger(__name__)
IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.ppm', '.pgm', '.webp', '.gif')


def is_image_file(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(IMG_EXTENSIONS) and not Path(path).name.startswith('.')


def list_images(folder: str | os.PathLike) -> list[str]:
    """Sorted image files directly inside ``folder`` (not recursive)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f'Image folder not found: {folder}')
    return sorted(str(p) for p in folder.iterdir() if p.is_file() and is_image_file(p))


class ImageReadError(ValueError):
    """A file that cannot be decoded as an image; the message names the file and the reason in one line."""


@dataclass
class DecodedImage:
    """Pixels as stored (``uint8`` or ``uint16``; ``HxW`` gray or ``HxWx3`` RGB) and notices about conversions."""
    pixels: np.ndarray
    notices: list[str] = field(default_factory=list)
    alpha: np.ndarray | None = None   # ``HxW``, the pixels' dtype: only with ``keep_alpha``, for a file that has one


@dataclass(frozen=True)
class ImageHeader:
    width: int
    height: int
    channels: int           # as decoded, before alpha compositing (1-4)
    bytes_per_sample: int   # 1 or 2
    gray: bool
    frames: int = 1
    orientation: int = 1    # EXIF orientation tag (1 = as stored)

    @property
    def decoded_bytes(self) -> int:
        return self.width * self.height * self.channels * self.bytes_per_sample


# PNG colour type -> (channels as OpenCV decodes them, gray); palettes are expanded to RGB(A)
_PNG_COLOUR = {0: (1, True), 2: (3, False), 3: (3, False), 4: (4, True), 6: (4, False)}


def read_header(data: bytes, name: str = 'image') -> ImageHeader:
    """Size, channels and bit depth from the file header alone (no pixel is decoded)."""
    if data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) >= 29 and data[12:16] == b'IHDR':
        width, height = int.from_bytes(data[16:20], 'big'), int.from_bytes(data[20:24], 'big')
        depth, colour = data[24], data[25]
        channels, gray = _PNG_COLOUR.get(colour, (4, False))
        chunks = data[:max(data.find(b'IDAT'), 0)]
        if b'tRNS' in chunks:
            channels = 4  # transparency chunk: decoded with an alpha channel
        orientation = exif_orientation(data) if b'eXIf' in chunks else 1
        return ImageHeader(width, height, channels, 2 if depth == 16 else 1, gray, orientation=orientation)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                bands = 4 if im.mode in ('P', 'PA') else len(im.getbands())  # palettes decode to BGR(A)
                wide = im.mode.startswith('I;16') or im.mode in ('I', 'F')
                return ImageHeader(im.width, im.height, bands, 2 if wide else 1, im.mode in GRAY_MODES,
                                   getattr(im, 'n_frames', 1), orientation_of(im))
    except Image.DecompressionBombError:
        raise ImageReadError(f'{name}: image dimensions are implausibly large (over '
                             f'{2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels)') from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise ImageReadError(f'{name}: not a readable image (corrupt or unsupported format)') from None


def read_file_header(path: str | os.PathLike, prefix_bytes: int = 1 << 20) -> ImageHeader:
    """:func:`read_header` of a file, from its first ``prefix_bytes`` (the whole file only if the header
    is not in them, e.g. a TIFF whose directory is at the end).  Raises :class:`ImageReadError`."""
    path = str(path)
    try:
        with open(path, 'rb') as f:
            data = f.read(prefix_bytes)
            try:
                return read_header(data, path)
            except ImageReadError:
                if len(data) < prefix_bytes:
                    raise
                return read_header(data + f.read(), path)
    except OSError as e:
        raise ImageReadError(f'{path}: cannot be read ({e.strerror or e})') from None


GRAY_MODES = ('1', 'L', 'LA', 'La', 'I', 'I;16', 'I;16B', 'I;16L', 'I;16N', 'F')
NOTICE_ALPHA = 'transparency composited on white'
NOTICE_16BIT = '16-bit image restored at 16-bit precision'
NOTICE_FIRST_FRAME = 'animated or multi-page image: only the first frame is used'


def decode_image(path: str | os.PathLike, max_bytes: int | None = None, keep_alpha: bool = False) -> DecodedImage:
    """Decode an image file with the project's one policy (module docstring, "Decoding policy").

    ``max_bytes``: refuse (before decoding) an image whose decoded pixels would take more bytes.
    ``keep_alpha``: an alpha channel is returned apart (``alpha``) instead of composited on white.
    Raises :class:`ImageReadError` (a ``ValueError``) with a one-line message naming the file.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise ImageReadError(f'{path}: no such file')
    data = np.fromfile(path, dtype=np.uint8)  # works with any path encoding
    if data.size == 0:
        raise ImageReadError(f'{path}: empty file')
    header = read_header(data.tobytes(), path)
    if max_bytes is not None and header.decoded_bytes > max_bytes:
        raise ImageReadError(
            f'{path}: {header.width}×{header.height} pixels with {header.channels} channel(s) of '
            f'{8 * header.bytes_per_sample} bits would take {header.decoded_bytes / 2**20:,.0f} MB to decode; '
            f'the limit here is {max_bytes / 2**20:,.0f} MB')
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    del data
    if img is None:
        raise ImageReadError(f'{path}: not a readable image (corrupt or unsupported format)')
    if img.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(f'{path}: unsupported pixel type {img.dtype} (8- or 16-bit images only)')
    notices, alpha = [NOTICE_FIRST_FRAME] if header.frames > 1 else [], None
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3:
        if img.shape[2] not in (3, 4):
            raise ImageReadError(f'{path}: unsupported channel count {img.shape[2]}')
        if img.shape[2] == 4 and keep_alpha:
            img, alpha = img[:, :, :3], np.ascontiguousarray(img[:, :, 3])
        elif img.shape[2] == 4:
            img = composite_on_white(img)
            notices.append(NOTICE_ALPHA)
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY if header.gray else cv2.COLOR_BGR2RGB)
    if header.orientation != 1:
        img, alpha = (None if a is None else apply_orientation(a, header.orientation) for a in (img, alpha))
        notices.append(notice_orientation(header.orientation))
    return DecodedImage(np.ascontiguousarray(img), notices, alpha)


def read_image(path: str | os.PathLike, mode: str = 'rgb') -> np.ndarray:
    """Read an image file as ``uint8`` (:func:`decode_image`, then 16-bit reduced to 8-bit).

    ``mode``: ``'rgb'`` -> HxWx3 RGB (gray files are replicated to 3 channels),
    ``'gray'`` -> HxW (RGB files converted with BT.601 luma),
    ``'unchanged'`` -> HxW for gray files, HxWx3 RGB otherwise.
    Notices (transparency, 16-bit, first frame) are logged at INFO level, naming the file.
    Raises :class:`ImageReadError` naming the file when it cannot be decoded.
    """
    if mode not in ('rgb', 'gray', 'unchanged'):
        raise ValueError(f"mode must be 'rgb', 'gray' or 'unchanged', got {mode!r}")
    decoded = decode_image(path)
    img = to_uint8(decoded.pixels, decoded.notices)
    for notice in decoded.notices:  # the same notices infer prints and the demo shows
        logger.info('%s: %s', path, notice)
    if mode == 'rgb':
        return to_rgb3(img)
    if mode == 'gray':
        return to_gray(img)
    return img


def write_png(path: str | os.PathLike, img: np.ndarray) -> None:
    """Write an 8- or 16-bit RGB (HxWx3), RGBA (HxWx4) or gray (HxW) image as PNG, creating folders.

    Written to a temporary file first and renamed, so a failure never leaves a half-written PNG under
    ``path``.  Memory: OpenCV streams the PNG to the file, and a writable RGB array is swapped to
    OpenCV's BGR order in place for the write and back afterwards, so no second full-size copy is made.
    """
    in_place = img.ndim == 3 and img.flags.writeable and img.flags.c_contiguous
    to_bgr, to_rgb = _SWAP[img.shape[2] if img.ndim == 3 else 3]
    bgr = img if img.ndim == 2 or in_place else cv2.cvtColor(img, to_bgr)
    if in_place:
        cv2.cvtColor(img, to_bgr, dst=img)
    try:
        with atomic_path(path) as tmp:  # the temporary name ends in .png: OpenCV picks the format by extension
            if not cv2.imwrite(str(tmp), bgr):
                raise ValueError(f'Cannot write PNG {path}')
    finally:
        if in_place:
            cv2.cvtColor(img, to_rgb, dst=img)


#: output formats :func:`write_image` writes (by file suffix), and the encoder quality for the lossy ones
WRITE_FORMATS = ('png', 'jpg', 'webp')
ALPHA_FORMATS = ('png', 'webp')   # those that hold an alpha channel (HxWx4 RGBA)
_SWAP = {3: (cv2.COLOR_RGB2BGR, cv2.COLOR_BGR2RGB), 4: (cv2.COLOR_RGBA2BGRA, cv2.COLOR_BGRA2RGBA)}
_QUALITY_FLAG = {'.jpg': cv2.IMWRITE_JPEG_QUALITY, '.jpeg': cv2.IMWRITE_JPEG_QUALITY, '.webp': cv2.IMWRITE_WEBP_QUALITY}


def write_image(path: str | os.PathLike, img: np.ndarray, quality: int = 95) -> None:
    """Write an image in the format its suffix names: PNG (8/16-bit, :func:`write_png`), JPEG or WebP (8-bit);
    RGBA (HxWx4) in PNG and WebP.

    Encoded in memory, then written atomically (:func:`restore_dhp.fileio.write_bytes`), as :func:`write_png` is.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == '.png':
        return write_png(path, img)
    if suffix not in _QUALITY_FLAG:
        raise ValueError(f'{path}: cannot write {suffix or "a file without suffix"}; use one of '
                         f'{", ".join(WRITE_FORMATS)}')
    if img.dtype != np.uint8:
        raise ValueError(f'{path}: {suffix[1:].upper()} holds 8-bit images only (this one is {img.dtype}); use PNG')
    bgr = img if img.ndim == 2 else cv2.cvtColor(img, _SWAP[img.shape[2]][0])
    ok, encoded = cv2.imencode(suffix, bgr, [_QUALITY_FLAG[suffix], int(quality)])
    if not ok:
        raise ValueError(f'Cannot encode {path}')
    write_bytes(path, encoded.tobytes())
