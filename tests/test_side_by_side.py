"""tools/run_side_by_side.py (planning, recipes), tools/curves.py (validation curves from checkpoints) and the held-out
"291" split."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from restore_dhp.data.sets import HOLDOUT_EVERY, holdout_split
from tools import curves
from tools import run_side_by_side as sbs
from tools.recipes import recipe

REPO = Path(__file__).resolve().parents[1]

LOG = """2026-11-27 04:18:02,986 INFO: [sr_in..][epoch:  0, iter:     400, lr:(1.000e-03,)] [eta: 0:51:40, time (data): 5.182 (0.009)] l_pix: 4.3e-02
2026-11-27 04:19:02,986 INFO: [sr_in..][epoch:  0, iter:   1,000, lr:(5.000e-04,)] [eta: 0:41:40, time (data): 4.500 (0.009)] l_pix: 4.1e-02
"""


def write_run(root: Path, name: str, validation: list, label: str = 'latest') -> Path:
    """A tiny compact checkpoint of experiment ``name`` whose metadata records ``validation``, as training writes."""
    from nets import compact
    from restore_dhp.checkpoint import save_compact
    models = root / name / 'models'
    models.mkdir(parents=True, exist_ok=True)
    save_compact(compact('dncnn', num_feat=8, num_layers=3), models / f'net_g_{label}.safetensors',
                 info={'experiment': name, 'validation': validation, 'wall_time_s': 12.5})
    return models


def test_validation_curve_from_the_last_checkpoint_and_timing_from_the_log(tmp_path):
    log = tmp_path / 'run.log'
    log.write_text(LOG)
    assert sbs.seconds_per_iter(log) == 4.5   # a calibration run's pace: BasicSR's averaged time per iteration
    history = [[400, 'SR291_val', {'psnr': 27.6941, 'ssim': 0.8}], [1000, 'SR291_val', {'psnr': 28.1}],
               [1000, 'SR291_val_live', {'psnr': 27.9}]]
    write_run(tmp_path, 'a', history[:1], label='400')
    assert curves.validation_curve('a', root=tmp_path) == [(400, 'psnr', 27.6941)]   # cut: its newest numbered file
    write_run(tmp_path, 'a', history)
    assert curves.validation_curve('a', root=tmp_path) == [(400, 'psnr', 27.6941), (1000, 'psnr', 28.1)]
    assert curves.validation_curve('a', live=True, root=tmp_path) == [(1000, 'psnr', 27.9)]
    assert curves.validation_curve('never_ran', root=tmp_path) == []


def test_summary_table_and_install_by_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_run(tmp_path / 'experiments', 'srresnet_x4_dhp40_continue_gpu', [[600, 'Set5', {'psnr': 30.123}]])
    curves.write_summary(str(tmp_path / 'summary.md'), ['srresnet_x4_dhp40_continue_gpu', 'dncnn_s70_dhp20_gpu'])
    text = (tmp_path / 'summary.md').read_text()
    assert '| srresnet_x4_dhp40_continue_gpu | 30.12 |' in text and '| dncnn_s70_dhp20_gpu |  |' in text
    job = sbs.Job('srresnet_x4_dhp40_continue_gpu', 'x.yml', {}, model='srresnet_x4_dhp40')
    sbs.install(job, 'weights')
    assert (tmp_path / 'weights' / 'srresnet_x4_dhp40.safetensors').is_file()


def test_recipes_run_with_their_overlay_and_install_needs_recipe_names(capsys):
    assert sbs.main(['--runs', 'srresnet_x4_dhp40_gpu', 'dncnn_s70_baseline_bnfreeze_gpu', '--iters', '10',
                     '--dry-run', '--python', 'PY']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith('PY -m restore_dhp.train -opt options/train/srresnet_x4_dhp_gpu.yml --auto_resume '
                               '--force_yml name=srresnet_x4_dhp40_gpu dhp:target_ratio=0.4 train:total_iter=10')
    assert ('name=dncnn_s70_baseline_bnfreeze_gpu path:pretrain_network_g=experiments/dncnn_s70_baseline_gpu/models/'
            'net_g_latest.safetensors train:total_iter=10') in lines[1]
    opts = str(REPO / 'research' / 'sr_inversion' / 'options' / 'sr_inv_baseline_s10.yml')
    assert sbs.main(['--opts', opts, '--install', 'weights', '--dry-run']) == 2
    assert 'needs runs named as recipes' in capsys.readouterr().err
    assert sbs.main(['--runs', 'srresnet_x4_dhp40_tpu', '--dry-run']) == 2


@pytest.mark.parametrize('name', ['srresnet_x4_baseline_continue_gpu', 'dncnn_s70_dhp20_continue_gpu'])
def test_plan_stretches_the_schedule_of_a_continuation(name):
    opt = recipe(name).options()
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
