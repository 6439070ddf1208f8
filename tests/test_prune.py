"""restore-dhp prune: a DHP search warm-started from trained weights (iteration-0 parity), to a FLOPs target, on a
toy recipe; the option file it trains with; its refusals."""
import re
import subprocess
import sys

import torch
import yaml

from restore_dhp import network
from restore_dhp.checkpoint import read_metadata, save_compact
from train_helpers import env, sr_options, write_options


def _trained_toy(path):
    torch.manual_seed(0)
    net = network.build('srresnet', dict(num_feat=8, num_blocks=2))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):  # statistics a training would have left
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    save_compact(net, path, info={'experiment': 'toy'})
    return path


def _prune(cwd, *args):
    return subprocess.run([sys.executable, '-m', 'restore_dhp.prune', *args], cwd=cwd, env=env(),
                          capture_output=True, text=True, timeout=600)


def test_prune_warm_starts_from_the_weights_and_writes_a_compact_checkpoint(tmp_path):
    weights = _trained_toy(str(tmp_path / 'toy.safetensors'))
    recipe = sr_options(str(tmp_path), name='unused', total_iter=10, save_freq=5,
                        dhp={'regularization': 300.0, 'mask_interval': 2, 'min_width': 2})
    recipe_file = write_options(str(tmp_path), recipe, 'recipe.yml')
    out = _prune(tmp_path, '--weights', weights, '--flops', '0.5', '--recipe', recipe_file, '-o', 'pruned.safetensors')
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    difference = float(re.search(r'reproduces it, max \|difference\| ([0-9.e+-]+)', log).group(1))
    assert difference <= 1e-4
    meta = read_metadata(tmp_path / 'pruned.safetensors')
    search = meta['info']['search']
    assert search['warm_start']['file'].endswith('toy.safetensors') and search['flops_ratio'] <= 0.52
    assert meta['arch'] == 'SRResNet' and meta['arch_kwargs'] == {'num_feat': 8, 'num_blocks': 2}
    assert sum(meta['widths'].values()) < 3 * 8
    again = _prune(tmp_path, '--weights', weights, '--flops', '0.5', '--recipe', recipe_file, '-o', 'pruned.safetensors')
    assert again.returncode == 2 and 'pruned.safetensors' in again.stderr  # no overwrite without --overwrite


def test_dry_run_prints_the_option_file_and_bad_targets_are_one_line(tmp_path):
    weights = _trained_toy(str(tmp_path / 'toy.safetensors'))
    recipe_file = write_options(str(tmp_path), sr_options(str(tmp_path)), 'recipe.yml')
    out = _prune(tmp_path, '--weights', weights, '--flops', '0.3', '--recipe', recipe_file, '--dry-run', '--iters', '7')
    assert out.returncode == 0, out.stderr
    opt = yaml.safe_load(out.stdout)
    assert opt['name'] == 'prune_toy_flops30' and opt['dhp']['target_ratio'] == 0.3 and 'target' not in opt['dhp']
    assert opt['network_g']['type'] == 'SRResNet' and opt['path']['pretrain_network_g'].endswith('toy.safetensors')
    assert opt['train']['total_iter'] == 7
    bad = _prune(tmp_path, '--weights', weights, '--flops', '1.5', '--recipe', recipe_file)
    assert bad.returncode == 2 and bad.stderr.count('\n') == 1 and '--flops must be a fraction' in bad.stderr
    missing = _prune(tmp_path, '--weights', weights, '--latency', '0.4', '--table', 'nope.json', '--recipe', recipe_file)
    assert missing.returncode == 2 and 'nope.json: no such file' in missing.stderr
    help_ = _prune(tmp_path, '--help')
    assert help_.returncode == 0 and '--latency' in help_.stdout
