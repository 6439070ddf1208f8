"""Train with a BasicSR option file: ``python -m restore_dhp.train -opt options/train/<file>.yml``.

A thin entry: it registers restore_dhp's architectures, models and datasets,
checks the option file, and hands over to ``basicsr.train.train_pipeline``
(all of BasicSR's flags work: ``--auto_resume``, ``--launcher pytorch`` under
``torchrun --nproc_per_node=N``; without CUDA the gloo backend is used).
Experiments are written under ``./experiments/<name>``.
"""
from __future__ import annotations

import argparse
import os
import sys

from basicsr.test import test_pipeline
from basicsr.train import train_pipeline

from ._compat import install_basicsr_cpu_fixes
from .options import OptionError, validate_file


def check_options(argv, is_train: bool) -> int:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('-opt', required=True)
    parser.add_argument('--force_yml', nargs='+', default=None)  # BasicSR applies them: checked with the file
    args, _ = parser.parse_known_args(argv)
    try:
        validate_file(args.opt, is_train, force_yml=args.force_yml)
    except OptionError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    return 0


def run_pipeline(argv, is_train: bool) -> int:
    """Check the option file, then run BasicSR's train or test pipeline with ``argv`` as its command line."""
    argv = sys.argv[1:] if argv is None else argv
    status = check_options(argv, is_train)
    if status:
        return status
    install_basicsr_cpu_fixes()
    sys.argv = [sys.argv[0], *argv]
    (train_pipeline if is_train else test_pipeline)(os.getcwd())
    return 0


def main(argv=None) -> int:
    return run_pipeline(argv, is_train=True)


if __name__ == '__main__':
    sys.exit(main())
