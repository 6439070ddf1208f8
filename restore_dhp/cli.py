"""The ``restore-dhp`` command: one subcommand per thin entry, e.g. ``restore-dhp infer -i photos -o out``.

``restore-dhp X ARGS`` runs what ``python -m restore_dhp.X ARGS`` runs (both stay); only the
chosen entry is imported, so ``restore-dhp --help`` starts without torch.
"""
from __future__ import annotations

import difflib
import importlib
import sys

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
_invoked_as: str | None = None  # the subcommand being run through ``restore-dhp``, for the entries' usage lines


def prog(module: str) -> str:
    """The program name an entry's ``--help`` shows: ``restore-dhp infer`` or ``python -m restore_dhp.infer``."""
    if _invoked_as is not None and COMMANDS[_invoked_as][0] == module:
        return f'restore-dhp {_invoked_as}'
    return f'python -m restore_dhp.{module}'


def usage() -> str:
    from . import __version__
    width = max(map(len, COMMANDS))
    lines = [f'usage: restore-dhp COMMAND [ARGS]   (restore_dhp {__version__}; "restore-dhp COMMAND --help" for '
             'its options)', '', 'Each command is also "python -m restore_dhp.<module>" (prepare-data: prepare_data).',
             '', 'commands:']
    lines += [f'  {name:<{width}}  {text}' for name, (_, text) in COMMANDS.items()]
    return '\n'.join(lines)


def main(argv=None) -> int:
    global _invoked_as
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ('-h', '--help'):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] == '--version':
        from . import __version__
        print(f'restore_dhp {__version__}')
        return 0
    name = argv[0].replace('_', '-')
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f' (did you mean {close[0]}?)' if close else ''
        print(f'error: unknown command {argv[0]!r}{hint}; choose one of {", ".join(COMMANDS)}', file=sys.stderr)
        return 2
    _invoked_as = name
    entry = importlib.import_module(f'restore_dhp.{COMMANDS[name][0]}')
    return entry.main(argv[1:])


if __name__ == '__main__':
    sys.exit(main())
