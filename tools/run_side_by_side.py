#!/usr/bin/env python
"""Run several option files side by side (or one at a time) for an equal number of iterations that fills a wall time.

    # continue the eight shipped models for 10 minutes on one GPU (tools/train_weights.sh calls this)
    python -m tools.run_side_by_side --opts options/train/*_continue_gpu.yml --minutes 10 --one-at-a-time \
        --install-weights
    # the issue-13 experiment on a GPU: fixed iterations from the option files
    python -m tools.run_side_by_side --opts research/sr_inversion/options/sr_inv_*_s1?.yml --summary logs/sr_inv.md

With ``--minutes`` every run first trains ``--calib-iters`` iterations under a
throw-away name, the way the real runs will go (all side by side, or each alone
with ``--one-at-a-time``); the measured seconds per iteration (BasicSR's own
averaged ``time`` in its log: the slowest run side by side, the sum one at a
time) and the start-up times then give ``train.total_iter`` for all runs, set with BasicSR's
``--force_yml`` together with a cosine scheduler's period (or multi-step
milestones stretched in proportion), a warm-up (if the file has one) of 5% and
the validation and checkpoint intervals.  ``--iters N`` sets it directly.  Every run logs to
``logs/<name>.log``; ``--summary`` writes each run's validation curve (from
those logs) as a Markdown table.  ``--install-weights`` copies each finished
run's ``net_g_latest.safetensors`` over the checkpoint it started from
(``path.pretrain_network_g``), so the shipped file keeps its place and its
history lives on under ``parent`` in the metadata.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from restore_dhp.fileio import write_text
from restore_dhp.models.restoration_model import LIVE_SUFFIX

ITER_LINE = re.compile(r'iter:\s*([\d,]+).*?time \(data\): ([\d.]+)')
VAL_LINE = re.compile(r'# (\w+): ([\d.]+)')
SET_LINE = re.compile(r'Validation (\S+)')
SAFETY = 0.9  # fraction of the wall time the real runs are planned to fill


def read_opt(path: str) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


THREAD_VARS = ('OMP_NUM_THREADS', 'MKL_NUM_THREADS')


def child_env(side_by_side: int) -> dict:
    """The environment of one of ``side_by_side`` runs started together: each gets an equal share of the CPU cores
    for its intra-op threads (torch would otherwise take every core in every run: on the 2-core machine two runs
    with 2 threads each took 2.9-5.1 s per SR iteration, two with 1 thread 0.90 s). A thread count set by the caller
    is kept."""
    env = dict(os.environ)
    if not any(v in env for v in THREAD_VARS):
        threads = str(max(1, (os.cpu_count() or 1) // max(side_by_side, 1)))
        env.update({v: threads for v in THREAD_VARS})
    return env


def launch(opt_file: str, name: str, force: list[str], python: str,
           side_by_side: int = 1) -> tuple[subprocess.Popen, Path]:
    log = Path('logs') / f'{name}.log'
    log.parent.mkdir(exist_ok=True)
    cmd = [python, '-m', 'restore_dhp.train', '-opt', opt_file, '--auto_resume', '--force_yml', f'name={name}', *force]
    # a run that resumes (its experiment exists: --auto_resume) keeps the validations it logged before the kill
    mode = 'a' if (Path('experiments') / name).exists() else 'w'
    return subprocess.Popen(cmd, stdout=log.open(mode), stderr=subprocess.STDOUT, env=child_env(side_by_side)), log


def wait_all(procs: list[tuple[str, subprocess.Popen, Path]]) -> list[str]:
    failed = []
    for name, proc, log in procs:
        if proc.wait() != 0:
            failed.append(name)
            tail = log.read_text(errors='replace').splitlines()[-3:]
            print(f'FAILED {name} (exit {proc.returncode}, {log}): ' + ' | '.join(tail), file=sys.stderr)
    return failed


def seconds_per_iter(log: Path) -> float | None:
    times = [float(m.group(2)) for m in ITER_LINE.finditer(log.read_text(errors='replace'))]
    return times[-1] if times else None


def calibrate(opts: list[str], iters: int, python: str, extra=lambda opt: []) -> tuple[float, float, float]:
    """(slowest seconds per iteration, start-up seconds, wall seconds) of all runs trained side by side for ``iters``
    (``extra(opt)``: the further settings the real run gets)."""
    start = time.monotonic()
    force = [f'train:total_iter={iters}', f'logger:print_freq={max(iters // 2, 1)}', 'val:val_freq=1000000000',
             'logger:save_checkpoint_freq=1000000000']
    procs = []
    for opt in opts:
        name = f"{read_opt(opt)['name']}_calib"
        shutil.rmtree(Path('experiments') / name, ignore_errors=True)
        procs.append((name, *launch(opt, name, extra(read_opt(opt)) + force, python, len(opts))))
    if wait_all(procs):
        raise SystemExit('calibration failed; see the logs named above')
    wall = time.monotonic() - start
    per_iter = [seconds_per_iter(log) for _, _, log in procs]
    if any(p is None for p in per_iter):
        raise SystemExit('calibration logs hold no iteration timing')
    slowest = max(per_iter)
    for name, _, _ in procs:
        shutil.rmtree(Path('experiments') / name, ignore_errors=True)
    return slowest, max(wall - slowest * iters, 0.0), wall


def plan_force(total: int, opt: dict) -> list[str]:
    force = [f'train:total_iter={total}', f'val:val_freq={max(total // 5, 1)}',
             f'logger:save_checkpoint_freq={max(total // 4, 1)}', f'logger:print_freq={max(min(100, total // 10), 1)}']
    scheduler = opt['train'].get('scheduler', {})
    if scheduler.get('type') == 'CosineAnnealingRestartLR':
        force.append(f'train:scheduler:periods=[{total}]')
    elif scheduler.get('type') == 'MultiStepLR':  # the same schedule shape, stretched to the new length
        scale = total / opt['train']['total_iter']
        force.append(f"train:scheduler:milestones=[{','.join(str(round(m * scale)) for m in scheduler['milestones'])}]")
    if opt['train'].get('warmup_iter', -1) > 0:
        force.append(f'train:warmup_iter={max(total // 20, 1)}')
    return force


def batch_force(batch: int, opt: dict) -> list[str]:
    """``--force_yml`` settings for training ``opt`` at ``batch``: the learning rate scaled by the square root of the
    batch ratio (the rule for Adam; the fast recipes' ``*_fast_gpu.yml``), reached through the file's warm-up."""
    own = opt['datasets']['train']['batch_size_per_gpu']
    lr = float(opt['train']['optim_g']['lr']) * (batch / own) ** 0.5
    return [f'datasets:train:batch_size_per_gpu={batch}', f'train:optim_g:lr=!!float{lr:.3e}']


def validation_curve(log: Path, live: bool = False) -> list[tuple[int, str, float]]:
    """(iteration, metric, value) for every validation in a BasicSR log; ``live``: those of the trained network
    that a run with EMA and ``val.also_live`` logs beside the average's (set ``<name>_live``), instead of the rest."""
    curve, last_iter, live_set = [], 0, False
    for line in log.read_text(errors='replace').splitlines():
        m = ITER_LINE.search(line)
        if m:
            last_iter = int(m.group(1).replace(',', ''))
        s = SET_LINE.search(line)
        if s:
            live_set = s.group(1).endswith(LIVE_SUFFIX)
        v = VAL_LINE.search(line)
        if v and 'Best' in line and live_set == live:
            curve.append((last_iter, v.group(1), float(v.group(2))))
    return curve


def write_summary(path: str, runs: list[tuple[str, Path]]) -> None:
    curves = {name: validation_curve(log) for name, log in runs}
    iters = sorted({i for c in curves.values() for i, _, _ in c})
    lines = ['| run | ' + ' | '.join(f'@{i}' for i in iters) + ' |', '|---|' + '---|' * len(iters)]
    for name, curve in curves.items():
        by_iter = {i: v for i, _, v in curve}
        lines.append(f'| {name} | ' + ' | '.join(f'{by_iter[i]:.2f}' if i in by_iter else '' for i in iters) + ' |')
    metric = next((m for c in curves.values() for _, m, _ in c), 'psnr')
    write_text(path, f'Validation {metric} (dB) by iteration, from each run\'s BasicSR log.\n\n' + '\n'.join(lines) + '\n')
    print('\n'.join(lines))


def iterations_to_fill(seconds: float, calibrations: list[tuple[float, float, float]], one_at_a_time: bool) -> int:
    """Equal ``train.total_iter`` for all runs from ``(s/iter, start-up s, calibration wall s)`` per calibration.

    Side by side there is one calibration of all runs together: the slowest run sets the pace.  One at a
    time, each run was calibrated alone and the runs' times add up.
    """
    budget = seconds * SAFETY - sum(spent for _, _, spent in calibrations)
    budget -= sum(startup for _, startup, _ in calibrations)
    per_iter = sum(p for p, _, _ in calibrations) if one_at_a_time else max(p for p, _, _ in calibrations)
    return max(int(budget / per_iter), 1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--opts', nargs='+', required=True, help='option files, one run each')
    budget = p.add_mutually_exclusive_group()
    budget.add_argument('--minutes', type=float,
                        help="wall time to fill, calibration included; default: the files' total_iter")
    budget.add_argument('--iters', type=int, help='train.total_iter for every run')
    p.add_argument('--calib-iters', type=int, default=60)
    p.add_argument('--one-at-a-time', action='store_true',
                   help='run (and calibrate) the runs one after another: on one GPU a few runs side by side '
                        'already start slowly and share it, so for a short lease this is faster')
    p.add_argument('--install-weights', action='store_true',
                   help="copy each result over its path.pretrain_network_g checkpoint")
    p.add_argument('--summary', help='write the validation curves here (Markdown)')
    p.add_argument('--batch', type=int,
                   help="train every run at this batch, each file's lr scaled by the square root of the batch ratio")
    p.add_argument('--force', nargs='+', default=[], metavar='KEY=VALUE',
                   help="more BasicSR --force_yml settings for every run (e.g. datasets:train:dataroot_gt=...)")
    p.add_argument('--python', default=sys.executable)
    args = p.parse_args(argv)
    opts = {f: read_opt(f) for f in args.opts}
    total = args.iters

    def extra(opt: dict) -> list[str]:
        return (batch_force(args.batch, opt) if args.batch else []) + args.force
    if args.minutes is not None:
        groups = [[f] for f in opts] if args.one_at_a_time else [list(opts)]
        calibrations = [calibrate(group, args.calib_iters, args.python, extra) for group in groups]
        total = iterations_to_fill(args.minutes * 60, calibrations, args.one_at_a_time)
        print(f"calibration ({'one at a time' if args.one_at_a_time else 'side by side'}): "
              f"{', '.join(f'{c[0] * 1e3:.1f} ms/iter' for c in calibrations)} -> {total} iterations each "
              f'to fill {args.minutes} min')
    procs, failed = [], []
    start = time.monotonic()
    for opt_file, opt in opts.items():
        force = (plan_force(total, opt) if total else []) + extra(opt)
        procs.append((opt['name'], *launch(opt_file, opt['name'], force, args.python,
                                           1 if args.one_at_a_time else len(opts))))
        if args.one_at_a_time:  # each result is installed as soon as it exists: a later cut loses no finished run
            failed += wait_all(procs[-1:])
            if args.install_weights and opt['name'] not in failed:
                install(opt)
    if not args.one_at_a_time:
        failed = wait_all(procs)
        if args.install_weights:
            for opt in opts.values():
                if opt['name'] not in failed:
                    install(opt)
    print(f'{len(procs) - len(failed)} of {len(procs)} runs finished in {time.monotonic() - start:.0f} s')
    if args.summary:
        write_summary(args.summary, [(name, log) for name, _, log in procs])
    return 1 if failed else 0


def install(opt: dict) -> None:
    """Copy a finished run's last compact checkpoint over the checkpoint it started from."""
    result = Path('experiments') / opt['name'] / 'models' / 'net_g_latest.safetensors'
    target = opt['path'].get('pretrain_network_g')
    if target and result.is_file():
        shutil.copy2(result, target)
        print(f'{result} -> {target}', flush=True)


if __name__ == '__main__':
    sys.exit(main())
