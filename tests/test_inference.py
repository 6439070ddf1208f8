"""Inference CLI (restore_dhp.infer) and tiled vs untiled agreement, with tiny random-width models."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import restore_dhp  # noqa: F401
from restore_dhp.archs.dncnn_arch import DnCNNCompact
from restore_dhp.archs.srresnet_arch import SRResNetCompact
from restore_dhp.checkpoint import save_compact
from restore_dhp.infer import main as infer_main
from restore_dhp.inference import forward_tiled, image_to_tensor, restore_image, tensor_to_image

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
    model = _randomise_bn(SRResNetCompact(num_blocks=2, num_feat=16, widths=SR_WIDTHS))
    with torch.no_grad():  # outputs in the image range like a trained model's, not saturated
        model.convs['tail'].weight.mul_(0.05)
    save_compact(model, path)
    return path


@pytest.fixture(scope='module')
def dn_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('w') / 'dn.safetensors'
    save_compact(_randomise_bn(DnCNNCompact(num_layers=5, num_feat=16, widths=DN_WIDTHS)), path)
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
    assert _read(out / 'rgba.png').shape == (32, 32, 3)
    deep = _read(out / 'deep.png')
    assert deep.dtype == np.uint16 and deep.shape == (28, 36, 3)
    assert 'alpha channel dropped' in err
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
    from restore_dhp.checkpoint import load_compact
    model = load_compact(sr_ckpt if kind == 'sr' else dn_ckpt)
    img = _rand((37, 45, 3) if kind == 'sr' else (37, 45), seed=3)
    x = image_to_tensor(img, model.in_channels)
    with torch.no_grad():
        full = model(x)
    # overlap beyond the receptive field: the tiles see exactly the context the whole image gives
    tiled = forward_tiled(model, x, model.scale, tile=16, overlap=16)
    assert tiled.shape == full.shape
    assert (tiled - full).abs().max().item() < 1e-5
    a = restore_image(model, img, tile=None)
    b = restore_image(model, img, tile=16, overlap=16)
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.01
    # a small overlap still agrees on average to within a few gray levels (seams only near tile borders),
    # and more overlap is closer
    small = tensor_to_image(forward_tiled(model, x, model.scale, tile=16, overlap=4))
    medium = tensor_to_image(forward_tiled(model, x, model.scale, tile=16, overlap=8))
    small_err = np.abs(small.astype(int) - a.astype(int)).mean()
    assert np.abs(medium.astype(int) - a.astype(int)).mean() <= small_err < 3.0
