"""Restore image files with a shipped model (-n) or a compact checkpoint (super-resolution or denoising).

    restore-dhp infer -n srresnet_x4_dhp40 -i photos/ -o out/
    python -m restore_dhp.infer --weights weights/srresnet_x4_dhp40.safetensors -i photos/ -o out/
    restore-dhp infer -n srresnet_x4_dhp40 -i photo.jpg -o out/ --suffix x4 --ext auto -t 256 --tile_pad 16

Models: ``-n NAME`` picks a shipped model by name (``restore-dhp catalogue runs`` lists them; found in the
installed package's data or in a clone's weights/), ``-w FILE`` any compact checkpoint.
Inputs: a file or a folder of images (PNG, JPEG, BMP, TIFF, WebP, GIF, PPM),
decoded with the project's one policy (restore_dhp/data/imageio.py): gray
stays gray, palettes become RGB, EXIF orientation is applied (with a notice),
16-bit images are restored at 16-bit precision and written back as 16-bit PNG
(with a notice; the demo restores them the same way and shows them reduced to
8-bit).  An alpha channel is kept, as Real-ESRGAN keeps it: brought to the
output's size by ``--alpha-upsampler`` (``bicubic``, or ``model``: the model
run on it as a gray image) and written with the image (PNG, WebP); JPEG holds
no alpha, so there the image is composited on white, with a notice.  An RGB
image given to a gray denoiser is converted to gray (BT.601 luma, with a
notice); a gray image given to an RGB model is replicated to RGB and the
result is written as gray again.  Outputs are named after the inputs
(``<stem>[_<suffix>].<ext>`` in the output folder; ``--suffix`` a plain name;
``--ext png``, ``jpg``, ``webp`` or ``auto``, the input's own format where it is
one of those; JPEG and WebP hold 8 bits, so a 16-bit result is reduced to 8
bits there, with a notice).  ``--outscale`` resizes the result to that factor
of the input (Lanczos), as Real-ESRGAN's flag does; ``--pre_pad N`` pads the
input's bottom and right edges by N reflected pixels before the model, and
crops them off after.
The device is chosen automatically (CUDA when available, else CPU; ``--device
cuda:1`` or ``-g 1`` picks a GPU); the model runs in its inference-ready form
(restore_dhp.deploy: ``--backend`` fused by default, ``--precision`` fp32, also
``--fp32``; fp16/bf16 on CUDA).  Large images run in overlapping tiles (``-t/--tile``,
``--overlap``/``--tile_pad``; ``--tile 0`` runs each image in one pass) whose outputs go
straight into one 8- or 16-bit output image, so memory stays near the input as
float32 plus the output's size.  Progress (on a terminal): one bar over the images,
and one over the tiles of each image that has more than one.

Your files are safe: an output folder that would replace any input file is
refused, existing outputs are replaced only with ``--overwrite``, and nothing is
written outside the output folder (all checked before anything is written); the
output folder is created and tried before any image is computed.

Memory is budgeted before anything is computed (restore_dhp/budget.py, as
``restore_dhp.restore`` does): this process's own size plus each image's need
(decoded input, output, one tile's working memory, the resized output, alpha),
estimated from its header, must fit ``--max-memory-gb`` (default: the process's
size plus 90% of the memory available when the command starts); an image over
it is refused in one line.  SR x4 of a 4000x4000 photo with the default tile
peaks under 3 GB in all (research/probes/benchmark_memory.py).

A file that cannot be read or processed is reported on one line and skipped;
the others are still written.  The exit code is 0 when every file was
restored, 2 when any failed or when there was nothing to do.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from .alpha import ALPHA_UPSAMPLERS, alpha_dropped_notice, composite, upsample_alpha, with_alpha
from .budget import MemoryBudgetError, check_image, memory_limit, structure_net
from .catalogue import ModelNameError, resolve_model_name
from .checkpoint import CheckpointError, load_checkpoint
from .commands import prog, run_entry
from .deploy import BACKENDS, PRECISIONS, DeployError, UnusableWeightsError
from .deploy import prepare as deploy
from .data.imageio import ALPHA_FORMATS, NOTICE_16BIT, ImageReadError, decode_image, read_file_header, write_image
from .data.pixels import ImageFormatError, to_uint8
from .latency import target_mismatch
from .infer_io import EXT_CHOICES, InputError, list_inputs, plan_outputs, prepare_output_folder
from .progress import progress_disabled
from .run_model import (DEFAULT_OVERLAP, DEFAULT_TILE, DEVICE_CHOICES, device_arg, outscale_size, resolve_device,
                        restore_image, tile_count)

EXIT_OK, EXIT_FAILED = 0, 2
MAX_PRE_PAD = 256


@dataclass(frozen=True)
class Settings:
    """How each image is run: tiles, padding, the final scale, the alpha upsampler, progress."""
    tile: int | None = DEFAULT_TILE
    overlap: int = DEFAULT_OVERLAP
    outscale: float | None = None
    pre_pad: int = 0
    alpha_upsampler: str = 'bicubic'
    quiet: bool = False


def keeps_alpha(target: Path) -> bool:
    return target.suffix.lstrip('.').lower() in ALPHA_FORMATS


def check_memory(targets: dict[Path, Path], meta: dict, settings: Settings, limit: int) -> None:
    """Refuse, before anything is computed, an image whose estimated need (from its header) and this process's
    size exceed ``limit`` (:func:`restore_dhp.budget.check_image`)."""
    net = structure_net(meta)
    for f, target in targets.items():
        try:
            header = read_file_header(f)
        except ImageReadError:
            continue  # reported when its turn comes
        check_image(str(f), header, net, settings.tile, settings.overlap, limit, settings.outscale,
                    alpha=header.channels == 4 and keeps_alpha(target))


def channel_notices(image: np.ndarray, in_channels: int) -> list[str]:
    if in_channels == 1 and image.ndim == 3:
        return ['RGB input converted to gray (BT.601 luma) for this gray-image model']
    if in_channels == 3 and image.ndim == 2:
        return ['gray input replicated to RGB for this colour model; output written as gray']
    return []


def _model_args(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument('--weights', '-w', help='compact checkpoint (.safetensors)')
    which.add_argument('--model-name', '--model_name', '-n', dest='model_name', metavar='NAME',
                       help='a shipped model, e.g. srresnet_x4_dhp40 (restore-dhp catalogue runs lists them)')
    p.add_argument('--device', type=device_arg, default='auto', metavar='|'.join(DEVICE_CHOICES),
                   help='where to run (default auto: the first CUDA device if any, else the CPU)')
    p.add_argument('--gpu-id', '-g', type=int, default=None, metavar='N', help='the same as --device cuda:N')
    p.add_argument('--backend', choices=BACKENDS, default='fused', help='deployed form (default fused; see deploy)')
    precision = p.add_mutually_exclusive_group()
    precision.add_argument('--precision', choices=PRECISIONS, default='fp32', help='fp16/bf16 on CUDA (default fp32)')
    precision.add_argument('--fp32', dest='precision', action='store_const', const='fp32',
                           help='the same as --precision fp32 (the default here)')


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog('infer'), description=__doc__.split('\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog='\n'.join(__doc__.split('\n')[1:]))
    _model_args(p)
    p.add_argument('--input', '-i', required=True, help='an image file or a folder of images')
    p.add_argument('--output', '-o', required=True, help='folder for the restored images (created)')
    p.add_argument('--suffix', default='', help='a plain name appended to each output: <stem>_<suffix>.<ext>')
    p.add_argument('--ext', choices=EXT_CHOICES, default='png',
                   help="output format (default png; jpg and webp hold 8 bits; auto: the input's where it can)")
    p.add_argument('--outscale', '-s', type=float, default=None,
                   help="final scale of the output against the input (default: the model's own, e.g. 4); "
                        'other values resize the result with Lanczos')
    p.add_argument('--overwrite', action='store_true', help='replace outputs that already exist (never inputs)')
    p.add_argument('--tile', '-t', type=int, default=DEFAULT_TILE,
                   help=f'input tile side in pixels (default {DEFAULT_TILE}; 0 = whole image in one pass)')
    p.add_argument('--overlap', '--tile_pad', dest='overlap', type=int, default=DEFAULT_OVERLAP,
                   help=f'context pixels around each tile (default {DEFAULT_OVERLAP})')
    p.add_argument('--pre_pad', '--pre-pad', dest='pre_pad', type=int, default=0,
                   help=f'reflected pixels added at the bottom and right before the model (default 0, at most '
                        f'{MAX_PRE_PAD}), cropped off after')
    p.add_argument('--alpha-upsampler', '--alpha_upsampler', dest='alpha_upsampler', choices=ALPHA_UPSAMPLERS,
                   default='bicubic', help='how an alpha channel reaches the output size (default bicubic)')
    p.add_argument('--max-memory-gb', type=float, default=None,
                   help='the most memory this process may use, in GB (default: its size at start plus 90%% of '
                        'the memory available then)')
    p.add_argument('--quiet', action='store_true', help='no progress bars (none either when stderr is not a terminal)')
    return p


def resize_to_outscale(out: np.ndarray, in_shape: tuple[int, ...], outscale: float | None) -> np.ndarray:
    """``out`` resized (Lanczos) to ``outscale`` times the input's size; as it is when that is already its size."""
    if outscale is None:
        return out
    size = outscale_size(in_shape[0], in_shape[1], outscale)[::-1]  # OpenCV's (width, height)
    return out if (out.shape[1], out.shape[0]) == size else cv2.resize(out, size, interpolation=cv2.INTER_LANCZOS4)


def run_padded(model, pixels: np.ndarray, settings: Settings, on_tile=None) -> np.ndarray:
    """``restore_image`` of ``pixels`` padded by ``pre_pad`` reflected pixels at the bottom and right, cropped."""
    pad = settings.pre_pad
    if pad:
        pixels = np.pad(pixels, ((0, pad), (0, pad)) + ((0, 0),) * (pixels.ndim - 2), mode='reflect')
    out = restore_image(model, pixels, settings.tile, settings.overlap, on_tile=on_tile)
    if not pad:
        return out
    scale = int(model.scale)
    return np.ascontiguousarray(out[:out.shape[0] - pad * scale, :out.shape[1] - pad * scale])


def _restore_one(model, f: Path, target: Path, settings: Settings) -> list[str]:
    """Restore ``f`` into ``target`` (a tile bar for a large image); returns the notices to print."""
    decoded = decode_image(f, keep_alpha=True)
    pixels, alpha = decoded.pixels, decoded.alpha
    notices = decoded.notices + channel_notices(pixels, model.in_channels)
    if alpha is not None and not keeps_alpha(target):
        pixels, alpha = composite(pixels, alpha), None
        notices.append(alpha_dropped_notice(target.suffix[1:]))
    total = tile_count(pixels.shape[0] + settings.pre_pad, pixels.shape[1] + settings.pre_pad, settings.tile)
    with tqdm(total=total, desc=f'  {f.name}', unit='tile', leave=False, file=sys.stderr,
              disable=progress_disabled(settings.quiet) or total < 2) as bar:
        out = run_padded(model, pixels, settings, on_tile=lambda done, _: bar.update(1))
    if alpha is not None:
        out = with_alpha(out, upsample_alpha(alpha, out.shape[:2], settings.alpha_upsampler, model, settings.tile,
                                             settings.overlap))
    out = resize_to_outscale(out, pixels.shape, settings.outscale)
    if out.dtype == np.uint16 and target.suffix.lower() != '.png':
        out = to_uint8(out)
        notices.append(f'{NOTICE_16BIT}; written as 8-bit {target.suffix[1:].upper()} (--ext png keeps 16 bits)')
    elif out.dtype == np.uint16:
        notices.append(f'{NOTICE_16BIT}; written as 16-bit PNG')
    write_image(target, out)
    return notices


def restore_files(model, targets: dict[Path, Path], settings: Settings) -> list[str]:
    """Restore every input into its target (progress per image, and per tile for large ones); returns one
    message per failed file."""
    failures = []
    for f, target in tqdm(targets.items(), desc='restoring', unit='img', disable=progress_disabled(settings.quiet),
                          file=sys.stderr):
        try:
            for n in _restore_one(model, f, target, settings):
                tqdm.write(f'note: {f.name}: {n}', file=sys.stderr)
        except (InputError, ImageReadError, ImageFormatError) as e:
            failures.append(str(e) if str(f) in str(e) else f'{f}: {e}')
        except (OSError, RuntimeError, ValueError, MemoryError) as e:  # e.g. out of memory: try a smaller --tile
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            hint = ' (try a smaller --tile)' if isinstance(e, MemoryError) or 'out of memory' in msg.lower() else ''
            failures.append(f'{f}: {type(e).__name__}: {msg}{hint}')
    return failures


def argument_problem(args) -> str | None:
    """What is wrong with the flags' values, in one line (``None``: nothing)."""
    if args.tile < 0 or args.overlap < 0 or (args.max_memory_gb is not None and args.max_memory_gb <= 0):
        return '--tile and --overlap must be non-negative, --max-memory-gb positive'
    if args.outscale is not None and not 0 < args.outscale <= 16:
        return f'--outscale must be in (0, 16], got {args.outscale:g}'
    if not 0 <= args.pre_pad <= MAX_PRE_PAD:
        return f'--pre_pad must be in [0, {MAX_PRE_PAD}], got {args.pre_pad}'
    if args.gpu_id is not None and (args.gpu_id < 0 or args.device not in ('auto', f'cuda:{args.gpu_id}')):
        return '-g/--gpu-id N is a CUDA device number (>= 0) and takes the place of --device; give one of them'
    return None


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if problem := argument_problem(args):
        print(f'error: {problem}', file=sys.stderr)
        return EXIT_FAILED
    settings = Settings(args.tile or None, args.overlap, args.outscale, args.pre_pad, args.alpha_upsampler, args.quiet)
    out_dir = Path(args.output)
    limit = memory_limit(args.max_memory_gb)
    try:
        weights = resolve_model_name(args.model_name) if args.model_name else args.weights
        files = list_inputs(args.input)
        targets = plan_outputs(files, out_dir, args.overwrite, args.suffix, args.ext)
        device = resolve_device(f'cuda:{args.gpu_id}' if args.gpu_id is not None else args.device)
        loaded = load_checkpoint(weights, device)
        check_memory(targets, loaded.meta, settings, limit)
        try:
            model = deploy(loaded.model, device, args.backend, args.precision, heap_reuse=False)  # freed tiles go back
        except UnusableWeightsError as e:
            raise UnusableWeightsError(f'{weights}: {e}') from None
        prepare_output_folder(out_dir)  # the last check: the first thing created
    except (InputError, ModelNameError, CheckpointError, DeployError, MemoryBudgetError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return EXIT_FAILED
    print(f"{len(files)} image(s); {loaded.meta['task']} x{model.scale} model, {model.in_channels} channel(s), "
          f'{model.describe()}', file=sys.stderr)
    for line in filter(None, (model.note, target_mismatch(loaded.meta, device.type, args.backend))):
        print(line, file=sys.stderr)
    failures = restore_files(model, targets, settings)
    print(f'wrote {len(files) - len(failures)} of {len(files)} image(s) to {out_dir}', file=sys.stderr)
    for msg in failures:
        print(f'error: {msg}', file=sys.stderr)
    return EXIT_FAILED if failures else EXIT_OK


if __name__ == '__main__':
    sys.exit(run_entry(main))
