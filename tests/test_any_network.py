"""BasicSR's own networks through the option-file path: the toy option files of options/examples train (search,
compaction, fine-tuning), and their compact checkpoints work with complexity and export."""
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from train_helpers import REPO, env, make_images, run_train, write_options

TOYS = ['edsr', 'rcan', 'rrdbnet']


@pytest.mark.parametrize('toy', TOYS)
def test_toy_option_file_trains_and_its_checkpoint_exports(toy, tmp_path):
    with open(os.path.join(REPO, 'options', 'examples', f'{toy}_dhp_toy.yml')) as f:
        opt = yaml.safe_load(f)
    opt['datasets']['train']['dataroot_gt'] = make_images(str(tmp_path / 'hr'), count=3, size=64)
    opt['datasets']['val']['dataroot_gt'] = make_images(str(tmp_path / 'val'), count=1, size=32, seed=1)
    opt['datasets']['train']['dataset_enlarge_ratio'] = 20
    opt['train']['total_iter'] = 8
    opt['logger']['save_checkpoint_freq'] = opt['val']['val_freq'] = 8
    log = run_train(str(tmp_path), write_options(str(tmp_path), opt))
    text = log.stdout + log.stderr
    assert f"DHP: traced {opt['network_g']['type']}" in text and 'DHP search stopped' in text
    weights = tmp_path / 'experiments' / opt['name'] / 'models' / 'net_g_latest.safetensors'
    summary = json.loads((weights.parent / 'search_summary.json').read_text())
    assert summary['flops_ratio'] <= 0.52
    cx = subprocess.run([sys.executable, '-m', 'restore_dhp.complexity', '--weights', str(weights)], cwd=tmp_path,
                        env=env(), capture_output=True, text=True, timeout=300)
    assert cx.returncode == 0, cx.stderr
    assert abs(json.loads(cx.stdout)['flops_ratio'] - summary['flops_ratio']) < 1e-9  # measured = closed form
    onnx = tmp_path / f'{toy}.onnx'
    out = subprocess.run([sys.executable, '-m', 'restore_dhp.export', '--weights', str(weights), '--onnx', str(onnx)],
                         cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and onnx.is_file(), out.stderr
    parity = float(re.search(r'max \|onnxruntime - torch\| = ([0-9.e+-]+)', out.stdout + out.stderr).group(1))
    assert parity <= 1e-4
