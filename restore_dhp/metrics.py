"""Evaluation metrics for super-resolution and denoising.

* :func:`sr_metrics` -- PSNR and SSIM on the Y channel (MATLAB ``rgb2ycbcr``,
  BT.601, Y in 16-235) with ``crop_border=scale``, plus RGB PSNR with the same
  crop.  Numerically the same as BasicSR's ``calculate_psnr`` /
  ``calculate_ssim`` with ``test_y_channel=True`` (BasicSR wants BGR there; we
  take RGB and convert).
* :func:`denoise_metrics` -- PSNR and SSIM on gray images, cropping
  :data:`DENOISE_CROP_BORDER` pixels.
* :func:`lpips_metric` / :class:`LPIPS` -- optional LPIPS (AlexNet), only when
  the ``lpips`` package and the torchvision AlexNet weights are already on
  disk; never downloads.

Inputs are ``uint8`` arrays (RGB ``HxWx3`` or gray ``HxW``); float arrays on
the 0-255 scale are accepted too.
"""
from __future__ import annotations

import logging
import os
import warnings
from typing import Callable

import cv2
import numpy as np
import torch

from .data.pixels import to_rgb3

logger = logging.getLogger(__name__)

#: Border cropped before denoising PSNR/SSIM.  The DHP paper (Li et al., ECCV 2020)
#: evaluates denoising with a 1-pixel border cropped; we follow it.
DENOISE_CROP_BORDER = 1

# MATLAB rgb2ycbcr Y row (BT.601, 16-235); see basicsr.utils.color_util.
_Y_FROM_BGR = [24.966, 128.553, 65.481]


def _crop(img: np.ndarray, crop_border: int) -> np.ndarray:
    if crop_border < 0:
        raise ValueError(f'crop_border must be >= 0, got {crop_border}')
    if crop_border == 0:
        return img
    return img[crop_border:-crop_border, crop_border:-crop_border, ...]


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """Y channel (16-235 range, 0-255 scale, float64, not rounded) of an RGB image.

    Computed like BasicSR's ``to_y_channel`` (float32 arithmetic on the 0-1
    scale, MATLAB ``rgb2ycbcr`` coefficients) so results agree bit for bit.
    A gray ``HxW`` (or ``HxWx1``) image is returned unchanged (as float64).
    """
    if img.ndim == 2:
        return img.astype(np.float64)
    if img.ndim == 3 and img.shape[2] == 1:
        return img[..., 0].astype(np.float64)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'Expected HxWx3 RGB or HxW gray image, got shape {img.shape}')
    x = img.astype(np.float32) / 255.
    bgr = x[..., ::-1]
    y = np.dot(bgr, _Y_FROM_BGR) + 16.0
    y = y / 255.
    return (y.astype(np.float32) * 255.).astype(np.float64)


def psnr(img: np.ndarray, img2: np.ndarray, crop_border: int = 0) -> float:
    """PSNR in dB for images on the 0-255 scale (any channel count); ``inf`` if identical."""
    if img.shape != img2.shape:
        raise ValueError(f'Image shapes are different: {img.shape}, {img2.shape}.')
    a = _crop(img, crop_border).astype(np.float64)
    b = _crop(img2, crop_border).astype(np.float64)
    mse = np.mean((a - b) ** 2)
    if mse == 0:
        return float('inf')
    return float(10. * np.log10(255. * 255. / mse))


def _ssim_channel(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of one float64 channel (Wang et al. 2004: 11x11 Gaussian, sigma 1.5, 'valid' window)."""
    c1 = (0.01 * 255) ** 2
    c2 = (0.03 * 255) ** 2
    g = cv2.getGaussianKernel(11, 1.5)
    win = g @ g.T

    def filt(x):
        return cv2.filter2D(x, -1, win)[5:-5, 5:-5]

    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a ** 2
    var_b = filt(b * b) - mu_b ** 2
    cov = filt(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))


def ssim(img: np.ndarray, img2: np.ndarray, crop_border: int = 0) -> float:
    """SSIM for images on the 0-255 scale; multi-channel images are averaged over channels."""
    if img.shape != img2.shape:
        raise ValueError(f'Image shapes are different: {img.shape}, {img2.shape}.')
    a = _crop(img, crop_border).astype(np.float64)
    b = _crop(img2, crop_border).astype(np.float64)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    if min(a.shape[:2]) < 11:
        raise ValueError(f'SSIM needs at least 11x11 pixels after cropping, got {a.shape[:2]}')
    return float(np.mean([_ssim_channel(a[..., c], b[..., c]) for c in range(a.shape[2])]))


def sr_metrics(output_u8: np.ndarray, hr_u8: np.ndarray, scale: int = 4) -> dict:
    """SR metrics: ``{'psnr_y', 'ssim_y', 'psnr_rgb'}``.

    ``output_u8``/``hr_u8``: HxWx3 uint8 RGB (or HxW gray).  Y channel is MATLAB
    ``rgb2ycbcr`` (BT.601, 16-235); ``crop_border=scale`` pixels are removed on
    every side for all three numbers (same as BasicSR ``calculate_psnr(img,
    img2, crop_border=scale, test_y_channel=True)`` on BGR inputs).
    """
    if output_u8.shape != hr_u8.shape:
        raise ValueError(f'Output and HR shapes differ: {output_u8.shape} vs {hr_u8.shape}')
    crop = int(scale)
    y_out, y_hr = rgb_to_y(_crop(output_u8, crop)), rgb_to_y(_crop(hr_u8, crop))
    return {
        'psnr_y': psnr(y_out, y_hr),
        'ssim_y': ssim(y_out, y_hr),
        'psnr_rgb': psnr(output_u8, hr_u8, crop_border=crop),
    }


def denoise_metrics(output_u8: np.ndarray, clean_u8: np.ndarray, crop_border: int = DENOISE_CROP_BORDER) -> dict:
    """Denoising metrics on the gray image: ``{'psnr', 'ssim'}``.

    ``crop_border`` defaults to :data:`DENOISE_CROP_BORDER` = 1 pixel, as in the
    DHP paper.  Inputs HxW (or HxWx1) uint8; round/clip model outputs to uint8
    before calling, as is usual for reported numbers.
    """
    if output_u8.shape != clean_u8.shape:
        raise ValueError(f'Output and clean shapes differ: {output_u8.shape} vs {clean_u8.shape}')
    if output_u8.ndim == 3 and output_u8.shape[2] == 1:
        output_u8, clean_u8 = output_u8[..., 0], clean_u8[..., 0]
    if output_u8.ndim != 2:
        raise ValueError(f'denoise_metrics expects gray HxW images, got shape {output_u8.shape}')
    return {'psnr': psnr(output_u8, clean_u8, crop_border),
            'ssim': ssim(output_u8, clean_u8, crop_border)}


# ----------------------------------------------------------------------------- LPIPS (optional)
ALEXNET_WEIGHTS = 'alexnet-owt-7be5be79.pth'
ALEXNET_URL = f'https://download.pytorch.org/models/{ALEXNET_WEIGHTS}'  # torchvision's AlexNet (IMAGENET1K_V1)


def _alexnet_cache_path() -> str:
    return os.path.join(torch.hub.get_dir(), 'checkpoints', ALEXNET_WEIGHTS)


def _import_lpips():
    """The lpips package (imported on first use: it imports torchvision, seconds), or the ImportError."""
    try:
        import lpips
        return lpips
    except Exception as e:  # pragma: no cover - depends on environment; LPIPS is an optional column
        return e


def lpips_unavailable_reason() -> str | None:
    """``None`` if LPIPS can be built offline, else one line saying why not (and where the weights go)."""
    lpips = _import_lpips()
    if isinstance(lpips, Exception):
        return f'LPIPS column left out: the lpips package is not importable ({type(lpips).__name__}: {lpips}).'
    lin = os.path.join(os.path.dirname(lpips.__file__), 'weights', 'v0.1', 'alex.pth')
    if not os.path.isfile(lin):
        return f'LPIPS column left out: lpips linear-layer weights missing ({lin}).'
    backbone = _alexnet_cache_path()
    if not os.path.isfile(backbone):
        return (f'LPIPS column left out: AlexNet backbone weights not in the torch hub cache ({backbone}); '
                f'no download is attempted (put {ALEXNET_URL} there).')
    return None


class LPIPS:
    """LPIPS (AlexNet, v0.1) distance between two uint8 RGB images; lower is better.

    Build through :func:`lpips_metric`, which checks that everything is on disk.
    """

    def __init__(self, device: str = 'cpu'):
        reason = lpips_unavailable_reason()
        if reason is not None:
            raise RuntimeError(reason)
        import lpips
        import torchvision

        # Build with a random backbone (no download), then load the cached AlexNet weights ourselves.
        with warnings.catch_warnings():  # torchvision's 'pretrained' deprecation notices
            warnings.simplefilter('ignore', UserWarning)
            self.model = lpips.LPIPS(net='alex', version='0.1', pnet_rand=True, verbose=False)
        state = torch.load(_alexnet_cache_path(), map_location='cpu', weights_only=True)
        alex = torchvision.models.alexnet()
        alex.load_state_dict(state)
        feats = alex.features
        for slice_mod in (self.model.net.slice1, self.model.net.slice2, self.model.net.slice3,
                          self.model.net.slice4, self.model.net.slice5):
            for name, mod in slice_mod.named_children():
                mod.load_state_dict(feats[int(name)].state_dict())
        self.device = device
        self.model.to(device).eval()

    def __call__(self, output_u8: np.ndarray, ref_u8: np.ndarray) -> float:
        def t(x):
            x = to_rgb3(np.asarray(x))
            return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))).float().div(127.5).sub(1)[None]

        with torch.no_grad():
            return float(self.model(t(output_u8).to(self.device), t(ref_u8).to(self.device)).item())


_LPIPS_REPORTED = False


def lpips_metric(device: str = 'cpu') -> Callable[[np.ndarray, np.ndarray], float] | None:
    """An LPIPS callable ``f(output_u8, ref_u8) -> float``, or ``None`` (with one logged line why).

    Never downloads anything: needs the ``lpips`` package (its linear weights
    ship inside it) and ``alexnet-owt-7be5be79.pth`` in the torch hub cache.
    """
    global _LPIPS_REPORTED
    reason = lpips_unavailable_reason()
    if reason is None:
        try:
            return LPIPS(device)
        except Exception as e:  # corrupt weights, version mismatch ...
            reason = f'LPIPS column left out: building LPIPS failed ({e.__class__.__name__}: {e}).'
    if not _LPIPS_REPORTED:
        logger.warning(reason)  # with no logging configured, Python prints this one line to stderr
        _LPIPS_REPORTED = True
    return None


__all__ = ['DENOISE_CROP_BORDER', 'sr_metrics', 'denoise_metrics', 'psnr', 'ssim', 'rgb_to_y',
           'LPIPS', 'lpips_metric', 'lpips_unavailable_reason']
