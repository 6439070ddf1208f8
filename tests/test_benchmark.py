"""restore_dhp.benchmark, restore_dhp.speedup and research/probes/bn_gain.py on tiny random-width checkpoints and generated sets."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import restore_dhp  # noqa: F401
from nets import compact
from restore_dhp.benchmark import main as bench_main
from restore_dhp.catalogue import PAPER_REFERENCE, model_label
from restore_dhp.checkpoint import read_metadata, save_compact
from restore_dhp.reporting import below_floor_notes
from restore_dhp.speedup import main as speedup_main

REPO = Path(__file__).resolve().parents[1]


def _smooth(h, w, c, seed):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(h // 4 + 1, w // 4 + 1, c)).astype(np.float32)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img if c > 1 else img.reshape(h, w)


@pytest.fixture(scope='module')
def sr_data(tmp_path_factory):
    root = tmp_path_factory.mktemp('data')
    from basicsr.utils.matlab_functions import imresize
    for set_name, n in (('Set5', 2), ('Set14', 1)):
        (root / set_name / 'HR').mkdir(parents=True)
        (root / set_name / 'LR_bicubic' / 'X4').mkdir(parents=True)
        for i in range(n):
            hr = _smooth(48, 64, 3, seed=i + len(set_name))
            lr = np.clip(np.round(imresize(hr.astype(np.float32), 0.25)), 0, 255).astype(np.uint8)
            cv2.imwrite(str(root / set_name / 'HR' / f'im{i}.png'), hr[:, :, ::-1])
            cv2.imwrite(str(root / set_name / 'LR_bicubic' / 'X4' / f'im{i}x4.png'), lr[:, :, ::-1])
    return root


@pytest.fixture(scope='module')
def dn_data(tmp_path_factory):
    root = tmp_path_factory.mktemp('data')
    (root / 'BSD68').mkdir()
    for i in range(2):
        cv2.imwrite(str(root / 'BSD68' / f'g{i}.png'), _smooth(32, 40, 1, seed=i))
    return root


@pytest.fixture(scope='module')
def sr_weights(tmp_path_factory):
    d = tmp_path_factory.mktemp('w')
    torch.manual_seed(0)
    paths = []
    for tag, widths in (('baseline', None), ('dhp40', {'trunk': 8, 'block00': 5, 'block01': 3})):
        p = d / f'srresnet_x4_{tag}.safetensors'
        info = {'search': {'target_ratio': 0.4}} if widths else {}
        save_compact(compact('srresnet', widths, num_blocks=2, num_feat=16), p, info=info)
        paths.append(str(p))
    return paths


@pytest.fixture(scope='module')
def dn_weights(tmp_path_factory):
    d = tmp_path_factory.mktemp('w')
    torch.manual_seed(0)
    paths = []
    for tag, widths in (('baseline', None), ('dhp20', {f'feat{i:02d}': 3 + i for i in range(4)})):
        p = d / f'dncnn_s70_{tag}.safetensors'
        info = {'parent': {'search': {'target_ratio': 0.2}}} if widths else {}  # a second stage names its parent
        save_compact(compact('dncnn', widths, num_layers=5, num_feat=16), p, info=info)
        paths.append(str(p))
    return paths


def test_models_are_named_from_their_metadata(tmp_path, sr_weights, dn_weights):
    assert [model_label(read_metadata(p), p) for p in sr_weights + dn_weights] == \
        ['Baseline', 'DHP-40', 'Baseline', 'DHP-20']
    mine = tmp_path / 'srresnet_x4_dhp60.safetensors'  # pruned, no search record: the file name is not trusted
    save_compact(compact('srresnet', {'trunk': 8}, num_blocks=2, num_feat=16), mine)
    assert model_label(read_metadata(mine), mine) == 'srresnet_x4_dhp60'


def test_sr_report_files(tmp_path, sr_data, sr_weights):
    out = tmp_path / 'rep'
    rc = bench_main(['--task', 'sr', '--data-root', str(sr_data), '--weights', *sr_weights,
                     '--sets', 'Set5', 'Set14', '--out', str(out), '--repeats', '2', '--warmup', '1',
                     '--device', 'cpu', '--quiet', '--no-lpips', '--threads', '1'])
    assert rc == 0
    md = (out / 'report.md').read_text()
    assert 'Measured on CPU' in md and 'Paper (reported)' in md
    table = md.split('## Further')[0]
    assert '| Baseline |' in table and '| DHP-40 |' in table and 'Bicubic (floor)' in table
    assert '32.03' not in table  # paper numbers stay out of the measured table
    for col in ('Set5 PSNR-Y', 'Set14 PSNR-Y', 'GFLOPs', 'Params (M)', 'FLOPs ratio', 'Peak mem. CPU, '):
        assert col in table

    with open(out / 'report.csv') as f:
        rows = list(csv.DictReader(f))
    assert [r['model'] for r in rows] == ['Baseline', 'DHP-40', 'Bicubic']
    for col in ('Set5_psnr_y', 'Set5_ssim_y', 'Set5_psnr_rgb', 'Set14_psnr_y', 'gflops_128', 'params',
                'flops_ratio', 'runtime_ms', 'peak_memory_mb', 'backend', 'precision', 'device'):
        assert col in rows[0]
    assert 'Set5_lpips' not in rows[0]
    assert float(rows[0]['flops_ratio']) == pytest.approx(1.0)
    assert 0 < float(rows[1]['flops_ratio']) < 1
    assert float(rows[0]['runtime_ms']) > 0 and float(rows[1]['peak_memory_mb']) > 0
    assert rows[2]['runtime_ms'] == '' and float(rows[2]['Set5_psnr_y']) > 10

    rep = json.loads((out / 'report.json').read_text())
    for key in ('torch', 'torchvision', 'basicsr', 'numpy', 'python'):
        assert rep['software'][key]
    assert rep['device']['type'] == 'cpu' and rep['device']['name'] and rep['device']['threads'] == 1
    t = rep['timing']
    assert t['set'] == 'Set5' and 'first evaluated set' in t['set_reason']
    assert t['image_sizes'] == [[12, 16], [12, 16]] and t['dtype'] == 'float32'
    assert t['repeats'] == 2 and t['warmup'] == 1 and 'fresh process' in t['isolation']
    models = rep['results']
    assert len(models[0]['metrics']['Set5']['per_image']) == 2
    # every backend timed; the table names the fastest in total
    assert set(models[0]['timing_by_backend']) == set(t['backends_total_ms']) == {'eager', 'fused', 'onnxruntime'}
    assert t['backend'] == min(t['backends_total_ms'], key=t['backends_total_ms'].get)
    assert f"Runtime CPU, {t['backend']} fp32 (ms)" in table
    assert rows[0]['backend'] == t['backend'] and rows[0]['precision'] == 'fp32'
    assert t['memory_backend'] in ('eager', 'fused')  # ONNX Runtime's allocations are not visible to torch
    assert f"Peak mem. CPU, {t['memory_backend']} fp32 (MB)" in table
    assert rep['scale'] == 4 and 'scale' not in rep['device']
    assert rep['paper_reference']['rows'][0]['psnr'][0] == 32.03
    assert (out / 'psnr_vs_flops.png').stat().st_size > 1000


def test_denoise_report_in_process(tmp_path, dn_data, dn_weights):
    out = tmp_path / 'rep'
    rc = bench_main(['--task', 'denoise', '--data-root', str(dn_data), '--weights', *dn_weights,
                     '--sets', 'BSD68', '--out', str(out), '--repeats', '1', '--warmup', '0',
                     '--device', 'cpu', '--quiet', '--in-process', '--max-images', '1'])
    assert rc == 0
    rep = json.loads((out / 'report.json').read_text())
    assert rep['timing']['set'] == 'BSD68' and 'paper' in rep['timing']['set_reason']
    assert rep['sigma_255'] == 70 and 'σ=70' in (out / 'report.md').read_text()
    names = [r['name'] for r in rep['results']]
    assert names == ['Baseline', 'DHP-20', 'Noisy input']
    noisy = rep['results'][2]['metrics']['BSD68']
    assert 5 < noisy['psnr'] < 15  # sigma 70 noise: about 11 dB
    assert rep['results'][0]['metrics']['BSD68']['num_images'] == 1
    with open(out / 'report.csv') as f:
        header = next(csv.reader(f))
    assert 'BSD68_psnr' in header and 'BSD68_ssim' in header
    assert ('BSD68_lpips' in header) == rep['lpips']
    assert (out / 'psnr_vs_flops.png').exists()
    assert PAPER_REFERENCE['denoise']['rows'][0]['psnr'][0] == 24.93


def test_bad_inputs_give_one_line_errors(tmp_path, sr_data, sr_weights, dn_weights, capsys):
    rc = bench_main(['--task', 'sr', '--data-root', str(sr_data), '--weights', *sr_weights,
                     '--sets', 'Nope', '--out', str(tmp_path / 'o'), '--quiet', '--no-lpips'])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith('error:') and 'Nope' in err[-1]
    rc = bench_main(['--task', 'sr', '--data-root', str(sr_data), '--weights', dn_weights[0],
                     '--sets', 'Set5', '--out', str(tmp_path / 'o'), '--quiet', '--no-lpips'])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and 'denoise checkpoint' in err[-1]


def test_denoise_report_reads_sigma_from_the_run(tmp_path, dn_data, dn_weights):
    out = tmp_path / 'rep'
    rc = bench_main(['--task', 'denoise', '--data-root', str(dn_data), '--weights', *dn_weights, '--sigma', '25',
                     '--out', str(out), '--quiet', '--no-lpips', '--no-timing', '--max-images', '1'])
    md = (out / 'report.md').read_text()
    assert rc == 0 and 'σ=25' in md and 'σ=70' not in md.split('## Paper')[0]
    assert 'Runtime: not measured (timing skipped (--no-timing)), nor memory.' in md  # not 'over 0 image(s) of None'
    assert 'of None' not in md and '0 image(s)' not in md


def test_speedup_random_widths(tmp_path, capsys):
    out = tmp_path / 'speedup.txt'
    rc = speedup_main(['--random-widths', '0.5', '--arch', 'dncnn', '--sizes', '24', '20x28', '--repeats', '2',
                       '--warmup', '1', '--round-to', '8', '--threads', '1', '2', '--backends', 'eager', 'fused',
                       '--out', str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and out.read_text().strip() == text.strip()
    assert text.count('ms/GFLOP') == 2 * 2 * 2  # a table per thread count, size and backend
    for part in ('random-0.5 /8', '1 thread', '2 threads', 'eager fp32', 'fused fp32, channels_last',
                 'input 1x1x20x28', 'each deployed form against eager fp32'):
        assert part in text



def test_speedup_uniform_widths(capsys):
    assert speedup_main(['--uniform-widths', '32', '16', '--arch', 'dncnn', '--sizes', '20', '--repeats', '1',
                         '--warmup', '0', '--backends', 'fused']) == 0
    rows = {line.split()[1]: line.split() for line in capsys.readouterr().out.splitlines()
            if line.startswith('width ')}
    assert set(rows) == {'32', '16'}
    assert rows['32'][2] == '32-32' and rows['16'][2] == '16-16'
    assert float(rows['32'][7]) == pytest.approx(0.25, abs=0.03)  # FLOPs ratio: about a quarter of the 64-wide net
    with pytest.raises(SystemExit):
        speedup_main(['--uniform-widths', '0', '--arch', 'dncnn'])

def test_speedup_checkpoints_and_profile(sr_weights, capsys):
    assert speedup_main(['--weights', *sr_weights, '--sizes', '12', '--repeats', '1', '--warmup', '0',
                         '--backends', 'fused', 'onnxruntime', '--pad-to', '8', '16']) == 0
    text = capsys.readouterr().out
    assert 'Baseline ' in text and 'DHP-40 ' in text and 'onnxruntime fp32' in text
    # widths 8 / 5 / 3: padded to /8 -> 8 / 8 / 8, to /16 -> full width (16): both rows, the baseline none
    rows = {r[1]: r[2] for r in (line.split() for line in text.splitlines() if line.startswith('DHP-40 pad/'))}
    assert rows == {'pad/8': '8-8', 'pad/16': '16-16'}
    assert 'Baseline pad/' not in text
    assert speedup_main(['--weights', sr_weights[1], '--sizes', '12', '--repeats', '1', '--profile']) == 0
    text = capsys.readouterr().out
    assert 'per layer' in text and 'all Conv2d' in text and 'all ShuffleNHWC' in text and 'all PReLU' in text
    with pytest.raises(SystemExit):
        speedup_main(['--weights', *sr_weights, '--precisions', 'fp16'])
    assert 'CUDA only' in capsys.readouterr().err


def test_below_floor_warning_names_models_that_break_on_some_images():

    def row(name, values):
        return {'name': name, 'metrics': {'BSD68': {'per_image': [
            {'name': f'test{i:03d}', 'psnr': v} for i, v in enumerate(values)]}}}
    floor = row('Noisy input', [12.5, 12.4, 12.6])
    good, broken = row('Baseline', [25.3, 28.3, 27.5]), row('DHP-40', [9.99, 28.0, 12.0])
    notes = below_floor_notes('denoise', ['BSD68'], [good, broken], floor)
    assert len(notes) == 1
    assert 'DHP-40' in notes[0] and '2 of 3 BSD68' in notes[0] and 'test000, 9.99 dB against 12.50 dB' in notes[0]
    assert below_floor_notes('denoise', ['BSD68'], [good], floor) == []


def test_bn_gain_script(dn_data, dn_weights):
    """research/probes/bn_gain.py: one ratio per BatchNorm and model; about 1 where the running statistics fit the image."""
    from research.probes import bn_gain
    model = compact('dncnn', num_layers=5, num_feat=8)
    x = torch.rand(1, 1, 24, 24)
    for m in model.modules():  # running statistics = this image's statistics (momentum 1, one forward)
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 1.0
    model.train()
    with torch.no_grad():
        model(x)
    ratios = bn_gain.variance_ratios(model.eval(), x)
    assert [n.split('.')[-1] for n, _ in ratios] == ['bn01', 'bn02', 'bn03']
    assert all(r == pytest.approx(1.0, rel=0.05) for _, r in ratios)  # unbiased running var vs image var

    cmd = [sys.executable, '-m', 'research.probes.bn_gain', '--weights', *dn_weights,
           '--data-root', str(dn_data), '--set', 'BSD68', '--image', 'g0']
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith('dncnn_s70_baseline.safetensors: bn01 ')
    bad = subprocess.run(cmd[:-1] + ['nope'], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert bad.returncode == 2 and "no image 'nope'" in bad.stderr


def test_the_papers_figures_go_only_beside_the_papers_architecture():
    from restore_dhp.reporting import markdown, paper_reference
    rows = [{'name': 'Baseline', 'kind': 'model', 'arch': 'EDSR', 'metrics': {'Set5': {'psnr': 30.0}},
             'gflops': 32.5, 'params': 1.5e6, 'flops_ratio': 1.0, 'timing': None}]
    device, timing = {'type': 'cpu', 'label': 'CPU (x, 1 thread)'}, {'set_reason': 'timing skipped (--no-timing)'}
    assert paper_reference('sr', rows) is None
    assert 'Paper (reported)' not in markdown('sr', ['Set5'], rows, device, timing, {'scale': 4}, [])
    for arch in ('SRResNet', 'SRResNetCompact'):   # today's name and the shipped checkpoints' legacy one
        assert paper_reference('sr', [{**rows[0], 'arch': arch}])['arch'] == 'SRResNet'
    assert paper_reference('denoise', [{**rows[0], 'arch': 'UNetDenoiser'}]) is None
