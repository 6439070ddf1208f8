"""The restoration tasks as objects: everything that differs between super-resolution and denoising.

    task = tasks.get('sr')                       # or 'denoise'; a Task passes through
    items = task.load_set(root, 'Set5', scale=4, sigma_255=70, seed=0)
    x = task.model_input(items[0])               # 1 x C x H x W float32 array
    floor = task.floor_output(items[0], scale=4) # MATLAB bicubic (SR) / the noisy input (denoising)
    scores = task.metrics(output_u8, items[0][2], scale=4)

An *item* is ``(name, degraded input, reference or None)``: SR ``(name, LR uint8 RGB, HR uint8 RGB)``,
denoising ``(name, noisy float32 gray on 0-1, unclipped, clean uint8 gray)``.  The test-set loaders
(:mod:`restore_dhp.data.testsets`) and an uploaded image (:meth:`Task.upload_item`, for the demo)
both give items, so the benchmark and the demo run a model, its floor and its scores the same way.
Entries carry the task object instead of branching on its name.  The shipped models of each task
(file names, variants, scale, σ) are in :mod:`restore_dhp.catalogue`.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod

import numpy as np

from .data import testsets
from .data.pixels import to_gray, to_rgb3, to_uint8
from .degradations import add_fixed_noise, bicubic_downscale, matlab_resize, modcrop
from .metrics import denoise_metrics, sr_metrics


class InputError(ValueError):
    """An input the demo cannot use; the message is one line for the page."""


def size_text(w: int, h: int) -> str:
    """'W×H' of an image or a pixel budget."""
    return f'{w}×{h}'


def _check_side(img: np.ndarray, min_side: int) -> None:
    h, w = img.shape[:2]
    if min(h, w) < min_side:
        raise InputError(f'Image is {size_text(w, h)}; the smallest input is {min_side}×{min_side} pixels.')


class Task(ABC):
    """What one restoration task does differently; see the module docstring."""
    key = ''
    channels = 0                # image channels of the task's networks
    floor_name = ''             # the trivial floor's row name in reports
    metric_columns: tuple = ()  # (key in the metrics dicts, label); the first is the headline metric
    uses_noise = False          # whether a noise level and seed define its test inputs

    @property
    def primary_metric(self) -> str:
        return self.metric_columns[0][0]

    @property
    def score_columns(self) -> tuple[tuple[str, str], tuple[str, str]]:
        """((PSNR column label, SSIM column label), (their metric keys)) for the demo's table."""
        (psnr_key, psnr_label), (ssim_key, ssim_label) = self.metric_columns[:2]
        return (f'{psnr_label} (dB)', ssim_label), (psnr_key, ssim_key)

    def floor_label(self, scale: int | None = None) -> str:
        """The floor's name; with ``scale`` for a page that states the factor (e.g. 'Bicubic ×4')."""
        return self.floor_name

    @abstractmethod
    def model_input(self, item) -> np.ndarray:
        """1 x C x H x W float32 array the model takes for one item (the noisy input is not clipped)."""

    @abstractmethod
    def floor_output(self, item, scale: int) -> np.ndarray:
        """The trivial baseline's uint8 output for one item: what a model has to beat."""

    @abstractmethod
    def metrics(self, out_u8: np.ndarray, ref_u8: np.ndarray, scale: int) -> dict[str, float]:
        """The task's scores of an output against its reference (keys: :attr:`metric_columns` but LPIPS)."""

    @abstractmethod
    def load_set(self, root: str | os.PathLike, name: str, scale: int, sigma_255: float, seed: int) -> list:
        """Test set ``name`` under ``root`` as items (:mod:`restore_dhp.data.testsets`)."""

    def conventions(self, sigma_255: float, seed: int) -> dict:
        """The noise conventions of a run (``None`` where the task has no noise)."""
        return {'sigma_255': sigma_255 if self.uses_noise else None, 'noise_seed': seed if self.uses_noise else None}

    @abstractmethod
    def report_title(self, run: dict) -> str:
        """The benchmark report's title for a run's conventions (``scale``, ``sigma_255``)."""

    @abstractmethod
    def metric_description(self, run: dict) -> str:
        """What the headline metric measures, in words, for the report's introduction."""

    def upload_pixels(self, network_pixels: int, scale: int, simulate: bool) -> int:
        """The upload size (pixels) whose network input is ``network_pixels``."""
        return network_pixels

    @abstractmethod
    def upload_item(self, img: np.ndarray, simulate: bool, name: str, seed: int, scale: int, sigma_255: float,
                    min_side: int) -> tuple[tuple, list[str]]:
        """An uploaded image (uint8, or uint16 when not ``simulate``) as an item (degraded first when
        ``simulate``), and notices for the page.

        Raises :class:`InputError` for an image too small for the network (``min_side`` input pixels).
        """



def unit_range(img: np.ndarray) -> np.ndarray:
    """A uint8 or uint16 image as float32 in [0, 1]."""
    return img.astype(np.float32) / (65535.0 if img.dtype == np.uint16 else 255.0)


class SRTask(Task):
    key = 'sr'
    channels = 3
    floor_name = 'Bicubic'
    metric_columns = (('psnr_y', 'PSNR-Y'), ('ssim_y', 'SSIM-Y'), ('psnr_rgb', 'PSNR-RGB'), ('lpips', 'LPIPS'))

    def floor_label(self, scale: int | None = None) -> str:
        return self.floor_name if scale is None else f'{self.floor_name} ×{scale}'

    def model_input(self, item) -> np.ndarray:
        return (unit_range(item[1])).transpose(2, 0, 1)[None].copy()

    def floor_output(self, item, scale: int) -> np.ndarray:
        return matlab_resize(to_uint8(item[1]), float(scale))

    def metrics(self, out_u8, ref_u8, scale):
        return dict(sr_metrics(out_u8, ref_u8, scale=scale))

    def load_set(self, root, name, scale, sigma_255, seed) -> list:
        return testsets.load_sr_pairs(root, name, scale=scale)

    def report_title(self, run: dict) -> str:
        return f'Super-resolution ×{run["scale"]}'

    def metric_description(self, run: dict) -> str:
        return f'PSNR in dB on the Y channel of YCbCr (MATLAB rgb2ycbcr), {run["scale"]} border pixels cropped'

    def upload_pixels(self, network_pixels, scale, simulate):
        return network_pixels * (scale ** 2 if simulate else 1)  # a simulated upload is the HR image

    def upload_item(self, img, simulate, name, seed, scale, sigma_255, min_side):
        img, notices = to_rgb3(img), []
        if not simulate:
            _check_side(img, min_side)
            return (name, img, None), notices
        h, w = img.shape[:2]
        if min(h, w) < min_side * scale:
            raise InputError(f'Image is {size_text(w, h)}; simulated ×{scale} super-resolution needs '
                             f'at least {min_side * scale}×{min_side * scale} pixels.')
        hr = modcrop(img, scale)
        if hr.shape[:2] != (h, w):
            notices.append(f'Cropped to {size_text(hr.shape[1], hr.shape[0])} (a multiple of {scale}).')
        return (name, bicubic_downscale(hr, scale), hr), notices


class DenoiseTask(Task):
    key = 'denoise'
    channels = 1
    floor_name = 'Noisy input'
    metric_columns = (('psnr', 'PSNR'), ('ssim', 'SSIM'), ('lpips', 'LPIPS'))
    uses_noise = True

    def model_input(self, item) -> np.ndarray:
        return item[1].astype(np.float32)[None, None].copy()

    def floor_output(self, item, scale: int) -> np.ndarray:
        return np.clip(np.round(item[1] * 255.0), 0, 255).astype(np.uint8)

    def metrics(self, out_u8, ref_u8, scale):
        return dict(denoise_metrics(out_u8, ref_u8))

    def load_set(self, root, name, scale, sigma_255, seed) -> list:
        return testsets.load_denoise_set(root, name, sigma_255=sigma_255, seed=seed)

    def report_title(self, run: dict) -> str:
        return f'Denoising (σ={run.get("sigma_255") or 0:g})'

    def metric_description(self, run: dict) -> str:
        return f'PSNR in dB on gray images, Gaussian noise σ={run["sigma_255"]:g} (0–255 scale)'

    def upload_item(self, img, simulate, name, seed, scale, sigma_255, min_side):
        _check_side(img, min_side)
        notices = ['Converted to gray (the DnCNN models are gray-level).'] if img.ndim == 3 else []
        gray = to_gray(img)
        if not simulate:
            return (name, unit_range(gray), None), notices
        notices.append(f'Noise: σ={sigma_255:g}, seed {seed}.')
        return (name, add_fixed_noise(gray, sigma_255, name, seed), gray), notices


BY_KEY: dict[str, Task] = {t.key: t for t in (SRTask(), DenoiseTask())}


def get(task: str | Task) -> Task:
    """The task object of a name ('sr', 'denoise'); a task object is returned as it is."""
    if isinstance(task, Task):
        return task
    try:
        return BY_KEY[task]
    except KeyError:
        raise ValueError(f'unknown task {task!r}; choose one of {", ".join(BY_KEY)}') from None
