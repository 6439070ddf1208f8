"""Writing files: atomically, and never over a file nobody asked to replace.

Every file the project writes (checkpoints, ONNX exports, PNG outputs, reports, the
model card, training states) goes through :func:`atomic_path`: the writer fills a
temporary file beside the target (same folder, so the rename cannot cross file
systems; same extension, so writers that pick a format by extension still do), which
replaces the target in one rename only when the writer finished.  On any failure,
an interrupt included, the temporary file is removed and the target is untouched.

:func:`check_output` is the rule for commands that take an output path: an output
that is one of the inputs is refused, and an existing output is refused unless the
user passed ``--overwrite``.
"""
from __future__ import annotations

import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator


class OutputError(ValueError):
    """An output path that must not be written; the message is one line naming the path."""


def _file_mode() -> int:
    """The permissions an ordinary new file gets (``0o666`` less the umask); temporary files start private."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s content to; it replaces ``path`` when the block succeeds.

    Creates the parent folders.  The temporary file (``.<name>.<random>.tmp<ext>`` beside the target)
    is removed if the block raises, so a failed write leaves neither a partial target nor debris.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix=f'.tmp{path.suffix}')
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


_DEBRIS = re.compile(r'\.(?P<name>.+)\.[A-Za-z0-9_]{8}\.tmp(?P<ext>\.[^.]*)?')


def remove_write_debris(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that :func:`atomic_path` leaves in ``folder`` when its process is killed
    (SIGKILL, power loss: no ``except`` runs); returns what was removed.  Only names of that exact form are
    touched, and only in ``folder`` itself (a missing folder is fine)."""
    removed = []
    if not os.path.isdir(folder):
        return removed
    for entry in os.scandir(folder):
        match = _DEBRIS.fullmatch(entry.name)
        if match and entry.is_file(follow_symlinks=False) and match['name'].endswith(match['ext'] or ''):
            Path(entry.path).unlink(missing_ok=True)
            removed.append(Path(entry.path))
    return removed


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding='utf-8')


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist: compare the resolved names
        return a.resolve() == b.resolve()


def check_output(out: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (), overwrite: bool = False,
                 flag: str = 'output') -> None:
    """Raise :class:`OutputError` if writing ``out`` would replace an input, or an existing file without ``overwrite``.

    ``flag`` names the output in the message (e.g. ``'--onnx'``).  Checked before any work is done.
    """
    out = Path(out)
    for source in inputs:
        if _same_file(out, Path(source)):
            raise OutputError(f'{flag} {out} is the input file {source}; write the output to another file')
    if out.is_dir():
        raise OutputError(f'{flag} {out} is a folder; give a file name')
    if out.exists() and not overwrite:
        raise OutputError(f'{flag} {out} already exists; pass --overwrite to replace it')
