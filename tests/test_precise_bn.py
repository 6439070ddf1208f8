"""train.precise_bn (BatchNorm statistics recomputed before validations and saves) and the search options
dhp.embedding_dim and dhp.warm_start, at toy size."""
import json
import os

import pytest
import torch
from torch import nn

import restore_dhp  # noqa: F401
from nets import compact
from restore_dhp.checkpoint import read_metadata, read_tensors, save_compact
from restore_dhp.models.precise_bn import recompute_bn_statistics

from train_helpers import run_train, sr_options, write_options

STATISTICS = ('running_mean', 'running_var', 'num_batches_tracked')


def _models(root, name):
    return os.path.join(root, 'experiments', name, 'models')


def test_statistics_are_the_exact_average_over_the_batches():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU())
    batches = [torch.rand(4, 2, 6, 6) for _ in range(3)]
    net.eval()
    assert recompute_bn_statistics(net, batches, torch.device('cpu')) == 1
    assert not net.training and net[1].momentum == 0.1   # the net's mode and the layer's momentum are restored
    with torch.no_grad():
        features = [net[0](b) for b in batches]
    mean = torch.stack([f.mean((0, 2, 3)) for f in features]).mean(0)
    var = torch.stack([f.transpose(0, 1).flatten(1).var(1) for f in features]).mean(0)   # unbiased, per batch
    assert torch.allclose(net[1].running_mean, mean, atol=1e-6) and torch.allclose(net[1].running_var, var, atol=1e-6)
    # BatchNorm frozen in eval mode while the net trains: its running statistics are what it trains with
    net.train()
    net[1].eval()
    before = net[1].running_var.clone()
    assert recompute_bn_statistics(net, batches, torch.device('cpu')) == 0 and torch.equal(net[1].running_var, before)


def test_precise_bn_changes_what_validation_sees_and_not_the_training(tmp_path):
    root = str(tmp_path)

    def run(name, precise):
        opt = sr_options(root, name=name, model='RestorationModel', total_iter=4, save_freq=4,
                         network={'type': 'SRResNet', 'num_feat': 8, 'num_blocks': 2})
        opt['val']['val_freq'] = 2
        if precise:
            opt['train']['precise_bn'] = 3
        out = run_train(root, write_options(root, opt, f'{name}.yml'))
        path = os.path.join(_models(root, name), 'net_g_4.safetensors')
        return out.stdout + out.stderr, read_tensors(path), read_metadata(path)['info']['validation']

    log, precise, history = run('tiny_precise', True)
    _, running, _ = run('tiny_running', False)
    # every validation (2, 4 and BasicSR's final one): the running statistics first, then the precise ones
    assert log.count('Validation tinyval_running') == log.count('Validation tinyval\n') == 3
    assert [(it, name) for it, name, _ in history] == [(2, 'tinyval_running'), (2, 'tinyval')]   # saved before 4's
    assert history[0][2]['psnr'] != history[1][2]['psnr']
    weights = [k for k in running if not k.endswith(STATISTICS)]
    assert all(torch.equal(precise[k], running[k]) for k in weights)   # training used batch statistics alike
    assert not torch.allclose(precise['norms.body_bn.running_var'], running['norms.body_bn.running_var'])


def test_precise_bn_leaves_frozen_batchnorm_alone_also_at_the_final_validation(tmp_path):
    """With train.freeze_bn_iter the running statistics are what the net trains with: no validation (the final
    one runs in eval mode) nor save recomputes them."""
    root = str(tmp_path)
    opt = sr_options(root, name='tiny_frozen', model='RestorationModel', total_iter=4, save_freq=4,
                     network={'type': 'SRResNet', 'num_feat': 8, 'num_blocks': 2})
    opt['val']['val_freq'] = 2
    opt['train'].update(precise_bn=3, freeze_bn_iter=0)
    start = os.path.join(root, 'trained.safetensors')
    torch.manual_seed(0)
    trained = compact('srresnet', num_feat=8, num_blocks=2)
    with torch.no_grad():
        trained.norms.body_bn.running_var.uniform_(0.5, 2.0)
    save_compact(trained.eval(), start)
    opt['path']['pretrain_network_g'] = start
    out = run_train(root, write_options(root, opt))
    log = out.stdout + out.stderr
    assert 'Validation tinyval_running' not in log and log.count('Validation tinyval\n') == 3
    psnrs = [float(line.split('psnr:')[1].split()[0]) for line in log.splitlines() if '# psnr:' in line]
    assert len(psnrs) == 3 and psnrs[1] == psnrs[2]   # the final validation sees the net saved at 4
    saved = read_tensors(os.path.join(_models(root, 'tiny_frozen'), 'net_g_4.safetensors'))
    assert torch.equal(saved['norms.body_bn.running_var'], trained.norms.body_bn.running_var)


@pytest.mark.parametrize('mode', ['scaled', 'saliency', 'additive'])
def test_search_warm_starts_from_a_compact_checkpoint_with_its_embedding_dim(tmp_path, mode):
    """dhp.warm_start: the DHP form of a trained network reproduces it at iteration 0 (and says how closely);
    dhp.embedding_dim sizes the hypernetworks."""
    root = str(tmp_path)
    torch.manual_seed(0)
    start = os.path.join(root, 'trained.safetensors')
    save_compact(compact('srresnet', num_feat=8, num_blocks=2).eval(), start)
    opt = sr_options(root, total_iter=4, save_freq=1,
                     dhp={'embedding_dim': 4, 'warm_start': mode, 'hyper_lr_scale': 0.25})
    opt['path']['pretrain_network_g'] = start
    out = run_train(root, write_options(root, opt))
    assert f'DHP warm start from {start} ({mode})' in out.stdout + out.stderr
    summary = json.load(open(os.path.join(_models(root, 'tiny_sr'), 'search_summary.json')))
    warm = summary['warm_start']
    assert warm['file'] == start and warm['mode'] == mode and warm['max_abs_difference'] < 1e-4
    assert summary['search_options']['embedding_dim'] == 4 and summary['search_options']['hyper_lr_scale'] == 0.25
    state = torch.load(os.path.join(root, 'experiments', 'tiny_sr', 'training_states', '1.state'), weights_only=False)
    hyper, latents = state['optimizers'][0]['param_groups']   # iteration 1 is in the search
    assert hyper['lr'] == pytest.approx(0.25 * latents['lr'])
    search = torch.load(os.path.join(_models(root, 'tiny_sr'), f"net_g_search_{summary['iteration']}.pth"),
                        weights_only=True)['params']
    banks = [v for k, v in search.items() if k.startswith('banks.') and k.endswith('.weight1')]
    assert banks and all(v.shape[-1] == 4 for v in banks)


def test_unknown_warm_start_is_refused_before_training(tmp_path):
    root = str(tmp_path)
    opt = sr_options(root, dhp={'warm_start': 'hot'})
    out = run_train(root, write_options(root, opt), check=False, timeout=120)
    assert out.returncode == 2 and 'option dhp.warm_start must be one of' in out.stderr
    assert not os.path.exists(os.path.join(root, 'experiments'))
