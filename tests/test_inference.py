"""The infer command (restore_dhp.infer) and its library (restore_dhp.run_model), with tiny random-width models."""
from __future__ import annotations

import tracemalloc

import cv2
import numpy as np
import pytest
import torch

import restore_dhp  # noqa: F401
from nets import compact
from restore_dhp import network
from restore_dhp.checkpoint import save_compact
from restore_dhp.infer import main as infer_main
from restore_dhp.checkpoint import load_compact
from restore_dhp.data.pixels import image_to_tensor, tensor_to_image
from restore_dhp.run_model import forward_tiled, resolve_device, restore_image

SR_WIDTHS = {'trunk': 8, 'block00': 5, 'block01': 16}
DN_WIDTHS = {'feat00': 7, 'feat01': 16, 'feat02': 3, 'feat03': 11}


def _randomise_bn(model):
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model


@pytest.fixture(scope='module')
def sr_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('w') / 'sr.safetensors'
    model = _randomise_bn(compact('srresnet', SR_WIDTHS, num_blocks=2, num_feat=16))
    with torch.no_grad():  # outputs in the image range like a trained model's, not saturated
        model.convs['tail'].weight.mul_(0.05)
    save_compact(model, path)
    return path


@pytest.fixture(scope='module')
def dn_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('w') / 'dn.safetensors'
    save_compact(_randomise_bn(compact('dncnn', DN_WIDTHS, num_layers=5, num_feat=16)), path)
    return path


def _rand(shape, dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    peak = np.iinfo(dtype).max
    return rng.integers(0, peak + 1, size=shape, dtype=np.int64).astype(dtype)


def _write(path, img_rgb):
    img = img_rgb[:, :, ::-1] if img_rgb.ndim == 3 and img_rgb.shape[2] == 3 else img_rgb
    if img_rgb.ndim == 3 and img_rgb.shape[2] == 4:
        img = img_rgb[:, :, [2, 1, 0, 3]]
    assert cv2.imwrite(str(path), np.ascontiguousarray(img))


def _read(path):
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_infer_sr_gray_rgb_rgba_16bit(tmp_path, sr_ckpt, capsys):
    inp = tmp_path / 'in'
    inp.mkdir()
    _write(inp / 'rgb.png', _rand((10, 12, 3)))
    _write(inp / 'gray.png', _rand((9, 11)))
    _write(inp / 'rgba.png', _rand((8, 8, 4)))
    _write(inp / 'deep.png', _rand((7, 9, 3), np.uint16))
    _write(inp / 'rgb.jpg', _rand((6, 6, 3)))  # same stem as rgb.png: both outputs kept
    out = tmp_path / 'out'
    rc = infer_main(['--weights', str(sr_ckpt), '--input', str(inp), '--output', str(out), '--quiet'])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert _read(out / 'rgb_png.png').shape == (40, 48, 3)
    assert _read(out / 'rgb_jpg.png').shape == (24, 24, 3)
    gray = _read(out / 'gray.png')
    assert gray.shape == (36, 44) and gray.dtype == np.uint8
    assert _read(out / 'rgba.png').shape == (32, 32, 4)   # alpha kept (tests/test_infer_flags.py: how)
    deep = _read(out / 'deep.png')
    assert deep.dtype == np.uint16 and deep.shape == (28, 36, 3)
    assert 'transparency composited on white' not in err
    assert '16-bit' in err


def test_infer_rgb_into_gray_denoiser(tmp_path, dn_ckpt, capsys):
    src = tmp_path / 'c.png'
    _write(src, _rand((12, 13, 3)))
    rc = infer_main(['--weights', str(dn_ckpt), '--input', str(src), '--output', str(tmp_path / 'o')])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert _read(tmp_path / 'o' / 'c.png').shape == (12, 13)
    assert 'converted to gray' in err


def test_infer_bad_file_keeps_other_outputs(tmp_path, dn_ckpt, capsys):
    inp = tmp_path / 'in'
    inp.mkdir()
    _write(inp / 'good.png', _rand((8, 8)))
    (inp / 'broken.png').write_bytes(b'not an image at all')
    (inp / 'empty.jpg').write_bytes(b'')
    rc = infer_main(['--weights', str(dn_ckpt), '--input', str(inp), '--output', str(tmp_path / 'o'), '--quiet'])
    err = capsys.readouterr().err
    assert rc == 2
    assert (tmp_path / 'o' / 'good.png').exists()
    errors = [line for line in err.splitlines() if line.startswith('error:')]
    assert len(errors) == 2
    assert any('broken.png' in e and 'not a readable image' in e for e in errors)
    assert any('empty.jpg' in e and 'empty file' in e for e in errors)


def test_infer_empty_folder_and_missing_input(tmp_path, dn_ckpt, capsys):
    (tmp_path / 'none').mkdir()
    rc = infer_main(['--weights', str(dn_ckpt), '--input', str(tmp_path / 'none'), '--output', str(tmp_path / 'o')])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and 'holds no images' in err[0]
    rc = infer_main(['--weights', str(dn_ckpt), '--input', str(tmp_path / 'nope'), '--output', str(tmp_path / 'o')])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and 'no such file' in err[0]
    rc = infer_main(['--weights', str(tmp_path / 'missing.safetensors'), '--input', str(tmp_path / 'none'),
                     '--output', str(tmp_path / 'o')])
    assert rc == 2


@pytest.mark.parametrize('kind', ['sr', 'dn'])
def test_tiled_matches_untiled(kind, sr_ckpt, dn_ckpt):
    model = load_compact(sr_ckpt if kind == 'sr' else dn_ckpt)
    img = _rand((37, 45, 3) if kind == 'sr' else (37, 45), seed=3)
    facts = network.structure(model)
    x = image_to_tensor(img, facts.in_channels)
    with torch.no_grad():
        full = model(x)
    # overlap beyond the receptive field: the tiles see exactly the context the whole image gives
    tiled = forward_tiled(model, x, facts.scale, tile=16, overlap=16)
    assert tiled.shape == full.shape
    assert (tiled - full).abs().max().item() < 1e-5
    a = restore_image(model, img, tile=None)
    b = restore_image(model, img, tile=16, overlap=16)
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.01
    # a small overlap still agrees on average to within a few gray levels (seams only near tile borders),
    # and more overlap is closer
    small = tensor_to_image(forward_tiled(model, x, facts.scale, tile=16, overlap=4))
    medium = tensor_to_image(forward_tiled(model, x, facts.scale, tile=16, overlap=8))
    small_err = np.abs(small.astype(int) - a.astype(int)).mean()
    assert np.abs(medium.astype(int) - a.astype(int)).mean() <= small_err < 3.0


def _one_input(tmp_path, name='a.png'):
    inp = tmp_path / 'in'
    inp.mkdir(exist_ok=True)
    _write(inp / name, _rand((8, 8)))
    return inp


def _infer(ckpt, inp, out, *extra):
    return infer_main(['--weights', str(ckpt), '--input', str(inp), '--output', str(out), '--quiet', *extra])


def _error_lines(capsys):
    return [line for line in capsys.readouterr().err.strip().splitlines() if line]


def test_infer_refuses_to_replace_inputs(tmp_path, dn_ckpt, capsys):
    inp = _one_input(tmp_path)
    original = (inp / 'a.png').read_bytes()
    for extra in ((), ('--overwrite',)):  # not even with --overwrite
        assert _infer(dn_ckpt, inp, inp, *extra) == 2
        err = _error_lines(capsys)
        assert len(err) == 1 and 'would replace 1 input file(s)' in err[0] and 'a.png' in err[0], err
        assert (inp / 'a.png').read_bytes() == original
    # a single input file whose output name is itself
    assert _infer(dn_ckpt, inp / 'a.png', inp) == 2
    assert 'would replace' in _error_lines(capsys)[0]
    assert (inp / 'a.png').read_bytes() == original


def test_infer_same_folder_without_name_clash_is_allowed(tmp_path, dn_ckpt, capsys):
    inp = _one_input(tmp_path, 'b.jpg')
    original = (inp / 'b.jpg').read_bytes()
    assert _infer(dn_ckpt, inp, inp) == 0, capsys.readouterr().err
    assert (inp / 'b.png').exists() and (inp / 'b.jpg').read_bytes() == original


def test_infer_never_overwrites_outputs_without_flag(tmp_path, dn_ckpt, capsys):
    inp = _one_input(tmp_path)
    _write(inp / 'c.png', _rand((8, 8), seed=2))
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'a.png').write_bytes(b'keep me')
    assert _infer(dn_ckpt, inp, out) == 2
    err = _error_lines(capsys)
    assert len(err) == 1 and '1 of 2 output file(s) already exist' in err[0] and '--overwrite' in err[0], err
    assert (out / 'a.png').read_bytes() == b'keep me' and not (out / 'c.png').exists()  # nothing written
    assert _infer(dn_ckpt, inp, out, '--overwrite') == 0
    assert _read(out / 'a.png').shape == (8, 8)


def test_infer_output_that_is_a_file(tmp_path, dn_ckpt, capsys):
    inp = _one_input(tmp_path)
    target = tmp_path / 'out.png'
    target.write_bytes(b'a file')
    assert _infer(dn_ckpt, inp, target) == 2
    err = _error_lines(capsys)
    assert len(err) == 1 and 'is a file' in err[0], err
    assert target.read_bytes() == b'a file'


def test_infer_cuda_without_cuda_is_one_line(tmp_path, dn_ckpt, capsys):
    if torch.cuda.is_available():
        pytest.skip('CUDA is available here')
    assert _infer(dn_ckpt, _one_input(tmp_path), tmp_path / 'o', '--device', 'cuda') == 2
    err = _error_lines(capsys)
    assert len(err) == 1 and 'no CUDA device' in err[0]
    assert resolve_device('auto').type == 'cpu'


@pytest.mark.parametrize('dtype', [np.uint8, np.uint16])
def test_restore_image_memory_is_the_output_not_a_float_copy(sr_ckpt, dtype):
    """Tiles go into a preallocated output of the final dtype: numpy never holds a full-size float copy."""
    model = load_compact(sr_ckpt)
    img = _rand((96, 128, 3), dtype, seed=4)
    out_bytes = 96 * 4 * 128 * 4 * 3 * np.dtype(dtype).itemsize
    tracemalloc.start()
    try:
        out = restore_image(model, img, tile=32, overlap=8)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.dtype == dtype and out.shape == (384, 512, 3)
    # the output itself plus tile-sized buffers; a float32 copy would be 4/itemsize times the output
    assert peak < 1.5 * out_bytes, (peak, out_bytes)


def test_gray_input_to_rgb_model_is_luma_of_outputs(sr_ckpt):
    model = load_compact(sr_ckpt)
    gray = _rand((20, 24), seed=5)
    rgb = restore_image(model, np.repeat(gray[:, :, None], 3, axis=2), tile=8, overlap=4)
    out = restore_image(model, gray, tile=8, overlap=4)
    assert out.shape == (80, 96)
    assert np.array_equal(out, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith('error: ') and 'Traceback' not in err[0], err
    return err[0]


def test_memory_is_budgeted_from_the_header_before_anything_runs(tmp_path, sr_ckpt, capsys):
    """A 20000×20000 PNG (only its header is real) is refused in one line naming the limit and the flag."""
    from test_imageio import png_header_only
    (tmp_path / 'in').mkdir()
    (tmp_path / 'in' / 'huge.png').write_bytes(png_header_only(20000, 20000))
    _write(tmp_path / 'in' / 'small.png', _rand((8, 8, 3)))
    args = ['--weights', str(sr_ckpt), '--input', str(tmp_path / 'in'), '--output', str(tmp_path / 'out'),
            '--device', 'cpu', '--quiet']
    assert infer_main(args + ['--max-memory-gb', '8']) == 2
    line = _one_error_line(capsys)
    assert 'huge.png: 20000×20000 needs about' in line and 'over the memory limit of 8.0 GB' in line, line
    assert 'raise it with --max-memory-gb' in line, line
    assert not (tmp_path / 'out').exists()      # nothing created, nothing computed
    (tmp_path / 'in' / 'huge.png').write_bytes(png_header_only(60000, 60000))   # ~170 GB: over any default
    assert infer_main(args) == 2
    assert 'over the memory limit of' in _one_error_line(capsys)


def test_memory_estimate_grows_with_the_output_and_the_tile():
    from restore_dhp.data.imageio import ImageHeader
    from restore_dhp.run_model import estimate_memory
    net = network.build('SRResNet', dict(num_blocks=2, num_feat=16), None, 'meta')
    small, large = (estimate_memory(ImageHeader(s, s, 3, 1, False), net, 64) for s in (1000, 2000))
    assert large['output'] == 4 * small['output'] == 4 * (4000 * 4000 * 3)
    assert large['tile'] == small['tile'] > 0          # one tile's working memory does not grow with the image
    assert estimate_memory(ImageHeader(1000, 1000, 3, 1, False), net, 128)['tile'] > small['tile']
    assert estimate_memory(ImageHeader(1000, 1000, 3, 2, False), net, 64)['output'] == 2 * small['output']
    resized = estimate_memory(ImageHeader(1000, 1000, 3, 1, False), net, 64, outscale=16)
    assert resized['resized'] == 16000 * 16000 * 3 and small['resized'] == 0
    assert resized['total'] >= small['input'] + small['output'] + resized['resized']


def test_outscale_counts_in_the_memory_budget(tmp_path, sr_ckpt, capsys):
    """--outscale 16 on a 4000×4000 input asks for a 64000×64000 result (12 GB): refused before anything runs."""
    from test_imageio import png_header_only
    (tmp_path / 'in').mkdir()
    (tmp_path / 'in' / 'big.png').write_bytes(png_header_only(4000, 4000))
    args = ['--weights', str(sr_ckpt), '--input', str(tmp_path / 'in'), '--output', str(tmp_path / 'out'),
            '--device', 'cpu', '--quiet', '--max-memory-gb', '4']
    assert infer_main(args + ['--outscale', '16']) == 2
    line = _one_error_line(capsys)
    assert 'resized to --outscale 16 12.3 GB' in line and 'over the memory limit of 4.0 GB' in line, line
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('where', ['under_a_file', 'proc', 'unwritable'])
def test_output_folder_that_cannot_be_made_fails_before_any_image(tmp_path, dn_ckpt, capsys, monkeypatch, where):
    import restore_dhp.infer as infer
    import restore_dhp.infer_io as infer_io
    _write(tmp_path / 'a.png', _rand((8, 8)))
    (tmp_path / 'file').write_text('x')
    out = {'under_a_file': tmp_path / 'file' / 'sub', 'proc': '/proc/self/restore_dhp_out',
           'unwritable': tmp_path / 'ro'}[where]
    if where == 'unwritable':   # as root a read-only mode does not stop writes; make the probe fail instead
        def refuse(*a, **k):
            raise PermissionError(13, 'Permission denied')
        monkeypatch.setattr(infer_io.tempfile, 'TemporaryFile', refuse)
    computed = []
    monkeypatch.setattr(infer, 'restore_image', lambda *a, **k: computed.append(1))
    assert infer_main(['--weights', str(dn_ckpt), '--input', str(tmp_path / 'a.png'), '--output', str(out),
                       '--device', 'cpu', '--quiet']) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f'error: --output {out}: cannot write there ('), line
    assert computed == []
