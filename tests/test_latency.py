"""Latency tables on a tiny grid: profile, check, read back, and a search that targets one."""
from __future__ import annotations

import json
import os

import pytest
import torch

import restore_dhp  # noqa: F401
from restore_dhp.checkpoint import read_metadata
from restore_dhp.deploy import ort
from restore_dhp.latency import FORMAT, LatencyError, read_table
from restore_dhp.timing import cpu_model
from restore_dhp.latency.__main__ import main as latency_main
from restore_dhp.options import OptionError, validate_file
from train_helpers import run_train, sr_options, write_options

TINY_SR = '{"num_feat": 8, "num_blocks": 2}'
TINY_DN = '{"num_feat": 8, "num_layers": 4}'
FAST = ['--rounds', '2', '--warmup', '1', '--grid-step', '4', '--fit-points', '2']


def profile(out, arch='dncnn', kwargs=TINY_DN, size='12x12', backend='fused'):
    assert latency_main(['profile', '--arch', arch, '--arch-kwargs', kwargs, '--size', size, '--backend', backend,
                         '--threads', '1', '--out', str(out), *FAST]) == 0
    return json.load(open(out))


@pytest.mark.parametrize('backend', ['fused', pytest.param('onnxruntime', marks=pytest.mark.skipif(
    ort is None, reason='onnxruntime not installed'))])
def test_profile_then_check_on_a_tiny_grid(tmp_path, capsys, backend):
    data = profile(tmp_path / 'dn.json', backend=backend)
    assert data['format'] == FORMAT and data['backend'] == backend and data['precision'] == 'fp32'
    assert data['threads'] == 1 and data['size'] == [12, 12] and data['device'] == 'cpu'
    assert data['device_name'] == cpu_model() and data['torch'] == torch.__version__
    assert set(data['convs']) == {'convs.head', 'convs.conv01', 'convs.conv02', 'convs.tail'}   # module paths
    middle = data['layers'][data['convs']['convs.conv01']]
    assert middle['in_widths'] == middle['out_widths'] == [4, 8]
    assert all(v > 0 for row in middle['us'] for v in row)
    table = read_table(str(tmp_path / 'dn.json'))
    assert table.full > 0 and table.ratio(None) == pytest.approx(1.0)
    capsys.readouterr()
    assert latency_main(['check', '--table', str(tmp_path / 'dn.json'), '--sets', '3', '--rounds', '2',
                         '--out', str(tmp_path / 'check.json')]) == 0
    out = capsys.readouterr().out
    assert '3 random width sets, median relative error' in out and 'worst' in out
    result = json.load(open(tmp_path / 'check.json'))
    assert len(result['rows']) == 3 and result['worst_abs_error'] >= result['median_abs_error'] >= 0


def test_where_names_the_table_by_what_it_is(capsys):
    assert latency_main(['where', '--arch', 'srresnet', '--backend', 'onnxruntime', '--threads', '1',
                         '--size', '170x256']) == 0
    path = capsys.readouterr().out.strip()
    folder, name = os.path.split(path)
    assert folder.startswith('latency_tables/cpu-') and folder.endswith('-1t')
    assert name == 'srresnet_onnxruntime_fp32_170x256.json'


def test_a_file_that_is_not_a_table_fails_in_one_line(tmp_path, capsys):
    bad = tmp_path / 'bad.json'
    bad.write_text('{"format": "something else"}')
    assert latency_main(['check', '--table', str(bad)]) == 2
    assert capsys.readouterr().err.strip().count('\n') == 0
    with pytest.raises(LatencyError, match='does not exist'):
        read_table(str(tmp_path / 'missing.json'))


def test_options_know_the_latency_target(tmp_path, capsys):
    """The option check reads the table: its format, the network it was measured for, the machine (issue 32: garbage
    JSON or another architecture's table passed, then BasicSR renamed the run and failed with a traceback)."""
    table = tmp_path / 'table.json'
    data = profile(table, 'srresnet', TINY_SR)
    (tmp_path / 'garbage.json').write_text('{not json')
    profile(tmp_path / 'dn.json')
    (tmp_path / 'wide.json').write_text(json.dumps({**data, 'arch_kwargs': {'num_feat': 16, 'num_blocks': 2}}))
    ok = sr_options(tmp_path, dhp={'target_ratio': None})
    ok['dhp'].pop('target_ratio')
    ok['dhp'].update(target={'latency': 0.4, 'table': str(table)}, round_to='auto')
    validate_file(write_options(tmp_path, ok))
    assert 'warning' not in capsys.readouterr().err
    cases = [({'target': {'latency': 0.4, 'table': str(tmp_path / 'none.json')}}, 'does not exist'),
             ({'target': {'latency': 0.4, 'table': str(tmp_path / 'garbage.json')}}, 'cannot be read'),
             ({'target': {'latency': 0.4, 'table': str(tmp_path / 'dn.json')}}, 'was measured for dncnn'),
             ({'target': {'latency': 0.4, 'table': str(tmp_path / 'wide.json')}}, '"num_feat": 16'),
             ({'target': {'latency': 1.5, 'table': str(table)}}, 'fraction in (0, 1]'),
             ({'target': {'latency': 0.4}}, 'must be a mapping'),
             ({'target': {'latency': 0.4, 'table': str(table)}, 'target_ratio': 0.4}, 'needs one of'),
             ({'target_ratio': 0.4, 'round_to': 'auto'}, 'width step of a latency table')]
    for dhp, expected in cases:
        opt = sr_options(tmp_path)
        opt['dhp'].pop('target_ratio')
        opt['dhp'].update(dhp)
        with pytest.raises(OptionError, match=expected.replace('(', r'\(').replace(')', r'\)')):
            validate_file(write_options(tmp_path, opt))
    (tmp_path / 'elsewhere.json').write_text(json.dumps({**data, 'device_name': 'Another CPU 9000'}))
    ok['dhp']['target']['table'] = str(tmp_path / 'elsewhere.json')
    validate_file(write_options(tmp_path, ok))
    assert "warning: the table was measured on 'Another CPU 9000'" in capsys.readouterr().err


def test_a_bad_table_stops_training_before_basicsr_creates_or_renames_anything(tmp_path, capsys):
    from restore_dhp.train import main as train_main
    profile(tmp_path / 'dn.json')
    opt = sr_options(tmp_path, name='run')
    opt['dhp'].pop('target_ratio')
    opt['dhp'].update(target={'latency': 0.4, 'table': str(tmp_path / 'dn.json')})
    path = write_options(tmp_path, opt)
    (tmp_path / 'experiments' / 'run').mkdir(parents=True)   # an earlier run of that name: must stay as it is
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob('*'))
    capsys.readouterr()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert train_main(['-opt', str(path)]) == 2
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'option dhp.target.table' in err[0] and 'was measured for dncnn' in err[0], err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob('*')) == before   # no tb_logger, no *_archived_*


def test_search_to_a_latency_target_records_table_and_prediction(tmp_path):
    root = str(tmp_path)
    data = profile(tmp_path / 'sr.json', 'srresnet', TINY_SR, '4x4')
    opt = sr_options(root, total_iter=6, dhp={'regularization': 500.0, 'mask_interval': 2})
    opt['dhp'].pop('target_ratio')
    opt['dhp'].update(target={'latency': 0.6, 'table': str(tmp_path / 'sr.json')}, round_to='auto')
    out = run_train(root, write_options(root, opt))
    assert 'latency ratio' in out.stdout + out.stderr
    models = os.path.join(root, 'experiments', 'tiny_sr', 'models')
    summary = json.load(open(os.path.join(models, 'search_summary.json')))
    table = read_table(str(tmp_path / 'sr.json'))
    assert summary['target'] == {'latency': 0.6, 'table': str(tmp_path / 'sr.json')}
    assert summary['predicted_latency_us'] == pytest.approx(table.cost(summary['widths']))
    assert summary['predicted_latency_ratio'] == pytest.approx(table.ratio(summary['widths']))
    assert summary['latency_table']['backend'] == 'fused' and len(summary['latency_table']['sha256']) == 64
    assert summary['round_to'] == data['width_step']
    assert all(w % data['width_step'] == 0 or w == 8 for w in summary['widths'].values())
    final = read_metadata(os.path.join(models, 'net_g_latest.safetensors'))
    assert final['info']['search']['predicted_latency_us'] == summary['predicted_latency_us']


def test_device_script_builds_and_checks_tables_in_its_dry_mode(tmp_path):
    """research/device_latency/device_search.sh tables, DRY=1, one network and backend (each start of Python costs seconds here)."""
    import subprocess
    import sys

    from train_helpers import REPO, env
    work = tmp_path / 'dry'
    out = subprocess.run(['bash', os.path.join(REPO, 'research', 'device_latency', 'device_search.sh'), 'tables'], cwd=REPO,
                         env={**env(), 'DRY': '1', 'DRY_DIR': str(work), 'PY': sys.executable, 'NETS': 'dncnn_s70',
                              'BACKENDS': 'fused'},
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    tables = sorted(p.name for p in (work / 'latency_tables').glob('*/*.json'))
    assert tables == ['dncnn_fused_fp32_12x12.check.json', 'dncnn_fused_fp32_12x12.json']
    assert out.stdout.count('median relative error') == 1
