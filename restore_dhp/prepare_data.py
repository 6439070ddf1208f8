"""Lay out the SR / denoising benchmark and training sets the project expects.

Usage::

    python -m restore_dhp.prepare_data --source ~/Downloads --dest datasets [--sets Set5 BSD68 ...]
    python -m restore_dhp.prepare_data --dest datasets --check

``--source`` is a folder holding the downloaded archives (``.zip``, ``.tar``,
``.tar.gz``/``.tgz``) and/or already-extracted image folders; archives are
extracted under ``DEST/.extracted``.  Sets are recognised by folder name (see
``aliases`` in :data:`SETS`).  Output layout under ``--dest`` (all PNG)::

    Set5/HR/<name>.png  Set5/LR_bicubic/X4/<name>x4.png     Set14, B100, Urban100 likewise
    DIV2K/HR/0801.png   DIV2K/LR_bicubic/X4/0801x4.png      DIV2K validation 0801-0900
    DIV2K_train/HR/0001.png                                 DIV2K training 0001-0800
    BSD68/*.png  Set12/*.png  Train400/*.png                 gray (BT.601 luma if the source is RGB)
    T91/*.png  BSD200/*.png                                  RGB, HR only
    SR291/HR/{T91,BSD200}_<name>.png                         the "291" SR training set: links to both
    SR291_train/HR, SR291_val/HR                             the same images split: every 20th BSD200 image
                                                             held out for validation (recipes are compared on
                                                             it, never on the test sets)

SR HR images are cropped to a multiple of 4; LR x4 images are copied from the
source when present and of matching size, else generated with MATLAB-compatible
bicubic (:func:`restore_dhp.degradations.bicubic_downscale`).  A Set14-style
SelfExSR layout (``image_SRF_4/img_001_SRF_4_HR.png`` + ``..._LR.png``) is
understood too.

Exit codes: preparing exits 0 when every set found in ``--source`` was written in full, even if
other sets are absent (they are listed at the end, with where to get them); 1 when a set found is
incomplete, or a set named with ``--sets`` was not found; 2 for a bad ``--source``.  ``--check``
exits 0 when every set asked for is present, else 1.

Checksums: the download archives could not be fetched on the machine this was
written on, so **no archive checksums are listed ("not verified offline")**.
Instead ``DEST/MANIFEST.sha256`` (``sha256sum`` format) records the SHA-256 of
every file this tool writes; ``--check`` verifies it when present.
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import os
import re
import sys
import tarfile
import zipfile
from pathlib import Path

from .commands import prog, run_entry
from restore_dhp.data.imageio import is_image_file, list_images, read_image, write_png
from restore_dhp.data.sr_pairs import lr_candidates
from restore_dhp.degradations import bicubic_downscale, modcrop
from restore_dhp.fileio import write_text
from restore_dhp.data.sets import SETS, SetSpec, holdout_split, link_sr291, where_to_get

logger = logging.getLogger(__name__)
SCALE = 4
MANIFEST = 'MANIFEST.sha256'
# ----------------------------------------------------------------------------- archives
ARCHIVE_SUFFIXES = ('.zip', '.tar', '.tar.gz', '.tgz', '.tar.bz2', '.tbz2', '.tar.xz')


def _archive_stem(p: Path) -> str:
    name = p.name
    for suf in sorted(ARCHIVE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suf):
            return name[:-len(suf)]
    return p.stem


def _safe_target(base: Path, member: str) -> Path:
    target = (base / member).resolve()
    if not str(target).startswith(str(base.resolve()) + os.sep) and target != base.resolve():
        raise ValueError(f'Refusing to extract {member!r}: it points outside {base}')
    return target


def extract_archives(source: Path, workdir: Path) -> list[Path]:
    """Extract every archive found in ``source`` (recursively) into ``workdir/<archive stem>``."""
    out = []
    for p in sorted(source.rglob('*')):
        if not p.is_file() or not p.name.lower().endswith(ARCHIVE_SUFFIXES):
            continue
        target = workdir / _archive_stem(p)
        done = target / '.extracted_ok'
        if not done.exists():
            logger.info('extracting %s -> %s', p, target)
            target.mkdir(parents=True, exist_ok=True)
            try:
                if p.name.lower().endswith('.zip'):
                    with zipfile.ZipFile(p) as zf:
                        for m in zf.namelist():
                            _safe_target(target, m)
                        zf.extractall(target)
                else:
                    with tarfile.open(p) as tf:
                        members = [m for m in tf.getmembers() if m.isfile() or m.isdir()]
                        for m in members:
                            _safe_target(target, m.name)
                        tf.extractall(target, members=members)
            except (zipfile.BadZipFile, tarfile.TarError, EOFError) as e:
                raise ValueError(f'Cannot extract archive {p}: {e}') from None
            write_text(done, str(p))
        out.append(target)
    return out


# ----------------------------------------------------------------------------- finding sets
def _all_dirs(roots: list[Path]) -> list[Path]:
    dirs = []
    for r in roots:
        if r.is_dir():
            dirs.append(r)
            dirs += sorted(d for d in r.rglob('*') if d.is_dir())
    return dirs


def _matches(d: Path, alias: str) -> bool:
    parts = [a.lower() for a in alias.split('/')]
    dparts = [x.lower() for x in d.parts]
    return len(dparts) >= len(parts) and dparts[-len(parts):] == parts


def find_set_dir(dirs: list[Path], aliases: tuple, exclude: Path | None = None) -> Path | None:
    for alias in aliases:
        for d in dirs:
            if exclude is not None and (d == exclude or exclude in d.parents):
                continue
            if _matches(d, alias) and any(is_image_file(f) for f in d.rglob('*')):
                return d
    return None


def _images_recursive(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob('*') if p.is_file() and is_image_file(p))


def _sr_sources(set_dir: Path) -> tuple[list[Path], dict[str, Path]]:
    """HR files and an LR lookup (stem -> path) inside one extracted SR set folder."""
    hr_dir, lr_dir = set_dir / 'HR', set_dir / 'LR_bicubic' / f'X{SCALE}'
    srf = set_dir / f'image_SRF_{SCALE}'
    if hr_dir.is_dir():
        hrs = [Path(p) for p in list_images(hr_dir)]
        lrs = [Path(p) for p in list_images(lr_dir)] if lr_dir.is_dir() else []
    elif srf.is_dir():
        files = [Path(p) for p in list_images(srf)]
        hrs = [p for p in files if re.search(r'_HR$', p.stem)]
        lrs = [p for p in files if re.search(r'_LR$', p.stem)]
    else:
        files = [Path(p) for p in list_images(set_dir)] or _images_recursive(set_dir)
        hrs = [p for p in files if not re.search(r'(_LR|x\d)$', p.stem)]
        lrs = [p for p in files if p not in hrs]
    return hrs, {p.stem: p for p in lrs}


def _out_stem(hr: Path) -> str:
    return re.sub(r'(_SRF_\d+)?_HR$', '', hr.stem)


def _div2k_filter(paths: list[Path], lo: int, hi: int) -> list[Path]:
    keep = [p for p in paths if re.fullmatch(r'\d{4}', _out_stem(p)) and lo <= int(_out_stem(p)) <= hi]
    return keep or paths


# ----------------------------------------------------------------------------- writing
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def _prepare_sr(name: str, spec: SetSpec, dirs: list[Path], dest: Path) -> list[Path]:
    set_dir = find_set_dir(dirs, spec.aliases, exclude=dest / name)
    if set_dir is None:
        return []
    hrs, lr_lookup = _sr_sources(set_dir)
    if name == 'DIV2K':
        hrs = _div2k_filter(hrs, 801, 900)
        lr_dir = find_set_dir(dirs, spec.lr_aliases) if spec.lr_aliases else None
        if lr_dir is not None:
            lr_lookup.update({p.stem: p for p in _images_recursive(lr_dir)})
    written = []
    for hp in hrs:
        stem = _out_stem(hp)
        hr = modcrop(read_image(hp, 'rgb'), SCALE)
        lr = None
        for cand in lr_candidates(hp.stem, SCALE) + lr_candidates(stem, SCALE):
            if cand in lr_lookup:
                lr = read_image(lr_lookup[cand], 'rgb')
                if lr.shape[0] * SCALE != hr.shape[0] or lr.shape[1] * SCALE != hr.shape[1]:
                    logger.warning('%s: LR %s does not match HR %s in size; regenerating with bicubic',
                                   name, lr_lookup[cand], hp)
                    lr = None
                break
        if lr is None:
            lr = bicubic_downscale(hr, SCALE)
        out_hr = dest / name / 'HR' / f'{stem}.png'
        out_lr = dest / name / 'LR_bicubic' / f'X{SCALE}' / f'{stem}x{SCALE}.png'
        write_png(out_hr, hr)
        write_png(out_lr, lr)
        written += [out_hr, out_lr]
    return written


def _prepare_flat(name: str, spec: SetSpec, dirs: list[Path], dest: Path) -> list[Path]:
    set_dir = find_set_dir(dirs, spec.aliases, exclude=dest / name)
    if set_dir is None:
        return []
    files = [Path(p) for p in list_images(set_dir)] or _images_recursive(set_dir)
    if name == 'DIV2K_train':
        files = _div2k_filter(files, 1, 800)
    mode = 'gray' if spec.kind == 'gray' else 'rgb'
    out_dir = dest / name / 'HR' if spec.kind == 'hr' else dest / name
    written = []
    for p in files:
        img = read_image(p, mode)
        out = out_dir / f'{p.stem}.png'
        write_png(out, img)
        written.append(out)
    return written


def prepare(source: str | os.PathLike, dest: str | os.PathLike, sets=None) -> dict[str, int]:
    """Lay out ``sets`` (default: all) from ``source`` into ``dest``; returns images written per set."""
    source, dest = Path(source), Path(dest)
    if not source.is_dir():
        raise FileNotFoundError(f'--source folder not found: {source}')
    sets = list(sets or SETS)
    unknown = [s for s in sets if s not in SETS]
    if unknown:
        raise ValueError(f'Unknown set(s) {unknown}; known: {", ".join(SETS)}')
    dest.mkdir(parents=True, exist_ok=True)
    extracted = extract_archives(source, dest / '.extracted')
    roots = [source] + ([dest / '.extracted'] if extracted else [])
    dirs = [d for d in _all_dirs(roots) if not (d == dest or dest in d.parents) or '.extracted' in d.parts]
    result, written = {}, []
    for name in sets:
        spec = SETS[name]
        files = (_prepare_sr if spec.kind == 'sr' else _prepare_flat)(name, spec, dirs, dest)
        n = len(files) // (2 if spec.kind == 'sr' else 1)
        result[name] = n
        written += files
        if n == 0:
            logger.warning('%s: not found in %s; get it from %s', name, source, where_to_get(name))
        else:
            logger.info('%s: wrote %d image(s)%s', name, n, '' if n == spec.count else
                        f' (expected {spec.count})')
    if {'T91', 'BSD200'} & set(sets):
        result['SR291'] = link_sr291(dest)
        result['SR291_train'], result['SR291_val'] = holdout_split(Path(dest) / 'SR291' / 'HR', Path(dest))
    _update_manifest(dest, written)
    return result


def _update_manifest(dest: Path, files: list[Path]) -> None:
    path = dest / MANIFEST
    entries = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if '  ' in line:
                h, rel = line.split('  ', 1)
                entries[rel] = h
    for f in files:
        entries[f.relative_to(dest).as_posix()] = _sha256(f)
    write_text(path, ''.join(f'{h}  {rel}\n' for rel, h in sorted(entries.items())))


# ----------------------------------------------------------------------------- check
def _count(folder: Path) -> int:
    return len(list_images(folder)) if folder.is_dir() else 0


def check(dest: str | os.PathLike, sets=None) -> dict[str, dict]:
    """Status per set: ``{'status': present|partial|missing, 'found': n, 'expected': n, 'detail': str}``."""
    dest = Path(dest)
    report = {}
    for name in list(sets or SETS):
        spec = SETS[name]
        if spec.kind == 'sr':
            n_hr = _count(dest / name / 'HR')
            n_lr = _count(dest / name / 'LR_bicubic' / f'X{SCALE}')
            found = n_hr
            detail = f'HR {n_hr}/{spec.count}, LR_bicubic/X{SCALE} {n_lr}/{spec.count}'
            complete = n_hr >= spec.count and n_lr >= n_hr
            if name == 'DIV2K' and n_hr and not complete:
                # load_sr_pairs makes LR itself when LR_bicubic is absent
                complete = n_hr >= spec.count and n_lr == 0
        else:
            folder = dest / name / 'HR' if spec.kind == 'hr' else dest / name
            found = _count(folder)
            detail = f'{found}/{spec.count} images'
            complete = found >= spec.count
        status = 'present' if complete else ('missing' if found == 0 else 'partial')
        report[name] = {'status': status, 'found': found, 'expected': spec.count, 'detail': detail}
    bad = verify_manifest(dest)
    for name in report:
        mism = [b for b in bad if b.split('/', 1)[0] == name]
        if mism:
            report[name]['status'] = 'partial'
            report[name]['detail'] += f'; {len(mism)} file(s) differ from {MANIFEST}, e.g. {mism[0]}'
    return report


def verify_manifest(dest: Path) -> list[str]:
    """Relative paths whose SHA-256 differs from ``MANIFEST.sha256`` (or that are gone)."""
    path = Path(dest) / MANIFEST
    if not path.exists():
        return []
    bad = []
    for line in path.read_text().splitlines():
        if '  ' not in line:
            continue
        h, rel = line.split('  ', 1)
        f = Path(dest) / rel
        if not f.is_file() or _sha256(f) != h:
            bad.append(rel)
    return bad


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog=prog('prepare_data'), description=__doc__.split('\n\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--source', help='folder with downloaded archives and/or extracted image folders')
    ap.add_argument('--dest', required=True, help='output root (e.g. datasets/)')
    ap.add_argument('--sets', nargs='+', choices=list(SETS), metavar='SET',
                    help=f'sets to prepare/check (default: all): {" ".join(SETS)}')
    ap.add_argument('--check', action='store_true', help='only report which sets are present/missing/partial')
    ap.add_argument('--list', action='store_true', help='print the table of sets and download addresses')
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    if args.list:
        for name, spec in SETS.items():
            print(f'{name:12s} {spec.count:4d} {spec.kind:5s} sha256: {spec.sha256}\n    {where_to_get(name)}')
        return 0
    written = {}
    if not args.check:
        if not args.source:
            ap.error('--source is required unless --check or --list is given')
        try:
            written = prepare(args.source, args.dest, args.sets)
        except (FileNotFoundError, ValueError) as e:
            print(f'error: {e}', file=sys.stderr)
            return 2
    report = check(args.dest, args.sets)
    # --check judges every set asked for; preparing judges the sets the source held and those named with --sets
    judged = set(report) if args.check else set(args.sets or ()) | {n for n, count in written.items() if count}
    for name, r in report.items():
        line = f'{name:12s} {r["status"]:8s} {r["detail"]}'
        if r['status'] != 'present':
            line += f'\n{"":12s} get it from: {where_to_get(name)}'
        print(line)
    failed = sorted(n for n in judged if n in report and report[n]['status'] != 'present')
    absent = [n for n, r in report.items() if n not in judged and r['status'] != 'present']
    if absent:
        print(f'not in --source, skipped: {", ".join(absent)} (where to get them: above)')
    if failed:
        print(f'incomplete or not found: {", ".join(failed)}', file=sys.stderr)
    return 1 if failed else 0

if __name__ == '__main__':
    sys.exit(run_entry(main))
