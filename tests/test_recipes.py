"""Recipe machinery of issue 23 at toy size: EMA (net_g_ema) in both models, weight decay on the body convs only,
the body convs' initial scale, and the large-batch fast recipes (run and resume after a kill on the CPU)."""
import glob
import os

import pytest
import torch
import yaml

import restore_dhp  # noqa: F401
from nets import compact, dhp
from restore_dhp import network
from restore_dhp.archs.dncnn_arch import DnCNN
from restore_dhp.checkpoint import read_metadata, read_tensors
from restore_dhp.errors import OptionError
from restore_dhp.models.restoration_model import weight_decay_groups

from test_training import _build_resumed_model
from train_helpers import REPO, kill_and_resume, run_train, sr_options, write_options


def _models(root, name):
    return os.path.join(root, 'experiments', name, 'models')


def _scale(weight):  # std x sqrt(fan-in), as research/sr_inversion/report.md measures it
    return float(weight.detach().std() * weight[0].numel() ** 0.5)


def test_body_convs_are_the_convs_feeding_batchnorm():
    sr = network.spec_of('srresnet', dict(num_feat=8, num_blocks=2))
    assert sr.body_convs == [f'convs.{n}' for n in ('block00_conv1', 'block00_conv2', 'block01_conv1',
                                                    'block01_conv2', 'body')]
    dn = network.spec_of('dncnn', dict(num_feat=8, num_layers=5))
    assert dn.body_convs == ['convs.conv01', 'convs.conv02', 'convs.conv03']  # each feeds bn01 ... bn03


def test_body_init_scale_sets_the_body_convs_only():
    torch.manual_seed(0)
    net = compact('srresnet', num_feat=64, num_blocks=2, body_init_scale=1.11)
    he = compact('srresnet', num_feat=64, num_blocks=2)
    body = network.structure(net).spec.body_convs
    assert len(body) == 5
    for name in body:
        assert _scale(net.get_submodule(name).weight) == pytest.approx(1.11, rel=0.03)
        assert _scale(he.get_submodule(name).weight) == pytest.approx(2 ** 0.5, rel=0.03)
    assert _scale(net.convs['head'].weight) == pytest.approx(2 ** 0.5, rel=0.05)  # head keeps He init
    # an initialisation, not a structure: the same groups as without it
    assert network.structure(net).spec.group_widths == network.structure(he).spec.group_widths
    with pytest.raises(ValueError, match='positive'):
        DnCNN(num_feat=8, num_layers=5, body_init_scale=0)


def test_weight_decay_groups():
    net = compact('dncnn', num_feat=8, num_layers=5)
    body_group, rest = weight_decay_groups(net, {'weight_decay_params': 'body'})
    body = {id(net.convs[n].weight) for n in ('conv01', 'conv02', 'conv03')}
    assert {id(p) for p in body_group['params']} == body
    assert rest['weight_decay'] == 0.0 and len(rest['params']) == len(list(net.parameters())) - 3
    optim = {'weight_decay_params': 'all', 'lr': 1.0}
    assert len(weight_decay_groups(net, optim)) == len(list(net.parameters())) and optim == {'lr': 1.0}
    with pytest.raises(OptionError, match='weight_decay_params must be one of all, body'):
        weight_decay_groups(net, {'weight_decay_params': 'convs'})
    with pytest.raises(OptionError, match='needs a plain network'):
        weight_decay_groups(dhp('dncnn', num_feat=8, num_layers=5), {'weight_decay_params': 'body'})


def _plain(root, name, **train):
    opt = sr_options(root, name=name, model='RestorationModel', total_iter=6, save_freq=3,
                     network={'type': 'SRResNet', 'num_feat': 8, 'num_blocks': 2})
    opt['train'].update(train)
    return opt


def _load_pth(root, name, it):
    return torch.load(os.path.join(_models(root, name), f'net_g_{it}.pth'), weights_only=True)


def _same_trained_network_without_ema(root, opt, name):
    """Train ``opt`` again without EMA under ``name``; its trained network must be the EMA run's bit for bit (the
    average never feeds back into training: the issue-23 arms take their controls from the EMA runs)."""
    twin = {**opt, 'name': name, 'train': {**opt['train'], 'ema_decay': 0}, 'val': {**opt['val'], 'also_live': False}}
    run_train(root, write_options(root, twin, f'{name}.yml'))
    with_ema, without = _load_pth(root, opt['name'], 6)['params'], _load_pth(root, name, 6)['params']
    assert with_ema.keys() == without.keys() and all(torch.equal(with_ema[k], without[k]) for k in without)


def test_ema_validates_saves_and_resumes(tmp_path, monkeypatch):
    root = str(tmp_path)
    opt = _plain(root, 'tiny_ema', ema_decay=0.9)
    opt['val'].update(val_freq=3, also_live=True)  # the average and the trained network, at 3 and 6
    opt_path = write_options(root, opt)
    out = run_train(root, opt_path)
    log = out.stdout + out.stderr
    assert log.count('Validation tinyval_live') == log.count('Validation tinyval\n') >= 2
    history = read_metadata(os.path.join(_models(root, 'tiny_ema'), 'net_g_6.safetensors'))['info']['validation']
    assert [(it, name) for it, name, _ in history] == [(3, 'tinyval'), (3, 'tinyval_live')]  # saved before 6's
    assert history[0][2]['psnr'] != history[1][2]['psnr']
    _same_trained_network_without_ema(root, opt, 'tiny_no_ema')
    saved = _load_pth(root, 'tiny_ema', 6)
    live, ema = saved['params'], saved['params_ema']
    compact = read_tensors(os.path.join(_models(root, 'tiny_ema'), 'net_g_6.safetensors'))
    assert all(torch.equal(compact[k], ema[k]) for k in ema)  # the shipped file is the average
    assert not torch.equal(live['convs.body.weight'], ema['convs.body.weight'])
    # the buffers are the trained network's, not the initial ones (BasicSR's update leaves those)
    assert torch.equal(live['norms.body_bn.running_var'], ema['norms.body_bn.running_var'])
    assert not torch.equal(ema['norms.body_bn.running_var'], torch.ones_like(ema['norms.body_bn.running_var']))
    assert read_metadata(os.path.join(_models(root, 'tiny_ema'), 'net_g_6.safetensors'))['info']['ema_decay'] == 0.9
    # a resume reads the average back from the .pth (params_ema), not a copy of the trained network
    state = os.path.join(root, 'experiments', 'tiny_ema', 'training_states', '3.state')
    monkeypatch.chdir(root)
    model, _ = _build_resumed_model(root, opt_path, state)
    at3 = _load_pth(root, 'tiny_ema', 3)['params_ema']
    restored = model.net_g_ema.state_dict()
    assert all(torch.equal(restored[k], at3[k]) for k in at3)
    # one EMA step moves each parameter by (1 - decay) of the way to the trained network's
    before = {k: v.clone() for k, v in model.net_g_ema.named_parameters()}
    model.model_ema(0.75)
    for k, p in model.get_bare_model(model.net_g).named_parameters():
        assert torch.allclose(dict(model.net_g_ema.named_parameters())[k], 0.75 * before[k] + 0.25 * p)


def test_dhp_search_with_ema_restarts_the_average_at_compaction(tmp_path):
    root = str(tmp_path)
    opt = sr_options(root, name='tiny_dhp_ema', total_iter=6, save_freq=6)
    opt['train']['ema_decay'] = 0.9
    run_train(root, write_options(root, opt))
    _same_trained_network_without_ema(root, opt, 'tiny_dhp_no_ema')
    models = _models(root, 'tiny_dhp_ema')
    saved = _load_pth(root, 'tiny_dhp_ema', 6)
    compact = read_tensors(os.path.join(models, 'net_g_6.safetensors'))
    assert saved['params_ema'].keys() == saved['params'].keys() == compact.keys()  # both compact after the search
    assert all(torch.equal(compact[k], saved['params_ema'][k]) for k in compact)
    assert not torch.equal(saved['params']['convs.body.weight'], saved['params_ema']['convs.body.weight'])
    meta = read_metadata(os.path.join(models, 'net_g_6.safetensors'))
    assert meta['info']['ema_decay'] == 0.9 and meta['widths'] == meta['info']['search']['widths']


def test_weight_decay_on_body_convs_reaches_the_optimizer(tmp_path):
    root = str(tmp_path)
    opt = _plain(root, 'tiny_wd', total_iter=3)
    opt['train']['optim_g'].update(type='AdamW', weight_decay=0.5, weight_decay_params='body')
    run_train(root, write_options(root, opt))
    state = torch.load(os.path.join(root, 'experiments', 'tiny_wd', 'training_states', '3.state'), weights_only=False)
    groups = state['optimizers'][0]['param_groups']
    assert [g['weight_decay'] for g in groups] == [0.5, 0.0] and len(groups[0]['params']) == 5
    opt['train']['optim_g']['weight_decay_params'] = 'everything'
    opt['name'] = 'tiny_wd_bad'
    out = run_train(root, write_options(root, opt), check=False)
    assert out.returncode != 0 and 'weight_decay_params must be one of all, body' in out.stdout + out.stderr


# ---------------------------------------------------------------- the large-batch fast recipes (item 2)
FAST = sorted(glob.glob(os.path.join(REPO, 'research', 'gpu_campaign', 'options', '*_fast_gpu.yml')))


def test_every_task_has_a_fast_recipe():
    tasks = {os.path.basename(p).split('_')[0] for p in FAST}
    assert tasks == {'srresnet', 'dncnn'}
    for path in FAST:
        opt = yaml.safe_load(open(path))
        train, data = opt['train'], opt['datasets']['train']
        assert data['batch_size_per_gpu'] == 64 and data['cache'] == 'gpu'
        assert train['amp'] == 'bf16' and train['capture'] == 'cuda_graph' and train['warmup_iter'] > 0


def _toy_fast(root, path, total_iter):
    """The fast recipe at toy size: the same keys, tiny data, network and batch (the DRY mode of
    research/gpu_campaign/campaign.py forces the same way)."""
    from train_helpers import make_images
    opt = yaml.safe_load(open(path))
    task = 'sr' if opt['network_g']['type'].startswith('SRResNet') else 'denoise'
    make_images(os.path.join(root, 'hr'), gray=task == 'denoise')
    make_images(os.path.join(root, 'val'), count=1, size=32, seed=1, gray=task == 'denoise')
    opt['datasets']['train'].update(dataroot_gt=os.path.join(root, 'hr'), gt_size=16, batch_size_per_gpu=4,
                                    dataset_enlarge_ratio=20)
    opt['datasets']['val'].update(dataroot_gt=os.path.join(root, 'val'))
    opt['datasets']['val'].pop('dataroot_lq', None)
    opt['network_g'].update({'num_feat': 8, **({'num_blocks': 2} if task == 'sr' else {'num_layers': 5})})
    if opt['model_type'] == 'DHPSearchModel':
        opt['dhp'].update(mask_interval=2, max_search_iter=4, regularization=100.0)
    opt['num_gpu'] = 0
    opt['train'].update(total_iter=total_iter, warmup_iter=4)
    opt['train']['scheduler']['milestones'] = [total_iter // 2]
    opt['train']['optim_g'].pop('fused', None)
    opt['val']['val_freq'] = 10 ** 9
    opt['logger'].update(print_freq=1, save_checkpoint_freq=3, use_tb_logger=False)
    return write_options(root, opt)


@pytest.mark.parametrize('path', FAST, ids=os.path.basename)
def test_fast_recipe_runs_and_resumes_after_a_kill(tmp_path, path):
    root = str(tmp_path)
    opt = yaml.safe_load(open(_toy_fast(root, path, total_iter=400)))
    kill_and_resume(root, opt)
    assert os.path.exists(os.path.join(_models(root, opt['name']), 'net_g_latest.safetensors'))
