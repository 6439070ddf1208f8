"""``python -m restore_dhp.latency profile|check|where``: build a latency table, check it, or name its file.

    python -m restore_dhp.latency profile --arch srresnet --device cpu --backend fused --threads 1 --size 170x256
    python -m restore_dhp.latency check --table latency_tables/cpu-amd-epyc-1t/srresnet_fused_fp32_170x256.json
    python -m restore_dhp.latency where --arch dncnn --device cpu --backend onnxruntime --threads 1 --size 321x481

Without ``--out`` a table goes to its place under ``latency_tables/`` (``where`` prints it).
``--grid-step``, ``--sweep-step``, ``--rounds`` and ``--warmup`` trade time for detail; the defaults
build a CPU table of SRResNet at 170x256 or DnCNN at 321x481 in a few minutes on one thread.
"""
from __future__ import annotations

import argparse
import json
import sys

from ..archs import aliases as arch_aliases
from ..commands import prog, run_entry
from ..deploy import BACKENDS, PRECISIONS, DeployError
from ..speedup import parse_size
from . import LatencyError, read_table, table_path, write_json
from .check import check_table, device_mismatch, summary
from .profile import Profiler, Settings

EXIT_ERROR = 2


def _settings_args(p: argparse.ArgumentParser) -> None:
    p.add_argument('--arch', required=True, help='a registered architecture (short names: '
                   + ', '.join(sorted(arch_aliases())) + ')')
    p.add_argument('--arch-kwargs', type=json.loads, default={}, metavar='JSON',
                   help='structure arguments, e.g. \'{"num_feat": 16, "num_blocks": 2}\' (default: the paper\'s)')
    p.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    p.add_argument('--backend', choices=[b for b in BACKENDS if b != 'eager'], default='fused')
    p.add_argument('--precision', choices=sorted(PRECISIONS), default='fp32')
    p.add_argument('--threads', type=int, default=1, help='CPU threads (default 1)')
    p.add_argument('--size', type=parse_size, required=True, metavar='HxW', help='input size (LR for SR)')


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog('latency.__main__'), description=__doc__.split('\n')[0],
                                epilog='\n'.join(__doc__.split('\n')[1:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest='command', required=True)
    prof = sub.add_parser('profile', help='measure a table')
    _settings_args(prof)
    prof.add_argument('--out', help='table file (default: its place under latency_tables/)')
    prof.add_argument('--grid-step', type=int, help='widths measured every N (default: the detected step if >= 4, '
                      'else 8)')
    prof.add_argument('--sweep-step', type=int, default=1, help='width step of the sweep that finds the step')
    prof.add_argument('--fit-points', type=int, default=5, help='uniform widths the constant is fitted on')
    prof.add_argument('--rounds', type=int, default=5, help='timed runs per point (median; default 5)')
    prof.add_argument('--warmup', type=int, default=2, help='untimed runs per point first (default 2)')
    chk = sub.add_parser('check', help='predicted vs measured whole-network latency at random widths')
    chk.add_argument('--table', required=True)
    chk.add_argument('--sets', type=int, default=20, help='random width sets (default 20)')
    chk.add_argument('--seed', type=int, default=0)
    chk.add_argument('--rounds', type=int, help='timed runs per set (default: the table\'s)')
    chk.add_argument('--warmup', type=int, help='untimed runs per set (default: the table\'s)')
    chk.add_argument('--max-median', type=float, help='exit 1 when the median relative error is above this')
    chk.add_argument('--out', help='also write the result (JSON) here')
    where = sub.add_parser('where', help='print where the table of these settings is kept')
    _settings_args(where)
    return p


def _check_positive(p, args, names) -> None:
    for name in names:
        value = getattr(args, name, None)
        if value is not None and value < (0 if name == 'warmup' else 1):
            p.error(f'--{name.replace("_", "-")} must be {"non-negative" if name == "warmup" else "positive"}')


def profile(args) -> int:
    settings = Settings(args.device, args.backend, args.precision, args.threads, args.size, args.warmup,
                        args.rounds)
    out = args.out or table_path(args.arch, args.device, args.backend, args.precision, args.threads, args.size)
    table = Profiler(args.arch, args.arch_kwargs, settings).run(args.grid_step, args.sweep_step, args.fit_points)
    write_json(table, out)
    print(f'wrote {out}: width step {table["width_step"]}, full width {read_table(out).full / 1e3:.2f} ms '
          f'predicted, {table["profile_seconds"]:.0f} s to build')
    return 0


def check(args) -> int:
    table = read_table(args.table)
    warning = device_mismatch(table)
    if warning:
        print(warning, file=sys.stderr)
    rows = check_table(table, args.sets, args.seed, args.rounds, args.warmup, log=print)
    result = summary(rows, table.width_step)
    halves = ''.join(f', {result[k]:.1%} {what}' for k, what in (('median_abs_error_on_step', 'on the step'),
                     ('median_abs_error_off_step', 'off it')) if result.get(k) is not None)
    print(f'{args.table}: {result["sets"]} random width sets, median relative error '
          f'{result["median_abs_error"]:.1%}{halves}, worst {result["worst_abs_error"]:.1%} '
          f'(mean signed {result["mean_error"]:+.1%}; target: median <= 10%); as a fraction of the full width: '
          f'median {result["median_abs_ratio_error"]:.1%}, worst {result["worst_abs_ratio_error"]:.1%}')
    if args.out:
        write_json({'table': args.table, **result, 'rows': [vars(r) for r in rows]}, args.out)
    return 1 if args.max_median is not None and result['median_abs_error'] > args.max_median else 0


def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    _check_positive(p, args, ('threads', 'grid_step', 'sweep_step', 'fit_points', 'rounds', 'warmup', 'sets'))
    try:
        if args.command == 'where':
            print(table_path(args.arch, args.device, args.backend, args.precision, args.threads, args.size))
            return 0
        return profile(args) if args.command == 'profile' else check(args)
    except (LatencyError, DeployError, OSError) as e:
        print(f'error: {e}', file=sys.stderr)
        return EXIT_ERROR


if __name__ == '__main__':
    sys.exit(run_entry(main))
