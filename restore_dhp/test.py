"""Test with a BasicSR option file: ``python -m restore_dhp.test -opt options/test/<file>.yml``.

Registers restore_dhp's components, checks the option file and calls
``basicsr.test.test_pipeline`` (results under ``./results/<name>``).  For the
paper-style table with FLOPs, runtime and memory use ``restore_dhp.benchmark``.
"""
from __future__ import annotations

import sys

from restore_dhp.commands import run_entry
from restore_dhp.train import run_pipeline


def main(argv=None) -> int:
    return run_pipeline(argv, is_train=False)


if __name__ == '__main__':
    sys.exit(run_entry(main))
