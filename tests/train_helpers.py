"""Tiny generated datasets and option files for end-to-end training tests."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_images(folder, count=4, size=48, gray=False, seed=0):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        img = cv2.GaussianBlur((rng.random((size, size, 3)) * 255).astype(np.uint8), (5, 5), 0)
        cv2.imwrite(os.path.join(folder, f'{i:03d}.png'), img[:, :, 0] if gray else img)
    return folder


def sr_options(root, name='tiny_sr', model='DHPSearchModel', total_iter=12, save_freq=3, dhp=None, network=None):
    make_images(os.path.join(root, 'hr'))
    make_images(os.path.join(root, 'val', 'HR'), count=1, size=32, seed=1)
    opt = {
        'name': name, 'model_type': model, 'scale': 4, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {
            'train': {'name': 'tiny', 'type': 'SRBicubicDataset', 'dataroot_gt': os.path.join(root, 'hr'),
                      'scale': 4, 'gt_size': 16, 'use_hflip': True, 'use_rot': True, 'num_worker_per_gpu': 0,
                      'batch_size_per_gpu': 2, 'dataset_enlarge_ratio': 10},
            'val': {'name': 'tinyval', 'type': 'SRBicubicDataset', 'dataroot_gt': os.path.join(root, 'val', 'HR'),
                    'scale': 4}},
        'network_g': network or {'type': 'SRResNet', 'num_feat': 8, 'num_blocks': 2},
        'path': {'pretrain_network_g': None, 'resume_state': None},
        'train': {'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.99]},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [1000], 'gamma': 0.5},
                  'total_iter': total_iter, 'warmup_iter': -1,
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}},
        'val': {'val_freq': 1000, 'save_img': False,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': True}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': save_freq, 'use_tb_logger': False},
    }
    if model == 'DHPSearchModel':
        opt['dhp'] = {'target_ratio': 0.5, 'regularization': 500.0, 'mask_interval': 2, **(dhp or {})}
    return opt


def dncnn_options(root, name='tiny_dn', total_iter=8, dhp=None):
    opt = sr_options(root, name, total_iter=total_iter, dhp=dhp,
                     network={'type': 'DnCNN', 'num_feat': 8, 'num_layers': 5})
    make_images(os.path.join(root, 'gray'), gray=True)
    opt['scale'] = 1
    opt['datasets'] = {
        'train': {'name': 'tinyg', 'type': 'DenoiseDataset', 'dataroot_gt': os.path.join(root, 'gray'),
                  'sigma': 70, 'gt_size': 16, 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2,
                  'dataset_enlarge_ratio': 10},
        'val': {'name': 'tinygval', 'type': 'DenoiseDataset', 'dataroot_gt': os.path.join(root, 'gray'),
                'sigma': 70, 'noise_seed': 0}}
    opt['val']['metrics']['psnr'] = {'type': 'calculate_psnr', 'crop_border': 1, 'test_y_channel': False}
    return opt


def write_options(root, opt, filename='opt.yml'):
    path = os.path.join(root, filename)
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return path


def env():
    e = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    e['PYTHONPATH'] = REPO + os.pathsep + e.get('PYTHONPATH', '')
    return e


def run_train(root, opt_path, *extra, check=True, timeout=300):
    cmd = [sys.executable, '-m', 'restore_dhp.train', '-opt', opt_path, *extra]
    out = subprocess.run(cmd, cwd=root, env=env(), capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(f'training failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}')
    return out


def kill_and_resume(root, opt, state=6):
    """Train ``opt`` (written to ``root/opt.yml``), kill it once ``<state>.state`` exists, then resume with
    ``--auto_resume`` for two more iterations; returns the last finished state's iteration and the resumed log."""
    opt_path = write_options(root, opt)
    proc = subprocess.Popen([sys.executable, '-m', 'restore_dhp.train', '-opt', opt_path], cwd=root, env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    states = os.path.join(root, 'experiments', opt['name'], 'training_states')
    deadline = time.time() + 240
    while time.time() < deadline and not os.path.exists(os.path.join(states, f'{state}.state')):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # a kill can land mid-save, leaving '.<iter>.state.<random>.tmp.state' behind: only finished states count
    done = max(int(f[:-len('.state')]) for f in os.listdir(states) if re.fullmatch(r'\d+\.state', f))
    assert done >= state
    write_options(root, {**opt, 'train': {**opt['train'], 'total_iter': done + 2}})
    log = run_train(root, opt_path, '--auto_resume')
    log = log.stdout + log.stderr
    assert re.search(rf'Resuming training from epoch: \d+, iter: {done}\b', log), log[-2000:]
    assert f'iter:{done + 2:,},' in log.replace(' ', '')  # trained on to the new total
    models = os.path.join(root, 'experiments', opt['name'], 'models')
    debris = [f for d in (states, models) for f in os.listdir(d) if '.tmp' in f]
    assert not debris, f'the resumed run left the killed run\'s temporaries: {debris}'
    return done, log
