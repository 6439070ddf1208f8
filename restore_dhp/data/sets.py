"""The data sets the project knows: names, folder aliases, expected counts, where to get them, and the "291" layout.

Used by ``python -m restore_dhp.prepare_data`` (which lays the sets out) and by the test-set
loaders (which name the download page of a missing set).
"""
from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)
NOT_VERIFIED = 'not verified offline'

_EDSR_BENCHMARK = 'https://cv.snu.ac.kr/research/EDSR/benchmark.tar'
_SELFEXSR = "https://github.com/jbhuang0604/SelfExSR (the data links in that repository's own README)"
_DIV2K_PAGE = 'https://data.vision.ee.ethz.ch/cvl/DIV2K/'
_DNCNN = 'https://github.com/cszn/DnCNN'


@dataclass(frozen=True)
class SetSpec:
    kind: str                 # 'sr' (HR + LR_bicubic/X4), 'gray' (flat, gray), 'rgb' (flat, RGB HR only), 'hr' (NAME/HR)
    count: int                # expected number of images
    aliases: tuple            # folder names (or relative path suffixes) recognised in --source
    urls: tuple               # official download addresses
    sha256: str = NOT_VERIFIED
    note: str = ''
    lr_aliases: tuple = field(default=())


SETS: dict[str, SetSpec] = {
    'Set5': SetSpec('sr', 5, ('Set5',), (_EDSR_BENCHMARK, _SELFEXSR),
                    note='benchmark.tar holds benchmark/{Set5,Set14,B100,Urban100}/HR + LR_bicubic/X4'),
    'Set14': SetSpec('sr', 14, ('Set14',), (_EDSR_BENCHMARK, _SELFEXSR)),
    'B100': SetSpec('sr', 100, ('B100', 'BSD100', 'BSDS100'), (_EDSR_BENCHMARK, _SELFEXSR)),
    'Urban100': SetSpec('sr', 100, ('Urban100',), (_EDSR_BENCHMARK, _SELFEXSR)),
    'DIV2K': SetSpec('sr', 100, ('DIV2K_valid_HR', 'DIV2K'),
                     (_DIV2K_PAGE + 'DIV2K_valid_HR.zip', _DIV2K_PAGE + 'DIV2K_valid_LR_bicubic_X4.zip'),
                     note='validation images 0801-0900; page: ' + _DIV2K_PAGE,
                     lr_aliases=('DIV2K_valid_LR_bicubic/X4', 'DIV2K_valid_LR_bicubic_X4/X4',
                                 'DIV2K_valid_LR_bicubic_X4')),
    'DIV2K_train': SetSpec('hr', 800, ('DIV2K_train_HR',), (_DIV2K_PAGE + 'DIV2K_train_HR.zip',),
                           note='training images 0001-0800'),
    'BSD68': SetSpec('gray', 68, ('BSD68', 'Set68'), (_DNCNN + '/tree/master/testsets/BSD68',)),
    'Set12': SetSpec('gray', 12, ('Set12',), (_DNCNN + '/tree/master/testsets/Set12',)),
    'Train400': SetSpec('gray', 400, ('Train400',),
                        (_DNCNN + '/tree/master/TrainingCodes/DnCNN_TrainingCodes_v1.0/data/Train400',)),
    'T91': SetSpec('rgb', 91, ('T91', '91-image', 'T91_HR'),
                   ('http://mmlab.ie.cuhk.edu.hk/projects/SRCNN.html (91-image set in the SRCNN training code)',
                    'http://www.ifp.illinois.edu/~jyang29/ScSR.htm (Yang et al. 2010)')),
    'BSD200': SetSpec('rgb', 200, ('BSD200', 'BSDS300/images/train'),
                      ('https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/bsds/BSDS300-images.tgz',),
                      note='the 200 images of BSDS300 images/train'),
}


def where_to_get(name: str) -> str:
    """One line with the official address(es) of set ``name``."""
    spec = SETS.get(name)
    if spec is None:
        return f'unknown set {name!r}; known: {", ".join(SETS)}'
    s = ' or '.join(spec.urls)
    return s + (f' ({spec.note})' if spec.note else '')


def link_sr291(dest: str | os.PathLike) -> int:
    """Make ``DEST/SR291/HR`` (the classic "291" set) from ``DEST/T91`` and ``DEST/BSD200`` by relative links.

    BasicSR's option parser takes one folder per ``dataroot_gt``; this folder
    lets a training option file name both sets at once.  Files are copied where
    links are not supported.  Returns the number of images in the folder.
    """
    dest = Path(dest)
    out = dest / 'SR291' / 'HR'
    out.mkdir(parents=True, exist_ok=True)
    for part in ('T91', 'BSD200'):
        folder = dest / part
        if not folder.is_dir():
            logger.warning('SR291: %s missing, the "291" set will be incomplete; get it from %s',
                           folder, where_to_get(part))
            continue
        for img in sorted(folder.glob('*.png')):
            link = out / f'{part}_{img.name}'
            if link.exists() or link.is_symlink():
                continue
            try:
                link.symlink_to(os.path.relpath(img.resolve(), out.resolve()))
            except OSError:
                shutil.copy2(img, link)
    return len(list(out.glob('*.png')))


HOLDOUT_EVERY = 20  # every 20th BSD200 image of "291" (sorted by name) is validation: 10 images


def holdout_split(folder: str | os.PathLike, dest: str | os.PathLike) -> tuple[int, int]:
    """Split the "291" images in ``folder`` into ``DEST/SR291_train/HR`` and ``DEST/SR291_val/HR`` by links.

    Every :data:`HOLDOUT_EVERY`-th ``BSD200_*`` image (sorted by name) goes to
    validation, the rest to training.  Works on any image extension, so the
    same split can be made from re-encoded copies.  Returns (train, val) counts.
    """
    folder, dest = Path(folder), Path(dest)
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in ('.png', '.webp'))
    bsd = [p for p in images if p.name.startswith('BSD200_')]
    held = set(bsd[HOLDOUT_EVERY - 1::HOLDOUT_EVERY])
    counts = []
    for name, members in (('SR291_train', [p for p in images if p not in held]), ('SR291_val', sorted(held))):
        out = dest / name / 'HR'
        out.mkdir(parents=True, exist_ok=True)
        for img in members:
            link = out / img.name
            if not (link.exists() or link.is_symlink()):
                try:
                    link.symlink_to(os.path.relpath(img.resolve(), out.resolve()))
                except OSError:
                    shutil.copy2(img, link)
        counts.append(len(members))
    return counts[0], counts[1]
