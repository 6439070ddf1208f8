#!/usr/bin/env python
"""Run several trainings side by side (or one at a time) for an equal number of iterations that fills a wall time.

    # continue the nine shipped models for 10 minutes on one GPU (tools/train_weights.sh calls this)
    python -m tools.run_side_by_side --runs srresnet_x4_dhp60_continue_gpu ... --minutes 10 --one-at-a-time \
        --install weights
    # a study's option files on a GPU: fixed iterations from the files
    python -m tools.run_side_by_side --opts research/sr_inversion/options/sr_inv_*_s1?.yml --summary logs/sr_inv.md

A run is an option file (``--opts``) or a recipe (``--runs``, by run name: ``python -m tools.recipes``).
With ``--minutes`` every run first trains ``--calib-iters`` iterations under a
throw-away name, the way the real runs will go (all side by side, or each alone
with ``--one-at-a-time``); the measured seconds per iteration (BasicSR's own
averaged ``time`` in its log: the slowest run side by side, the sum one at a
time) and the start-up times then give ``train.total_iter`` for all runs, set with BasicSR's
``--force_yml`` together with a cosine scheduler's period (or multi-step
milestones stretched in proportion), a warm-up (if the file has one) of 5% and
the validation and checkpoint intervals.  ``--iters N`` sets it directly.  Every run logs to
``logs/<name>.log`` and gets its share of the CPU cores (:func:`child_env`); ``--summary`` writes each run's
validation curve (from the metadata of its last compact checkpoint) as a Markdown table.  ``--install DIR`` copies
each finished run's ``net_g_latest.safetensors`` to ``DIR/<model>.safetensors`` (the model a recipe's run trains,
``srresnet_x4_dhp60`` for ``srresnet_x4_dhp60_continue_gpu``): a continuation's result goes over the file it
started from, whose history lives on under ``parent`` in the metadata.  ``--dry-run`` prints the commands.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tools import recipes
from tools.curves import write_summary

ITER_LINE = re.compile(r'iter:\s*([\d,]+).*?time \(data\): ([\d.]+)')   # BasicSR's averaged time per iteration
SAFETY = 0.9  # fraction of the wall time the real runs are planned to fill
THREAD_VARS = ('OMP_NUM_THREADS', 'MKL_NUM_THREADS')


@dataclass
class Job:
    """One training run: its option file, the ``--force_yml`` overlay of its recipe, and the options they make."""
    name: str
    file: str
    opt: dict
    overlay: list[str] = field(default_factory=list)
    model: str | None = None   # the model a recipe's run trains (for --install)


def read_opt(path: str) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


def model_of(name: str) -> str | None:
    try:
        return recipes.recipe_model(name)
    except recipes.RecipeError:
        return None


def jobs_of(opts: list[str], runs: list[str]) -> list[Job]:
    jobs = [Job(opt['name'], f, opt, model=model_of(opt['name'])) for f in opts for opt in [read_opt(f)]]
    for run in runs:
        r = recipes.recipe(run)
        jobs.append(Job(run, r.path, r.options(), r.overlay(), r.model))
    return jobs


def child_env(side_by_side: int) -> dict:
    """The environment of one of ``side_by_side`` runs started together: each gets an equal share of the CPU cores
    for its intra-op threads (torch would otherwise take every core in every run: on the 2-core machine two runs
    with 2 threads each took 2.9-5.1 s per SR iteration, two with 1 thread 0.90 s). A thread count set by the caller
    is kept. The one place the project shares the cores between runs."""
    env = dict(os.environ)
    if not any(v in env for v in THREAD_VARS):
        threads = str(max(1, (os.cpu_count() or 1) // max(side_by_side, 1)))
        env.update({v: threads for v in THREAD_VARS})
    return env


def command(job: Job, name: str, force: list[str], python: str) -> list[str]:
    return [python, '-m', 'restore_dhp.train', '-opt', job.file, '--auto_resume',
            '--force_yml', f'name={name}', *job.overlay, *force]


def launch(job: Job, name: str, force: list[str], python: str,
           side_by_side: int = 1) -> tuple[subprocess.Popen, Path]:
    log = Path('logs') / f'{name}.log'
    log.parent.mkdir(exist_ok=True)
    # a run that resumes (its experiment exists: --auto_resume) keeps the validations it logged before the kill
    mode = 'a' if (Path('experiments') / name).exists() else 'w'
    return subprocess.Popen(command(job, name, force, python), stdout=log.open(mode), stderr=subprocess.STDOUT,
                            env=child_env(side_by_side)), log


def wait_all(procs: list[tuple[str, subprocess.Popen, Path]]) -> list[str]:
    failed = []
    for name, proc, log in procs:
        if proc.wait() != 0:
            failed.append(name)
            tail = log.read_text(errors='replace').splitlines()[-3:]
            print(f'FAILED {name} (exit {proc.returncode}, {log}): ' + ' | '.join(tail), file=sys.stderr)
    return failed


def seconds_per_iter(log: Path) -> float | None:
    """BasicSR's averaged seconds per iteration, last logged (a calibration run may end in its search, before any
    compact checkpoint exists, so its timing is read from the log)."""
    times = [float(m.group(2)) for m in ITER_LINE.finditer(log.read_text(errors='replace'))]
    return times[-1] if times else None


def calibrate(jobs: list[Job], iters: int, python: str, extra=lambda opt: []) -> tuple[float, float, float]:
    """(slowest seconds per iteration, start-up seconds, wall seconds) of all runs trained side by side for ``iters``
    (``extra(opt)``: the further settings the real run gets)."""
    start = time.monotonic()
    force = [f'train:total_iter={iters}', f'logger:print_freq={max(iters // 2, 1)}', 'val:val_freq=1000000000',
             'logger:save_checkpoint_freq=1000000000']
    procs = []
    for job in jobs:
        name = f'{job.name}_calib'
        shutil.rmtree(Path('experiments') / name, ignore_errors=True)
        procs.append((name, *launch(job, name, extra(job.opt) + force, python, len(jobs))))
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


def iterations_to_fill(seconds: float, calibrations: list[tuple[float, float, float]], one_at_a_time: bool) -> int:
    """Equal ``train.total_iter`` for all runs from ``(s/iter, start-up s, calibration wall s)`` per calibration.

    Side by side there is one calibration of all runs together: the slowest run sets the pace.  One at a
    time, each run was calibrated alone and the runs' times add up.
    """
    budget = seconds * SAFETY - sum(spent for _, _, spent in calibrations)
    budget -= sum(startup for _, startup, _ in calibrations)
    per_iter = sum(p for p, _, _ in calibrations) if one_at_a_time else max(p for p, _, _ in calibrations)
    return max(int(budget / per_iter), 1)


def install(job: Job, folder: str) -> None:
    """Copy a finished run's last compact checkpoint to ``folder/<model>.safetensors``."""
    result = Path('experiments') / job.name / 'models' / 'net_g_latest.safetensors'
    if result.is_file():
        target = Path(folder) / f'{job.model}.safetensors'
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(result, target)
        print(f'{result} -> {target}', flush=True)


def parse_args(argv):
    p = argparse.ArgumentParser(prog='python -m tools.run_side_by_side', description=__doc__.split('\n\n')[0])
    p.add_argument('--opts', nargs='+', default=[], help='option files, one run each')
    p.add_argument('--runs', nargs='+', default=[], help='recipes by run name, one run each (python -m tools.recipes)')
    budget = p.add_mutually_exclusive_group()
    budget.add_argument('--minutes', type=float,
                        help="wall time to fill, calibration included; default: the files' total_iter")
    budget.add_argument('--iters', type=int, help='train.total_iter for every run')
    p.add_argument('--calib-iters', type=int, default=60)
    p.add_argument('--one-at-a-time', action='store_true',
                   help='run (and calibrate) the runs one after another: on one GPU a few runs side by side '
                        'already start slowly and share it, so for a short lease this is faster')
    p.add_argument('--install', metavar='DIR', help="copy each result to DIR/<model>.safetensors (recipes' runs)")
    p.add_argument('--skip-installed', action='store_true',
                   help='leave out a run whose result is in the --install folder (a finished run resumed would '
                        'only save its last checkpoint again)')
    p.add_argument('--summary', help='write the validation curves here (Markdown)')
    p.add_argument('--batch', type=int,
                   help="train every run at this batch, each file's lr scaled by the square root of the batch ratio")
    p.add_argument('--force', nargs='+', default=[], metavar='KEY=VALUE',
                   help="more BasicSR --force_yml settings for every run (e.g. datasets:train:dataroot_gt=...)")
    p.add_argument('--dry-run', action='store_true', help='print the commands, run nothing')
    p.add_argument('--python', default=sys.executable)
    args = p.parse_args(argv)
    if not args.opts and not args.runs:
        p.error('give --opts or --runs')
    if args.skip_installed and not args.install:
        p.error('--skip-installed needs --install')
    return args


def train(jobs: list[Job], total: int | None, extra, args) -> list[str]:
    """Train every job (side by side, or one at a time), installing each result; the names of those that failed."""
    procs, failed = [], []
    for job in jobs:
        force = (plan_force(total, job.opt) if total else []) + extra(job.opt)
        procs.append((job.name, *launch(job, job.name, force, args.python, 1 if args.one_at_a_time else len(jobs))))
        if args.one_at_a_time:  # each result is installed as soon as it exists: a later cut loses no finished run
            failed += wait_all(procs[-1:])
            if args.install and job.name not in failed:
                install(job, args.install)
    if not args.one_at_a_time:
        failed = wait_all(procs)
        for job in jobs:
            if args.install and job.name not in failed:
                install(job, args.install)
    return failed


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        jobs = jobs_of(args.opts, args.runs)
    except recipes.RecipeError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    if args.install and (unnamed := [j.name for j in jobs if j.model is None]):
        print(f"error: --install needs runs named as recipes' (<prefix>_<variant>_...): {', '.join(unnamed)}",
              file=sys.stderr)
        return 2
    if args.skip_installed:
        there = [j for j in jobs if (Path(args.install or '.') / f'{j.model}.safetensors').is_file()]
        for job in there:
            print(f'{job.name}: {args.install}/{job.model}.safetensors is there, not trained again')
        jobs = [j for j in jobs if j not in there]
        if not jobs:
            return 0
    total = args.iters

    def extra(opt: dict) -> list[str]:
        return (batch_force(args.batch, opt) if args.batch else []) + args.force
    if args.dry_run:
        for job in jobs:
            force = (plan_force(total, job.opt) if total else []) + extra(job.opt)
            print(' '.join(command(job, job.name, force, args.python)))
        return 0
    if args.minutes is not None:
        groups = [[j] for j in jobs] if args.one_at_a_time else [jobs]
        calibrations = [calibrate(group, args.calib_iters, args.python, extra) for group in groups]
        total = iterations_to_fill(args.minutes * 60, calibrations, args.one_at_a_time)
        print(f"calibration ({'one at a time' if args.one_at_a_time else 'side by side'}): "
              f"{', '.join(f'{c[0] * 1e3:.1f} ms/iter' for c in calibrations)} -> {total} iterations each "
              f'to fill {args.minutes} min')
    start = time.monotonic()
    failed = train(jobs, total, extra, args)
    print(f'{len(jobs) - len(failed)} of {len(jobs)} runs finished in {time.monotonic() - start:.0f} s')
    if args.summary:
        write_summary(args.summary, [job.name for job in jobs])
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
