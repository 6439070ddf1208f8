"""cache: gpu: training batches made on the device match the per-item CPU pipeline's conventions."""
import itertools
import os

import numpy as np
import pytest
import torch

import restore_dhp  # noqa: F401
from basicsr.data import build_dataloader, build_dataset
from restore_dhp.data.device_cache import dihedral_grid
from restore_dhp.data.common import augment

from train_helpers import make_images


@pytest.mark.parametrize('flags', list(itertools.product([False, True], repeat=3)))
def test_dihedral_grid_is_the_cpu_augmentation(flags, monkeypatch):
    hflip, vflip, transpose = flags
    patch = np.random.default_rng(0).integers(0, 255, (5, 5, 3), dtype=np.uint8)
    draws = iter([0.0 if f else 1.0 for f in (hflip, vflip, transpose)])
    monkeypatch.setattr('restore_dhp.data.common.random.random', lambda: next(draws))
    (expected,) = augment([patch], hflip=True, rot=True)
    rows, cols = dihedral_grid(5, *(torch.tensor([f]) for f in (transpose, vflip, hflip)))
    assert np.array_equal(patch[rows[0].numpy(), cols[0].numpy()], expected)


def _sr_opt(root, **extra):
    make_images(os.path.join(root, 'hr'), count=3, size=40)
    return {'name': 'tiny', 'type': 'SRBicubicDataset', 'dataroot_gt': os.path.join(root, 'hr'), 'scale': 4,
            'gt_size': 16, 'phase': 'train', 'cache': 'gpu', 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 5,
            'dataset_enlarge_ratio': 4, **extra}


def _find(patch, image):
    """(top, left, transform) of ``patch`` (C, p, p) inside ``image`` (C, H, W) under one of the 8 dihedral maps."""
    p = patch.shape[-1]
    for top in range(image.shape[1] - p + 1):
        for left in range(image.shape[2] - p + 1):
            crop = image[:, top:top + p, left:left + p]
            for flags in itertools.product([False, True], repeat=3):
                rows, cols = dihedral_grid(p, *(torch.tensor([f]) for f in flags))
                if torch.equal(crop[:, rows[0], cols[0]], patch):
                    return top, left, flags
    return None


def test_sr_batches_are_aligned_lr_hr_patches(tmp_path):
    torch.manual_seed(0)
    dataset = build_dataset(_sr_opt(str(tmp_path)))
    items = dataset.__getitems__([0, 1, 2, 4])
    assert [it['gt_path'] for it in items] == [dataset.gt_paths[i] for i in (0, 1, 2, 1)]
    stacks = dataset._device_sampler.stacks
    for it, n in zip(items, (0, 1, 2, 1)):
        assert it['lq'].shape == (3, 4, 4) and it['gt'].shape == (3, 16, 16)
        lr = _image(stacks['lq'], n)
        hr = _image(stacks['gt'], n)
        found = _find(it['lq'], lr)
        assert found is not None
        top, left, flags = found
        rows, cols = dihedral_grid(16, *(torch.tensor([f]) for f in flags))
        assert torch.equal(hr[:, 4 * top:4 * top + 16, 4 * left:4 * left + 16][:, rows[0], cols[0]], it['gt'])


def _image(stack, n):
    h, w, c = int(stack.heights[n]), int(stack.widths[n]), stack.channels
    start = int(stack.offsets[n])
    return stack.flat[start:start + h * w * c].view(h, w, c).permute(2, 0, 1).float() / 255


def test_basicsr_dataloader_yields_whole_batches(tmp_path):
    opt = _sr_opt(str(tmp_path), repeat=4)
    dataset = build_dataset(opt)
    loader = build_dataloader(dataset, opt, num_gpu=0, dist=False, sampler=None, seed=0)
    batch = next(iter(loader))
    assert batch['lq'].shape == (5, 3, 4, 4) and batch['gt'].shape == (5, 3, 16, 16)
    assert len(batch['gt_path']) == 5 and 0 <= batch['gt'].min() and batch['gt'].max() <= 1


def test_denoise_batches_have_fresh_sigma_noise(tmp_path):
    make_images(os.path.join(str(tmp_path), 'g'), count=2, size=40, gray=True)
    dataset = build_dataset({'name': 'g', 'type': 'DenoiseDataset', 'dataroot_gt': os.path.join(str(tmp_path), 'g'),
                             'sigma': 70, 'gt_size': 24, 'phase': 'train', 'cache': 'gpu'})
    items = dataset.__getitems__(list(range(32)))
    noise = torch.stack([it['lq'] - it['gt'] for it in items])
    assert noise.shape == (32, 1, 24, 24)
    assert abs(noise.std().item() - 70 / 255) < 0.01
    assert not torch.equal(noise[0], noise[2])


@pytest.mark.parametrize('extra,message', [({'num_worker_per_gpu': 2}, 'num_worker_per_gpu: 0'),
                                           ({'pin_memory': True}, 'drop pin_memory'),
                                           ({'cache': 'disk'}, 'cache must be true, false or gpu')])
def test_bad_cache_options(tmp_path, extra, message):
    with pytest.raises(ValueError, match=message):
        build_dataset(_sr_opt(str(tmp_path), **extra))


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_batches_are_made_on_the_gpu(tmp_path):
    dataset = build_dataset(_sr_opt(str(tmp_path)))
    items = dataset.__getitems__([0, 1])
    assert items[0]['lq'].is_cuda and items[0]['gt'].is_cuda
