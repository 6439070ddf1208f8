"""The ``restore-dhp`` subcommands and the program name each entry's ``--help`` shows (a leaf module).

Every entry imports :func:`prog` from here; :mod:`restore_dhp.cli` dispatches on :data:`COMMANDS`.
"""
from __future__ import annotations

#: subcommand -> (module under restore_dhp, one line for the listing)
COMMANDS = {
    'infer': ('infer', 'restore image files (SR or denoising) with a compact checkpoint'),
    'export': ('export', 'write a compact checkpoint as an ONNX file'),
    'benchmark': ('benchmark', "the paper's table: quality, FLOPs, params, runtime, memory"),
    'speedup': ('speedup', 'time models and backends side by side against 1 / FLOPs ratio'),
    'train': ('train', "train with a BasicSR option file (BasicSR's flags work)"),
    'test': ('test', "BasicSR's test pipeline on an option file"),
    'prepare-data': ('prepare_data', 'lay out the benchmark and training sets; --check says what is missing'),
    'complexity': ('complexity', "FLOPs and parameters with the paper's conventions"),
    'checkpoint': ('checkpoint', 'convert a training state (.pth) to a compact checkpoint'),
    'catalogue': ('catalogue', 'the shipped models: labels, files, FLOPs, the paper\'s figures'),
}
invoked_as: str | None = None  # the subcommand being run through ``restore-dhp``, for the entries' usage lines


def prog(module: str) -> str:
    """The program name an entry's ``--help`` shows: ``restore-dhp infer`` or ``python -m restore_dhp.infer``."""
    if invoked_as is not None and COMMANDS[invoked_as][0] == module:
        return f'restore-dhp {invoked_as}'
    return f'python -m restore_dhp.{module}'
