#!/usr/bin/env python
"""Advance every shipped model on a lent GPU: all nine continued by equal iteration budgets, one after another.

    python -m research.gpu_campaign.campaign --plan                # where each model stands, leases to the targets
    python -m research.gpu_campaign.campaign --deadline 540        # on the device: measure, plan, continue all nine
    DRY=1 python -m research.gpu_campaign.campaign --deadline 300  # a CPU check: a few toy iterations, no measurement

A call (1) measures, unless ``--no-measure`` or DRY, the training step's samples per second at batch 16 and 64
(``research/probes/benchmark_search_step.py``: plain step, captured, bf16, both architectures) and takes batch 64 where
it gives at least ``GAIN`` times the samples per second of batch 16 for both; (2) sizes one equal ``train.total_iter``
for all nine from the seconds left before ``--deadline`` (seconds after the start) and the per-iteration times
(measured, or the recorded ones below); (3) runs ``BUDGET=gpu-continue tools/train_weights.sh --iters N`` (the
continuation files, then the SR models' BatchNorm-frozen stage; each result installed over ``weights/`` as soon as
it exists, so a cut loses only the run in progress) under a timeout at the deadline; (4) regenerates the reports,
the model card and the README results (``tools/update_reports.sh``) unless ``--skip-reports`` (on the device:
the reports are CPU measurements, made back here after the weights are fetched).

The plan counts training in patches (iterations x batch, read from each checkpoint's provenance chain and the
option files it names) against ``TARGET_PATCHES`` per model: the model card's estimate of what closes the gap to the
paper (300,000 iterations at batch 16; issue 23's targets: SR baseline >= 31.5 dB on Set5, best >= 31.7; DnCNN
baseline >= 24.80 dB on BSD68). It is an estimate to check lease by lease against the validation curves.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from research.probes.benchmark_search_step import arch_table
from restore_dhp.catalogue import TASKS
from restore_dhp.checkpoint import read_metadata
from tools.recipes import RecipeError, of_checkpoint, recipe

ROOT = Path(__file__).resolve().parents[2]

# seconds per iteration on an H200, captured step, batch 16: SR measured (75 s per 10,000 iterations, the whole run;
# the continuation: 2,808 iterations in 21.2 s); DnCNN not measured alone (8 runs side by side), planned at SR's.
# The step is launch-bound: batch 64 ran at the same rate (issue 23); a call with a GPU measures both.
RECORDED_S_PER_ITER = {'sr': 0.0075, 'denoise': 0.0075}
START_S = 15          # per run: start-up, data decode, graph capture (assumed; side by side 15 runs took 70-90 s)
SETUP_S, PACK_S = 60, 25  # per lease: the session's set-up and the packing of the results (gpu_session.sh)
BNFREEZE_ITERS = 200  # the SR models' BatchNorm-frozen stage after each continuation
TARGET_PATCHES = 300_000 * 16
LEASE_S = 600
GAIN = 2.0            # batch 64 is used when it gives at least this many times batch 16's samples per second
STEP_LINE = re.compile(r'^(\w+)\s+cuda\s+(\d+)\s+captured\s+([\d.]+)', re.M)   # benchmark_search_step's rows


def shipped_runs() -> list[tuple[str, str]]:
    """(run, task) of every shipped model with a continuation recipe, SR first."""
    runs = []
    for task, spec in TASKS.items():
        for variant in spec.entry.variants:
            run = spec.entry.run_name(variant)
            if (ROOT / 'weights' / f'{run}.safetensors').is_file() and has_continuation(run):
                runs.append((run, task))
    return runs


def has_continuation(run: str) -> bool:
    try:
        recipe(f'{run}_continue_gpu', ROOT / 'options' / 'train')
    except RecipeError:
        return False
    return True


def patches_done(weights: Path) -> int:
    """Training patches behind a checkpoint: iterations x batch over its provenance chain."""
    info, total = read_metadata(str(weights))['info'], 0
    while info:
        iters = info.get('iterations_run') or info.get('total_iter') or 0
        try:   # the batch of the recipe that trained this stage (16, the paper's, where none is found)
            batch = of_checkpoint(info, ROOT / 'options' / 'train').options()['datasets']['train']['batch_size_per_gpu']
        except (RecipeError, KeyError):
            batch = 16
        total += int(iters) * batch
        info = info.get('parent')
    return total


def iterations_per_model(seconds: float, s_per_iter: dict, runs: list[tuple[str, str]]) -> int:
    """The equal ``total_iter`` that fits every run, its start-up and the SR BatchNorm-frozen stages in ``seconds``."""
    frozen = [task for _, task in runs if task == 'sr']
    fixed = START_S * (len(runs) + len(frozen)) + sum(BNFREEZE_ITERS * s_per_iter[t] for t in frozen)
    per_iter = sum(s_per_iter[task] for _, task in runs)
    return max(int((seconds - fixed) / per_iter), 0)


def plan(runs, s_per_iter: dict, batches: list[int]) -> str:
    """Where each model stands and how many 10-minute leases reach TARGET_PATCHES at each batch (the iteration
    times are the same at every batch listed: the step is launch-bound)."""
    n = iterations_per_model(LEASE_S - SETUP_S - PACK_S, s_per_iter, runs)
    lines = [f'plan: one {LEASE_S // 60}-minute lease gives each of the {len(runs)} models {n} iterations '
             '(iteration times: ' + ', '.join(f'{t} {v * 1e3:.1f} ms' for t, v in s_per_iter.items())
             + f'; {START_S} s start-up per run, {SETUP_S + PACK_S} s set-up and packing per lease)', '',
             f'| model | patches so far | to the target ({TARGET_PATCHES / 1e6:.1f} M) | '
             + ' | '.join(f'leases at batch {b}' for b in batches) + ' |',
             '|---|---|---|' + '---|' * len(batches)]
    worst = dict.fromkeys(batches, 0)
    for run, _ in runs:
        done = patches_done(ROOT / 'weights' / f'{run}.safetensors')
        left = max(TARGET_PATCHES - done, 0)
        leases = {b: math.ceil(left / (n * b)) if n else math.inf for b in batches}
        worst = {b: max(worst[b], leases[b]) for b in batches}
        lines.append(f'| {run} | {done / 1e6:.2f} M | {left / 1e6:.2f} M | '
                     + ' | '.join(str(leases[b]) for b in batches) + ' |')
    lines += ['', 'leases to reach the targets (all models each lease, one after another): '
              + ', '.join(f'{worst[b]} at batch {b}' for b in batches)]
    return '\n'.join(lines)


def measure(python: str, timeout: float) -> dict[str, dict[int, float]]:
    """{task: {batch: samples per second}} of the plain captured bf16 step (empty without CUDA or on failure)."""
    cmd = [python, '-m', 'research.probes.benchmark_search_step', '--devices', 'cuda', '--batches', '16', '64',
           '--modes', 'captured', '--amp', 'bf16', '--steps', '30', '--rounds', '3']
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT).stdout
    except subprocess.TimeoutExpired:
        return {}
    print(out, end='')
    rates: dict[str, dict[int, float]] = {}
    task_of = {alias: row[-1] for alias, row in arch_table().items()}
    for arch, batch, its in STEP_LINE.findall(out):
        if arch in task_of:
            rates.setdefault(task_of[arch], {})[int(batch)] = float(its) * int(batch)
    return rates


def choose(rates: dict[str, dict[int, float]]) -> tuple[int, dict[str, float]]:
    """(batch, seconds per iteration per task) from the measured samples per second, or the recorded times."""
    if set(rates) != set(RECORDED_S_PER_ITER) or any({16, 64} - set(r) for r in rates.values()):
        return 16, dict(RECORDED_S_PER_ITER)
    batch = 64 if all(r[64] >= GAIN * r[16] for r in rates.values()) else 16
    # a whole run costs more than the bare step (data, logging, validation): the recorded SR ratio as a margin
    return batch, {task: 1.25 * batch / r[batch] for task, r in rates.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--plan', action='store_true', help='print the plan and stop')
    p.add_argument('--deadline', type=float, default=float(os.environ.get('DEADLINE', 540)),
                   help='seconds after the start by which the training must have ended (default $DEADLINE or 540)')
    p.add_argument('--no-measure', action='store_true', help='plan from the recorded rates, batch 16')
    p.add_argument('--skip-reports', action='store_true', help='do not regenerate reports and card afterwards')
    p.add_argument('--python', default=os.environ.get('PY', sys.executable))
    args = p.parse_args(argv)
    start, dry = time.monotonic(), os.environ.get('DRY') == '1'
    runs = shipped_runs()
    if not runs:
        print('campaign: no shipped model with a continuation file (weights/*.safetensors)', file=sys.stderr)
        return 2
    rates = {} if args.plan or args.no_measure or dry else measure(args.python, args.deadline / 10)
    batch, s_per_iter = choose(rates)
    print(plan(runs, s_per_iter, [batch] if rates else [16, 64]))
    if args.plan:
        return 0
    left = args.deadline - PACK_S - (time.monotonic() - start)
    iters = 4 if dry else iterations_per_model(left, s_per_iter, runs)
    if iters < 1:
        print(f'campaign: {left:.0f} s left is too little for {len(runs)} runs', file=sys.stderr)
        return 1
    tiny = 'datasets:train:gt_size=16 datasets:train:batch_size_per_gpu=2 train:total_iter=4'
    force = tiny if dry else 'train:amp=bf16'
    # DRY here means real runs at toy size; train_weights.sh's own DRY=1 would only print them
    env = dict(os.environ, BUDGET='gpu-continue', PY=args.python, FORCE=force, BATCH=str(2 if dry else batch),
               SKIP_REPORTS='1' if args.skip_reports or dry else '0', DRY='0')
    print(f'campaign: {iters} iterations each at batch {env["BATCH"]}, {len(runs)} models, {left:.0f} s left',
          flush=True)
    cmd = ['timeout', str(max(int(left), 1)), 'bash', str(ROOT / 'tools' / 'train_weights.sh'), '--iters', str(iters),
           *(run for run, _ in runs)]
    code = subprocess.run(cmd, env=env, cwd=ROOT).returncode
    print(f'campaign: train_weights exit {code} after {time.monotonic() - start:.0f} s')
    return code


if __name__ == '__main__':
    sys.exit(main())
