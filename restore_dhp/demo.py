"""Demo logic behind ``app.py``: the model registry and the processing of one request.

Kept free of Gradio so it can be tested and reused directly:

* :func:`load_registry` loads every checkpoint of the catalogue
  (:mod:`restore_dhp.catalogue`: ``weights/srresnet_x4_{baseline,dhp60,dhp40,dhp20}.safetensors``
  and ``weights/dncnn_s70_{...}.safetensors``) ONCE, with the FLOPs and parameter counts
  of its metadata, prepares each in its inference-ready form (:func:`restore_dhp.deploy.prepare`),
  and records which files are missing or unusable.
* :func:`decode_upload` decodes an upload with the project's one decoder
  (:func:`restore_dhp.data.imageio.decode_image`: its size checked from the header
  first) into an 8-bit array, bounding its size.
* :func:`process_request` prepares the model input for a task and mode, runs
  every loaded model of that task on it, times only the forward pass
  (:func:`restore_dhp.timing.measure` on a prepared tensor), scores against a
  reference when one exists, and returns the before/after pairs and one table.

Bad input raises :class:`InputError`, whose message is one line meant for the page.
"""
from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from skimage import data as skimage_data

from .catalogue import TASKS, VARIANT_LABELS
from .checkpoint import CheckpointError, load_checkpoint
from .complexity import metadata_complexity
from .data.imageio import (NOTICE_16BIT, ImageReadError, decode_image, fixed_noise, matlab_resize, to_gray, to_rgb3,
                           to_uint8)
from .deploy import DeployedModel, DeployError
from .fileio import atomic_path
from .deploy import prepare as deploy
from .metrics import denoise_metrics, sr_metrics
from .run_model import image_to_tensor, resolve_device, tensor_to_image
from .timing import measure

MODES = ('simulate', 'restore')
DEFAULT_REPEATS = 3
UPLOAD_NOISE_NAME = 'upload'   # the simulated noise depends only on the seed shown on the page
# Bounds on the network input (pixels) by device, chosen so a request with all four
# full-size models (1 output/warm-up forward + DEFAULT_REPEATS timed + 1 memory forward
# each) stays under ~20 s on a 2-core CPU (measurements in app.py's docstring) and well
# under a second on one GPU (SRResNet at 256×256 LR: a 1024×1024 output).
DEFAULT_MAX_PIXELS = {'cpu': {'sr': 64 * 64, 'denoise': 160 * 160},
                      'cuda': {'sr': 256 * 256, 'denoise': 1024 * 1024}}
MIN_SIDE = 8                      # smallest network input side accepted
MAX_DECODE_BYTES = 256 * 2**20    # refuse, from the header, any upload whose decoded pixels take more


class InputError(ValueError):
    """An input the demo cannot use; the message is one line for the page."""


class NoWeightsError(RuntimeError):
    """Not a single checkpoint of any task could be loaded."""


@dataclass
class LoadedModel:
    task: str
    variant: str
    path: Path
    runner: DeployedModel          # the inference-ready form (restore_dhp.deploy) every request runs
    gflops: float
    params: int
    flops_ratio: float

    @property
    def name(self) -> str:
        return f'{TASKS[self.task].network} {VARIANT_LABELS.get(self.variant, self.variant)}'


@dataclass
class Registry:
    weights_dir: Path
    device: torch.device
    models: dict[str, list[LoadedModel]] = field(default_factory=dict)
    missing: dict[str, list[Path]] = field(default_factory=dict)
    broken: dict[str, list[str]] = field(default_factory=dict)   # task -> 'file: reason'

    def tasks(self) -> list[str]:
        return [t for t in TASKS if self.models.get(t)]

    def summary_lines(self) -> list[str]:
        """One line per task: what loaded, what is missing or unusable."""
        lines = []
        for key, spec in TASKS.items():
            loaded = ', '.join(m.variant for m in self.models.get(key, [])) or 'none'
            line = f'{spec.title}: loaded {loaded}'
            if self.missing.get(key):
                line += '; missing ' + ', '.join(str(p) for p in self.missing[key])
            if self.broken.get(key):
                line += '; unusable ' + '; '.join(self.broken[key])
            lines.append(line)
        if any(self.missing.values()) or any(self.broken.values()):
            lines.append(MISSING_HINT)
        return lines


MISSING_HINT = ('Missing checkpoints come from the project\'s training options (options/train/); '
                'see weights/README.md for how to train or fetch them.')


def expected_files(weights_dir: str | os.PathLike) -> list[Path]:
    return [Path(weights_dir) / spec.filename(v) for spec in TASKS.values() for v in spec.variants]


def _load_model(key: str, variant: str, path: Path, device: torch.device) -> LoadedModel:
    """One checkpoint: loaded once (metadata read once), checked against the catalogue, deployed."""
    spec = TASKS[key]
    loaded = load_checkpoint(path, device)
    meta = loaded.meta
    if meta['task'] != key or int(meta['scale']) != spec.scale or int(loaded.model.in_channels) != spec.channels:
        raise CheckpointError(f"{path}: holds a {meta['task']} x{meta['scale']} model with "
                              f'{loaded.model.in_channels} channels, expected {key} x{spec.scale} with {spec.channels}')
    cx = metadata_complexity(meta, size=128)
    return LoadedModel(key, variant, path, deploy(loaded.model, device), cx['gflops'], cx['params'],
                       cx['flops_ratio'])


def load_registry(weights_dir: str | os.PathLike, device: str | torch.device | None = None) -> Registry:
    """Load every expected checkpoint that exists; raise :class:`NoWeightsError` if none loads at all."""
    weights_dir = Path(weights_dir)
    device = resolve_device(device)
    reg = Registry(weights_dir, device)
    for key, spec in TASKS.items():
        reg.models[key], reg.missing[key], reg.broken[key] = [], [], []
        for variant in spec.variants:
            path = weights_dir / spec.filename(variant)
            if not path.exists():
                reg.missing[key].append(path)
                continue
            try:
                reg.models[key].append(_load_model(key, variant, path, device))
            except (CheckpointError, DeployError, OSError, ValueError, RuntimeError) as e:
                reg.broken[key].append(str(e).splitlines()[0])
    if not reg.tasks():
        raise NoWeightsError(
            f'no usable model checkpoint in {weights_dir}: expected one or more of '
            + ', '.join(p.name for p in expected_files(weights_dir))
            + (' (unusable: ' + '; '.join(sum(reg.broken.values(), [])) + ')' if any(reg.broken.values()) else '')
            + '. ' + MISSING_HINT)
    return reg


# ----------------------------------------------------------------------------- decoding
def _size_text(w: int, h: int) -> str:
    return f'{w}×{h}'


def _sentence(notice: str) -> str:
    return notice[0].upper() + notice[1:] + ('' if notice.endswith('.') else '.')


def pixel_limit_text(pixels: int) -> str:
    """A pixel budget as W×H of the equal square, or as megapixels when it is large (e.g. '64×64', '1.0 MP')."""
    if pixels >= 1_000_000:
        return f'{pixels / 1e6:.1f} MP'
    side = math.isqrt(pixels)
    return _size_text(side, side) if side * side == pixels else f'{pixels:,} pixels'


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
        notices.append(f'Large input {_size_text(w, h)} was downscaled to {_size_text(nw, nh)} '
                       f'(this demo caps the size so a request stays fast on this machine).')
    return img, notices


def _metrics(task: str, out: np.ndarray, ref: np.ndarray, scale: int) -> dict[str, float]:
    if task == 'sr':
        return dict(sr_metrics(out, ref, scale=scale))
    return dict(denoise_metrics(out, ref))


# ----------------------------------------------------------------------------- requests
@dataclass
class Prepared:
    """The network input and what to compare against, for one request."""
    x: torch.Tensor                 # 1 x C x h x w on the models' device
    before: np.ndarray              # what the slider shows on the 'before' side (output-sized)
    reference: np.ndarray | None    # ground truth for scoring (output-sized), or None
    notices: list[str]


@dataclass
class ModelResult:
    name: str
    variant: str
    output: np.ndarray
    row: dict[str, Any]


@dataclass
class RequestResult:
    task: str
    mode: str
    notices: list[str]
    results: list[ModelResult]
    table_columns: list[str]
    table_rows: list[list[str]]     # formatted for display; the numbers are in each result's row
    before: np.ndarray
    input_size: tuple[int, int]
    measurement_note: str = ''

    def status_line(self) -> str:
        h, w = self.input_size
        spec = TASKS[self.task]
        what = f'{len(self.results)} {spec.network} model(s) on a {w}×{h} network input'
        return ' '.join([f'Done: {what}.'] + self.notices)


def prepare(task: str, mode: str, img: np.ndarray, seed: int, device: torch.device) -> Prepared:
    """Build the network input for ``task``/``mode`` from a decoded image (uint8; uint16 too in restore mode)."""
    notices: list[str] = []
    spec = TASKS[task]
    if task == 'sr':
        img = to_rgb3(img)
        if mode == 'simulate':
            h, w = img.shape[:2]
            if min(h, w) < MIN_SIDE * spec.scale:
                raise InputError(f'Image is {_size_text(w, h)}; simulated ×{spec.scale} super-resolution needs '
                                 f'at least {MIN_SIDE * spec.scale}×{MIN_SIDE * spec.scale} pixels.')
            hr = img[:h - h % spec.scale, :w - w % spec.scale]
            if hr.shape[:2] != (h, w):
                notices.append(f'Cropped to {_size_text(hr.shape[1], hr.shape[0])} (a multiple of {spec.scale}).')
            lr = matlab_resize(hr, 1.0 / spec.scale)
            reference = hr
        else:
            h, w = img.shape[:2]
            if min(h, w) < MIN_SIDE:
                raise InputError(f'Image is {_size_text(w, h)}; the smallest input is {MIN_SIDE}×{MIN_SIDE} pixels.')
            lr, reference = img, None
        before = matlab_resize(to_uint8(lr), float(spec.scale))
        x = image_to_tensor(lr, 3, device)
        return Prepared(x, before, reference, notices)
    # denoising: gray model
    h, w = img.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise InputError(f'Image is {_size_text(w, h)}; the smallest input is {MIN_SIDE}×{MIN_SIDE} pixels.')
    if img.ndim == 3:
        notices.append('Converted to gray (the DnCNN models are gray-level).')
    gray = to_gray(img)
    if mode == 'simulate':
        noise = fixed_noise(gray.shape, spec.sigma_255, UPLOAD_NOISE_NAME, seed)
        noisy = gray.astype(np.float32) / 255.0 + noise  # not clipped
        before = np.clip(np.round(noisy * 255.0), 0, 255).astype(np.uint8)
        x = torch.from_numpy(noisy)[None, None].to(device)
        return Prepared(x, before, gray, notices)
    x = image_to_tensor(gray, 1, device)
    return Prepared(x, to_uint8(gray), None, notices)


def default_max_pixels(device: torch.device) -> dict[str, int]:
    """The network-input caps for ``device`` (larger on a GPU)."""
    return dict(DEFAULT_MAX_PIXELS['cuda' if torch.device(device).type == 'cuda' else 'cpu'])


def device_label(meas) -> str:
    if meas.device == 'cpu':
        return f'CPU, {meas.threads} threads'
    return f'GPU: {meas.device_name}'


# display format of each numeric column: fixed decimals, thousands separators
COLUMN_FORMATS = {'GFLOPs (128×128)': '{:,.2f}', 'FLOPs (% of baseline)': '{:.1f}', 'Parameters': '{:,}',
                  'Runtime (ms)': '{:,.1f}', 'Peak memory (MB)': '{:,.1f}', 'PSNR-Y (dB)': '{:.2f}',
                  'SSIM-Y': '{:.4f}', 'PSNR (dB)': '{:.2f}', 'SSIM': '{:.4f}'}
SCORE_COLUMNS = {'sr': ('PSNR-Y (dB)', 'SSIM-Y', 'psnr_y', 'ssim_y'), 'denoise': ('PSNR (dB)', 'SSIM', 'psnr', 'ssim')}


def table_columns(task: str, scored: bool) -> list[str]:
    cols = ['Model', 'GFLOPs (128×128)', 'FLOPs (% of baseline)', 'Parameters', 'Runtime (ms)',
            'Peak memory (MB)']
    if scored:
        cols += list(SCORE_COLUMNS[task][:2])
    return cols


def format_cell(column: str, value) -> str:
    """The table's text for one value: the column's fixed format, '—' where there is no value."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return '—'
    fmt = COLUMN_FORMATS.get(column)
    return fmt.format(value) if fmt else str(value)


def measurement_note(meas, repeats: int) -> str:
    """Where and how the runtime and memory columns were measured, in words, from the measurement itself."""
    return (f'Measured on {device_label(meas)}. Runtime: the forward pass on this request\'s network input only '
            f'(no decoding or conversion), median of {repeats} run(s) after a warm-up. How time and peak memory '
            f'were measured: {meas.method}.')


_RUN_LOCK = threading.Lock()  # one request at a time on the models: honest timings, bounded memory


def process_request(registry: Registry, task: str, mode: str, image: str | os.PathLike | None,
                    seed: Any = 0, repeats: int = DEFAULT_REPEATS,
                    max_pixels: dict[str, int] | None = None) -> RequestResult:
    """Run every loaded model of ``task`` on one input; see the module docstring.

    ``image``: a file path (decoded with :func:`decode_upload`).  ``max_pixels``: caps on the
    network input per task (default: :func:`default_max_pixels` of the registry's device).
    Raises :class:`InputError` with a one-line message for unusable input.
    """
    if task not in TASKS:
        raise InputError(f'Unknown task {task!r}; choose one of {", ".join(TASKS)}.')
    if mode not in MODES:
        raise InputError(f'Unknown mode {mode!r}; choose one of {", ".join(MODES)}.')
    models = registry.models.get(task) or []
    if not models:
        raise InputError(f'No {TASKS[task].network} checkpoint is loaded, so {TASKS[task].title} is unavailable '
                         f'(missing: {", ".join(p.name for p in registry.missing.get(task, []))}).')
    seed = _parse_seed(seed)
    limits = {**default_max_pixels(registry.device), **(max_pixels or {})}
    # bound the pixels the network sees: for simulated SR the upload is the HR image (scale² larger)
    limit = limits[task] * (TASKS[task].scale ** 2 if (task == 'sr' and mode == 'simulate') else 1)
    if not image:
        raise InputError('No image: upload one or pick an example.')
    img, notices = decode_upload(image, limit, keep_16bit=(mode == 'restore'))
    prep = prepare(task, mode, img, seed, registry.device)
    notices = notices + prep.notices
    if task == 'denoise' and mode == 'simulate':
        notices.append(f'Noise: σ={TASKS[task].sigma_255:g}, seed {seed}.')
    scored = prep.reference is not None
    psnr_col, ssim_col, psnr_key, ssim_key = SCORE_COLUMNS[task]
    results, meas = [], None
    with _RUN_LOCK, torch.no_grad():
        for lm in models:
            y = lm.runner(prep.x)                     # the output; doubles as the warm-up run
            meas = measure(lm.runner, prep.x, repeats=repeats, warmup=0)
            out = to_uint8(tensor_to_image(y, img.dtype))   # a 16-bit input: 16-bit result, shown as 8-bit
            row = {'Model': lm.name, 'GFLOPs (128×128)': lm.gflops,
                   'FLOPs (% of baseline)': 100 * lm.flops_ratio, 'Parameters': int(lm.params),
                   'Runtime (ms)': meas.median_ms, 'Peak memory (MB)': meas.peak_memory_mb,
                   'Device': device_label(meas)}  # shown once, in the measurement note
            if scored:
                met = _metrics(task, out, prep.reference, TASKS[task].scale)
                row[psnr_col], row[ssim_col] = met[psnr_key], met[ssim_key]
            results.append(ModelResult(lm.name, lm.variant, out, row))
    cols = table_columns(task, scored)
    rows = [[format_cell(c, r.row.get(c)) for c in cols] for r in results]
    if scored:  # the no-network reference row: bicubic upscaling / the noisy input itself
        base = _metrics(task, prep.before, prep.reference, TASKS[task].scale)
        name = 'Bicubic ×4 (no network)' if task == 'sr' else 'Noisy input (no network)'
        floor = {'Model': name, psnr_col: base[psnr_key], ssim_col: base[ssim_key]}
        rows.append([format_cell(c, floor.get(c)) for c in cols])
    _, _, h, w = prep.x.shape
    return RequestResult(task, mode, notices, results, cols, rows, prep.before, (h, w),
                         measurement_note(meas, repeats))


def _parse_seed(seed: Any) -> int:
    if seed is None or seed == '':
        return 0
    try:
        value = float(seed)
    except (TypeError, ValueError):
        raise InputError(f'Noise seed must be a whole number, got {seed!r}.') from None
    if not math.isfinite(value) or value != int(value) or not 0 <= value < 2 ** 63:
        raise InputError(f'Noise seed must be a whole number between 0 and 2^63-1, got {seed!r}.')
    return int(value)


# ----------------------------------------------------------------------------- examples
def _same_pixels(path: Path, arr: np.ndarray) -> bool:
    with Image.open(path) as im:
        return np.array_equal(np.asarray(im), arr)


def write_examples(folder: str | os.PathLike) -> dict[str, Path]:
    """Small example inputs made from scikit-image's bundled photos (no download), as PNG files.

    Returns name -> path: ``astronaut_hr`` (256x256 RGB crop at the photo's own resolution, with the
    lettering of a mission patch: fine detail where the SR models differ visibly; for simulated SR),
    ``coffee_lr`` (72x48 RGB low-resolution, for upscaling), ``camera`` (160x160
    gray, for simulated denoising), ``chelsea_noisy`` (160x160 gray with σ=70 noise, seed 1,
    for 'denoise this image').
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}

    def save(name, arr):
        p = folder / f'{name}.png'
        if not p.exists() or not _same_pixels(p, arr):  # (re)written when missing or from an older version
            with atomic_path(p) as tmp:
                Image.fromarray(arr).save(tmp)
        out[name] = p

    astro = skimage_data.astronaut()
    save('astronaut_hr', np.ascontiguousarray(astro[256:512, 96:352]))  # mission patch and name tag, native pixels
    coffee = skimage_data.coffee()
    save('coffee_lr', matlab_resize(np.ascontiguousarray(coffee[16:400, 0:576]), 1 / 8))  # 72 x 48
    cam = skimage_data.camera()
    save('camera', np.asarray(Image.fromarray(cam).resize((160, 160), Image.LANCZOS)))
    cat = to_gray(skimage_data.chelsea())[40:200, 140:300]
    noisy = cat.astype(np.float32) / 255.0 + fixed_noise(cat.shape, 70.0, UPLOAD_NOISE_NAME, 1)
    save('chelsea_noisy', np.clip(np.round(noisy * 255), 0, 255).astype(np.uint8))
    return out
