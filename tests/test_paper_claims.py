"""The recipe-stability table of reports/paper_claims.md (research/paper_claims/stability.py), from checkpoints."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from research.paper_claims.stability import table
from restore_dhp import network
from restore_dhp.checkpoint import save_compact
from tools.markdown_block import splice


def _run(root, name, precise, running):
    models = root / name / 'models'
    models.mkdir(parents=True)
    validation = []
    for i, (it, p) in enumerate(zip((400, 800, 1200), precise)):
        validation += ([[it, 'Set5_running', {'psnr': running[i]}]] if i < len(running) else []) + \
            [[it, 'Set5', {'psnr': p}]]
    net = network.build('dncnn', dict(num_layers=3, num_feat=4))
    save_compact(net, models / 'net_g_latest.safetensors', info={'validation': validation})


def test_the_table_flags_a_fall_and_a_seed_pair_apart(tmp_path):
    _run(tmp_path, 'pbn_dhp40_s10', (25.0, 27.0, 28.0), (24.0, 26.5, 28.1))
    _run(tmp_path, 'pbn_dhp40_s11', (25.5, 26.0, 28.1), (25.0, 26.0, 28.0))
    _run(tmp_path, 'pbn_dhp20_s10', (26.0, 24.5, 27.0), (26.0, 24.0, 27.0))
    _run(tmp_path, 'pbn_dhp20_s11', (26.0, 27.0, 27.5), (26.0, 27.0, 27.5))
    _run(tmp_path, 'pbn_baseline_s10', (27.0, 28.0, 29.0), (27.0, 28.0))   # frozen at 1200: no running twin
    text = table(['pbn_dhp40_s10', 'pbn_dhp40_s11', 'pbn_dhp20_s10', 'pbn_dhp20_s11', 'pbn_baseline_s10'], tmp_path)
    assert '| pbn_dhp40_s10 | 25.00 (24.00) 27.00 (26.50) 28.00 (28.10) | 28.00 | 0.00 |' in text
    assert '| pbn_dhp20_s10 | 26.00 (26.00) 24.50 (24.00) 27.00 (27.00) | 27.00 | 1.50 !! |' in text
    assert '| pbn_dhp40 | 2 | 28.00 / 28.10 | 0.10 | yes |' in text
    assert '| pbn_dhp20 | 2 | 27.00 / 27.50 | 0.50 | NO |' in text
    assert '| pbn_baseline | 1 | 29.00 | – | one seed so far |' in text
    assert '| pbn_baseline_s10 | 27.00 (27.00) 28.00 (28.00) 29.00 | 29.00 | 0.00 |' in text


def test_curves_outlive_their_checkpoints_in_the_store(tmp_path):
    """A run read from its checkpoint goes into the store; a run whose checkpoint is gone is read from there."""
    import json

    from research.paper_claims.stability import main

    _run(tmp_path, 'pbn_dhp40_s10', (25.0, 27.0, 28.0), (24.0, 26.5, 28.1))
    store = tmp_path / 'store.json'
    store.write_text(json.dumps({'pbn_dhp40_s11': {'precise': [[400, 25.5], [800, 26.0], [1200, 28.3]],
                                                   'running': [[400, 25.0], [800, 26.0], [1200, 28.0]]}}))
    args = ['--runs', 'pbn_dhp40_s10', 'pbn_dhp40_s11', '--root', str(tmp_path), '--store', str(store)]
    assert main(args) == 0
    assert json.loads(store.read_text())['pbn_dhp40_s10'] == {'precise': [[400, 25.0], [800, 27.0], [1200, 28.0]],
                                                              'running': [[400, 24.0], [800, 26.5], [1200, 28.1]]}
    with pytest.raises(SystemExit, match='pbn_dhp60_s10: no compact checkpoint'):
        main(['--runs', 'pbn_dhp60_s10', '--root', str(tmp_path), '--store', str(store)])


def test_dhp_is_compared_with_both_uniform_families_interpolated_at_its_cost(tmp_path):
    """research/paper_claims/uniform.py: runs grouped by name, seeds averaged, DHP minus each uniform curve."""
    import json

    from research.paper_claims.uniform import main

    def rec(name, flops, latency, psnr, widths=(8, 8)):  # a uniform network's own ratio is 1: gflops count
        return {'name': name, 'flops_ratio': 1.0 if '_uni' in name else flops, 'gflops': 30.0 * flops,
                'latency_ratio': latency, 'psnr': {'Set5': psnr}, 'widths': {'trunk': widths[0], 'block00': widths[1]}}
    models = [rec('srresnet_x4_baseline', 1.0, 1.0, 30.0),
              rec('pbn_dhp40_s10', 0.40, 0.45, 29.0, (40, 32)), rec('pbn_dhp40_s11', 0.40, 0.45, 29.2, (40, 48)),
              rec('pc_srresnet_x4_dhp40_l2_s10', 0.42, 0.5, 28.5, (64, 16)),
              rec('pc_srresnet_x4_uni48_s10', 0.6, 0.6, 29.4), rec('pc_srresnet_x4_uni32_s10', 0.2, 0.3, 28.0),
              rec('pc_srresnet_x4_uni48_dhp_s10', 0.6, 0.6, 29.6), rec('pc_srresnet_x4_uni32_dhp_s10', 0.2, 0.3, 28.2)]
    report = {'task': 'sr', 'sets': ['Set5'], 'control_speedup': 1.0, 'models': models, 'baseline': models[0]['name'],
              'table_settings': {'device_name': 'CPU', 'backend': 'fused', 'threads': 1}}
    (tmp_path / 'd.json').write_text(json.dumps(report))
    doc = tmp_path / 'claims.md'
    doc.write_text('# claims\n<!-- uniform:sr:begin -->\nold\n<!-- uniform:sr:end -->\nafter\n')
    assert main(['--device', str(tmp_path / 'd.json'), '--out', str(tmp_path / 'out'), '--report', str(doc)]) == 0
    text = (tmp_path / 'out' / 'uniform.md').read_text()
    assert doc.read_text() == f'# claims\n<!-- uniform:sr:begin -->\n{text}<!-- uniform:sr:end -->\nafter\n'

    assert '| DHP | DHP-40 | 2 | 0.400 | 0.450 | 29.10 (0.20) |' in text
    # at FLOPs 0.40 the plain curve reads 28.7 and the procedure's 28.9; at latency 0.45, 28.7 and 28.9 as well
    assert text.count('| DHP-40 | +0.40 | +0.20 |') == 2
    assert '| pc_srresnet_x4_dhp40_l2_s10 | 0.420 | 28.50 | 64 16 |' in text
    assert (tmp_path / 'out' / 'uniform_sr.png').stat().st_size > 0
    (tmp_path / 'e.json').write_text(json.dumps(dict(report, models=models[:1])))
    assert main(['--device', str(tmp_path / 'e.json'), '--out', str(tmp_path / 'out')]) == 2

    # a variant's runs go to their own block; a family not run yet gets no columns
    (tmp_path / 'f.json').write_text(json.dumps(dict(report, models=[m for m in models if '_dhp_s' not in m['name']])))
    doc.write_text('<!-- uniform:sr:begin -->\nkept\n<!-- uniform:sr:end -->\n'
                   '<!-- uniform:sr_f1200:begin -->\n<!-- uniform:sr_f1200:end -->\n')
    assert main(['--device', str(tmp_path / 'f.json'), '--out', str(tmp_path / 'f'), '--report', str(doc),
                 '--block', 'sr_f1200']) == 0
    assert '\nkept\n' in doc.read_text() and '| DHP-40 | +0.40 |' in doc.read_text()
    assert 'vs uniform, DHP procedure' not in (tmp_path / 'f' / 'uniform.md').read_text()



def test_the_last_checkpoints_are_averaged_tensor_by_tensor(tmp_path):
    """research/paper_claims/average_last.py: the plain mean of each floating tensor, the others from the first."""
    import torch

    from research.paper_claims.average_last import averaged
    from restore_dhp.checkpoint import load_checkpoint

    paths = [tmp_path / f'net_g_{i}.safetensors' for i in range(3)]
    for i, path in enumerate(paths):
        torch.manual_seed(i)
        save_compact(network.build('dncnn', dict(num_layers=3, num_feat=4)), path)
    states = [load_checkpoint(p).model.state_dict() for p in paths]
    got = averaged(paths).state_dict()
    assert got.keys() == states[0].keys()
    for k, v in got.items():
        want = sum(s[k] for s in states) / 3 if v.is_floating_point() else states[0][k]
        torch.testing.assert_close(v, want)
    assert any(not torch.equal(v, states[0][k]) for k, v in got.items())


def test_the_largest_batchnorm_output_is_found_and_the_hooks_go():
    """research/paper_claims/bn_artifact.py: the peak |BatchNorm output| of one eval-mode forward, and its layer."""
    import torch
    from torch import nn

    from research.paper_claims.bn_artifact import forward_with_bn_peak

    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 3, padding=1),
                        nn.BatchNorm2d(4)).eval()
    with torch.no_grad():
        net[3].weight.fill_(50.0)
    x = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y, peak, layer = forward_with_bn_peak(net, x)
    assert layer == '3' and peak == float(y.abs().amax()) and peak > 10
    assert all(not m._forward_hooks for m in net)


def test_a_report_without_the_block_markers_is_refused_and_left_as_it_was():
    assert splice('a\n<!-- x:begin -->\nold\n<!-- x:end -->\nb\n', 'x', 'new\n') == \
        'a\n<!-- x:begin -->\nnew\n<!-- x:end -->\nb\n'
    with pytest.raises(ValueError, match='x:end'):
        splice('a\n<!-- x:begin -->\nold\n', 'x', 'new\n')


def test_a_stand_in_has_the_runs_architecture_and_never_replaces_a_checkpoint(tmp_path, monkeypatch):
    """research/paper_claims/standin.py: built from a quality report's record, at its checkpoint path."""
    import json

    from research.paper_claims.standin import STAND_IN, main
    from restore_dhp.checkpoint import load_checkpoint
    from restore_dhp.evaluation import describe_checkpoint

    monkeypatch.chdir(tmp_path)
    net = network.build('dncnn', dict(num_layers=4, num_feat=8), widths={'feat00': 8, 'feat01': 4, 'feat02': 8})
    save_compact(net, 'ckpt/run_s10.safetensors', info={'search': {'target_ratio': 0.4}})
    record = describe_checkpoint('ckpt/run_s10.safetensors')
    report = tmp_path / 'run_s10.json'
    report.write_text(json.dumps({'results': [{'name': 'floor', 'kind': 'bicubic'}, record]}))
    before = (tmp_path / 'ckpt/run_s10.safetensors').read_bytes()
    assert main([str(report)]) == 0
    assert (tmp_path / 'ckpt/run_s10.safetensors').read_bytes() == before   # a real checkpoint stays
    (tmp_path / 'ckpt/run_s10.safetensors').unlink()
    assert main([str(report)]) == 0
    model, meta = load_checkpoint('ckpt/run_s10.safetensors')
    assert meta['widths'] == record['widths'] and meta['arch'] == record['arch']
    assert meta['info'] == {'search': {'target_ratio': 0.4}, 'stand_in': STAND_IN}
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in net.state_dict().items()}
    report.write_text(json.dumps({'results': [record, record]}))
    with pytest.raises(SystemExit, match='2 checkpoints'):
        main([str(report)])


def test_a_run_whose_lr_milestones_are_not_the_dhp_recipes_carries_them_in_its_name():
    from research.paper_claims.schedule import milestone_tag, reference
    assert reference('srresnet_x4_baseline_cpu') == reference('srresnet_x4_dhp20_cpu') == 'srresnet_x4_dhp60_cpu'
    assert milestone_tag('srresnet_x4_dhp40_cpu') == ''
    assert milestone_tag('srresnet_x4_baseline_cpu') == 'm600-1000-1200-1400_'   # its own since part 1
    assert milestone_tag('srresnet_x4_baseline_cpu', [1000, 1400]) == ''
    assert milestone_tag('srresnet_x4_dhp60_cpu', [600, 1000]) == 'm600-1000_'
    assert milestone_tag('dncnn_s70_baseline_cpu') == ''
    with pytest.raises(SystemExit, match='not a CPU recipe'):
        reference('srresnet_x4_baseline_gpu')


def test_the_stability_script_names_and_overrides_each_recipes_runs():
    script = Path(__file__).parents[1] / 'research/paper_claims/run_stability.sh'
    env = dict(os.environ, PY=sys.executable, DRY='1', RUNS='baseline dhp60', SEEDS='10')

    def dry(**extra):
        out = subprocess.run(['bash', str(script)], env=dict(env, **extra), capture_output=True, text=True, check=True)
        return dict(line.replace(' (trained)', '').split(': ', 1) for line in out.stdout.splitlines())

    assert dry() == {'pbn_m600-1000-1200-1400_f1400_baseline_s10': ' train:freeze_bn_iter=1400',
                     'pbn_f1400_dhp60_s10': ' train:freeze_bn_iter=1400'}
    stretched = dry(ITERS='3200')
    assert stretched['pbn_i3200_f1400_dhp60_s10'] == ('train:total_iter=3200 train:scheduler:milestones=[2000,2800] '
                                                      'train:freeze_bn_iter=2800')
    assert 'train:scheduler:milestones=[1200,2000,2400,2800]' in \
        stretched['pbn_m600-1000-1200-1400_i3200_f1400_baseline_s10']
    assert set(dry(MILESTONES='1000,1400', FREEZE='')) == {'pbn_baseline_s10', 'pbn_dhp60_s10'}
