#!/usr/bin/env python
"""Build ``.device_data/`` (git-ignored), what research/gpu_campaign/gpu_session.sh needs on a lent GPU machine, under
the 64 MiB that travels with the checkout there.

    python -m research.gpu_campaign.make_device_data --datasets datasets      # after python -m restore_dhp.prepare_data

* ``site/``: BasicSR and addict (pure Python) copied from this environment, plus two stubs for what the device
  image (Python 3.12) lacks: ``lmdb`` (BasicSR imports it, our runs never read LMDB) and
  ``distutils.version.LooseVersion`` (removed in Python 3.12; BasicSR's version check uses it);
* ``datasets/``: Set5, Set12, Train400 as they are, a few Urban100 LR and BSD68 images for timing, and "291" as
  lossless WebP (pixel-checked, file names kept) — T91, the held-out validation images, then as many other
  BSD200 images as fit in ``--budget-mb`` — and ``SR291_val.txt``, the held-out names (gpu_session.sh links
  ``SR291_train``/``SR291_val`` from it, so the split is this machine's, not one of the subset).
"""
from __future__ import annotations

import argparse
import importlib.util
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from restore_dhp.data.sets import holdout_split
from restore_dhp.fileio import atomic_path, write_text

STUBS = {
    'lmdb.py': '"""Stub: BasicSR imports lmdb at import time; these runs never read LMDB."""\n',
    'distutils/__init__.py': '',
    'distutils/version.py': ('"""Stub of distutils.version.LooseVersion (removed in Python 3.12) for BasicSR."""\n'
                             'from packaging.version import Version\n\n\n'
                             'class LooseVersion(Version):\n'
                             '    def __init__(self, text):\n'
                             "        super().__init__(text.split('+')[0])\n"),
}


def lossless_webp(src: Path, dst: Path) -> int:
    im = Image.open(src)
    im.load()
    with atomic_path(dst) as tmp:
        im.save(tmp, 'WEBP', lossless=True, method=0, quality=0)
    if not np.array_equal(np.asarray(Image.open(dst).convert(im.mode)), np.asarray(im)):
        raise SystemExit(f'{src}: the WebP copy differs')
    return dst.stat().st_size


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob('*') if p.is_file())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--datasets', default='datasets', help='prepared datasets folder (prepare_data --dest)')
    ap.add_argument('--out', default='.device_data')
    ap.add_argument('--budget-mb', type=float, default=43.0, help='size of the whole folder (the checkout travels too)')
    args = ap.parse_args(argv)
    src, out = Path(args.datasets), Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    site = out / 'site'
    ignore = shutil.ignore_patterns('__pycache__')
    for package in ('basicsr', 'addict'):  # located, not imported (BasicSR needs restore_dhp's alias first)
        shutil.copytree(Path(importlib.util.find_spec(package).origin).parent, site / package, ignore=ignore)
    for name, text in STUBS.items():
        write_text(site / name, text)
    data = out / 'datasets'
    for name in ('Set5', 'Set12', 'Train400'):
        shutil.copytree(src / name, data / name)
    (data / 'Urban100' / 'LR_bicubic' / 'X4').mkdir(parents=True)
    for i in (1, 4, 12, 24, 62):
        shutil.copy(src / 'Urban100' / 'LR_bicubic' / 'X4' / f'img_{i:03d}x4.png', data / 'Urban100' / 'LR_bicubic' / 'X4')
    (data / 'BSD68').mkdir()
    for f in sorted((src / 'BSD68').glob('*.png'))[:5]:
        shutil.copy(f, data / 'BSD68')
    hr = data / 'SR291' / 'HR'
    hr.mkdir(parents=True)
    holdout_split(src / 'SR291' / 'HR', src)
    val = sorted(p.name for p in (src / 'SR291_val' / 'HR').iterdir())
    images = sorted((src / 'SR291' / 'HR').iterdir())
    ordered = ([p for p in images if p.name.startswith('T91_')] + [p for p in images if p.name in val]
               + [p for p in images if p.name.startswith('BSD200_') and p.name not in val])
    budget = args.budget_mb * 1e6
    for p in ordered:
        if folder_bytes(out) > budget:
            break
        lossless_webp(p, hr / (p.stem + '.webp'))
    # the split is this machine's (every 20th of all BSD200 images), not recomputed from the subset there
    write_text(data / 'SR291_val.txt', ''.join(Path(v).stem + '.webp\n' for v in val))
    print(f'{out}: {len(list(hr.iterdir()))} of {len(images)} "291" images, {folder_bytes(out) / 1e6:.1f} MB')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
