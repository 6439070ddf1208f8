"""The device report on tiny checkpoints and a tiny table: families, side-by-side latency, equal-latency comparison."""
import json

import pytest

import restore_dhp  # noqa: F401
from nets import compact
from restore_dhp.checkpoint import save_compact
from restore_dhp.device_report import compare_at_equal_latency, interpolate
from restore_dhp.device_report import main as report_main
from restore_dhp.latency.__main__ import main as latency_main

KW = {'num_feat': 8, 'num_layers': 4}


def test_interpolate_and_equal_latency_comparison():
    assert interpolate([(1.0, 30.0), (3.0, 32.0)], 2.0) == pytest.approx(31.0)
    assert interpolate([(1.0, 30.0), (3.0, 32.0)], 4.0) is None
    records = [{'family': 'baseline', 'measured_ms': 4.0, 'psnr': {'A': 33.0}},
               {'family': 'FLOPs', 'measured_ms': 2.0, 'psnr': {'A': 31.0}},
               {'family': 'latency', 'measured_ms': 3.0, 'psnr': {'A': 32.5}},
               {'family': 'latency', 'measured_ms': 1.0, 'psnr': {'A': 30.0}}]
    compare_at_equal_latency(records)
    assert records[2]['vs_flops_db']['A'] == pytest.approx(0.5)  # 32.5 against 32.0 at 3 ms
    assert records[3]['vs_flops_db']['A'] is None                 # faster than the whole FLOPs family


def test_device_report_end_to_end(tmp_path, capsys):
    table = tmp_path / 'dn.json'
    assert latency_main(['profile', '--arch', 'dncnn', '--arch-kwargs', json.dumps(KW), '--size', '12x12',
                         '--out', str(table), '--rounds', '1', '--warmup', '0', '--grid-step', '4',
                         '--fit-points', '2']) == 0
    half = {'feat00': 4, 'feat01': 4, 'feat02': 4}
    paths = {'uni': tmp_path / 'uni.safetensors', 'base': tmp_path / 'base.safetensors',
             'lat': tmp_path / 'lat.safetensors', 'flops': tmp_path / 'flops.safetensors'}
    save_compact(compact('dncnn', **dict(KW, num_feat=4)), paths['uni'])  # full width of its own, narrower: first
    save_compact(compact('dncnn', **KW), paths['base'])
    save_compact(compact('dncnn', half, **KW), paths['lat'],
                 info={'search': {'target': {'latency': 0.5, 'table': str(table)}, 'target_ratio': None}})
    save_compact(compact('dncnn', half, **KW), paths['flops'], info={'search': {'target_ratio': 0.25}})
    quality, more = tmp_path / 'quality.json', tmp_path / 'more.json'   # two benchmark runs, read together
    quality.write_text(json.dumps({'sets': ['Set12'], 'results': [
        {'checkpoint': str(p), 'metrics': {'Set12': {'psnr': v}}} for p, v in
        ((paths['base'], 27.0), (paths['lat'], 26.0))]}))
    more.write_text(json.dumps({'sets': ['Set12'], 'results': [
        {'checkpoint': str(paths['flops']), 'metrics': {'Set12': {'psnr': 25.5}}}]}))
    out = tmp_path / 'report'
    assert report_main(['--task', 'denoise', '--table', str(table), '--weights', *map(str, paths.values()),
                        '--quality', str(quality), str(more), '--out', str(out), '--rounds', '3', '--warmup', '0']) == 0
    result = json.loads((out / 'device_denoise.json').read_text())
    families = {m['name']: m['family'] for m in result['models']}
    assert families == {'uni': 'baseline', 'base': 'baseline', 'lat': 'latency', 'flops': 'FLOPs'}
    by_name = {m['name']: m for m in result['models']}
    assert result['baseline'] == 'base' and by_name['base']['latency_ratio'] == 1.0  # the widest is the reference
    assert by_name['uni']['gflops'] < by_name['base']['gflops']
    lat = next(m for m in result['models'] if m['family'] == 'latency')
    assert 'target_met' in lat and lat['psnr'] == {'Set12': 26.0} and result['rounds'] == 3
    assert next(m for m in result['models'] if m['family'] == 'FLOPs')['psnr'] == {'Set12': 25.5}
    assert lat['twin'] == {'name': 'flops', 'identical': False}  # same widths, other weights
    assert (out / 'psnr_vs_latency_denoise.png').stat().st_size > 0
    text = (out / 'device_denoise.md').read_text()
    assert 'control (the baseline timed again) reads' in text and '| lat | latency | 0.50 |' in text
    assert '(the same widths as flops: both searches kept them' in text
    assert report_main(['--join', '--out', str(out)]) == 0
    assert 'latency-targeted vs FLOPs-targeted' in (out / 'report.md').read_text()
    assert report_main(['--task', 'denoise', '--table', str(table), '--weights', str(paths['lat']),
                        '--out', str(out)]) == 2  # no baseline among the weights
    assert 'needs the full-width baseline' in capsys.readouterr().err


def test_a_continued_checkpoint_keeps_the_family_of_its_search():
    """The shipped GPU weights were searched, then continued: the search record is the parent stage's."""
    from restore_dhp.device_report import family
    meta = {'widths': {}, 'info': {'experiment': 'x_bnfreeze_gpu', 'parent': {
        'experiment': 'x_gpu', 'search': {'target_ratio': 0.4, 'target': None}}}}
    assert family(meta) == ('FLOPs', 0.4)
    meta['info']['parent']['search'] = {'target': {'latency': 0.2, 'table': 't.json'}, 'warm_start': {'file': 'w'}}
    assert family(meta) == ('latency, warm start', 0.2)
