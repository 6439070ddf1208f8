"""The restoration tasks as objects: everything that differs between super-resolution and denoising.

A task is configured: ``SRTask(scale=4)``, ``DenoiseTask(sigma=70)``.  The shipped ones hold their
catalogue entry (file names, network, title, variants): :data:`restore_dhp.catalogue.TASKS` holds them,
and :func:`restore_dhp.catalogue.get_task` finds one by name.

    task = catalogue.get_task('sr')              # SRTask(scale=4), with its catalogue entry (task.entry)
    items = task.load_set(root, 'Set5', seed=0)
    x = task.model_input(items[0])               # 1 x C x H x W float32 tensor (restore_dhp.data.pixels)
    floor = task.floor_output(items[0])          # MATLAB bicubic (SR) / the noisy input (denoising)
    scores = task.metrics(output_u8, items[0][2])
    item, notices = task.upload_item(img, simulate=True, seed=0)   # an uploaded image as an item
    task.at(scale=2)                             # the same task otherwise configured (no catalogue entry)

An *item* is ``(name, degraded input, reference or None)``: SR ``(name, LR uint8 RGB, HR uint8 RGB)``,
denoising ``(name, noisy float32 gray on 0-1, unclipped, clean uint8 gray)``.  The test-set loaders
(:mod:`restore_dhp.data.testsets`) and an uploaded image (:meth:`Task.upload_item`, for the demo)
both give items, so the benchmark and the demo run a model, its floor and its scores the same way.
Entries carry the task object instead of branching on its name.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from .data import testsets
from .data.pixels import image_to_tensor, to_gray, to_rgb3, to_uint8, unit_range
from .degradations import add_fixed_noise, bicubic_downscale, matlab_resize, modcrop
from .metrics import denoise_metrics, sr_metrics

MIN_SIDE = 8                  # the smallest network input side an upload may have
UPLOAD_NOISE_NAME = 'upload'  # an upload's simulated noise depends only on its seed


class InputError(ValueError):
    """An input the demo cannot use; the message is one line for the page."""


def size_text(w: int, h: int) -> str:
    """'W×H' of an image or a pixel budget."""
    return f'{w}×{h}'


def _check_side(img: np.ndarray, min_side: int) -> None:
    h, w = img.shape[:2]
    if min(h, w) < min_side:
        raise InputError(f'Image is {size_text(w, h)}; the smallest input is {min_side}×{min_side} pixels.')


@dataclass(frozen=True)
class Task(ABC):
    """What one restoration task does differently, configured (``scale``, ``sigma``); see the module docstring.

    ``entry``: what the catalogue ships for this configuration (``None`` for one it does not ship); two tasks
    alike but for it are equal.
    """
    key: ClassVar[str] = ''
    channels: ClassVar[int] = 0               # image channels of the task's networks
    floor_name: ClassVar[str] = ''            # the trivial floor's row name in reports
    metric_columns: ClassVar[tuple] = ()      # (key in the metrics dicts, label); the first is the headline metric
    uses_noise: ClassVar[bool] = False        # whether a noise level and seed define its test inputs
    scale: ClassVar[int] = 1                  # output size over input size
    # restore_dhp.catalogue.CatalogueEntry (a name only: the catalogue imports this module)
    entry: CatalogueEntry | None = field(default=None, kw_only=True, compare=False, repr=False)  # noqa: F821

    @property
    def primary_metric(self) -> str:
        return self.metric_columns[0][0]

    @property
    def score_columns(self) -> tuple[tuple[str, str], tuple[str, str]]:
        """((PSNR column label, SSIM column label), (their metric keys)) for the demo's table."""
        (psnr_key, psnr_label), (ssim_key, ssim_label) = self.metric_columns[:2]
        return (f'{psnr_label} (dB)', ssim_label), (psnr_key, ssim_key)

    def floor_label(self, with_scale: bool = False) -> str:
        """The floor's name; ``with_scale`` for a page that states the factor (e.g. 'Bicubic ×4')."""
        return self.floor_name

    @abstractmethod
    def at(self, scale: int | None = None, sigma: float | None = None) -> Task:
        """This task at another ``scale`` (SR) or noise level ``sigma`` (denoising; 0-255 scale); what does not
        apply to the task is ignored.  Itself when nothing changes, else a task without catalogue entry."""

    def model_input(self, item, device=None) -> torch.Tensor:
        """The ``1 x C x H x W`` float32 tensor the model takes for one item, on ``device`` (the noisy input is
        not clipped)."""
        return image_to_tensor(item[1], self.channels, device)

    @abstractmethod
    def floor_output(self, item) -> np.ndarray:
        """The trivial baseline's uint8 output for one item: what a model has to beat."""

    @abstractmethod
    def metrics(self, out_u8: np.ndarray, ref_u8: np.ndarray) -> dict[str, float]:
        """The task's scores of an output against its reference (keys: :attr:`metric_columns` but LPIPS)."""

    @abstractmethod
    def load_set(self, root: str | os.PathLike, name: str, seed: int = 0) -> list:
        """Test set ``name`` under ``root`` as items (:mod:`restore_dhp.data.testsets`); ``seed``: of the noise."""

    def conventions(self, seed: int) -> dict:
        """The noise conventions of a run with noise seed ``seed`` (``None`` where the task has no noise)."""
        return {'sigma_255': None, 'noise_seed': None}

    @abstractmethod
    def report_title(self, run: dict) -> str:
        """The benchmark report's title for a run's conventions (``scale``, ``sigma_255``)."""

    @abstractmethod
    def metric_description(self, run: dict) -> str:
        """What the headline metric measures, in words, for the report's introduction."""

    def upload_pixels(self, network_pixels: int, simulate: bool) -> int:
        """The upload size (pixels) whose network input is ``network_pixels``."""
        return network_pixels

    @abstractmethod
    def upload_item(self, img: np.ndarray, simulate: bool, seed: int = 0) -> tuple[tuple, list[str]]:
        """An uploaded image (uint8, or uint16 when not ``simulate``) as an item (degraded first when
        ``simulate``; the noise seeded by ``seed``), and notices for the page.

        Raises :class:`InputError` for an image too small for the network (:data:`MIN_SIDE` input pixels).
        """


@dataclass(frozen=True)
class SRTask(Task):
    """Super-resolution by ``scale`` of RGB images: MATLAB bicubic degradation, Y-channel scores."""
    key: ClassVar[str] = 'sr'
    channels: ClassVar[int] = 3
    floor_name: ClassVar[str] = 'Bicubic'
    metric_columns: ClassVar[tuple] = (('psnr_y', 'PSNR-Y'), ('ssim_y', 'SSIM-Y'), ('psnr_rgb', 'PSNR-RGB'),
                                       ('lpips', 'LPIPS'))
    scale: int

    def __post_init__(self):
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, np.integer)) or self.scale < 1:
            raise ValueError(f'SRTask: scale must be a whole number >= 1, got {self.scale!r}')

    def at(self, scale=None, sigma=None) -> Task:
        return self if scale is None or int(scale) == self.scale else SRTask(scale=int(scale))

    def floor_label(self, with_scale: bool = False) -> str:
        return f'{self.floor_name} ×{self.scale}' if with_scale else self.floor_name

    def floor_output(self, item) -> np.ndarray:
        return matlab_resize(to_uint8(item[1]), float(self.scale))

    def metrics(self, out_u8, ref_u8):
        return dict(sr_metrics(out_u8, ref_u8, scale=self.scale))

    def load_set(self, root, name, seed=0) -> list:
        return testsets.load_sr_pairs(root, name, scale=self.scale)

    def report_title(self, run: dict) -> str:
        return f'Super-resolution ×{run["scale"]}'

    def metric_description(self, run: dict) -> str:
        return f'PSNR in dB on the Y channel of YCbCr (MATLAB rgb2ycbcr), {run["scale"]} border pixels cropped'

    def upload_pixels(self, network_pixels, simulate):
        return network_pixels * (self.scale ** 2 if simulate else 1)  # a simulated upload is the HR image

    def upload_item(self, img, simulate, seed=0):
        img, notices, scale = to_rgb3(img), [], self.scale
        if not simulate:
            _check_side(img, MIN_SIDE)
            return (UPLOAD_NOISE_NAME, img, None), notices
        h, w = img.shape[:2]
        if min(h, w) < MIN_SIDE * scale:
            raise InputError(f'Image is {size_text(w, h)}; simulated ×{scale} super-resolution needs '
                             f'at least {MIN_SIDE * scale}×{MIN_SIDE * scale} pixels.')
        hr = modcrop(img, scale)
        if hr.shape[:2] != (h, w):
            notices.append(f'Cropped to {size_text(hr.shape[1], hr.shape[0])} (a multiple of {scale}).')
        return (UPLOAD_NOISE_NAME, bicubic_downscale(hr, scale), hr), notices


@dataclass(frozen=True)
class DenoiseTask(Task):
    """Removing Gaussian noise of ``sigma`` (0-255 scale) from gray images."""
    key: ClassVar[str] = 'denoise'
    channels: ClassVar[int] = 1
    floor_name: ClassVar[str] = 'Noisy input'
    metric_columns: ClassVar[tuple] = (('psnr', 'PSNR'), ('ssim', 'SSIM'), ('lpips', 'LPIPS'))
    uses_noise: ClassVar[bool] = True
    sigma: float

    def __post_init__(self):
        if isinstance(self.sigma, bool) or not isinstance(self.sigma, (int, float, np.number)) or not self.sigma >= 0:
            raise ValueError(f'DenoiseTask: sigma must be a number >= 0 (0-255 scale), got {self.sigma!r}')

    def at(self, scale=None, sigma=None) -> Task:
        return self if sigma is None or float(sigma) == self.sigma else DenoiseTask(sigma=float(sigma))

    def floor_output(self, item) -> np.ndarray:
        return to_uint8(item[1])

    def metrics(self, out_u8, ref_u8):
        return dict(denoise_metrics(out_u8, ref_u8))

    def load_set(self, root, name, seed=0) -> list:
        return testsets.load_denoise_set(root, name, sigma_255=self.sigma, seed=seed)

    def conventions(self, seed: int) -> dict:
        return {'sigma_255': self.sigma, 'noise_seed': seed}

    def report_title(self, run: dict) -> str:
        return f'Denoising (σ={run.get("sigma_255") or 0:g})'

    def metric_description(self, run: dict) -> str:
        return f'PSNR in dB on gray images, Gaussian noise σ={run["sigma_255"]:g} (0–255 scale)'

    def upload_item(self, img, simulate, seed=0):
        _check_side(img, MIN_SIDE)
        notices = ['Converted to gray (the DnCNN models are gray-level).'] if img.ndim == 3 else []
        gray = to_gray(img)
        if not simulate:
            return (UPLOAD_NOISE_NAME, unit_range(gray), None), notices
        notices.append(f'Noise: σ={self.sigma:g}, seed {seed}.')
        return (UPLOAD_NOISE_NAME, add_fixed_noise(gray, self.sigma, UPLOAD_NOISE_NAME, seed), gray), notices
