"""Progress bars for long work, on stderr and only on a terminal: a log file or a pipe gets no bar lines.

Every long command (``infer``, ``latency profile|check``, ``speedup``, ``benchmark``, the memory benchmark) draws
its bars through :func:`progress`; ``--quiet`` turns them off on a terminal too.
"""
from __future__ import annotations

import sys

from tqdm import tqdm


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed
        return False


def progress_disabled(quiet: bool = False) -> bool:
    """No bar when asked for none, or when stderr is not a terminal."""
    return quiet or not stderr_is_terminal()


def progress(iterable=None, desc: str = '', quiet: bool = False, **kwargs) -> tqdm:
    """A tqdm bar on stderr over ``iterable`` (or ``total=N`` with ``update``), shown only on a terminal."""
    return tqdm(iterable, desc=desc, file=sys.stderr, disable=progress_disabled(quiet), dynamic_ncols=True, **kwargs)
