import logging

import numpy as np
import pytest

import restore_dhp  # noqa: F401  (torchvision alias before BasicSR)
from basicsr.metrics import calculate_psnr, calculate_ssim

from restore_dhp import metrics
from restore_dhp.metrics import DENOISE_CROP_BORDER, denoise_metrics, lpips_metric, sr_metrics


def _pair(shape, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-25, 26, shape), 0, 255).astype(np.uint8)
    return a, b


@pytest.mark.parametrize('shape,scale', [((48, 52, 3), 4), ((37, 45, 3), 4), ((30, 33, 3), 2), ((40, 44), 4)])
def test_sr_metrics_match_basicsr(shape, scale):
    out, hr = _pair(shape, sum(shape))
    m = sr_metrics(out, hr, scale=scale)
    assert set(m) == {'psnr_y', 'ssim_y', 'psnr_rgb'}
    bgr = (lambda x: x[..., ::-1]) if out.ndim == 3 else (lambda x: x)  # BasicSR wants BGR
    ref_psnr = calculate_psnr(bgr(out), bgr(hr), crop_border=scale, test_y_channel=True)
    ref_ssim = calculate_ssim(bgr(out), bgr(hr), crop_border=scale, test_y_channel=True)
    ref_rgb = calculate_psnr(out, hr, crop_border=scale, test_y_channel=False)
    assert abs(m['psnr_y'] - ref_psnr) < 1e-6
    assert abs(m['ssim_y'] - ref_ssim) < 1e-6
    assert abs(m['psnr_rgb'] - ref_rgb) < 1e-6


def test_sr_metrics_y_differs_from_rgb_order():
    # Swapping R and B must change Y: guards against a BGR/RGB mix-up.
    out, hr = _pair((40, 40, 3), 1)
    out2 = out.copy()
    out2[..., 0] = np.clip(out[..., 0].astype(int) + 30, 0, 255)
    out3 = out.copy()
    out3[..., 2] = np.clip(out[..., 2].astype(int) + 30, 0, 255)
    # red weighs 65.481, blue 24.966 in Y -> red change hurts Y-PSNR more
    assert sr_metrics(out2, hr)['psnr_y'] < sr_metrics(out3, hr)['psnr_y']


def test_identical_images():
    a, _ = _pair((32, 32, 3), 3)
    m = sr_metrics(a, a)
    assert m['psnr_y'] == float('inf') and m['ssim_y'] == pytest.approx(1.0)


def test_denoise_metrics_match_basicsr():
    assert DENOISE_CROP_BORDER == 1
    out, clean = _pair((41, 39), 7)
    m = denoise_metrics(out, clean)
    assert abs(m['psnr'] - calculate_psnr(out, clean, crop_border=1)) < 1e-6
    assert abs(m['ssim'] - calculate_ssim(out, clean, crop_border=1)) < 1e-6
    m0 = denoise_metrics(out, clean, crop_border=0)
    assert abs(m0['psnr'] - calculate_psnr(out, clean, crop_border=0)) < 1e-6
    with pytest.raises(ValueError):
        denoise_metrics(out, clean[:-1])


def test_lpips_missing_weights_returns_none_once(tmp_path, monkeypatch, caplog):
    import torch
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / 'hub'))
    monkeypatch.setattr(metrics, '_LPIPS_REPORTED', False)
    with caplog.at_level(logging.WARNING, logger='restore_dhp.metrics'):
        assert lpips_metric() is None
        assert lpips_metric() is None
    lines = [r for r in caplog.records if 'LPIPS' in r.getMessage()]
    assert len(lines) == 1 and 'left out' in lines[0].getMessage()


def test_lpips_with_cached_backbone(tmp_path, monkeypatch):
    pytest.importorskip('lpips')
    import torch
    import torchvision
    hub = tmp_path / 'hub'
    (hub / 'checkpoints').mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet().state_dict(), hub / 'checkpoints' / metrics.ALEXNET_WEIGHTS)
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(hub))

    def no_download(*a, **k):
        raise AssertionError('network download attempted')
    monkeypatch.setattr(torch.hub, 'download_url_to_file', no_download)
    f = lpips_metric()
    assert f is not None
    saved = torch.load(hub / 'checkpoints' / metrics.ALEXNET_WEIGHTS)
    assert torch.equal(f.model.net.slice1[0].weight, saved['features.0.weight'])
    assert torch.equal(getattr(f.model.net.slice5, '10').weight, saved['features.10.weight'])
    a, b = _pair((32, 32, 3), 5)
    assert f(a, a) == pytest.approx(0.0, abs=1e-6)
    assert f(a, b) > 0
