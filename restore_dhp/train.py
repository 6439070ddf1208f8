"""Train with a BasicSR option file: ``python -m restore_dhp.train -opt options/train/<file>.yml``.

A thin entry: it registers restore_dhp's architectures, models and datasets,
checks the option file, and hands over to ``basicsr.train.train_pipeline``
(all of BasicSR's flags work: ``--auto_resume``, ``--force_yml``, ``--launcher pytorch``
under ``torchrun --nproc_per_node=N``; without CUDA the gloo backend is used).
Experiments are written under ``./experiments/<name>``.
"""
from __future__ import annotations

import argparse
import os
import sys

from .commands import prog, run_entry

BASICSR_FLAGS_EPILOG = """BasicSR's own flags (above: -opt, --launcher, --auto_resume, --debug, --local_rank,
--force_yml) are passed to BasicSR's option parser unchanged, e.g.
  --auto_resume                  resume from the newest state under experiments/<name>/training_states
  --force_yml train:total_iter=2000 logger:print_freq=10   override option-file keys (existing keys only)"""


DESCRIPTIONS = {True: 'Train with a BasicSR option file (BasicSR\'s train pipeline, restore_dhp registered).',
                False: 'Test with a BasicSR option file (BasicSR\'s test pipeline, restore_dhp registered).'}


def build_parser(is_train: bool) -> argparse.ArgumentParser:
    """BasicSR's command line (``basicsr.utils.options.parse_options``), with help that says what each flag does."""
    entry = 'train' if is_train else 'test'
    p = argparse.ArgumentParser(prog=prog(entry), description=DESCRIPTIONS[is_train], epilog=BASICSR_FLAGS_EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('-opt', required=True, metavar='OPTION_FILE',
                   help=f'BasicSR option file (options/{entry}/*.yml); checked before BasicSR starts')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                   help='distributed launcher (pytorch: under torchrun; gloo without CUDA)')
    p.add_argument('--auto_resume', action='store_true',
                   help='resume from the newest loadable training state of this experiment')
    p.add_argument('--debug', action='store_true', help="BasicSR's debug mode (prints often, names the run debug_*)")
    p.add_argument('--local_rank', type=int, default=0, help='set by the launcher')
    p.add_argument('--force_yml', nargs='+', default=None, metavar='SECTION:KEY=VALUE',
                   help='override existing option-file keys, e.g. train:total_iter=2000')
    return p


def check_options(argv, is_train: bool) -> int:
    args = build_parser(is_train).parse_args(argv)
    from .options import OptionError, validate_file  # imports BasicSR's models (seconds): not for --help
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
    from basicsr.test import test_pipeline
    from basicsr.train import train_pipeline

    from . import register
    from ._compat import install_basicsr_cpu_fixes
    register()
    install_basicsr_cpu_fixes()
    sys.argv = [sys.argv[0], *argv]
    (train_pipeline if is_train else test_pipeline)(os.getcwd())
    return 0


def main(argv=None) -> int:
    return run_pipeline(argv, is_train=True)


if __name__ == '__main__':
    sys.exit(run_entry(main))
