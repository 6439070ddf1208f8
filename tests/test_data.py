import cv2
import numpy as np
import pytest
import torch

import restore_dhp  # noqa: F401  (registers datasets)
from basicsr.data import build_dataloader, build_dataset

from restore_dhp.data.imageio import read_image, write_png
from restore_dhp.degradations import bicubic_downscale, fixed_noise
from restore_dhp.data.testsets import DENOISE_SETS, SR_SETS, load_denoise_set, load_sr_pairs


def _img(rng, h, w, c=3):
    # smooth-ish content so bicubic comparisons are meaningful
    base = rng.integers(0, 256, (h // 4 + 2, w // 4 + 2, c)).astype(np.float32)
    img = cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC)
    img = img.reshape(h, w, c)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture
def sr_root(tmp_path):
    """tmp/Set5/HR/img_00N.png + LR_bicubic/X4/img_00Nx4.png (3 images, one gray, one not a multiple of 4)."""
    rng = np.random.default_rng(0)
    hr_dir, lr_dir = tmp_path / 'Set5' / 'HR', tmp_path / 'Set5' / 'LR_bicubic' / 'X4'
    sizes = [(40, 48, 3), (36, 44, 1), (42, 51, 3)]
    for i, (h, w, c) in enumerate(sizes, 1):
        hr = _img(rng, h, w, c)
        hr = hr[..., 0] if c == 1 else hr
        write_png(hr_dir / f'img_{i:03d}.png', hr)
        write_png(lr_dir / f'img_{i:03d}x4.png', bicubic_downscale(hr, 4))
    return tmp_path


@pytest.fixture
def gray_root(tmp_path):
    rng = np.random.default_rng(1)
    d = tmp_path / 'BSD68'
    for i in range(3):
        write_png(d / f'test{i + 1:03d}.png', _img(rng, 40 + 2 * i, 36, 1)[..., 0])
    write_png(d / 'test004.png', _img(rng, 38, 38, 3))  # RGB -> converted to gray
    return tmp_path


def test_set_names():
    assert SR_SETS == ('Set5', 'Set14', 'B100', 'Urban100', 'DIV2K')
    assert DENOISE_SETS == ('BSD68', 'Set12', 'DIV2K')


def test_load_sr_pairs(sr_root):
    pairs = load_sr_pairs(sr_root, 'Set5', scale=4)
    assert [p[0] for p in pairs] == ['img_001', 'img_002', 'img_003']
    for name, lr, hr in pairs:
        assert lr.dtype == np.uint8 and hr.dtype == np.uint8 and lr.ndim == 3 and hr.shape[2] == 3
        assert hr.shape[0] == 4 * lr.shape[0] and hr.shape[1] == 4 * lr.shape[1]
    assert pairs[2][2].shape == (40, 48, 3)  # 42x51 cropped to a multiple of 4
    g = pairs[1][2]
    assert np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 0], g[..., 2])


def test_load_sr_pairs_without_lr_folder_makes_bicubic(sr_root):
    import shutil
    shutil.copytree(sr_root / 'Set5' / 'HR', sr_root / 'DIV2K' / 'HR')
    for p in (sr_root / 'DIV2K' / 'HR').iterdir():
        p.rename(p.with_name('0801.png' if p.stem == 'img_001' else f'{int(p.stem[-1]) + 10:04d}.png'))
    pairs = load_sr_pairs(sr_root, 'DIV2K')
    assert [p[0] for p in pairs] == ['0801']  # only the validation range 0801-0900 is kept
    ref = load_sr_pairs(sr_root, 'Set5')[0]
    assert np.array_equal(pairs[0][1], ref[1]) and np.array_equal(pairs[0][2], ref[2])


def test_missing_and_empty_sets(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'Urban100.*HR'):
        load_sr_pairs(tmp_path, 'Urban100')
    (tmp_path / 'Set12').mkdir()
    with pytest.raises(FileNotFoundError, match=r'Set12.*(github|http)'):
        load_denoise_set(tmp_path, 'Set12')


def test_unreadable_file(sr_root):
    (sr_root / 'Set5' / 'HR' / 'img_002.png').write_bytes(b'not a png')
    with pytest.raises(ValueError, match='img_002.png'):
        load_sr_pairs(sr_root, 'Set5')


def test_size_mismatch(sr_root):
    write_png(sr_root / 'Set5' / 'LR_bicubic' / 'X4' / 'img_001x4.png', np.zeros((9, 12, 3), np.uint8))
    with pytest.raises(ValueError, match=r'mismatch.*img_001'):
        load_sr_pairs(sr_root, 'Set5')
    with pytest.raises(ValueError, match='img_001'):
        build_dataset(dict(name='s', type='SRBicubicDataset', phase='val', scale=4,
                           dataroot_gt=str(sr_root / 'Set5' / 'HR'),
                           dataroot_lq=str(sr_root / 'Set5' / 'LR_bicubic' / 'X4')))


def test_load_denoise_set_fixed_noise(gray_root):
    a = load_denoise_set(gray_root, 'BSD68', sigma_255=70, seed=0)
    b = load_denoise_set(gray_root, 'BSD68', sigma_255=70, seed=0)
    c = load_denoise_set(gray_root, 'BSD68', sigma_255=70, seed=1)
    assert len(a) == 4 and a[3][2].ndim == 2  # RGB converted to gray
    for (n1, x1, g1), (n2, x2, g2), (_, x3, _) in zip(a, b, c):
        assert n1 == n2 and x1.dtype == np.float32 and g1.dtype == np.uint8
        assert np.array_equal(x1, x2) and not np.array_equal(x1, x3)
        noise = x1 - g1 / 255.
        assert abs(noise.std() * 255 - 70) < 10
    assert a[0][1].min() < 0 and a[0][1].max() > 1  # not clipped
    # different images get different noise
    assert not np.allclose(a[0][1] - a[0][2] / 255., a[1][1][:40] - a[1][2][:40] / 255.)


def _sr_opt(root, phase, **kw):
    opt = dict(name='Set5', type='SRBicubicDataset', phase=phase, scale=4,
               dataroot_gt=str(root / 'Set5' / 'HR'), io_backend={'type': 'disk'})
    opt.update(kw)
    return opt


@pytest.mark.parametrize('with_lq', [True, False])
def test_sr_dataset_val(sr_root, with_lq):
    kw = {'dataroot_lq': str(sr_root / 'Set5' / 'LR_bicubic' / 'X4')} if with_lq else {}
    ds = build_dataset(_sr_opt(sr_root, 'val', **kw))
    assert len(ds) == 3
    ref = load_sr_pairs(sr_root, 'Set5')
    for i in range(3):
        item = ds[i]
        assert item['lq'].dtype == torch.float32 and item['gt'].shape[0] == 3
        assert item['gt_path'].endswith(f'img_{i + 1:03d}.png')
        lr = (item['lq'].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        hr = (item['gt'].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        assert np.array_equal(lr, ref[i][1]) and np.array_equal(hr, ref[i][2])


@pytest.mark.parametrize('cache', [True, False])
def test_sr_dataset_train_patches_aligned(sr_root, cache):
    ds = build_dataset(_sr_opt(sr_root, 'train', gt_size=32, use_hflip=True, use_rot=True, repeat=4,
                               cache=cache))
    assert len(ds) == 12
    for i in range(12):
        item = ds[i]
        assert item['gt'].shape == (3, 32, 32) and item['lq'].shape == (3, 8, 8)
        hr = (item['gt'].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        lr = item['lq'].permute(1, 2, 0).numpy() * 255
        down = bicubic_downscale(hr, 4).astype(np.float32)
        # interior agrees (patch borders differ: bicubic support reaches outside the patch)
        assert np.abs(down[2:-2, 2:-2] - lr[2:-2, 2:-2]).mean() < 2.0


def test_sr_dataset_dataloader(sr_root):
    opt = _sr_opt(sr_root, 'train', gt_size=16, repeat=2, use_shuffle=True, num_worker_per_gpu=0,
                  batch_size_per_gpu=2)
    ds = build_dataset(opt)
    dl = build_dataloader(ds, opt, num_gpu=0, dist=False, sampler=None, seed=0)
    batch = next(iter(dl))
    assert batch['gt'].shape == (2, 3, 16, 16) and batch['lq'].shape == (2, 3, 4, 4)
    vopt = _sr_opt(sr_root, 'val')
    vdl = build_dataloader(build_dataset(vopt), vopt, num_gpu=0, dist=False)
    assert next(iter(vdl))['gt'].shape == (1, 3, 40, 48)


def test_sr_dataset_bad_options(sr_root, tmp_path):
    with pytest.raises(ValueError, match='dataroot_gt'):
        build_dataset(dict(name='x', type='SRBicubicDataset', phase='val', scale=4))
    with pytest.raises(ValueError, match='scale'):
        build_dataset(dict(name='x', type='SRBicubicDataset', phase='val', dataroot_gt=str(sr_root / 'Set5' / 'HR')))
    with pytest.raises(ValueError, match='gt_size'):
        build_dataset(_sr_opt(sr_root, 'train'))
    with pytest.raises(ValueError, match='gt_size'):
        build_dataset(_sr_opt(sr_root, 'train', gt_size=30))  # not a multiple of 4
    with pytest.raises(ValueError, match='does not exist'):
        build_dataset(_sr_opt(sr_root, 'val', dataroot_gt=str(tmp_path / 'nope')))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='no images'):
        build_dataset(_sr_opt(sr_root, 'val', dataroot_gt=str(tmp_path / 'empty')))
    with pytest.raises(FileNotFoundError, match='img_001'):
        build_dataset(_sr_opt(sr_root, 'val', dataroot_lq=str(sr_root / 'Set5' / 'HR' / '..' / 'LR_bicubic')))


def _dn_opt(root, phase, **kw):
    opt = dict(name='BSD68', type='DenoiseDataset', phase=phase, dataroot_gt=str(root / 'BSD68'), sigma=70)
    opt.update(kw)
    return opt


def test_denoise_dataset_test_noise_is_fixed_and_shared(gray_root):
    ref = load_denoise_set(gray_root, 'BSD68', sigma_255=70, seed=3)
    ds1 = build_dataset(_dn_opt(gray_root, 'val', noise_seed=3))
    ds2 = build_dataset(_dn_opt(gray_root, 'test', noise_seed=3, cache=False))
    for i in range(len(ds1)):
        a, b = ds1[i], ds2[i]
        again = ds1[i]
        assert a['lq'].shape == (1,) + ref[i][2].shape and a['gt'].shape == a['lq'].shape
        assert torch.equal(a['lq'], b['lq']) and torch.equal(a['lq'], again['lq'])
        assert np.array_equal(a['lq'][0].numpy(), ref[i][1])
        assert np.array_equal((a['gt'][0].numpy() * 255).round().astype(np.uint8), ref[i][2])
    other = build_dataset(_dn_opt(gray_root, 'val', noise_seed=4))
    assert not torch.equal(other[0]['lq'], ds1[0]['lq'])


def test_fixed_noise_depends_on_name_not_folder():
    a = fixed_noise((8, 8), 25, 'img.png', 0)
    assert np.array_equal(a, fixed_noise((8, 8), 25, '/other/dir/img.png', 0))
    assert not np.array_equal(a, fixed_noise((8, 8), 25, 'img2.png', 0))


def test_denoise_dataset_train(gray_root):
    ds = build_dataset(_dn_opt(gray_root, 'train', gt_size=24, repeat=5))
    assert len(ds) == 20
    a, b = ds[0], ds[0]
    assert a['gt'].shape == (1, 24, 24) and a['lq'].shape == (1, 24, 24)
    n1, n2 = a['lq'] - a['gt'], b['lq'] - b['gt']
    assert not torch.allclose(n1, n2)  # fresh noise per draw
    assert abs(float(n1.std()) * 255 - 70) < 15
    opt = dict(_dn_opt(gray_root, 'train', gt_size=24, repeat=5), use_shuffle=True, num_worker_per_gpu=0,
               batch_size_per_gpu=4)
    batch = next(iter(build_dataloader(build_dataset(opt), opt, num_gpu=0, dist=False)))
    assert batch['lq'].shape == (4, 1, 24, 24)


def test_denoise_dataset_bad_options(gray_root, tmp_path):
    with pytest.raises(ValueError, match='dataroot_gt'):
        build_dataset(dict(name='x', type='DenoiseDataset', phase='val'))
    with pytest.raises(ValueError, match='sigma'):
        build_dataset(_dn_opt(gray_root, 'val', sigma='high'))
    with pytest.raises(ValueError, match='gt_size'):
        build_dataset(_dn_opt(gray_root, 'train', gt_size=500))  # every image smaller
    (gray_root / 'BSD68' / 'test002.png').write_bytes(b'\x89PNG broken')
    with pytest.raises(ValueError, match='test002.png'):
        build_dataset(_dn_opt(gray_root, 'val'))


def test_read_image_modes(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 200
    write_png(tmp_path / 'a.png', rgb)
    assert np.array_equal(read_image(tmp_path / 'a.png', 'rgb'), rgb)
    assert read_image(tmp_path / 'a.png', 'gray')[0, 0] == round(0.299 * 200)
