"""Restore image files with a compact checkpoint (super-resolution or denoising).

    python -m restore_dhp.infer --weights weights/srresnet_x4_dhp40.safetensors --input photos/ --output out/

Inputs: a file or a folder of images (PNG, JPEG, BMP, TIFF, WebP); gray, RGB,
RGBA (alpha dropped, with a notice) and 16-bit images (written back as 16-bit
PNG).  An RGB image given to a gray denoiser is converted to gray (BT.601
luma, with a notice); a gray image given to an RGB model is replicated to RGB
and the result is written as gray again.  Outputs are PNG files named after the
inputs.  The device is chosen automatically (CUDA when available, else CPU);
computation is fp32.  Large images run in overlapping tiles (``--tile``,
``--overlap``; ``--tile 0`` runs each image in one pass).

A file that cannot be read or processed is reported on one line and skipped;
the others are still written.  The exit code is 0 when every file was
restored, 2 when any failed or when there was nothing to do.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')
EXIT_OK, EXIT_FAILED = 0, 2


class InputError(Exception):
    """A problem with one input file; the message is printed as one line."""


@dataclass
class LoadedImage:
    pixels: np.ndarray          # H x W or H x W x C, uint8/uint16, RGB order
    notices: list = field(default_factory=list)


def list_inputs(path: str | os.PathLike) -> list[Path]:
    """The image files named by ``path`` (a file, or a folder's images sorted by name)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f'{p}: no such file or folder')
    if p.is_file():
        return [p]
    files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise InputError(f'{p}: folder holds no images (looked for {", ".join(IMAGE_EXTENSIONS)})')
    return files


def read_image(path: Path) -> LoadedImage:
    """Read an image file as RGB(A)/gray uint8 or uint16; raise :class:`InputError` with the reason."""
    import cv2
    if path.stat().st_size == 0:
        raise InputError(f'{path}: empty file')
    data = np.fromfile(str(path), dtype=np.uint8)  # works with any path encoding
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f'{path}: not a readable image (corrupt or unsupported format)')
    if img.dtype not in (np.uint8, np.uint16):
        raise InputError(f'{path}: unsupported pixel type {img.dtype} (8- or 16-bit images only)')
    notices = []
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3:
        if img.shape[2] == 4:
            notices.append('alpha channel dropped (the model restores colour only)')
            img = img[:, :, :3]
        elif img.shape[2] != 3:
            raise InputError(f'{path}: unsupported channel count {img.shape[2]}')
        img = img[:, :, ::-1]  # BGR -> RGB
    if img.dtype == np.uint16:
        notices.append('16-bit input: output written as 16-bit PNG')
    return LoadedImage(np.ascontiguousarray(img), notices)


def write_image(path: Path, img: np.ndarray) -> None:
    import cv2
    if img.ndim == 3:
        img = img[:, :, ::-1]  # RGB -> BGR
    ok, buf = cv2.imencode('.png', np.ascontiguousarray(img))
    if not ok:
        raise InputError(f'{path}: PNG encoding failed')
    tmp = path.with_name(path.name + '.tmp')
    buf.tofile(str(tmp))
    os.replace(tmp, path)


def output_names(files: list[Path]) -> dict[Path, str]:
    """PNG file names for the outputs, unique even when two inputs share a stem (a.jpg, a.png)."""
    stems: dict[str, int] = {}
    for f in files:
        stems[f.stem] = stems.get(f.stem, 0) + 1
    return {f: (f'{f.stem}.png' if stems[f.stem] == 1 else f'{f.stem}_{f.suffix.lstrip(".").lower()}.png')
            for f in files}


def restore_file(model, loaded: LoadedImage, tile: int | None, overlap: int) -> tuple[np.ndarray, list]:
    """Run the model on one loaded image; returns the output image and notices about conversions."""
    from .inference import restore_image
    img, notices = loaded.pixels, list(loaded.notices)
    gray_in = img.ndim == 2
    if model.in_channels == 1 and not gray_in:
        notices.append('RGB input converted to gray (BT.601 luma) for this gray-image model')
    elif model.in_channels == 3 and gray_in:
        notices.append('gray input replicated to RGB for this colour model; output written as gray')
    out = restore_image(model, img, tile=tile, overlap=overlap)
    if gray_in and out.ndim == 3:
        # the three channels saw the same input; their BT.601 luma is the gray result
        luma = out.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        peak = np.iinfo(out.dtype).max
        out = np.clip(np.round(luma), 0, peak).astype(out.dtype)
    return out, notices


def resolve_device(name: str):
    import torch

    from .inference import auto_device
    if name == 'auto':
        return auto_device()
    if name == 'cuda' and not torch.cuda.is_available():
        raise InputError('--device cuda: no CUDA device is available (use --device auto or cpu)')
    return torch.device(name)


def build_parser() -> argparse.ArgumentParser:
    from .inference import DEFAULT_OVERLAP, DEFAULT_TILE
    p = argparse.ArgumentParser(prog='python -m restore_dhp.infer', description=__doc__.split('\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog='\n'.join(__doc__.split('\n')[1:]))
    p.add_argument('--weights', required=True, help='compact checkpoint (.safetensors)')
    p.add_argument('--input', required=True, help='an image file or a folder of images')
    p.add_argument('--output', required=True, help='folder for the restored PNG files (created)')
    p.add_argument('--tile', type=int, default=DEFAULT_TILE,
                   help=f'input tile side in pixels (default {DEFAULT_TILE}; 0 = whole image in one pass)')
    p.add_argument('--overlap', type=int, default=DEFAULT_OVERLAP,
                   help=f'context pixels around each tile (default {DEFAULT_OVERLAP})')
    p.add_argument('--device', choices=('auto', 'cpu', 'cuda'), default='auto')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.tile < 0 or args.overlap < 0:
        print('error: --tile and --overlap must be non-negative', file=sys.stderr)
        return EXIT_FAILED
    from .checkpoint import CheckpointError, load_compact
    try:
        files = list_inputs(args.input)
        device = resolve_device(args.device)
        model = load_compact(args.weights, device).float()  # fp32 everywhere
    except (InputError, CheckpointError) as e:
        print(f'error: {e}', file=sys.stderr)
        return EXIT_FAILED
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    tile = args.tile or None
    names = output_names(files)
    print(f'{len(files)} image(s); {model.task} x{model.scale} model, {model.in_channels} channel(s), '
          f'on {device.type}', file=sys.stderr)

    from tqdm import tqdm

    from .inference import ImageFormatError
    failures = []
    written = 0
    for f in tqdm(files, desc='restoring', unit='img', disable=args.quiet or len(files) < 2, file=sys.stderr):
        try:
            loaded = read_image(f)
            out, notices = restore_file(model, loaded, tile, args.overlap)
            write_image(out_dir / names[f], out)
            written += 1
            for n in notices:
                tqdm.write(f'note: {f.name}: {n}', file=sys.stderr)
        except (InputError, ImageFormatError) as e:
            failures.append(str(e) if str(f) in str(e) else f'{f}: {e}')
        except (OSError, RuntimeError, ValueError) as e:  # e.g. out of memory: try a smaller --tile
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            hint = ' (try a smaller --tile)' if 'out of memory' in msg.lower() else ''
            failures.append(f'{f}: {type(e).__name__}: {msg}{hint}')
    print(f'wrote {written} of {len(files)} image(s) to {out_dir}', file=sys.stderr)
    for msg in failures:
        print(f'error: {msg}', file=sys.stderr)
    return EXIT_FAILED if failures else EXIT_OK


if __name__ == '__main__':
    sys.exit(main())
