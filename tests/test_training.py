"""End-to-end training through BasicSR option files: search -> compact -> fine-tune, resume, DDP, bad options."""
import json
import os
import signal
import subprocess
import sys

import pytest
import torch

import restore_dhp  # noqa: F401
from restore_dhp import network
from restore_dhp.checkpoint import load_compact, read_metadata

from train_helpers import dncnn_options, env, kill_and_resume, run_train, sr_options, write_options


def _models(root, name):
    return os.path.join(root, 'experiments', name, 'models')


def test_sr_search_compacts_and_finetunes(tmp_path):
    root = str(tmp_path)
    opt = sr_options(root, total_iter=10)
    opt['train']['scheduler']['milestones'] = [4, 8]
    out = run_train(root, write_options(root, opt))
    models = _models(root, 'tiny_sr')
    summary = json.load(open(os.path.join(models, 'search_summary.json')))
    assert summary['stop_reason'] == 'target_reached' and summary['iteration'] < 4
    # the fine-tune optimizer and scheduler (built anew by BasicSR's setup) continue the same schedule
    log = (out.stdout + out.stderr).replace(' ', '')
    assert 'iter:5,lr:(5.000e-04,)' in log and 'iter:9,lr:(2.500e-04,)' in log, log[-3000:]
    assert summary['flops_ratio'] <= 0.5 + 0.02
    assert 'DHP search stopped at iter' in out.stdout + out.stderr
    compact = load_compact(os.path.join(models, 'compact_search.safetensors'))
    assert network.structure(compact).widths == summary['widths']
    final = read_metadata(os.path.join(models, 'net_g_latest.safetensors'))
    assert final['info']['search']['stop_reason'] == 'target_reached' and final['widths'] == summary['widths']
    assert os.path.exists(os.path.join(models, f"net_g_search_{summary['iteration']}.pth"))

    # fine-tune the compact checkpoint as a plain network through an option file
    ft = sr_options(root, name='tiny_ft', model='RestorationModel', total_iter=3, network={'type': 'SRResNet'})
    ft['path']['pretrain_network_g'] = os.path.join(models, 'compact_search.safetensors')  # widths from the file
    run_train(root, write_options(root, ft, 'ft.yml'))
    tuned_path = os.path.join(_models(root, 'tiny_ft'), 'net_g_latest.safetensors')
    tuned = load_compact(tuned_path)
    assert network.structure(tuned).widths == summary['widths']
    parent = read_metadata(tuned_path)['info']['parent']  # the fine-tuned file still says how it was searched
    assert parent['file'].endswith('compact_search.safetensors') and parent['experiment'] == 'tiny_sr'
    assert parent['iteration'] == summary['iteration'] and 'parent' not in final['info']


def test_freeze_bn_iter_stops_running_statistics_but_not_training(tmp_path):
    from safetensors.torch import load_file
    root = str(tmp_path)
    opt = dncnn_options(root, name='tiny_freeze', total_iter=4)
    opt.pop('dhp')
    opt.update(model_type='RestorationModel', network_g={'type': 'DnCNN', 'num_feat': 8, 'num_layers': 5})
    opt['train']['freeze_bn_iter'] = 2
    opt['logger']['save_checkpoint_freq'] = 2
    run_train(root, write_options(root, opt))
    at2, at4 = (load_file(os.path.join(_models(root, 'tiny_freeze'), f'net_g_{i}.safetensors')) for i in (2, 4))
    stats = [k for k in at2 if k.endswith(('running_mean', 'running_var'))]
    assert stats
    assert all(torch.equal(at2[k], at4[k]) for k in stats)  # frozen after iteration 2
    assert not torch.allclose(at2['norms.bn01.running_var'], torch.ones_like(at2['norms.bn01.running_var']))
    assert not torch.equal(at2['norms.bn01.weight'], at4['norms.bn01.weight'])  # scale and shift still train
    assert not torch.equal(at2['convs.conv01.weight'], at4['convs.conv01.weight'])


def test_a_seed_given_by_force_yml_is_the_seed_trained_with(tmp_path):
    """BasicSR 1.4.2 seeds before it applies --force_yml: 'manual_seed=11' was logged and the file's seed used."""
    root = str(tmp_path)
    opt = dict(dncnn_options(root, total_iter=2), model_type='RestorationModel', manual_seed=10)
    opt.pop('dhp', None)
    ten = write_options(root, opt)
    eleven = write_options(root, dict(opt, manual_seed=11), 'opt11.yml')
    run_train(root, ten, '--force_yml', 'name=file10')
    run_train(root, ten, '--force_yml', 'name=forced11', 'manual_seed=11')
    run_train(root, eleven, '--force_yml', 'name=file11')
    nets = {n: load_compact(os.path.join(_models(root, n), 'net_g_latest.safetensors')).state_dict()
            for n in ('file10', 'forced11', 'file11')}
    assert all(torch.equal(v, nets['file11'][k]) for k, v in nets['forced11'].items())
    assert not all(torch.equal(v, nets['file10'][k]) for k, v in nets['forced11'].items())


def test_dncnn_search_lands_on_its_target_at_max_iter_and_says_so(tmp_path):
    """No sparsity at all (lambda 0): at max_search_iter the latents as they are decide what is pruned, not a
    full-width network handed back as 'DHP-40'."""
    root = str(tmp_path)
    opt = dncnn_options(root, total_iter=6, dhp={'target_ratio': 0.4, 'regularization': 0.0,
                                                'max_search_iter': 4, 'min_width': 1})
    out = run_train(root, write_options(root, opt))
    summary = json.load(open(os.path.join(_models(root, 'tiny_dn'), 'search_summary.json')))
    assert summary['stop_reason'] == 'max_search_iter' and summary['iteration'] == 4
    assert 0.3 < summary['flops_ratio'] <= 0.42
    assert 'max_search_iter reached at FLOPs ratio 1.0000, above target 0.4; pruned to' in out.stdout + out.stderr
    model = load_compact(os.path.join(_models(root, 'tiny_dn'), 'net_g_latest.safetensors'))
    assert network.structure(model).task == 'denoise'



def test_full_width_trained_as_dhp_searches_min_search_iter_and_keeps_every_channel(tmp_path):
    """target 1.0 with min_search_iter = max_search_iter: the pruned models' recipe for the baseline."""
    root = str(tmp_path)
    opt = dncnn_options(root, name='tiny_full', total_iter=8,
                        dhp={'target_ratio': 1.0, 'ratio_tolerance': 0.0, 'regularization': 300.0,
                             'mask_interval': 2, 'min_search_iter': 6, 'max_search_iter': 6, 'min_width': 1})
    out = run_train(root, write_options(root, opt))
    summary = json.load(open(os.path.join(_models(root, 'tiny_full'), 'search_summary.json')))
    assert summary['iteration'] == 6 and summary['flops_ratio'] == pytest.approx(1.0)
    assert 'refilled' in out.stdout + out.stderr  # the shrinking pruned channels; the target put them back
    final = read_metadata(os.path.join(_models(root, 'tiny_full'), 'net_g_latest.safetensors'))
    assert set(final['widths'].values()) == {8}
    assert final['info']['iterations_run'] == 8 == final['info']['total_iter']
    assert final['info']['search']['target_ratio'] == 1.0


def test_min_search_iter_above_max_is_refused(tmp_path):
    from restore_dhp.models.dhp_model import SearchOptions
    from restore_dhp.errors import OptionError
    with pytest.raises(OptionError, match='min_search_iter'):
        SearchOptions.from_opt({'target_ratio': 1.0, 'min_search_iter': 9, 'max_search_iter': 6})

def _build_resumed_model(root, opt_path, state_path):
    """What train_pipeline does on resume, in-process, to compare with the saved state."""
    from basicsr.models import build_model
    from basicsr.utils.options import parse_options  # noqa: F401
    import yaml
    from basicsr.train import load_resume_state  # noqa: F401
    from restore_dhp._compat import install_basicsr_cpu_fixes
    install_basicsr_cpu_fixes()
    from basicsr import train as bsr_train
    opt = yaml.safe_load(open(opt_path))
    name = opt['name']
    opt.update(is_train=True, dist=False, rank=0, world_size=1, auto_resume=False)
    exp = os.path.join(root, 'experiments', name)
    opt['path'].update(experiments_root=exp, models=os.path.join(exp, 'models'),
                       training_states=os.path.join(exp, 'training_states'), log=exp,
                       visualization=os.path.join(exp, 'visualization'), resume_state=state_path)
    state = bsr_train.load_resume_state(opt)
    model = build_model(opt)
    model.resume_training(state)
    return model, state


@pytest.mark.parametrize('phase', ['search', 'finetune'])
def test_resume_restores_exact_state(tmp_path, phase):
    root = str(tmp_path)
    if phase == 'search':  # compaction only at iteration 9: states 3 and 6 are mid-search
        dhp = {'target_ratio': 0.1, 'regularization': 0.0, 'max_search_iter': 9, 'mask_interval': 3}
    else:                  # compaction at iteration 2: state 6 is in fine-tuning
        dhp = {}
    opt_path = write_options(root, sr_options(root, total_iter=9, dhp=dhp))
    run_train(root, opt_path)
    state_path = os.path.join(root, 'experiments', 'tiny_sr', 'training_states', '6.state')
    saved_net = torch.load(os.path.join(_models(root, 'tiny_sr'), 'net_g_6.pth'), weights_only=True)['params']
    cwd = os.getcwd()
    os.chdir(root)
    try:
        model, state = _build_resumed_model(root, opt_path, state_path)
    finally:
        os.chdir(cwd)
    assert state['iter'] == 6
    assert model.phase == phase
    net_state = model.get_bare_model(model.net_g).state_dict()
    assert set(net_state) == set(saved_net)
    for key, value in saved_net.items():
        assert torch.equal(net_state[key], value), key
    if phase == 'search':
        assert 'latents' in net_state and 'masks' in net_state
        # the latents of the last search check (iteration 6) come back, so the first check after a
        # resume can still refill channels pruned past the target
        assert torch.equal(model.pruner.latents_at_last_check, net_state['latents'])
        assert torch.equal(state['dhp_pruner']['latents_at_last_check'], net_state['latents'])
    else:
        assert 'dhp_pruner' not in state
    saved_optim = state['optimizers'][0]['state']
    for idx, entry in model.optimizer_g.state_dict()['state'].items():
        assert torch.equal(entry['exp_avg'], saved_optim[idx]['exp_avg'])
    assert model.schedulers[0].last_epoch == state['schedulers'][0]['last_epoch']


def test_kill_and_auto_resume_continues(tmp_path):
    kill_and_resume(str(tmp_path), sr_options(str(tmp_path), total_iter=400, save_freq=3))


def test_two_process_gloo_training(tmp_path):
    root = str(tmp_path)
    opt = sr_options(root, total_iter=6)
    opt_path = write_options(root, opt)
    import socket
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2', f'--master_port={port}',
           '-m', 'restore_dhp.train', '-opt', opt_path, '--launcher', 'pytorch']
    proc = subprocess.Popen(cmd, cwd=root, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both workers
        output, _ = proc.communicate()
        raise AssertionError(f'2-process training hung:\n{output[-3000:]}') from None
    assert proc.returncode == 0, output[-4000:]
    models = _models(root, 'tiny_sr')
    summary = json.load(open(os.path.join(models, 'search_summary.json')))
    assert summary['stop_reason'] == 'target_reached'
    assert os.path.exists(os.path.join(models, 'net_g_latest.safetensors'))
    log = open(next(os.path.join(root, 'experiments', 'tiny_sr', f) for f in
                    os.listdir(os.path.join(root, 'experiments', 'tiny_sr')) if f.endswith('.log'))).read()
    assert "'world_size': 2" in log or 'world_size: 2' in log


@pytest.mark.parametrize('edit,message', [
    (lambda o: o.update(bogus=1), 'unknown option bogus'),
    (lambda o: o['train'].update(total_iter='ten'), 'train.total_iter must be a positive integer'),
    (lambda o: o['train'].update(freeze_bn_iter=-1), 'train.freeze_bn_iter must be a non-negative integer'),
    (lambda o: o['datasets']['train'].update(dataroot_gt='/no/such/folder'), 'datasets.train.dataroot_gt'),
    (lambda o: o['dhp'].update(target_ratio=1.5), r'dhp.target_ratio must be in (0, 1]'),
    (lambda o: o['dhp'].update(target_ratio=0), r'dhp.target_ratio must be in (0, 1]'),
    (lambda o: o['dhp'].update(lamda=0.1), 'unknown option dhp.lamda'),
    (lambda o: o['network_g'].update(num_blok=3), 'unknown option network_g.num_blok'),
    (lambda o: o['network_g'].update(type='Nope'), 'network_g.type'),
    (lambda o: o['train'].update(amp='fp8'), 'train.amp must be one of bf16, fp16 or none'),
    (lambda o: o['train'].update(capture='always'), 'train.capture must be one of cuda_graph or none'),
    (lambda o: o['network_g'].update(checkpoint='w.safetensors'),
     "option network_g.checkpoint is not read: write 'path: {pretrain_network_g: FILE}' with a compact checkpoint"),
    (lambda o: o['network_g'].update(widths={'trunk': 4}),
     "option network_g.widths is not read: write 'path: {pretrain_network_g: FILE}' with a compact checkpoint"),
])
def test_bad_options_fail_before_training(tmp_path, edit, message):
    root = str(tmp_path)
    opt = sr_options(root)
    edit(opt)
    out = run_train(root, write_options(root, opt), check=False, timeout=120)
    assert out.returncode == 2
    assert message in out.stderr
    assert not os.path.exists(os.path.join(root, 'experiments'))


def test_shipped_option_files_are_valid():
    """Every option file in options/ and in the studies' options/ passes the checks (folders and checkpoints are not
    needed here; the recipes' overlays: tests/test_tools.py)."""
    import glob

    from restore_dhp.options import validate_file
    from train_helpers import REPO
    files = sorted(glob.glob(os.path.join(REPO, 'options', '*', '*.yml'))
                   + glob.glob(os.path.join(REPO, 'research', '*', 'options', '*.yml')))
    assert len(files) >= 20
    for path in files:
        opt = validate_file(path, is_train='/test/' not in path, check_paths=False)
        if opt['model_type'] == 'DHPSearchModel':
            target = opt['dhp'].get('target_ratio') or opt['dhp']['target']['latency']
            assert 0 < target <= 1
            # a search names a plain registered architecture; the DHP form is made by the search model
            assert network.spec_of(opt['network_g']['type'], {k: v for k, v in opt['network_g'].items()
                                                              if k != 'type'}).prunable_groups


def test_test_entry_evaluates_a_compact_checkpoint(tmp_path):
    """python -m restore_dhp.test runs BasicSR's test pipeline on a compact checkpoint named in the options."""
    from nets import compact
    from restore_dhp.checkpoint import save_compact
    root = str(tmp_path)
    ckpt = os.path.join(root, 'm.safetensors')
    save_compact(compact('srresnet', {'trunk': 5}, num_blocks=1, num_feat=8), ckpt)
    opt = sr_options(root, name='tiny_test', model='RestorationModel', network={'type': 'SRResNet'})
    opt = {'name': opt['name'], 'model_type': opt['model_type'], 'scale': 4, 'num_gpu': 0,
           'datasets': {'test_1': opt['datasets']['val']}, 'network_g': opt['network_g'],
           'path': {'pretrain_network_g': ckpt}, 'val': {**opt['val'], 'suffix': None}}
    opt_path = write_options(root, opt)
    out = subprocess.run([sys.executable, '-m', 'restore_dhp.test', '-opt', opt_path], cwd=root, env=env(),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert '# psnr:' in out.stdout + out.stderr


def test_search_that_prunes_past_the_target_is_refilled(tmp_path):
    root = str(tmp_path)
    opt = sr_options(root, total_iter=6, dhp={'regularization': 120.0, 'mask_interval': 2, 'target_ratio': 0.6})
    out = run_train(root, write_options(root, opt))
    import re
    log = out.stdout + out.stderr
    # refilled, or (when the refill cannot get within the tolerance) landed from the last check
    fell = re.search(r'FLOPs ratio fell to ([0-9.]+), below target 0.6; channels pruned since the last check .*?'
                     r'to ([0-9.]+)', log)
    assert fell, log[-3000:]
    summary = json.load(open(os.path.join(_models(root, 'tiny_sr'), 'search_summary.json')))
    assert float(fell.group(1)) <= summary['flops_ratio'] <= 0.6
    assert summary['flops_ratio'] == pytest.approx(float(fell.group(2)), abs=1e-4)
