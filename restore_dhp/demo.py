"""Demo logic behind ``app.py``: the model registry and the processing of one request.

Kept free of Gradio so it can be tested and reused directly:

* :func:`load_registry` loads every compact checkpoint the demo knows about
  (``weights/srresnet_x4_{baseline,dhp60,dhp40,dhp20}.safetensors`` and
  ``weights/dncnn_s70_{...}.safetensors``) ONCE, with their FLOPs and
  parameter counts, and records which files are missing or unusable.
* :func:`decode_upload` turns an uploaded file (any Pillow-readable format,
  8/16-bit, gray/RGB/RGBA/palette) into an 8-bit array, bounding its size.
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
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import CheckpointError, load_compact
from .complexity import checkpoint_complexity
from .data.imageio import fixed_noise, matlab_resize, to_gray, to_rgb3
from .run_model import image_to_tensor, resolve_device, tensor_to_image
from .metrics import denoise_metrics, sr_metrics
from .timing import measure

VARIANTS = ('baseline', 'dhp60', 'dhp40', 'dhp20')
MODES = ('simulate', 'restore')
DEFAULT_REPEATS = 3
UPLOAD_NOISE_NAME = 'upload'   # the simulated noise depends only on the seed shown on the page
# Bounds on the network input (pixels), chosen so a request with all four full-size
# models (1 output/warm-up forward + DEFAULT_REPEATS timed + 1 memory forward each)
# stays under ~20 s on a 2-core CPU; see the measurements in app.py's docstring.
DEFAULT_MAX_PIXELS = {'sr': 64 * 64, 'denoise': 160 * 160}
MIN_SIDE = 8                      # smallest network input side accepted
MAX_DECODE_PIXELS = 100_000_000   # refuse to decode anything larger (memory)


@dataclass(frozen=True)
class TaskSpec:
    key: str
    label: str
    prefix: str
    network: str
    scale: int
    channels: int
    sigma: float | None = None

    def filename(self, variant: str) -> str:
        return f'{self.prefix}_{variant}.safetensors'


TASKS: dict[str, TaskSpec] = {
    'sr': TaskSpec('sr', 'Super-resolution ×4 (SRResNet, RGB)', 'srresnet_x4', 'SRResNet', 4, 3),
    'denoise': TaskSpec('denoise', 'Denoising σ=70 (DnCNN, gray images only)', 'dncnn_s70', 'DnCNN', 1, 1, 70.0),
}

VARIANT_LABELS = {'baseline': 'baseline (unpruned)', 'dhp60': 'DHP 60%', 'dhp40': 'DHP 40%', 'dhp20': 'DHP 20%'}


class InputError(ValueError):
    """An input the demo cannot use; the message is one line for the page."""


class NoWeightsError(RuntimeError):
    """Not a single checkpoint of any task could be loaded."""


@dataclass
class LoadedModel:
    task: str
    variant: str
    path: Path
    model: torch.nn.Module
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
            line = f'{spec.label}: loaded {loaded}'
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
    return [Path(weights_dir) / spec.filename(v) for spec in TASKS.values() for v in VARIANTS]


def load_registry(weights_dir: str | os.PathLike, device: str | torch.device | None = None) -> Registry:
    """Load every expected checkpoint that exists; raise :class:`NoWeightsError` if none loads at all."""
    weights_dir = Path(weights_dir)
    device = resolve_device(device)
    reg = Registry(weights_dir, device)
    for key, spec in TASKS.items():
        reg.models[key], reg.missing[key], reg.broken[key] = [], [], []
        for variant in VARIANTS:
            path = weights_dir / spec.filename(variant)
            if not path.exists():
                reg.missing[key].append(path)
                continue
            try:
                model = load_compact(path, device)
                if getattr(model, 'task', None) != key or int(model.scale) != spec.scale \
                        or int(model.in_channels) != spec.channels:
                    raise CheckpointError(f'{path}: holds a {model.task} x{model.scale} model with '
                                          f'{model.in_channels} channels, expected {key} x{spec.scale} '
                                          f'with {spec.channels}')
                cx = checkpoint_complexity(str(path), size=128)
            except (CheckpointError, OSError, ValueError, RuntimeError) as e:
                reg.broken[key].append(str(e).splitlines()[0])
                continue
            reg.models[key].append(LoadedModel(key, variant, path, model, cx['gflops'], cx['params'],
                                               cx['flops_ratio']))
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


def decode_upload(path: str | os.PathLike, max_pixels: int | None = None) -> tuple[np.ndarray, list[str]]:
    """Read an uploaded image file as uint8 (H x W gray or H x W x 3 RGB), with notices about conversions.

    ``max_pixels``: downscale (area-preserving Lanczos) so that H*W <= max_pixels.
    Raises :class:`InputError` for anything that is not a readable still image.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    notices: list[str] = []
    name = Path(str(path)).name
    if not os.path.isfile(path):
        raise InputError('No image received (the upload is missing); please upload an image file.')
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            im = Image.open(path)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError):
        raise InputError(f'"{name}" is not a readable image file (PNG, JPEG, BMP, TIFF, WebP, ...).') from None
    w, h = im.size
    if w * h > MAX_DECODE_PIXELS:
        raise InputError(f'Image is {_size_text(w, h)} pixels, too large to decode here '
                         f'(limit {MAX_DECODE_PIXELS // 1_000_000} megapixels).')
    try:
        if getattr(im, 'n_frames', 1) > 1:
            notices.append('Animated/multi-page image: only the first frame is used.')
        if hasattr(im, 'draft') and max_pixels and w * h > 4 * max_pixels:
            im.draft(im.mode, (max(1, int(w * math.sqrt(4 * max_pixels / (w * h)))),
                             max(1, int(h * math.sqrt(4 * max_pixels / (w * h))))))  # JPEG: decode at a reduced size
        im.load()
        try:
            im = ImageOps.exif_transpose(im)
        except Exception:  # noqa: BLE001  (a broken EXIF block must not reject the pixels)
            pass
        im = _to_8bit(im, notices)
    except InputError:
        raise
    except Exception:  # noqa: BLE001  (truncated/corrupt data surfaces as many error types)
        raise InputError(f'"{name}" is corrupt or truncated and cannot be decoded.') from None
    w, h = im.size
    if max_pixels and w * h > max_pixels:
        f = math.sqrt(max_pixels / (w * h))
        nw, nh = max(1, int(w * f)), max(1, int(h * f))
        from PIL import Image as _I
        im = im.resize((nw, nh), _I.LANCZOS, reducing_gap=3.0)
        notices.append(f'Large input {_size_text(w, h)} was downscaled to {_size_text(nw, nh)} '
                       f'(this demo caps the size so a request stays fast on this machine).')
    return np.array(im), notices  # a writable copy


def _to_8bit(im, notices: list[str]):
    """Any Pillow mode -> 'L' or 'RGB' 8-bit, noting alpha removal and bit-depth reduction."""
    from PIL import Image
    mode = im.mode
    if mode in ('L', 'RGB'):
        return im
    if mode in ('I;16', 'I;16B', 'I;16L', 'I;16N', 'I', 'F'):
        arr = np.asarray(im).astype(np.float64)
        hi = float(arr.max()) if arr.size else 0.0
        if mode == 'F' and hi <= 1.0:
            arr = arr * 255.0
            notices.append('Floating-point image (0-1) converted to 8-bit.')
        elif hi > 255 or mode.startswith('I;16'):
            arr = arr / 257.0
            notices.append('16-bit image converted to 8-bit.')
        return Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8), 'L')
    if mode in ('RGBA', 'LA', 'PA', 'RGBa', 'La') or (mode == 'P' and 'transparency' in im.info):
        rgba = im.convert('RGBA')
        bg = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
        notices.append('Transparency removed (image composited on white).')
        out = Image.alpha_composite(bg, rgba).convert('RGB')
        return out.convert('L') if mode in ('LA', 'La') else out
    if mode == '1':
        return im.convert('L')
    if mode == 'P':
        return im.convert('RGB')
    if mode.startswith('RGB') or mode in ('CMYK', 'YCbCr', 'LAB', 'HSV'):
        if mode not in ('RGB',):
            notices.append(f'{mode} image converted to 8-bit RGB.')
        return im.convert('RGB')
    notices.append(f'Image mode {mode} converted to RGB.')
    return im.convert('RGB')


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
    table_rows: list[list[Any]]
    before: np.ndarray
    input_size: tuple[int, int]

    def status_line(self) -> str:
        h, w = self.input_size
        spec = TASKS[self.task]
        what = f'{len(self.results)} {spec.network} model(s) on a {w}×{h} network input'
        return ' '.join([f'Done: {what}.'] + self.notices)


def prepare(task: str, mode: str, img: np.ndarray, seed: int, device: torch.device) -> Prepared:
    """Build the network input for ``task``/``mode`` from a decoded uint8 image."""
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
        before = matlab_resize(lr, float(spec.scale))
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
        noise = fixed_noise(gray.shape, spec.sigma, UPLOAD_NOISE_NAME, seed)
        noisy = gray.astype(np.float32) / 255.0 + noise  # not clipped
        before = np.clip(np.round(noisy * 255.0), 0, 255).astype(np.uint8)
        x = torch.from_numpy(noisy)[None, None].to(device)
        return Prepared(x, before, gray, notices)
    x = image_to_tensor(gray, 1, device)
    return Prepared(x, gray, None, notices)


def _round(v: float | None, digits: int):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else round(float(v), digits)


def device_label(meas) -> str:
    if meas.device == 'cpu':
        return f'CPU, {meas.threads} threads'
    return f'GPU: {meas.device_name}'


def table_columns(task: str, scored: bool) -> list[str]:
    cols = ['Model', 'GFLOPs @128²', 'FLOPs % of base', 'Params', 'Median ms',
            'Peak MB']
    if scored:
        cols += ['PSNR-Y dB', 'SSIM-Y'] if task == 'sr' else ['PSNR dB', 'SSIM']
    return cols + ['Device']


_RUN_LOCK = threading.Lock()  # one request at a time on the models: honest timings, bounded memory


def process_request(registry: Registry, task: str, mode: str, image: str | os.PathLike | np.ndarray | None,
                    seed: Any = 0, repeats: int = DEFAULT_REPEATS,
                    max_pixels: dict[str, int] | None = None) -> RequestResult:
    """Run every loaded model of ``task`` on one input; see the module docstring.

    ``image``: a file path (decoded with :func:`decode_upload`) or a uint8 array.
    Raises :class:`InputError` with a one-line message for unusable input.
    """
    if task not in TASKS:
        raise InputError(f'Unknown task {task!r}; choose one of {", ".join(TASKS)}.')
    if mode not in MODES:
        raise InputError(f'Unknown mode {mode!r}; choose one of {", ".join(MODES)}.')
    models = registry.models.get(task) or []
    if not models:
        raise InputError(f'No {TASKS[task].network} checkpoint is loaded, so {TASKS[task].label} is unavailable '
                         f'(missing: {", ".join(p.name for p in registry.missing.get(task, []))}).')
    seed = _parse_seed(seed)
    limits = {**DEFAULT_MAX_PIXELS, **(max_pixels or {})}
    # bound the pixels the network sees: for simulated SR the upload is the HR image (scale² larger)
    limit = limits[task] * (TASKS[task].scale ** 2 if (task == 'sr' and mode == 'simulate') else 1)
    if image is None or (isinstance(image, str) and not image):
        raise InputError('No image: upload one or pick an example.')
    if isinstance(image, np.ndarray):
        img, notices = _array_input(image, limit)
    else:
        img, notices = decode_upload(image, limit)
    prep = prepare(task, mode, img, seed, registry.device)
    notices = notices + prep.notices
    if task == 'denoise' and mode == 'simulate':
        notices.append(f'Noise: σ={TASKS[task].sigma:g}, seed {seed}.')
    scored = prep.reference is not None
    cols = table_columns(task, scored)
    rows, results = [], []
    with _RUN_LOCK, torch.no_grad():
        for lm in models:
            y = lm.model(prep.x)                      # the output; doubles as the warm-up run
            meas = measure(lm.model, prep.x, repeats=repeats, warmup=0)
            out = tensor_to_image(y)
            row = {'Model': lm.name, 'GFLOPs @128²': _round(lm.gflops, 2),
                   'FLOPs % of base': _round(100 * lm.flops_ratio, 1), 'Params': int(lm.params),
                   'Median ms': _round(meas.median_ms, 1),
                   'Peak MB': _round(meas.peak_memory_mb, 2), 'Device': device_label(meas)}
            if scored:
                met = _metrics(task, out, prep.reference, TASKS[task].scale)
                if task == 'sr':
                    row['PSNR-Y dB'], row['SSIM-Y'] = _round(met['psnr_y'], 2), _round(met['ssim_y'], 4)
                else:
                    row['PSNR dB'], row['SSIM'] = _round(met['psnr'], 2), _round(met['ssim'], 4)
            rows.append([row.get(c) for c in cols])
            results.append(ModelResult(lm.name, lm.variant, out, row))
    if scored:  # the no-network reference row: bicubic upscaling / the noisy input itself
        base = _metrics(task, prep.before, prep.reference, TASKS[task].scale)
        name = 'Bicubic ×4 (no network)' if task == 'sr' else 'Noisy input (no network)'
        extra = [_round(base['psnr_y'], 2), _round(base['ssim_y'], 4)] if task == 'sr' else \
            [_round(base['psnr'], 2), _round(base['ssim'], 4)]
        rows.append([name, None, None, None, None, None, *extra, None])
    _, _, h, w = prep.x.shape
    return RequestResult(task, mode, notices, results, cols, rows, prep.before, (h, w))


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


def _array_input(arr: np.ndarray, limit: int) -> tuple[np.ndarray, list[str]]:
    from PIL import Image
    notices: list[str] = []
    if arr.dtype != np.uint8:
        if arr.dtype == np.uint16:
            arr = np.round(arr.astype(np.float64) / 257.0).astype(np.uint8)
            notices.append('16-bit image converted to 8-bit.')
        else:
            raise InputError(f'Unsupported pixel type {arr.dtype}; expected 8- or 16-bit integers.')
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, :3]
        notices.append('Alpha channel dropped.')
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
        raise InputError(f'Unsupported image shape {arr.shape}.')
    h, w = arr.shape[:2]
    if h * w > limit:
        f = math.sqrt(limit / (h * w))
        nw, nh = max(1, int(w * f)), max(1, int(h * f))
        arr = np.asarray(Image.fromarray(arr).resize((nw, nh), Image.LANCZOS))
        notices.append(f'Large input {_size_text(w, h)} was downscaled to {_size_text(nw, nh)}.')
    return arr, notices


# ----------------------------------------------------------------------------- examples
def write_examples(folder: str | os.PathLike) -> dict[str, Path]:
    """Small example inputs made from scikit-image's bundled photos (no download), as PNG files.

    Returns name -> path: ``astronaut_hr`` (256x256 RGB, for simulated SR),
    ``coffee_lr`` (72x48 RGB low-resolution, for upscaling), ``camera`` (160x160
    gray, for simulated denoising), ``chelsea_noisy`` (160x160 gray with σ=70 noise, seed 1,
    for 'denoise this image').
    """
    from PIL import Image
    from skimage import data
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}

    def save(name, arr):
        p = folder / f'{name}.png'
        if not p.exists():
            tmp = folder / f'.{name}.{os.getpid()}.png'
            Image.fromarray(arr).save(tmp)
            os.replace(tmp, p)
        out[name] = p

    astro = data.astronaut()
    save('astronaut_hr', np.asarray(Image.fromarray(astro[0:320, 80:400]).resize((256, 256), Image.LANCZOS)))
    coffee = data.coffee()
    save('coffee_lr', matlab_resize(np.ascontiguousarray(coffee[16:400, 0:576]), 1 / 8))  # 72 x 48
    cam = data.camera()
    save('camera', np.asarray(Image.fromarray(cam).resize((160, 160), Image.LANCZOS)))
    cat = to_gray(data.chelsea())[40:200, 140:300]
    noisy = cat.astype(np.float32) / 255.0 + fixed_noise(cat.shape, 70.0, UPLOAD_NOISE_NAME, 1)
    save('chelsea_noisy', np.clip(np.round(noisy * 255), 0, 255).astype(np.uint8))
    return out
