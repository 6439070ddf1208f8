"""FLOPs/params with the paper's convention, against its numbers and an independent count."""
import json

import pytest
import torch
from torch import nn

import restore_dhp  # noqa: F401
from restore_dhp import complexity as cx
from nets import compact
from restore_dhp import network


def test_srresnet_baseline_matches_paper():
    r = cx.complexity('srresnet', size=128)
    assert r['flops'] == 32_826_720_256  # paper: 32.83 G
    assert r['params'] == 1_535_637


def test_dncnn_baseline_matches_paper():
    r = cx.complexity('dncnn', size=128)
    assert r['flops'] == 9_125_756_928  # paper: 9.13 G
    assert r['params'] == 557_057


def _hand_count_dncnn(widths, layers, size):
    """Independent closed-form count for a DnCNN of given feature widths (head without activation)."""
    p = size * size
    chans = [1] + widths + [1]
    flops = params = 0
    for i in range(layers):
        cin, cout = chans[i], chans[i + 1]
        flops += cin * cout * 9 * p
        params += cin * cout * 9 + cout
        if 0 < i < layers - 1:  # middle layers: BN (+2) and ReLU (+1) per element
            flops += 3 * cout * p
            params += 2 * cout
    return flops, params


def test_counter_agrees_with_independent_count_on_small_net():
    widths = {'feat00': 5, 'feat01': 3, 'feat02': 7}
    net = compact('dncnn', widths, num_layers=4, num_feat=8)
    flops, params = _hand_count_dncnn([5, 3, 7], 4, 20)
    assert cx.count_flops(net, 20, 20)['flops'] == flops
    assert cx.count_params(net) == params
    assert sum(p.numel() for p in net.state_dict().values() if p.dtype.is_floating_point) - 2 * 10 == params


def test_counter_on_generic_module_and_any_size():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1))
    net.in_channels = 3
    counts = cx.count_flops(net, 7, 9)
    p = 63
    assert counts['macs'] == 3 * 4 * 9 * p + 4 * 2 * p
    assert counts['flops'] == counts['macs'] + 2 * 4 * p + 4 * p


def test_counter_counts_functional_activations_and_transposed_convs():
    """Ops are counted as they are dispatched: an activation called as a function counts as a module would."""
    class Functional(nn.Module):
        in_channels = 2

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 4, 3, padding=1)
            self.up = nn.ConvTranspose2d(4, 3, 2, stride=2)

        def forward(self, x):
            return torch.sigmoid(self.up(torch.relu(self.conv(x))))

    counts = cx.count_flops(Functional(), 5, 6)
    p = 30
    macs = 2 * 4 * 9 * p + 4 * 3 * 4 * p   # the transposed conv: each input element writes 3 channels x 4 taps
    assert counts['macs'] == macs and counts['flops'] == macs + 4 * p + 3 * 4 * p


def test_pruned_ratio_and_upsampler_counts_four_subpixels():
    full = cx.complexity('srresnet', size=32, num_blocks=2, num_feat=16)
    half = cx.complexity('srresnet', {'trunk': 8}, size=32, num_blocks=2, num_feat=16)
    assert half['flops'] < full['flops']
    up_macs = lambda c: 32 * 32 * c * 4 * c * 9 + 64 * 64 * c * 4 * c * 9  # noqa: E731
    assert full['macs'] - half['macs'] > up_macs(16) - up_macs(8)
    ratio = cx.remaining_flops_ratio('srresnet', {'trunk': 8}, size=32, num_blocks=2, num_feat=16)
    assert ratio == pytest.approx(half['flops'] / full['flops'])


def test_cli_prints_json(capsys):
    assert cx.main(['--arch', 'dncnn', '--size', '64']) == 0
    out = json.loads(capsys.readouterr().out)
    assert out['params'] == 557_057 and out['input'] == [1, 1, 64, 64]


def test_cli_for_any_registered_architecture_with_its_arguments(capsys):
    kwargs = {'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'upscale': 2}
    assert cx.main(['--arch', 'EDSR', '--arch-kwargs', json.dumps(kwargs), '--size', '16']) == 0
    out = json.loads(capsys.readouterr().out)
    assert out['arch'] == 'EDSR' and out['input'] == [1, 3, 16, 16] and out['params'] > 0
    assert out['macs'] > 16 * 16 * 8 * 8 * 9   # at least one 8->8 3x3 conv at the LR size
    assert cx.main(['--arch', 'EDSR', '--arch-kwargs', '{"num_feat": 1e9}']) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and 'num_feat' in err and '\n' not in err


def test_cli_for_checkpoint_reports_ratio(tmp_path, capsys):
    from restore_dhp.checkpoint import save_compact
    path = tmp_path / 'd.safetensors'
    save_compact(compact('dncnn', {'feat01': 4}, num_layers=4, num_feat=8), path)
    assert cx.main(['--weights', str(path), '--size', '16']) == 0
    out = json.loads(capsys.readouterr().out)
    assert 0 < out['flops_ratio'] < 1 and out['baseline_params'] > out['params']


def test_cli_bad_checkpoint_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / 'bad.safetensors'
    bad.write_bytes(b'not a checkpoint')
    assert cx.main(['--weights', str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and str(bad) in err and '\n' not in err


def test_meta_build_allocates_nothing():
    net = network.build('srresnet', None, {'trunk': 32}, 'meta')
    assert next(net.parameters()).device == torch.device('meta')
    assert net.convs['head'].out_channels == 32 and network.structure(net).widths['trunk'] == 32


@pytest.mark.parametrize('arch,kwargs,size', [('srresnet', {}, 128), ('srresnet', {'num_blocks': 3, 'num_feat': 12,
                                                                                   'scale': 8}, 20),
                                              ('dncnn', {}, 128), ('dncnn', {'num_layers': 6, 'num_feat': 10}, 33)])
def test_closed_form_table_agrees_with_counting_the_forward(arch, kwargs, size):
    import random
    rng = random.Random(0)
    table = cx.flops_table(arch, size, **kwargs)
    full = cx.complexity(arch, None, size, **kwargs)['flops']
    assert table.full_flops == full
    groups = cx.arch_spec(arch, **kwargs)
    for _ in range(4):
        widths = {g: rng.randint(1, groups.group_widths[g]) for g in groups.prunable_groups}
        counted = cx.complexity(arch, widths, size, **kwargs)['flops']
        assert table.flops(widths) == counted
        assert cx.remaining_flops_ratio(arch, widths, size, **kwargs) == pytest.approx(counted / full, rel=1e-12)


def test_metadata_complexity_needs_no_file(tmp_path):
    from restore_dhp.checkpoint import load_checkpoint, save_compact
    path = tmp_path / 'd.safetensors'
    save_compact(compact('dncnn', {'feat01': 4}, num_layers=4, num_feat=8), path)
    meta = load_checkpoint(path).meta
    path.unlink()
    result = cx.metadata_complexity(meta, 16)
    assert 0 < result['flops_ratio'] < 1 and result['widths']['feat01'] == 4
