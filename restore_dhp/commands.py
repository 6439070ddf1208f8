"""The ``restore-dhp`` subcommands and the program name each entry's ``--help`` shows (a leaf module).

Every entry imports :func:`prog` from here; :mod:`restore_dhp.cli` dispatches on :data:`COMMANDS`, and every
entry's ``python -m`` form runs through :func:`run_entry` (a closed pipe ends it quietly).
"""
from __future__ import annotations

import os
import sys
from typing import Callable

#: subcommand -> (module under restore_dhp, one line for the listing)
COMMANDS = {
    'infer': ('infer', 'restore image files (SR or denoising) with a shipped model (-n) or a compact checkpoint'),
    'export': ('export', 'write a compact checkpoint as an ONNX file'),
    'benchmark': ('benchmark', "the paper's table: quality, FLOPs, params, runtime, memory"),
    'speedup': ('speedup', 'time models and backends side by side against 1 / FLOPs ratio'),
    'train': ('train', "train with a BasicSR option file (BasicSR's flags work)"),
    'test': ('test', "BasicSR's test pipeline on an option file"),
    'prepare-data': ('prepare_data', 'lay out the benchmark and training sets; --check says what is missing'),
    'complexity': ('complexity', "FLOPs and parameters with the paper's conventions"),
    'checkpoint': ('checkpoint', 'convert a training state (.pth) to a compact checkpoint'),
    'prune': ('prune', 'prune trained weights to a FLOPs or latency target on this machine (a DHP warm start)'),
    'catalogue': ('catalogue', 'the shipped models: training run names, or their weight files'),
    'latency': ('latency.__main__', 'measure a latency table on this device, check it, or name its file'),
    'device-report': ('device_report', 'latency-targeted against FLOPs-targeted models on this device'),
}
invoked_as: str | None = None  # the subcommand being run through ``restore-dhp``, for the entries' usage lines
EXIT_CLOSED_PIPE = 141  # as a shell reports a command ended by SIGPIPE


def prog(module: str) -> str:
    """The program name an entry's ``--help`` shows: ``restore-dhp infer`` or ``python -m restore_dhp.infer``."""
    if invoked_as is not None and COMMANDS[invoked_as][0] == module:
        return f'restore-dhp {invoked_as}'
    return f'python -m restore_dhp.{module.removesuffix(".__main__")}'


def run_entry(main: Callable[..., int], argv=None) -> int:
    """``main(argv)``'s exit status, its output flushed; when the reader of stdout has gone (``| head -1``), the
    rest of the output is dropped quietly and the status is :data:`EXIT_CLOSED_PIPE`, without a traceback."""
    try:
        try:
            return main(argv)
        finally:  # also on SystemExit (argparse's --help): a closed pipe shows here, not at the interpreter's exit
            sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush at exit then goes nowhere
        os.close(devnull)
        return EXIT_CLOSED_PIPE
