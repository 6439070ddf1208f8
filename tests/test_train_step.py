"""The training step: mixed precision and the captured step follow the plain step's loss curve."""
import json
import os

import pytest
import torch
from torch.nn import functional as F

import restore_dhp  # noqa: F401
from nets import compact
from nets import dhp as dhp_net
from restore_dhp.dhp import DHPPruner
from restore_dhp.models.train_step import TrainStep, parse_step_options

from train_helpers import run_train, sr_options, write_options


def _l1(output, gt):
    loss = F.l1_loss(output, gt)
    return loss, {'l_pix': loss}


def _curve(device, amp=None, capture=None, dhp=False, steps=160, notices=None):
    """Losses of a tiny DnCNN trained on a fixed stream of noisy batches (the same for every call)."""
    torch.manual_seed(0)
    net = (dhp_net if dhp else compact)('dncnn', num_layers=5, num_feat=8).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    step = TrainStep(net, _l1, optimizer, torch.device(device), amp, capture,
                     notice=(notices.append if notices is not None else print))
    pruner = DHPPruner(net, 0.5, regularization=0.5) if dhp else None
    data = torch.Generator().manual_seed(1)
    losses = []
    for i in range(steps):
        gt = torch.rand(8, 1, 16, 16, generator=data).to(device)
        lq = gt + 0.2 * torch.randn(8, 1, 16, 16, generator=data).to(device)
        _, loss = step(lq, gt)
        if pruner is not None:
            pruner.proximal_step(optimizer.param_groups[0]['lr'])
            if (i + 1) % 40 == 0:
                pruner.check()
        losses.append(loss.clone())  # a captured step's loss tensor is rewritten by the next replay
    widths = net.kept_widths() if dhp else None
    return torch.stack(losses).float().cpu(), widths


def _same_curve(a, b, window=40, rel=0.05):
    """Window means agree within ``rel`` and both curves went down (the last window's mean well below the untrained
    network's loss: a first window's mean already holds most of the fall)."""
    ma, mb = a.view(-1, window).mean(1), b.view(-1, window).mean(1)
    assert ma[-1] < 0.8 * a[0] and mb[-1] < 0.8 * b[0]
    assert torch.allclose(ma, mb, rtol=rel), (ma, mb)


@pytest.mark.parametrize('dhp', [False, True])
def test_bf16_follows_the_fp32_curve_on_cpu(dhp):
    plain, _ = _curve('cpu', dhp=dhp)
    bf16, _ = _curve('cpu', amp='bf16', dhp=dhp)
    assert not torch.equal(plain, bf16)  # it really ran in another precision
    _same_curve(plain, bf16)


def test_fallbacks_say_so_and_change_nothing():
    if torch.cuda.is_available():
        pytest.skip('the fallbacks are for machines without CUDA')
    notices = []
    captured, _ = _curve('cpu', amp='fp16', capture='cuda_graph', steps=40, notices=notices)
    plain, _ = _curve('cpu', steps=40)
    assert torch.equal(captured, plain)
    assert notices == ['train.amp fp16 needs CUDA; training in fp32',
                       'train.capture cuda_graph needs one CUDA device (no DDP); running the step eagerly']


@pytest.mark.parametrize('value,key', [({'amp': 'fp8'}, 'train.amp'), ({'capture': 'graph'}, 'train.capture')])
def test_bad_step_options(value, key):
    with pytest.raises(ValueError, match=key):
        parse_step_options(value)
    assert parse_step_options({'amp': 'bf16', 'capture': 'cuda_graph'}) == ('bf16', 'cuda_graph')
    assert parse_step_options({'amp': None, 'capture': False}) == (None, None)


def test_fast_path_options_run_end_to_end(tmp_path):
    """amp + capture + cache: gpu in an option file: a search runs (falling back where there is no CUDA)."""
    root = str(tmp_path)
    opt = sr_options(root, total_iter=8)
    opt['train'].update(amp='bf16', capture='cuda_graph')
    opt['datasets']['train'].update(cache='gpu')
    out = run_train(root, write_options(root, opt))
    summary = json.load(open(os.path.join(root, 'experiments', 'tiny_sr', 'models', 'search_summary.json')))
    assert summary['stop_reason'] == 'target_reached'
    if not torch.cuda.is_available():
        log = out.stdout + out.stderr
        assert 'running the step eagerly' in log and 'cache: gpu without CUDA' in log


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('dhp', [False, True])
@pytest.mark.parametrize('amp', [None, 'bf16', 'fp16'])
def test_captured_step_follows_the_eager_curve_on_cuda(dhp, amp):
    eager, eager_widths = _curve('cuda', amp=amp, dhp=dhp)
    captured, captured_widths = _curve('cuda', amp=amp, capture='cuda_graph', dhp=dhp)
    _same_curve(eager, captured, rel=0.02)
    if dhp:  # the graph reads the masks the checks changed
        assert eager_widths == captured_widths
