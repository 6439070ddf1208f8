"""Demo logic behind ``app.py``: the model registry and the processing of one request.

Kept free of Gradio so it can be tested and reused directly:

* :func:`load_registry` loads every checkpoint of the catalogue
  (:mod:`restore_dhp.catalogue`: ``weights/srresnet_x4_{baseline,dhp60,dhp40,dhp20}.safetensors``
  and ``weights/dncnn_s70_{...}.safetensors``) ONCE, with the FLOPs and parameter counts
  of its metadata, prepares each in its inference-ready form (:func:`restore_dhp.deploy.prepare`),
  and records which files are missing or unusable.
* :func:`restore_dhp.uploads.uploaded_file` accepts only files the web framework stored as
  uploads, and :func:`restore_dhp.uploads.decode_upload` decodes them with the project's one
  decoder, bounding their size (both re-exported here).
* :func:`process_request` prepares the model input for a task and mode (:meth:`restore_dhp.tasks.Task.upload_item`
  and :meth:`~restore_dhp.tasks.Task.model_input`), runs
  every loaded model of that task on it, times only the forward pass on a prepared
  tensor -- all models side by side, as the speed tables do (each round runs every
  model once, order rotated: :func:`restore_dhp.timing.measure_side_by_side`), with a
  control (the first model timed again in the same rounds, which should read 1.00×
  itself) and each runtime's spread over the rounds --, scores against a reference
  when one exists, and returns the before/after pairs and one table.

Bad input raises :class:`InputError`, whose message is one line meant for the page.
"""
from __future__ import annotations

import math
import os
import statistics
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import network
from .catalogue import TASKS, CatalogueEntry, entries, model_label
from .checkpoint import CheckpointError, load_checkpoint
from .complexity import metadata_complexity
from .data.pixels import tensor_to_image
from .deploy import DeployedModel, DeployError, UnusableWeightsError
from .deploy import prepare as deploy
from .examples import EXAMPLES, write_examples  # noqa: F401  (the app takes them from here)
from .run_model import resolve_device
from .tasks import InputError, Task, size_text
from .timing import (Measurement, claim_profiler_thread, device_name, measure_side_by_side, paired_ratios,
                     peak_memory, quartiles)
from .uploads import MAX_DECODE_BYTES, UPLOAD_REFUSED, decode_upload, uploaded_file  # noqa: F401  (re-exported)

MODES = ('simulate', 'restore')
DEFAULT_REPEATS = 3
# Bounds on the network input (pixels) by device, chosen so a request with all four
# full-size models (1 output/warm-up forward + DEFAULT_REPEATS timed + 1 memory forward
# each, and DEFAULT_REPEATS of the control) stays under ~20 s on a 2-core CPU (measurements
# in app.py's docstring; an SR request with the five shipped models at 64×64: 8 s on the shared
# machine at load 4, 29 s for the first request after start-up) and well under a second on one
# GPU (SRResNet at 256×256 LR: a 1024×1024 output).
DEFAULT_MAX_PIXELS = {'cpu': {'sr': 64 * 64, 'denoise': 160 * 160},
                      'cuda': {'sr': 256 * 256, 'denoise': 1024 * 1024}}


class NoWeightsError(RuntimeError):
    """Not a single checkpoint of any task could be loaded."""


@dataclass
class LoadedModel:
    task: Task                     # the catalogue's (restore_dhp.catalogue.TASKS)
    entry: CatalogueEntry          # the network it is (the task's main one, or another: catalogue.entries)
    variant: str
    path: Path
    runner: DeployedModel          # the inference-ready form (restore_dhp.deploy) every request runs
    gflops: float
    params: int
    flops_ratio: float
    label: str                     # from the checkpoint's metadata (restore_dhp.catalogue.model_label)

    @property
    def name(self) -> str:
        return f'{self.entry.network} {self.label}'


@dataclass
class Registry:
    weights_dir: Path
    device: torch.device
    models: dict[str, list[LoadedModel]] = field(default_factory=dict)
    missing: dict[str, list[Path]] = field(default_factory=dict)
    broken: dict[str, list[str]] = field(default_factory=dict)   # task -> 'file: reason'

    def tasks(self) -> list[str]:
        return [t for t in TASKS if self.models.get(t)]

    def _states(self):
        """(task title, loaded models, missing files, unusable files' reasons) per task."""
        return [(task.entry.title, self.models.get(key, []), self.missing.get(key, []), self.broken.get(key, []))
                for key, task in TASKS.items()]

    def _incomplete(self) -> bool:
        return any(self.missing.values()) or any(self.broken.values())

    def summary_lines(self) -> list[str]:
        """One line per task: what loaded, what is missing or unusable."""
        lines = []
        for title, loaded, missing, broken in self._states():
            line = f"{title}: loaded {', '.join(m.variant for m in loaded) or 'none'}"
            if missing:
                line += '; missing ' + ', '.join(str(p) for p in missing)
            if broken:
                line += '; unusable ' + '; '.join(broken)
            lines.append(line)
        return lines + ([MISSING_HINT] if self._incomplete() else [])

    def markdown(self) -> str:
        """The same as :meth:`summary_lines` for the page: file names, where they load from, the device."""
        lines = [f'**Models** (loaded once from `{self.weights_dir}`, running on **{self.device.type.upper()}**):']
        for title, loaded, missing, broken in self._states():
            lines.append(f"- {title}: {', '.join(f'`{m.path.name}`' for m in loaded) or '*none*'}")
            if missing:
                lines.append('  - ⚠️ missing: ' + ', '.join(f'`{p.name}`' for p in missing))
            lines += [f'  - ⚠️ unusable: {b}' for b in broken]
        return '\n'.join(lines + ([f'\n{MISSING_HINT}'] if self._incomplete() else []))


MISSING_HINT = ('Missing checkpoints come from the project\'s training options (options/train/); '
                'see weights/README.md for how to train or fetch them.')


def expected_files(weights_dir: str | os.PathLike) -> list[Path]:
    return [Path(weights_dir) / e.filename(v) for task in TASKS.values() for e in entries(task) for v in e.variants]


def _load_model(task: Task, entry: CatalogueEntry, variant: str, path: Path, device: torch.device) -> LoadedModel:
    """One checkpoint: loaded once (metadata read once), checked against the catalogue's task, deployed."""
    loaded = load_checkpoint(path, device)
    meta = loaded.meta
    channels = network.structure(loaded.model).in_channels
    if meta['task'] != task.key or int(meta['scale']) != task.scale or channels != task.channels:
        raise CheckpointError(f"{path}: holds a {meta['task']} x{meta['scale']} model with "
                              f'{channels} channels, expected {task.key} x{task.scale} with {task.channels}')
    cx = metadata_complexity(meta, size=128)
    try:
        runner = deploy(loaded.model, device)
    except UnusableWeightsError as e:
        raise UnusableWeightsError(f'{path}: {e}') from None
    return LoadedModel(task, entry, variant, path, runner, cx['gflops'], cx['params'], cx['flops_ratio'],
                       model_label(meta, path))


def load_registry(weights_dir: str | os.PathLike, device: str | torch.device | None = None) -> Registry:
    """Load every expected checkpoint that exists; raise :class:`NoWeightsError` if none loads at all."""
    weights_dir = Path(weights_dir)
    device = resolve_device(device)
    claim_profiler_thread()  # here, on the server's main thread: no profiler ERROR line on the first request
    reg = Registry(weights_dir, device)
    for key, task in TASKS.items():
        reg.models[key], reg.missing[key], reg.broken[key] = [], [], []
        for entry, variant in ((e, v) for e in entries(task) for v in e.variants):
            path = weights_dir / entry.filename(variant)
            if not path.exists():
                reg.missing[key].append(path)
                continue
            try:
                reg.models[key].append(_load_model(task, entry, variant, path, device))
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
def pixel_limit_text(pixels: int) -> str:
    """A pixel budget as W×H of the equal square, or as megapixels when it is large (e.g. '64×64', '1.0 MP')."""
    if pixels >= 1_000_000:
        return f'{pixels / 1e6:.1f} MP'
    side = math.isqrt(pixels)
    return size_text(side, side) if side * side == pixels else f'{pixels:,} pixels'


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
    task: Task
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
        what = f'{len(self.results)} model(s) on a {w}×{h} network input'
        return ' '.join([f'Done: {what}.'] + self.notices)


def prepare(task: Task, mode: str, img: np.ndarray, seed: int, device: torch.device) -> Prepared:
    """Build the network input for ``task``/``mode`` from a decoded image (:meth:`Task.upload_item`).

    uint8, or uint16 in restore mode (restored at 16-bit precision)."""
    item, notices = task.upload_item(img, mode == 'simulate', seed)
    return Prepared(task.model_input(item, device), task.floor_output(item), item[2], notices)


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


def table_columns(task: Task, scored: bool) -> list[str]:
    cols = ['Model', 'GFLOPs (128×128)', 'FLOPs (% of baseline)', 'Parameters', 'Runtime (ms)',
            'Peak memory (MB)']
    if scored:
        cols += list(task.score_columns[0])
    return cols


def format_cell(column: str, value) -> str:
    """The table's text for one value: the column's fixed format, '—' where there is no value."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return '—'
    fmt = COLUMN_FORMATS.get(column)
    return fmt.format(value) if fmt else str(value)


def format_row_cell(column: str, row: dict) -> str:
    """A result row's cell: the runtime with its quartiles over the rounds, e.g. '12.3 (11.9–13.0)'."""
    text = format_cell(column, row.get(column))
    spread = row.get('Runtime quartiles (ms)')
    if column == 'Runtime (ms)' and spread is not None and text != '—':
        text += f' ({spread[0]:,.1f}–{spread[1]:,.1f})'
    return text


def measurement_note(meas, repeats: int, control: float | None = None) -> str:
    """Where and how the runtime and memory columns were measured, in words, from the measurement itself."""
    drift = '' if control is None else (
        f' Control: the first model timed again in the same rounds reads {control:.2f}× its own time (1.00: the '
        'rounds treated every model alike; further from 1.00, read small differences between rows with care).')
    return (f'Measured on {device_label(meas)}. Runtime: the forward pass on this request\'s network input only '
            f'(no decoding or conversion), median of {repeats} round(s) after a warm-up, every model once per '
            f'round in rotated order, with the interquartile range over the rounds in brackets.{drift} How time '
            f'and peak memory were measured: {meas.method}.')


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
    key, task = task, TASKS[task]
    models = registry.models.get(key) or []
    if not models:
        raise InputError(f'No {task.entry.network} checkpoint is loaded, so {task.entry.title} is unavailable '
                         f'(missing: {", ".join(p.name for p in registry.missing.get(key, []))}).')
    seed = _parse_seed(seed)
    limits = {**default_max_pixels(registry.device), **(max_pixels or {})}
    # bound the pixels the network sees (a simulated SR upload is the HR image: scale² larger)
    limit = task.upload_pixels(limits[key], mode == 'simulate')
    if not image:
        raise InputError('No image: upload one or pick an example.')
    img, notices = decode_upload(image, limit, keep_16bit=(mode == 'restore'))
    prep = prepare(task, mode, img, seed, registry.device)
    results, meas, control = _run_models(task, models, prep, repeats)
    cols = table_columns(task, prep.reference is not None)
    rows = [[format_row_cell(c, r.row) for c in cols] for r in results]
    if prep.reference is not None:  # the no-network reference row: bicubic upscaling / the noisy input itself
        floor = {'Model': f'{task.floor_label(with_scale=True)} (no network)',
                 **_scores(task, prep.before, prep.reference)}
        rows.append([format_cell(c, floor.get(c)) for c in cols])
    _, _, h, w = prep.x.shape
    return RequestResult(task, mode, notices + prep.notices, results, cols, rows, prep.before, (h, w),
                         measurement_note(meas, repeats, control))


def _scores(task: Task, out: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """The table's score columns of one output: {'PSNR-Y (dB)': .., 'SSIM-Y': ..} or the denoising ones."""
    columns, keys = task.score_columns
    met = task.metrics(out, reference)
    return {col: met[key] for col, key in zip(columns, keys)}


CONTROL = '(control)'


def _timed_side_by_side(models: list[LoadedModel], x: torch.Tensor, repeats: int):
    """Each model's outputs (its warm-up too), rounds of runtimes all interleaved with a control, peak memory."""
    outputs = {lm.variant: lm.runner(x) for lm in models}
    runners = {lm.variant: lm.runner for lm in models}
    runners[CONTROL] = models[0].runner
    runs = measure_side_by_side(runners, x, repeats, warmup=0)
    memory = {lm.variant: peak_memory(lm.runner, x) for lm in models}
    control = statistics.median(paired_ratios(runs[models[0].variant], runs[CONTROL]))
    return outputs, runs, memory, control


def _run_models(task: Task, models: list[LoadedModel], prep: Prepared, repeats: int):
    """Every model on the prepared input, timed side by side: its output (at 8 bits, as the page shows it; a
    16-bit upload's input keeps its precision), time (median and quartiles over the rounds), memory and scores."""
    results = []
    with _RUN_LOCK, torch.no_grad():
        outputs, runs, memory, control = _timed_side_by_side(models, prep.x, repeats)
    method = memory[models[0].variant][1]
    meas = Measurement(0.0, 0.0, [], None, prep.x.device.type, device_name(prep.x.device),
                       None if prep.x.device.type == 'cuda' else torch.get_num_threads(), method)
    for lm in models:
        q1, median, q3 = quartiles(runs[lm.variant])
        out = tensor_to_image(outputs[lm.variant])
        peak = memory[lm.variant][0]
        row = {'Model': lm.name, 'GFLOPs (128×128)': lm.gflops,
               'FLOPs (% of baseline)': 100 * lm.flops_ratio, 'Parameters': int(lm.params),
               'Runtime (ms)': median, 'Runtime quartiles (ms)': (q1, q3),
               'Peak memory (MB)': None if peak is None else peak / 2**20,
               'Device': device_label(meas)}  # shown once, in the measurement note
        if prep.reference is not None:
            row.update(_scores(task, out, prep.reference))
        results.append(ModelResult(lm.name, lm.variant, out, row))
    return results, meas, control


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
