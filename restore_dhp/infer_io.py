"""What ``infer`` reads and writes: the input files, the output names, and the output folder.

Every output is ``<out>/<stem>[_<suffix>].<ext>``, directly in the output folder: ``--suffix`` is a plain
name (letters, digits, ``. _ + -``; no ``/``, no leading dot), ``--ext`` one of the written formats or
``auto`` (the input's own format where it is one of them, PNG otherwise and for an image with an alpha
channel), and a plan whose file would land anywhere but in the output folder is refused.  All of it is
checked before anything is created or written.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from .data.imageio import ALPHA_FORMATS, IMG_EXTENSIONS, WRITE_FORMATS, ImageReadError, read_file_header

PLAIN_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9._+-]{0,63}')
EXT_CHOICES = (*WRITE_FORMATS, 'auto')
_SAME_FORMAT = {'.png': 'png', '.jpg': 'jpg', '.jpeg': 'jpg', '.webp': 'webp'}


class InputError(Exception):
    """A problem with the command's inputs or outputs; the message is printed as one line."""


def list_inputs(path: str | os.PathLike) -> list[Path]:
    """The image files named by ``path`` (a file, or a folder's images sorted by name)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f'{p}: no such file or folder')
    if p.is_file():
        return [p]
    files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMG_EXTENSIONS)
    if not files:
        raise InputError(f'{p}: folder holds no images (looked for {", ".join(IMG_EXTENSIONS)})')
    return files


def check_name_part(flag: str, value: str) -> None:
    """``value`` of ``flag`` (``--suffix``) is a plain name or empty; else :class:`InputError`."""
    if value and not PLAIN_NAME.fullmatch(value):
        raise InputError(f'{flag} {value!r} must be a plain name: letters, digits and . _ + - (no / or leading '
                         'dot, at most 64 characters)')


def has_alpha(path: Path) -> bool:
    """Whether ``path`` decodes with an alpha channel (from its header; an unreadable file: no)."""
    try:
        return read_file_header(path).channels == 4
    except ImageReadError:
        return False


def output_ext(path: Path, ext: str) -> str:
    """The output format of input ``path``: ``ext``, or for ``auto`` the input's own format where ``infer``
    writes it (PNG for any other, and for an image with an alpha channel where that format holds none)."""
    if ext != 'auto':
        return ext
    same = _SAME_FORMAT.get(path.suffix.lower(), 'png')
    return same if same in ALPHA_FORMATS or not has_alpha(path) else 'png'


def output_names(files: list[Path], suffix: str = '', ext: str = 'png') -> dict[Path, str]:
    """Output file names ``<stem>[_<suffix>].<ext>``, unique even when two inputs share a stem (a.jpg, a.png)."""
    if ext not in EXT_CHOICES:
        raise InputError(f'--ext {ext!r}: choose one of {", ".join(EXT_CHOICES)}')
    check_name_part('--suffix', suffix)
    stems: dict[str, int] = {}
    for f in files:
        stems[f.stem] = stems.get(f.stem, 0) + 1
    tail = f'_{suffix}' if suffix else ''
    return {f: (f'{f.stem}{tail}.{output_ext(f, ext)}' if stems[f.stem] == 1 else
                f'{f.stem}_{f.suffix.lstrip(".").lower()}{tail}.{output_ext(f, ext)}') for f in files}


def plan_outputs(files: list[Path], out_dir: Path, overwrite: bool, suffix: str = '',
                 ext: str = 'png') -> dict[Path, Path]:
    """Input -> output path; raises :class:`InputError` before anything is written if inputs or outputs are at risk."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f'--output {out_dir} is a file; give a folder for the restored images')
    targets = {f: out_dir / name for f, name in output_names(files, suffix, ext).items()}
    folder = os.path.normpath(os.path.abspath(out_dir))
    outside = sorted(str(t) for t in targets.values() if os.path.dirname(os.path.normpath(os.path.abspath(t))) != folder)
    if outside:   # an input stem is a file name, so this is a guard, not a path the checks above leave open
        raise InputError(f'{outside[0]} would be written outside --output {out_dir}; nothing was written')
    inputs = {f.resolve() for f in files}
    clobbered = sorted(t.name for t in targets.values() if t.resolve() in inputs)
    if clobbered:
        raise InputError(f'--output {out_dir} would replace {len(clobbered)} input file(s) (e.g. {clobbered[0]}); '
                         'choose another output folder')
    existing = sorted(t.name for t in targets.values() if t.exists())
    if existing and not overwrite:
        raise InputError(f'{len(existing)} of {len(targets)} output file(s) already exist in {out_dir} '
                         f'(e.g. {existing[0]}); pass --overwrite to replace them')
    if any(t.is_dir() for t in targets.values()):
        raise InputError(f'{out_dir}: an output name is taken by a folder '
                         f'({next(t.name for t in targets.values() if t.is_dir())})')
    return targets


def prepare_output_folder(out_dir: Path) -> None:
    """Create ``out_dir`` and try writing in it, so a folder that cannot hold the outputs fails before any work."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as e:
        raise InputError(f'--output {out_dir}: cannot write there ({e.strerror or e})') from None
