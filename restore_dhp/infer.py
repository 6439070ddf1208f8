"""Restore image files with a compact checkpoint (super-resolution or denoising).

    python -m restore_dhp.infer --weights weights/srresnet_x4_dhp40.safetensors -i photos/ -o out/
    restore-dhp infer --weights weights/srresnet_x4_dhp40.safetensors -i photo.jpg -o out/ --suffix x4 --ext jpg

Inputs: a file or a folder of images (PNG, JPEG, BMP, TIFF, WebP, GIF, PPM),
decoded with the project's one policy (restore_dhp/data/imageio.py): gray
stays gray, palettes become RGB, transparency is composited on white (with a
notice), EXIF orientation is applied (with a notice), 16-bit images are
restored at 16-bit precision and written back as 16-bit PNG (with a notice;
the demo restores them the same way and shows them reduced to 8-bit).  An RGB
image given to a gray denoiser is converted to gray (BT.601 luma, with a
notice); a gray image given to an RGB model is replicated to RGB and the
result is written as gray again.  Outputs are named after the inputs
(``<stem>[_<suffix>].<ext>``; ``--ext png``, ``jpg`` or ``webp``; JPEG and WebP
hold 8 bits, so a 16-bit result is reduced to 8 bits there, with a notice).
``--outscale`` resizes the result to that factor of the input (Lanczos), as
Real-ESRGAN's flag does.
The device is chosen automatically (CUDA when available, else CPU; ``--device
cuda:1`` picks a GPU); the model runs in its inference-ready form
(restore_dhp.deploy: ``--backend`` fused by default, ``--precision`` fp32;
fp16/bf16 on CUDA).  Large images run in overlapping tiles (``--tile``,
``--overlap``; ``--tile 0`` runs each image in one pass) whose outputs go
straight into one 8- or 16-bit output image, so memory stays near the input as
float32 plus the output's size.  Progress: one bar over the images, and one
over the tiles of each image that has more than one.

Your files are safe: an output folder that would replace any input file is
refused, and existing outputs are replaced only with ``--overwrite`` (both
checked before anything is written); the output folder is created and tried
before any image is computed.

Memory is budgeted before anything is computed: each image's need (decoded
input, output, one tile's working memory) is estimated from its header, and an
image over ``--max-memory-gb`` (default: 90% of the memory available when the
command starts) is refused in one line.  SR x4 of a 4000x4000 photo with the
default tile peaks under 3 GB in all (scripts/benchmark_memory.py).

A file that cannot be read or processed is reported on one line and skipped;
the others are still written.  The exit code is 0 when every file was
restored, 2 when any failed or when there was nothing to do.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from .checkpoint import CheckpointError, load_checkpoint
from .commands import prog
from .complexity import build_meta
from .deploy import BACKENDS, PRECISIONS, DeployError
from .deploy import prepare as deploy
from .data.imageio import (IMG_EXTENSIONS, NOTICE_16BIT, WRITE_FORMATS, ImageReadError, decode_image, read_file_header,
                           to_uint8, write_image)
from .run_model import (DEFAULT_OVERLAP, DEFAULT_TILE, DEVICE_CHOICES, ImageFormatError, device_arg, estimate_memory,
                        outscale_size, resolve_device, restore_image, tile_count)

EXIT_OK, EXIT_FAILED = 0, 2


class InputError(Exception):
    """A problem with the command's inputs or outputs; the message is printed as one line."""


def list_inputs(path: str | os.PathLike) -> list[Path]:
    """The image files named by ``path`` (a file, or a folder's images sorted by name)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f'{p}: no such file or folder')
    if p.is_file():
        return [p]
    files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMG_EXTENSIONS)
    if not files:
        raise InputError(f'{p}: folder holds no images (looked for {", ".join(IMG_EXTENSIONS)})')
    return files


def output_names(files: list[Path], suffix: str = '', ext: str = 'png') -> dict[Path, str]:
    """Output file names ``<stem>[_<suffix>].<ext>``, unique even when two inputs share a stem (a.jpg, a.png)."""
    stems: dict[str, int] = {}
    for f in files:
        stems[f.stem] = stems.get(f.stem, 0) + 1
    tail = f'_{suffix}' if suffix else ''
    return {f: (f'{f.stem}{tail}.{ext}' if stems[f.stem] == 1 else
                f'{f.stem}_{f.suffix.lstrip(".").lower()}{tail}.{ext}') for f in files}


def plan_outputs(files: list[Path], out_dir: Path, overwrite: bool, suffix: str = '',
                 ext: str = 'png') -> dict[Path, Path]:
    """Input -> output path; raises :class:`InputError` before anything is written if inputs or outputs are at risk."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f'--output {out_dir} is a file; give a folder for the restored images')
    targets = {f: out_dir / name for f, name in output_names(files, suffix, ext).items()}
    inputs = {f.resolve() for f in files}
    clobbered = sorted(t.name for t in targets.values() if t.resolve() in inputs)
    if clobbered:
        raise InputError(f'--output {out_dir} would replace {len(clobbered)} input file(s) (e.g. {clobbered[0]}); '
                         'choose another output folder')
    existing = sorted(t.name for t in targets.values() if t.exists())
    if existing and not overwrite:
        raise InputError(f'{len(existing)} of {len(targets)} output file(s) already exist in {out_dir} '
                         f'(e.g. {existing[0]}); pass --overwrite to replace them')
    if any(t.is_dir() for t in targets.values()):
        raise InputError(f'{out_dir}: an output name is taken by a folder '
                         f'({next(t.name for t in targets.values() if t.is_dir())})')
    return targets


def default_memory_limit() -> int:
    """90% of the memory available now (Linux ``MemAvailable``; elsewhere the physical memory), in bytes."""
    try:
        with open('/proc/meminfo') as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith('MemAvailable:'))
        return int(0.9 * kib * 1024)
    except (OSError, StopIteration, ValueError):
        return int(0.9 * os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES'))


def check_memory(files: list[Path], meta: dict, tile: int | None, overlap: int, limit: int,
                 outscale: float | None = None) -> None:
    """Refuse, before anything is computed, an image whose estimated need (from its header) exceeds ``limit``."""
    net = build_meta(meta['arch'], meta['widths'], **meta['arch_kwargs'])
    for f in files:
        try:
            header = read_file_header(f)
        except ImageReadError:
            continue  # reported when its turn comes
        need = estimate_memory(header, net, tile, overlap, outscale)
        if need['total'] > limit:
            gb = {k: v / 1e9 for k, v in need.items()}
            resized = f", resized to --outscale {outscale:g} {gb['resized']:.1f} GB" if outscale is not None else ''
            raise InputError(f"{f}: {header.width}×{header.height} needs about {gb['total']:.1f} GB (output "
                             f"{gb['output']:.1f} GB, input {gb['input']:.1f} GB, one tile {gb['tile']:.1f} GB"
                             f"{resized}), "
                             f'over the memory limit of {limit / 1e9:.1f} GB; raise it with --max-memory-gb '
                             f"{max(1, -(-need['total'] * 1.2 // 1e9)):.0f} if this machine has the memory")


def prepare_output_folder(out_dir: Path) -> None:
    """Create ``out_dir`` and try writing in it, so a folder that cannot hold the outputs fails before any work."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as e:
        raise InputError(f'--output {out_dir}: cannot write there ({e.strerror or e})') from None


def channel_notices(image: np.ndarray, in_channels: int) -> list[str]:
    if in_channels == 1 and image.ndim == 3:
        return ['RGB input converted to gray (BT.601 luma) for this gray-image model']
    if in_channels == 3 and image.ndim == 2:
        return ['gray input replicated to RGB for this colour model; output written as gray']
    return []


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog('infer'), description=__doc__.split('\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog='\n'.join(__doc__.split('\n')[1:]))
    p.add_argument('--weights', '-w', required=True, help='compact checkpoint (.safetensors)')
    p.add_argument('--input', '-i', required=True, help='an image file or a folder of images')
    p.add_argument('--output', '-o', required=True, help='folder for the restored images (created)')
    p.add_argument('--suffix', default='', help='appended to each output name: <stem>_<suffix>.<ext> (default none)')
    p.add_argument('--ext', choices=WRITE_FORMATS, default='png',
                   help='output format (default png; jpg and webp hold 8 bits)')
    p.add_argument('--outscale', '-s', type=float, default=None,
                   help="final scale of the output against the input (default: the model's own, e.g. 4); "
                        'other values resize the result with Lanczos')
    p.add_argument('--overwrite', action='store_true', help='replace outputs that already exist (never inputs)')
    p.add_argument('--tile', type=int, default=DEFAULT_TILE,
                   help=f'input tile side in pixels (default {DEFAULT_TILE}; 0 = whole image in one pass)')
    p.add_argument('--overlap', type=int, default=DEFAULT_OVERLAP,
                   help=f'context pixels around each tile (default {DEFAULT_OVERLAP})')
    p.add_argument('--max-memory-gb', type=float, default=None,
                   help='refuse images estimated to need more memory than this, in GB (default: 90%% of the '
                        'memory available at start)')
    p.add_argument('--device', type=device_arg, default='auto', metavar='|'.join(DEVICE_CHOICES),
                   help='where to run (default auto: the first CUDA device if any, else the CPU)')
    p.add_argument('--backend', choices=BACKENDS, default='fused', help='deployed form (default fused; see deploy)')
    p.add_argument('--precision', choices=PRECISIONS, default='fp32', help='fp16/bf16 on CUDA (default fp32)')
    p.add_argument('--quiet', action='store_true', help='no progress bars')
    return p


def resize_to_outscale(out: np.ndarray, in_shape: tuple[int, ...], outscale: float | None) -> np.ndarray:
    """``out`` resized (Lanczos) to ``outscale`` times the input's size; as it is when that is already its size."""
    if outscale is None:
        return out
    size = outscale_size(in_shape[0], in_shape[1], outscale)[::-1]  # OpenCV's (width, height)
    return out if (out.shape[1], out.shape[0]) == size else cv2.resize(out, size, interpolation=cv2.INTER_LANCZOS4)


def _restore_one(model, f: Path, target: Path, tile: int | None, overlap: int, outscale: float | None,
                 quiet: bool) -> list[str]:
    """Restore ``f`` into ``target`` (a tile bar for a large image); returns the notices to print."""
    decoded = decode_image(f)
    notices = decoded.notices + channel_notices(decoded.pixels, model.in_channels)
    total = tile_count(*decoded.pixels.shape[:2], tile)
    with tqdm(total=total, desc=f'  {f.name}', unit='tile', leave=False, file=sys.stderr,
              disable=quiet or total < 2) as bar:
        out = restore_image(model, decoded.pixels, tile, overlap, on_tile=lambda done, _: bar.update(1))
    out = resize_to_outscale(out, decoded.pixels.shape, outscale)
    if out.dtype == np.uint16 and target.suffix.lower() != '.png':
        out = to_uint8(out)
        notices.append(f'{NOTICE_16BIT}; written as 8-bit {target.suffix[1:].upper()} (--ext png keeps 16 bits)')
    elif out.dtype == np.uint16:
        notices.append(f'{NOTICE_16BIT}; written as 16-bit PNG')
    write_image(target, out)
    return notices


def restore_files(model, targets: dict[Path, Path], tile: int | None, overlap: int, quiet: bool,
                  outscale: float | None = None) -> list[str]:
    """Restore every input into its target (progress per image, and per tile for large ones); returns one
    message per failed file."""
    failures = []
    for f, target in tqdm(targets.items(), desc='restoring', unit='img', disable=quiet, file=sys.stderr):
        try:
            for n in _restore_one(model, f, target, tile, overlap, outscale, quiet):
                tqdm.write(f'note: {f.name}: {n}', file=sys.stderr)
        except (InputError, ImageReadError, ImageFormatError) as e:
            failures.append(str(e) if str(f) in str(e) else f'{f}: {e}')
        except (OSError, RuntimeError, ValueError, MemoryError) as e:  # e.g. out of memory: try a smaller --tile
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            hint = ' (try a smaller --tile)' if isinstance(e, MemoryError) or 'out of memory' in msg.lower() else ''
            failures.append(f'{f}: {type(e).__name__}: {msg}{hint}')
    return failures


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.tile < 0 or args.overlap < 0 or (args.max_memory_gb is not None and args.max_memory_gb <= 0):
        print('error: --tile and --overlap must be non-negative, --max-memory-gb positive', file=sys.stderr)
        return EXIT_FAILED
    if args.outscale is not None and not 0 < args.outscale <= 16:
        print(f'error: --outscale must be in (0, 16], got {args.outscale:g}', file=sys.stderr)
        return EXIT_FAILED
    out_dir = Path(args.output)
    limit = default_memory_limit() if args.max_memory_gb is None else int(args.max_memory_gb * 1e9)
    try:
        files = list_inputs(args.input)
        targets = plan_outputs(files, out_dir, args.overwrite, args.suffix, args.ext)
        device = resolve_device(args.device)
        loaded = load_checkpoint(args.weights, device)
        check_memory(files, loaded.meta, args.tile or None, args.overlap, limit, args.outscale)
        prepare_output_folder(out_dir)
        model = deploy(loaded.model, device, args.backend, args.precision, heap_reuse=False)  # freed tiles go back
    except (InputError, CheckpointError, DeployError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return EXIT_FAILED
    print(f"{len(files)} image(s); {loaded.meta['task']} x{model.scale} model, {model.in_channels} channel(s), "
          f'{model.describe()}', file=sys.stderr)
    failures = restore_files(model, targets, args.tile or None, args.overlap, args.quiet, args.outscale)
    print(f'wrote {len(files) - len(failures)} of {len(files)} image(s) to {out_dir}', file=sys.stderr)
    for msg in failures:
        print(f'error: {msg}', file=sys.stderr)
    return EXIT_FAILED if failures else EXIT_OK


if __name__ == '__main__':
    sys.exit(main())
