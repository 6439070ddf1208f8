"""The ``restore-dhp`` command: one subcommand per thin entry, e.g. ``restore-dhp infer -i photos -o out``.

``restore-dhp X ARGS`` runs what ``python -m restore_dhp.X ARGS`` runs (both stay); only the
chosen entry is imported, so ``restore-dhp --help`` starts without torch.
"""
from __future__ import annotations

import difflib
import importlib
import sys

from . import commands
from ._version import __version__
from .commands import COMMANDS


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f'usage: restore-dhp COMMAND [ARGS]   (restore_dhp {__version__}; "restore-dhp COMMAND --help" for '
             'its options)', '', 'Each command is also "python -m restore_dhp.<module>" (prepare-data: prepare_data, '
             'device-report: device_report).', '', 'commands:']
    lines += [f'  {name:<{width}}  {text}' for name, (_, text) in COMMANDS.items()]
    return '\n'.join(lines)


def main(argv=None) -> int:
    """``restore-dhp ARGS``; a closed pipe on stdout (``restore-dhp --help | head -1``) ends it quietly."""
    return commands.run_entry(dispatch, argv)


def dispatch(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ('-h', '--help'):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] == '--version':
        print(f'restore_dhp {__version__}')
        return 0
    name = argv[0].replace('_', '-')
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f' (did you mean {close[0]}?)' if close else ''
        print(f'error: unknown command {argv[0]!r}{hint}; choose one of {", ".join(COMMANDS)}', file=sys.stderr)
        return 2
    commands.invoked_as = name
    entry = importlib.import_module(f'restore_dhp.{COMMANDS[name][0]}')
    return entry.main(argv[1:])


if __name__ == '__main__':
    sys.exit(main())
