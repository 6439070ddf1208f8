"""The demo's example inputs: small images made from scikit-image's bundled photos (no download).

:func:`write_examples` writes them as PNG files; :data:`EXAMPLES` lists, per task, which example
shows which mode.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as skimage_data

from .data.pixels import to_gray, to_uint8
from .degradations import add_fixed_noise, matlab_resize
from .fileio import atomic_path
from .tasks import UPLOAD_NOISE_NAME
#: per task: (example name, mode) rows of the page's example list
EXAMPLES = {'sr': (('astronaut_hr', 'simulate'), ('coffee_lr', 'restore')),
            'denoise': (('camera', 'simulate'), ('chelsea_noisy', 'restore'))}


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
    noisy = add_fixed_noise(cat, 70.0, UPLOAD_NOISE_NAME, 1)
    save('chelsea_noisy', to_uint8(noisy))
    return out
