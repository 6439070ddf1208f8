"""Test with a BasicSR option file: ``python -m restore_dhp.test -opt options/test/<file>.yml``.

Registers restore_dhp's components, checks the option file and calls
``basicsr.test.test_pipeline`` (results under ``./results/<name>``).  For the
paper-style table with FLOPs, runtime and memory use ``restore_dhp.benchmark``.
"""
from __future__ import annotations

import os
import sys

from restore_dhp.train import check_options


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    status = check_options(argv, is_train=False)
    if status:
        return status
    from basicsr.test import test_pipeline

    from restore_dhp._compat import install_basicsr_cpu_fixes
    install_basicsr_cpu_fixes()
    sys.argv = [sys.argv[0], *argv]
    test_pipeline(os.getcwd())
    return 0


if __name__ == '__main__':
    sys.exit(main())
