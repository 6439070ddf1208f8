"""The issue-23 scripts at toy size on the CPU: the arms runner and its table, and the campaign's plan and DRY run."""
import os
import shutil
import subprocess
import sys

import pytest

from research.gpu_campaign import campaign
from research.sr_inversion import arms_table
from restore_dhp.checkpoint import read_metadata

from train_helpers import REPO, env, make_images


def _fake_run(experiments, name, a, b, done, live=None):
    """A run's last compact checkpoint with validations at iterations 200 and 400 in its metadata (``live``: the
    trained network's too, as a run with EMA and val.also_live records them); ``done``: written at the end."""
    from nets import compact
    from restore_dhp.checkpoint import save_compact
    history = []
    for i, v, lv in [(200, a, live and live[0]), (400, b, live and live[1])]:
        history += [[i, 'SR291_val', {'psnr': v}]] + ([[i, 'SR291_val_live', {'psnr': lv}]] if live else [])
    models = experiments / name / 'models'
    models.mkdir(parents=True, exist_ok=True)
    for old in models.glob('*.safetensors'):
        old.unlink()
    save_compact(compact('srresnet', num_feat=8, num_blocks=1), models / f"net_g_{'latest' if done else 400}.safetensors",
                 info={'experiment': name, 'validation': history})


def test_arms_table_replaces_its_section(tmp_path):
    experiments = tmp_path / 'experiments'
    for name, a, b, done, live in [('plain_ema_s10', 24.2, 24.5, False, (24.0, 24.25)),
                                   ('plain_ema_s11', 24.3, 24.6, True, (24.1, 24.35)),
                                   ('plain_wd_s10', 24.4, 24.7, True, None)]:
        _fake_run(experiments, f'sr_arm_{name}', a, b, done, live)
    report = tmp_path / 'report.md'
    report.write_text('# Report\n\ntext\n')
    assert arms_table.main(['--experiments', str(experiments), '--report', str(report)]) == 0
    first = report.read_text()
    assert first.startswith('# Report\n\ntext\n\n## The arms of issue 23')
    # the control's rows are the EMA runs' trained networks (SR291_val_live)
    assert '| plain, seed 10 | 24.00 | 24.25 |' in first and '| plain_ema, seed 10 | 24.20 | 24.50 |' in first
    assert '| plain | 2 | 24.30 | 0.10 |' in first                  # the mean of the seeds' last values
    assert '| plain_ema | 2 | 24.55 | 0.10 |' in first and '| plain_wd | 1 | 24.70 | 0.00 |' in first
    assert 'plain_wd, seed 10' in first and 'plain_wd, seed' not in first.replace('plain_wd, seed 10', '')
    assert 'Not finished (partial curves): sr_arm_plain_ema_s10.' in first
    _fake_run(experiments, 'sr_arm_plain_ema_s10', 24.2, 24.6, True, (24.0, 24.3))
    arms_table.main(['--experiments', str(experiments), '--report', str(report)])
    second = report.read_text()
    assert second.count('## The arms of issue 23') == 1 and '24.60' in second and 'Not finished' not in second
    assert arms_table.main(['--experiments', str(tmp_path / 'none'), '--report', str(report)]) == 2


def _checkout(tmp_path, weights=()):
    """A copy of the tools, studies, options and some weights, with tiny datasets where the option files look."""
    root = tmp_path / 'co'
    for folder in ('tools', 'research', 'options'):
        shutil.copytree(os.path.join(REPO, folder), root / folder, ignore=shutil.ignore_patterns('__pycache__'))
    (root / 'weights').mkdir()
    for name in weights:
        shutil.copy(os.path.join(REPO, 'weights', name), root / 'weights' / name)
    (root / 'research' / 'sr_inversion' / 'report.md').write_text('# SR inversion\n')
    data = root / 'datasets'
    for folder, gray in [('SR291/HR', False), ('SR291_train/HR', False), ('Train400', True), ('Set12', True)]:
        make_images(str(data / folder), count=4, size=48, gray=gray)
    make_images(str(data / 'SR291_val/HR'), count=1, size=32, seed=1)
    e = env()
    e.update(PY=sys.executable, PYTHONPATH=REPO)
    return root, e


def _run(cmd, root, e, **extra):
    out = subprocess.run(cmd, cwd=root, env={**e, **extra}, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    return out.stdout


def test_run_arms_runs_both_seeds_and_writes_the_table(tmp_path):
    root, e = _checkout(tmp_path)
    tiny = ['--iters', '2', '--force', 'network_g:num_feat=8', 'network_g:num_blocks=2', 'datasets:train:gt_size=16',
            'datasets:train:batch_size_per_gpu=2']
    _run(['bash', 'research/sr_inversion/run_arms.sh', *tiny], root, e, ARMS='plain_ema')
    report = (root / 'research' / 'sr_inversion' / 'report.md').read_text()
    assert '| plain_ema, seed 10 |' in report and '| plain_ema, seed 11 |' in report
    assert '| plain, seed 10 |' in report and '| plain, seed 11 |' in report  # val.also_live: the control
    assert read_metadata(str(root / 'experiments/sr_arm_plain_ema_s11/models/net_g_latest.safetensors'))['info'][
        'ema_decay'] == 0.999
    # finished runs are not run again
    again = _run(['bash', 'research/sr_inversion/run_arms.sh', *tiny], root, e, ARMS='plain_ema')
    assert '== plain_ema: done before' in again


def test_campaign_plan_and_dry_run_install_each_result(tmp_path):
    runs = ['srresnet_x4_dhp20', 'dncnn_s70_dhp20']
    root, e = _checkout(tmp_path, [f'{r}.safetensors' for r in runs])
    plan = _run([sys.executable, '-m', 'research.gpu_campaign.campaign', '--plan'], root, e)
    assert 'leases to reach the targets' in plan and '| srresnet_x4_dhp20 | 0.21 M |' in plan
    assert 'dncnn_s70_baseline' not in plan  # only the models shipped here
    out = _run([sys.executable, '-m', 'research.gpu_campaign.campaign', '--deadline', '500'], root, e, DRY='1')
    assert 'campaign: 4 iterations each at batch 2, 2 models' in out
    for run in runs:
        info = read_metadata(str(root / 'weights' / f'{run}.safetensors'))['info']
        stages = [info['experiment'], info['parent']['experiment']]
        expected = {'srresnet_x4_dhp20': ['srresnet_x4_dhp20_bnfreeze_gpu', 'srresnet_x4_dhp20_continue_gpu'],
                    'dncnn_s70_dhp20': ['dncnn_s70_dhp20_continue_gpu', 'dncnn_s70_dhp20_bnfreeze_gpu']}[run]
        assert stages == expected, (run, stages)
        assert info['iterations_run'] == 4


@pytest.mark.parametrize('rates,batch', [
    ({'sr': {16: 100.0, 64: 390.0}, 'denoise': {16: 100.0, 64: 250.0}}, 64),
    ({'sr': {16: 100.0, 64: 390.0}, 'denoise': {16: 100.0, 64: 150.0}}, 16),
    ({}, 16),
])
def test_campaign_takes_batch_64_only_where_it_pays(rates, batch):
    chosen, s_per_iter = campaign.choose(rates)
    assert chosen == batch
    if rates:
        assert s_per_iter['sr'] == pytest.approx(1.25 * batch / rates['sr'][batch])
    else:
        assert s_per_iter == campaign.RECORDED_S_PER_ITER
