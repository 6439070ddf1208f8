"""tools/run_side_by_side.py (planning and log parsing) and the held-out "291" split."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from restore_dhp.data.sets import HOLDOUT_EVERY, holdout_split
from tools import run_side_by_side as sbs

REPO = Path(__file__).resolve().parents[1]

LOG = """2026-11-27 04:18:02,986 INFO: [sr_in..][epoch:  0, iter:     400, lr:(1.000e-03,)] [eta: 0:51:40, time (data): 5.182 (0.009)] l_pix: 4.3e-02
2026-11-27 04:18:03,000 INFO: Validation SR291_val
\t # psnr: 27.6941\tBest: 27.6941 @ 400 iter
2026-11-27 04:19:02,986 INFO: [sr_in..][epoch:  0, iter:   1,000, lr:(5.000e-04,)] [eta: 0:41:40, time (data): 4.500 (0.009)] l_pix: 4.1e-02
2026-11-27 04:19:03,000 INFO: Validation SR291_val
\t # psnr: 28.1000\tBest: 28.1000 @ 1000 iter
"""


def test_validation_curve_and_timing_from_a_basicsr_log(tmp_path):
    log = tmp_path / 'run.log'
    log.write_text(LOG)
    assert sbs.validation_curve(log) == [(400, 'psnr', 27.6941), (1000, 'psnr', 28.1)]
    assert sbs.validation_curve(log, live=True) == []
    live = LOG.replace('Validation SR291_val\n\t # psnr: 28.1000\tBest: 28.1000',
                       'Validation SR291_val\n\t # psnr: 28.1000\tBest: 28.1000 @ 1000 iter\n'
                       '2026-11-27 INFO: Validation SR291_val_live\n\t # psnr: 27.9000\tBest: 27.9000')
    (tmp_path / 'live.log').write_text(live)
    assert sbs.validation_curve(tmp_path / 'live.log') == [(400, 'psnr', 27.6941), (1000, 'psnr', 28.1)]
    assert sbs.validation_curve(tmp_path / 'live.log', live=True) == [(1000, 'psnr', 27.9)]
    assert sbs.seconds_per_iter(log) == 4.5
    out = tmp_path / 'summary.md'
    sbs.write_summary(str(out), [('a', log)])
    assert '| a | 27.69 | 28.10 |' in out.read_text()


@pytest.mark.parametrize('name', ['srresnet_x4_baseline_continue_gpu', 'dncnn_s70_dhp20_continue_gpu'])
def test_plan_stretches_the_schedule_of_a_continuation(name):
    opt = sbs.read_opt(str(REPO / 'options' / 'train' / f'{name}.yml'))
    force = sbs.plan_force(3000, opt)
    assert 'train:total_iter=3000' in force and 'train:scheduler:periods=[3000]' in force
    assert 'train:warmup_iter=150' in force
    assert opt['path']['pretrain_network_g'].startswith('weights/')


def test_plan_stretches_multistep_milestones_in_proportion():
    opt = sbs.read_opt(str(REPO / 'research' / 'sr_inversion' / 'options' / 'sr_inv_baseline_s10.yml'))
    force = sbs.plan_force(opt['train']['total_iter'] // 2, opt)
    half = [m // 2 for m in opt['train']['scheduler']['milestones']]
    assert f"train:scheduler:milestones=[{','.join(map(str, half))}]" in force


def test_holdout_split_keeps_every_20th_bsd200_image_for_validation(tmp_path):
    src = tmp_path / 'SR291' / 'HR'
    src.mkdir(parents=True)
    img = Image.fromarray(np.zeros((8, 8, 3), np.uint8))
    for i in range(5):
        img.save(src / f'T91_t{i}.png')
    for i in range(2 * HOLDOUT_EVERY):
        img.save(src / f'BSD200_{i:03d}.webp', lossless=True)
    assert holdout_split(src, tmp_path) == (5 + 2 * HOLDOUT_EVERY - 2, 2)
    val = sorted(p.name for p in (tmp_path / 'SR291_val' / 'HR').iterdir())
    assert val == [f'BSD200_{HOLDOUT_EVERY - 1:03d}.webp', f'BSD200_{2 * HOLDOUT_EVERY - 1:03d}.webp']
    train = {p.name for p in (tmp_path / 'SR291_train' / 'HR').iterdir()}
    assert not train & set(val) and 'T91_t0.png' in train
    assert holdout_split(src, tmp_path) == (5 + 2 * HOLDOUT_EVERY - 2, 2)  # idempotent


def test_iterations_to_fill_side_by_side_and_one_at_a_time():
    # side by side: one calibration of all runs, the slowest sets the pace
    assert sbs.iterations_to_fill(100.0, [(0.1, 10.0, 20.0)], one_at_a_time=False) == int((90 - 20 - 10) / 0.1)
    # one at a time: each run calibrated alone, their times add up
    cal = [(0.1, 5.0, 8.0), (0.3, 5.0, 8.0)]
    assert sbs.iterations_to_fill(100.0, cal, one_at_a_time=True) == int((90 - 16 - 10) / 0.4)
    assert sbs.iterations_to_fill(1.0, cal, one_at_a_time=True) == 1  # never below one iteration


def test_runs_side_by_side_share_the_cpu_cores(monkeypatch):
    for var in sbs.THREAD_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(sbs.os, 'cpu_count', lambda: 16)
    assert {sbs.child_env(8)[v] for v in sbs.THREAD_VARS} == {'2'}
    assert {sbs.child_env(1)[v] for v in sbs.THREAD_VARS} == {'16'}
    assert {sbs.child_env(32)[v] for v in sbs.THREAD_VARS} == {'1'}  # never below one thread
    monkeypatch.setenv('OMP_NUM_THREADS', '3')  # the caller's choice is kept
    env = sbs.child_env(8)
    assert env['OMP_NUM_THREADS'] == '3' and 'MKL_NUM_THREADS' not in env
