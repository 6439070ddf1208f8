"""The Gradio demo (app.py) end to end through its API, on tiny random checkpoints (see conftest.demo_app)."""
from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import REPO, write_tiny_demo_weights

gradio_client = pytest.importorskip('gradio_client')
from gradio_client import Client, handle_file  # noqa: E402

SR_NAMES = ['SRResNet Baseline', 'SRResNet DHP-60', 'SRResNet DHP-40', 'SRResNet DHP-20']
DN_NAMES = ['DnCNN Baseline', 'DnCNN DHP-60', 'DnCNN DHP-40', 'DnCNN DHP-20']
N_OUT = 3 + 8   # status, table, measurement note, 4 SR sliders, 4 DnCNN sliders


@pytest.fixture(scope='module')
def client(demo_app):
    url, _, _ = demo_app
    return Client(url, verbose=False)


def _img(path, arr, **kw):
    Image.fromarray(arr).save(path, **kw)
    return str(path)


def _rand(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _call(client, task, mode, path, seed=0):
    out = client.predict(task, mode, handle_file(str(path)), seed, api_name='/restore')
    assert len(out) == N_OUT
    return out


def _shown(update):
    """A slider's pair, or None when the slider is hidden (results arrive as updates that also show them)."""
    if isinstance(update, dict) and ('visible' in update or '__type__' in update):
        return update.get('value') if update.get('visible', True) else None
    return update


def _sliders(out, task):
    return [_shown(u) for u in (out[3:7] if task == 'sr' else out[7:11])]


def _load(p):
    return np.asarray(Image.open(p))


# fixed decimals per column (thousands separated where large)
DECIMALS = {'GFLOPs (128×128)': 2, 'FLOPs (% of baseline)': 1, 'Runtime (ms)': 1, 'Peak memory (MB)': 1,
            'PSNR-Y (dB)': 2, 'SSIM-Y': 4, 'PSNR (dB)': 2, 'SSIM': 4}


def _number(text, decimals):
    """The value of a formatted cell, checking its format: fixed decimals, thousands separators."""
    pattern = r'-?\d{1,3}(,\d{3})*' + (rf'\.\d{{{decimals}}}' if decimals else '')
    assert re.fullmatch(pattern, text), (text, decimals)
    return float(text.replace(',', ''))


def _check_table(table, names, scored, score_cols):
    table = table.get('value', table)  # the table arrives as an update that also makes it visible
    assert table is not None, 'no results table'
    headers, rows = table['headers'], table['data']
    by_name = {r[0]: dict(zip(headers, r)) for r in rows}
    for name in names:
        row = by_name[name]
        for col in ('GFLOPs (128×128)', 'FLOPs (% of baseline)'):
            assert _number(row[col], DECIMALS[col]) > 0, (name, col, row[col])
        median, q1, q3 = re.fullmatch(r'(\S+) \((\S+)–(\S+)\)', row['Runtime (ms)']).groups()  # median (quartiles)
        assert 0 < _number(q1, 1) <= _number(median, 1) <= _number(q3, 1), row['Runtime (ms)']
        assert _number(row['Parameters'], 0) > 0
        assert row['Peak memory (MB)'] == '—' or _number(row['Peak memory (MB)'], 1) >= 0  # '—' where unmeasurable
        for col in score_cols:
            if scored:
                assert np.isfinite(_number(row[col], DECIMALS[col])), (name, col)
            else:
                assert col not in row
    return by_name


def test_sr_simulate_every_model(client, tmp_path):
    src = _img(tmp_path / 'hr.png', _rand((70, 91, 3), 1))   # cropped to 68 x 88, LR 17 x 22
    out = _call(client, 'sr', 'simulate', src)
    assert out[0].startswith('**Done'), out[0]
    assert 'Cropped to 88×68' in out[0]
    for pair in _sliders(out, 'sr'):
        before, after = (_load(p) for p in pair)
        assert before.shape == after.shape == (68, 88, 3)
    assert all(s is None for s in _sliders(out, 'denoise'))
    by_name = _check_table(out[1], SR_NAMES, True, ['PSNR-Y (dB)', 'SSIM-Y'])
    assert 'Bicubic ×4 (no network)' in by_name
    assert 'peak' in out[2].lower() and 'median of' in out[2]   # the note says what the numbers are
    assert re.match(r'Measured on (CPU, \d+ threads|GPU: )', out[2]), out[2]
    assert re.search(r'every model once per round in rotated order', out[2]), out[2]
    assert re.search(r'Control: the first model timed again in the same rounds reads \d\.\d\d×', out[2]), out[2]


def test_sr_upscale_every_model(client, tmp_path):
    src = _img(tmp_path / 'lr.png', _rand((13, 20, 3), 2))
    out = _call(client, 'sr', 'restore', src)
    assert out[0].startswith('**Done'), out[0]
    for pair in _sliders(out, 'sr'):
        before, after = (_load(p) for p in pair)
        assert before.shape == after.shape == (52, 80, 3)
    _check_table(out[1], SR_NAMES, False, ['PSNR-Y (dB)', 'SSIM-Y'])


@pytest.mark.parametrize('mode', ['simulate', 'restore'])
def test_denoise_every_model(client, tmp_path, mode):
    src = _img(tmp_path / 'rgb.png', _rand((40, 33, 3), 3))   # colour: converted to gray
    out = _call(client, 'denoise', mode, src, seed=5)
    assert out[0].startswith('**Done') and 'gray' in out[0], out[0]
    if mode == 'simulate':
        assert 'seed 5' in out[0]
    for pair in _sliders(out, 'denoise'):
        before, after = (_load(p) for p in pair)
        assert before.shape[:2] == after.shape[:2] == (40, 33)
    assert all(s is None for s in _sliders(out, 'sr'))
    _check_table(out[1], DN_NAMES, mode == 'simulate', ['PSNR (dB)', 'SSIM'])


def test_denoise_seed_reproducible(client, tmp_path):
    src = _img(tmp_path / 'g.png', _rand((24, 24), 4))
    a = _load(_sliders(_call(client, 'denoise', 'simulate', src, seed=7), 'denoise')[0][0])
    b = _load(_sliders(_call(client, 'denoise', 'simulate', src, seed=7), 'denoise')[0][0])
    c = _load(_sliders(_call(client, 'denoise', 'simulate', src, seed=8), 'denoise')[0][0])
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def _bad_inputs(tmp: Path):
    (tmp / 'notes.txt').write_text('not an image at all')
    good = tmp / 'good.png'
    Image.fromarray(_rand((64, 64, 3), 5)).save(good)
    data = good.read_bytes()
    (tmp / 'truncated.png').write_bytes(data[: len(data) // 2])
    (tmp / 'garbage.png').write_bytes(b'\x89PNG\r\n\x1a\n' + bytes(range(256)) * 4)
    return {'text': tmp / 'notes.txt', 'truncated': tmp / 'truncated.png', 'garbage': tmp / 'garbage.png',
            'one_pixel': _img(tmp / 'one.png', _rand((1, 1, 3), 6))}


@pytest.mark.parametrize('kind', ['text', 'truncated', 'garbage', 'one_pixel'])
@pytest.mark.parametrize('task', ['sr', 'denoise'])
def test_bad_input_gives_message_and_server_survives(client, tmp_path, kind, task):
    out = _call(client, task, 'simulate', _bad_inputs(tmp_path)[kind])
    status = out[0]
    assert status.startswith('⚠️') and '\n' not in status and 'Traceback' not in status, status
    assert all(_shown(s) is None for s in out[3:])
    ok = _call(client, task, 'restore', _img(tmp_path / 'after.png', _rand((16, 16, 3), 7)))
    assert ok[0].startswith('**Done'), ok[0]


def test_odd_formats_are_converted(client, tmp_path):
    g16 = (np.random.default_rng(8).integers(0, 65536, (32, 36))).astype(np.uint16)
    p16 = tmp_path / 'gray16.png'
    Image.fromarray(g16).save(p16)
    out = _call(client, 'sr', 'restore', p16)
    assert out[0].startswith('**Done') and '16-bit' in out[0], out[0]
    assert _load(_sliders(out, 'sr')[0][1]).shape == (128, 144, 3)

    rgba = _img(tmp_path / 'rgba.png', _rand((20, 24, 4), 9))
    out = _call(client, 'denoise', 'simulate', rgba)
    assert out[0].startswith('**Done') and 'Transparency composited on white' in out[0], out[0]
    assert _load(_sliders(out, 'denoise')[0][1]).shape == (20, 24)

    rgb16 = tmp_path / 'rgb16.png'
    cv2.imwrite(str(rgb16), np.random.default_rng(8).integers(0, 65536, (24, 20, 3)).astype(np.uint16))
    out = _call(client, 'sr', 'restore', rgb16)
    assert out[0].startswith('**Done') and '16-bit image restored at 16-bit precision' in out[0], out[0]
    out = _call(client, 'denoise', 'simulate', rgb16)   # simulation and scores work in 8 bit
    assert out[0].startswith('**Done') and '16-bit image reduced to 8-bit' in out[0], out[0]

    gray = _img(tmp_path / 'gray.png', _rand((40, 40), 10))
    out = _call(client, 'sr', 'simulate', gray)
    assert out[0].startswith('**Done'), out[0]
    assert _load(_sliders(out, 'sr')[0][1]).shape == (40, 40, 3)


def test_huge_input_is_downscaled_with_notice(client, tmp_path):
    huge = tmp_path / 'huge.png'
    Image.new('RGB', (8000, 8000), (90, 140, 200)).save(huge, compress_level=1)
    out = _call(client, 'sr', 'restore', huge)
    assert out[0].startswith('**Done') and 'downscaled' in out[0] and '8000×8000' in out[0], out[0]
    h, w, _ = _load(_sliders(out, 'sr')[0][1]).shape
    import torch

    from restore_dhp.demo import DEFAULT_MAX_PIXELS
    caps = DEFAULT_MAX_PIXELS['cuda' if torch.cuda.is_available() else 'cpu']   # the server picks its device so
    assert h == w and h * w <= caps['sr'] * 16


def test_huge_16bit_png_is_refused_from_its_header(client, tmp_path):
    """A 9990×9990 16-bit RGB PNG (571 MB decoded) is refused before decoding, in one line."""
    from test_imageio import png_header_only
    path = tmp_path / 'bomb.png'
    path.write_bytes(png_header_only(9990, 9990, bit_depth=16, colour_type=2))
    out = _call(client, 'sr', 'restore', path)
    assert out[0].startswith('⚠️') and '9990×9990' in out[0] and 'MB' in out[0] and '\n' not in out[0], out[0]


def test_two_concurrent_requests_get_their_own_results(demo_app, tmp_path):
    url, _, _ = demo_app
    a = _rand((12, 20, 3), 11)
    b = np.full((18, 10, 3), 200, np.uint8)
    paths = {'a': _img(tmp_path / 'a.png', a), 'b': _img(tmp_path / 'b.png', b)}
    results, errors = {}, []

    def worker(key):
        try:
            results[key] = _call(Client(url, verbose=False), 'sr', 'restore', paths[key])
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in ('a', 'b')]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert not errors and set(results) == {'a', 'b'}
    from restore_dhp.degradations import matlab_resize
    for key, src in (('a', a), ('b', b)):
        out = results[key]
        assert out[0].startswith('**Done'), out[0]
        before = _load(_sliders(out, 'sr')[0][0])
        assert np.array_equal(before, matlab_resize(src, 4.0))   # each got the bicubic of its own input
        for pair in _sliders(out, 'sr'):
            assert _load(pair[1]).shape == (src.shape[0] * 4, src.shape[1] * 4, 3)


def test_no_error_line_in_the_server_log(client, demo_app, tmp_path):
    """Issue 32: the first request printed the profiler's 'ERROR: External init callback ...' line."""
    _call(client, 'denoise', 'restore', _img(tmp_path / 'g.png', _rand((16, 16), 9)))
    assert 'ERROR' not in Path(demo_app[2]).read_text()


def test_console_lists_loaded_models(demo_app):
    _, _, log = demo_app
    text = Path(log).read_text()
    assert 'loaded baseline, dhp60, dhp40, dhp20' in text


def test_missing_weights_exit_with_clear_error(tmp_path):
    r = subprocess.run([sys.executable, str(REPO / 'app.py'), '--weights-dir', str(tmp_path), '--port', '1'],
                       cwd=REPO, capture_output=True, text=True, timeout=180)
    assert r.returncode == 2
    assert 'srresnet_x4_baseline.safetensors' in r.stderr and 'dncnn_s70_dhp20.safetensors' in r.stderr
    assert 'weights/README.md' in r.stderr and 'Traceback' not in r.stderr


def test_partial_weights_are_reported(tmp_path):
    from restore_dhp import demo
    write_tiny_demo_weights(tmp_path, variants=('baseline', 'dhp40'), tasks=('sr',))
    (tmp_path / 'dncnn_s70_dhp20.safetensors').write_bytes(b'broken')
    reg = demo.load_registry(tmp_path)
    assert reg.tasks() == ['sr'] and [m.variant for m in reg.models['sr']] == ['baseline', 'dhp40']
    assert [p.name for p in reg.missing['sr']] == ['srresnet_x4_dhp100.safetensors', 'srresnet_x4_dhp60.safetensors',
                                                'srresnet_x4_dhp20.safetensors', 'edsr_x4_baseline.safetensors',
                                                'edsr_x4_dhp40.safetensors']  # the task's other network too
    assert len(reg.missing['denoise']) == 3 and len(reg.broken['denoise']) == 1
    text = '\n'.join(reg.summary_lines())
    assert 'srresnet_x4_dhp60.safetensors' in text and 'weights/README.md' in text
    with pytest.raises(demo.InputError, match='unavailable'):
        demo.process_request(reg, 'denoise', 'simulate', _img(tmp_path / 'z.png', np.zeros((16, 16), np.uint8)))


def test_limits_read_as_sizes_and_grow_on_a_gpu():
    import torch

    from restore_dhp import demo
    assert demo.pixel_limit_text(64 * 64) == '64×64' and demo.pixel_limit_text(2_000_000) == '2.0 MP'
    assert demo.pixel_limit_text(5000) == '5,000 pixels'
    cpu, gpu = demo.default_max_pixels(torch.device('cpu')), demo.default_max_pixels(torch.device('cuda'))
    assert all(gpu[task] >= 16 * cpu[task] for task in cpu)


def _raw_call(url, data):
    """POST /gradio_api/call/restore with ``data`` as sent (no client-side upload), return the outputs."""
    import json
    import urllib.request
    req = urllib.request.Request(url.rstrip('/') + '/gradio_api/call/restore', method='POST',
                                 data=json.dumps({'data': data}).encode(), headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(req, timeout=60) as r:
        event = json.load(r)['event_id']
    with urllib.request.urlopen(f"{url.rstrip('/')}/gradio_api/call/restore/{event}", timeout=180) as r:
        text = r.read().decode()
    assert 'event: complete' in text, text
    return json.loads(text.split('event: complete', 1)[1].split('data:', 1)[1].strip().splitlines()[0])


def test_api_cannot_read_server_files(demo_app, tmp_path):
    """A file-data dict naming a server path is refused in one line, the same whether the file exists or not."""
    url, weights, _ = demo_app
    existing = _img(tmp_path / 'secret.png', _rand((32, 32, 3), 12))
    outs = {name: _raw_call(url, ['sr', 'restore', {'path': path}, 0])
            for name, path in (('existing', existing), ('missing', str(tmp_path / 'missing.png')),
                               ('weights', str(weights / 'srresnet_x4_baseline.safetensors')))}
    from restore_dhp.demo import UPLOAD_REFUSED
    for name, out in outs.items():
        assert out[0] == f'⚠️ {UPLOAD_REFUSED}', (name, out[0])
        assert all(_shown(o) is None for o in out[3:]), name   # no image comes back
    from gradio.utils import get_upload_folder
    escape = str(Path(get_upload_folder()) / '..' / Path(existing).relative_to('/'))
    assert _raw_call(url, ['sr', 'restore', {'path': escape}, 0])[0] == f'⚠️ {UPLOAD_REFUSED}'


def test_examples_are_served_from_the_upload_cache(demo_app):
    """The page's examples are copies Gradio keeps in its cache, so choosing one still works."""
    import json
    import urllib.request
    url, _, _ = demo_app
    with urllib.request.urlopen(url.rstrip('/') + '/config', timeout=60) as r:
        config = json.load(r)
    samples = [c['props']['samples'] for c in config['components'] if c.get('type') in ('dataset', 'examples')]
    first = samples[0][0][0]
    out = _raw_call(url, ['sr', 'simulate', first, 0])
    assert out[0].startswith('**Done'), out[0]


def test_16bit_input_is_restored_alike_by_infer_and_the_demo(client, demo_app, tmp_path, capsys):
    """The same 16-bit RGB file: the demo shows exactly infer's 16-bit result reduced to 8-bit, same notice."""
    from restore_dhp.data.imageio import NOTICE_16BIT
    from restore_dhp.data.pixels import to_uint8
    from restore_dhp.infer import main as infer_main
    _, weights, _ = demo_app
    rgb16 = tmp_path / 'in' / 'rgb16.png'
    rgb16.parent.mkdir()
    cv2.imwrite(str(rgb16), np.random.default_rng(13).integers(0, 65536, (24, 20, 3)).astype(np.uint16))
    assert infer_main(['--weights', str(weights / 'srresnet_x4_baseline.safetensors'), '--input', str(rgb16),
                       '--output', str(tmp_path / 'out'), '--device', 'cpu', '--quiet']) == 0
    assert NOTICE_16BIT in capsys.readouterr().err
    written = cv2.imread(str(tmp_path / 'out' / 'rgb16.png'), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16
    from_infer = to_uint8(cv2.cvtColor(written, cv2.COLOR_BGR2RGB))
    out = _call(client, 'sr', 'restore', rgb16)
    assert NOTICE_16BIT in out[0], out[0]
    from_demo = _load(_sliders(out, 'sr')[0][1])
    diff = np.abs(from_demo.astype(int) - from_infer.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999, (diff.max(), (diff == 0).mean())


def test_the_demo_lists_the_other_shipped_networks(tmp_path):
    """Issue 29: BasicSR's EDSR ships beside SRResNet and DnCNN; the demo loads and names them."""
    from restore_dhp import demo, network
    from restore_dhp.checkpoint import save_compact
    write_tiny_demo_weights(tmp_path, variants=('baseline',), tasks=('sr',))
    edsr = network.build('EDSR', dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, upscale=4))
    save_compact(edsr, tmp_path / 'edsr_x4_baseline.safetensors', info={'experiment': 'toy'})
    reg = demo.load_registry(tmp_path)
    names = [m.name for m in reg.models['sr']]
    assert names[0].startswith('SRResNet') and any(n.startswith('EDSR') for n in names), names
    result = demo.process_request(reg, 'sr', 'simulate', _img(tmp_path / 'e.png', np.full((48, 48, 3), 99, np.uint8)))
    assert any(r.name.startswith('EDSR') for r in result.results)
