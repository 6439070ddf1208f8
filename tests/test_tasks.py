"""restore_dhp.tasks: each configured task's items, model input, floor and scores, the same for a test set and an
upload; the catalogue's tasks hold their entries; one image <-> tensor pair, one 8-bit conversion."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import restore_dhp  # noqa: F401
from restore_dhp import tasks
from restore_dhp.catalogue import TASKS, get_task
from restore_dhp.data.imageio import write_png
from restore_dhp.data.pixels import image_to_tensor, tensor_to_image, to_uint8
from restore_dhp.data.sr_pairs import load_sr_pair
from restore_dhp.degradations import matlab_resize
from restore_dhp.tasks import DenoiseTask, SRTask
from tools import structure_counts

REPO = Path(__file__).resolve().parents[1]


def _rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_names_and_objects():
    sr, dn = get_task('sr'), get_task('denoise')
    assert get_task(sr) is sr and (sr.key, dn.key) == ('sr', 'denoise') and (sr.channels, dn.channels) == (3, 1)
    assert sr.primary_metric == 'psnr_y' and dn.primary_metric == 'psnr'
    assert sr.score_columns == (('PSNR-Y (dB)', 'SSIM-Y'), ('psnr_y', 'ssim_y'))
    assert dn.score_columns == (('PSNR (dB)', 'SSIM'), ('psnr', 'ssim'))
    assert (sr.floor_label(), sr.floor_label(with_scale=True), dn.floor_label(), dn.floor_label(with_scale=True)) == (
        'Bicubic', 'Bicubic ×4', 'Noisy input', 'Noisy input')
    assert sr.conventions(3) == {'sigma_255': None, 'noise_seed': None}
    assert dn.at(sigma=25).conventions(3) == {'sigma_255': 25, 'noise_seed': 3}
    with pytest.raises(ValueError, match='unknown task'):
        get_task('deblur')


def test_the_catalogue_tasks_are_configured_tasks_holding_their_entries():
    """One object per shipped task: its behaviour at its configuration, and what the catalogue ships of it."""
    sr, dn = TASKS['sr'], TASKS['denoise']
    assert list(TASKS) == ['sr', 'denoise'] and get_task('sr') is sr
    assert sr == SRTask(scale=4) and dn == DenoiseTask(sigma=70) and (sr.scale, dn.scale, dn.sigma) == (4, 1, 70)
    assert (sr.entry.prefix, sr.entry.network, sr.entry.filename('dhp40')) == (
        'srresnet_x4', 'SRResNet', 'srresnet_x4_dhp40.safetensors')
    assert dn.entry.run_name('baseline') == 'dncnn_s70_baseline' and dn.entry.variants[0] == 'baseline'
    assert SRTask(scale=4).entry is None and repr(sr) == 'SRTask(scale=4)' and len({sr, SRTask(scale=4)}) == 1
    # another configuration: the same behaviour, no catalogue entry; the same one: the catalogue's object itself
    assert sr.at(scale=4) is sr and sr.at(sigma=25) is sr and dn.at(sigma=70.0) is dn and dn.at(scale=4) is dn
    x2, s25 = sr.at(scale=2), dn.at(sigma=25)
    assert x2 == SRTask(scale=2) and x2.entry is None and s25 == DenoiseTask(sigma=25) and s25.entry is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        sr.scale = 2
    for bad in (lambda: SRTask(scale=0), lambda: SRTask(scale=2.5), lambda: DenoiseTask(sigma=-1)):
        with pytest.raises(ValueError, match='must be'):
            bad()


def test_a_configured_task_works_at_its_own_scale():
    img = _rgb(40, 44)
    x2 = SRTask(scale=2)
    (name, lr, hr), notices = x2.upload_item(img, True, seed=0)
    assert lr.shape == (20, 22, 3) and hr.shape == (40, 44, 3) and notices == [] and name == tasks.UPLOAD_NOISE_NAME
    assert np.array_equal(x2.floor_output((name, lr, hr)), matlab_resize(lr, 2.0))
    assert x2.upload_pixels(100, simulate=True) == 400 and x2.upload_pixels(100, simulate=False) == 100
    assert x2.metrics(hr, hr)['psnr_y'] == float('inf')


def test_sr_upload_is_degraded_as_a_test_set_is(tmp_path):
    """A simulated SR upload and an HR file without an LR partner give the same LR (MATLAB bicubic of the crop)."""
    img = _rgb(50, 61)
    write_png(tmp_path / 'hr.png', img)
    sr = get_task('sr')
    (name, lr, hr), notices = sr.upload_item(img, True, seed=0)
    ref_lr, ref_hr = load_sr_pair(str(tmp_path / 'hr.png'), None, 4)
    assert np.array_equal(lr, ref_lr) and np.array_equal(hr, ref_hr) and hr.shape == (48, 60, 3)
    assert notices == ['Cropped to 60×48 (a multiple of 4).']
    x = sr.model_input((name, lr, hr))
    assert x.shape == (1, 3, 12, 15) and x.dtype == torch.float32 and x.max() <= 1
    assert np.array_equal(sr.floor_output((name, lr, hr)), matlab_resize(lr, 4.0))
    with pytest.raises(tasks.InputError, match='needs at least 32×32'):
        sr.upload_item(_rgb(20, 40), True, seed=0)
    (_, lr, ref), _ = sr.upload_item(_rgb(20, 40)[..., 0], False, seed=0)
    assert lr.shape == (20, 40, 3) and ref is None   # gray replicated to RGB; nothing to score against


def test_denoise_upload_noise_is_seeded_and_its_floor_is_the_noisy_image():
    dn = get_task('denoise')
    rgb = _rgb(20, 24)
    (_, noisy, clean), notices = dn.upload_item(rgb, True, seed=5)
    (_, again, _), _ = dn.upload_item(rgb, True, seed=5)
    (_, other, _), _ = dn.upload_item(rgb, True, seed=6)
    assert np.array_equal(noisy, again) and not np.array_equal(noisy, other)
    assert clean.shape == (20, 24) and notices[-1] == 'Noise: σ=70, seed 5.' and 'gray' in notices[0]
    assert abs(float((noisy - clean / 255.0).std()) - 70 / 255) < 0.03
    (_, weaker, _), notices = dn.at(sigma=10).upload_item(rgb, True, seed=5)
    assert notices[-1] == 'Noise: σ=10, seed 5.' and float((weaker - clean / 255.0).std()) < 0.1
    floor = dn.floor_output((None, noisy, clean))
    assert floor.dtype == np.uint8 and np.array_equal(floor, np.clip(np.round(noisy * 255), 0, 255))
    (_, as_is, ref), _ = dn.upload_item(clean, False, seed=0)
    assert ref is None and np.array_equal(dn.floor_output((None, as_is, None)), clean)
    assert dn.model_input((None, as_is, None)).shape == (1, 1, 20, 24)
    assert dn.metrics(clean, clean)['psnr'] == float('inf')
    with pytest.raises(tasks.InputError, match='smallest input is 8×8'):
        dn.upload_item(clean[:5], False, seed=0)


def test_one_image_tensor_pair():
    """The tasks' model input is the pair's image_to_tensor: 8- and 16-bit on their own scale, the noisy float input
    as it is (not clipped); tensor_to_image brings it back, and to_uint8 is the one way down to 8 bits."""
    rgb = _rgb(6, 7)
    x = get_task('sr').model_input(('a', rgb, None))
    assert torch.equal(x[0], torch.from_numpy(rgb.astype(np.float32) / 255).permute(2, 0, 1))
    assert np.array_equal(tensor_to_image(x), rgb)
    wide = rgb.astype(np.uint16) * 257
    assert torch.equal(image_to_tensor(wide, 3), x) and np.array_equal(tensor_to_image(x, np.uint16), wide)
    noisy = np.linspace(-0.2, 1.2, 42, dtype=np.float32).reshape(6, 7)
    x = get_task('denoise').model_input(('a', noisy, None))
    assert x.shape == (1, 1, 6, 7) and torch.equal(x[0, 0], torch.from_numpy(noisy))
    assert np.array_equal(tensor_to_image(x), to_uint8(noisy)) and to_uint8(noisy).dtype == np.uint8
    assert np.array_equal(to_uint8(noisy), np.clip(np.round(noisy * 255), 0, 255))
    assert np.array_equal(image_to_tensor(rgb[..., 0])[0], image_to_tensor(rgb[..., :1], 1)[0])   # own channels


def test_structure_counts_hold():
    """No import cycle, no private name imported across modules, at most 4 comparisons with a task name outside
    tasks.py, no file over 400 lines and no function over 60, at most 24 option files in options/train and a README
    of at most 30,000 bytes (tools/structure_counts.py); the package, the tools and the studies are all counted."""
    r = structure_counts.measure(REPO)
    assert r['rooms'] > 40 and r['arrows'] > r['rooms']   # it did read the package
    assert not r['circles'] and not r['private_imports'] and len(r['branches']) <= 4, r
    assert not r['long_files'] and not r['long_functions'], r
    assert 0 < r['option_files'] <= structure_counts.MAX_OPTION_FILES, r['option_files']
    assert 0 < r['readme_bytes'] <= structure_counts.MAX_README_BYTES, r['readme_bytes']
    files = structure_counts.module_files(REPO)
    assert {'tools.run_side_by_side', 'tools.recipes', 'tools.curves', 'research.sr_inversion.arms_table'} <= set(files)
    every, _ = structure_counts.imports(files)['research.sr_inversion.arms_table']
    assert 'tools.curves' in every   # an arrow from a study to a tool
    assert not (REPO / 'scripts').exists()     # tools/ and research/ hold what scripts/ did


def test_structure_counts_of_a_small_tree(tmp_path):
    """The counts on a tree made here: a cycle through a deferred import, an over-long README, too many option files."""
    (tmp_path / 'restore_dhp').mkdir()
    (tmp_path / 'restore_dhp' / '__init__.py').write_text('')
    (tmp_path / 'restore_dhp' / 'a.py').write_text('from . import b\n')
    (tmp_path / 'restore_dhp' / 'b.py').write_text('def f():\n    from . import a\n')
    (tmp_path / 'tools').mkdir()
    (tmp_path / 'tools' / 'x.py').write_text('from restore_dhp import a\n')
    (tmp_path / 'options' / 'train').mkdir(parents=True)
    for i in range(structure_counts.MAX_OPTION_FILES + 1):
        (tmp_path / 'options' / 'train' / f'r{i}.yml').write_text('name: r\n')
    (tmp_path / 'README.md').write_text('x' * (structure_counts.MAX_README_BYTES + 1))
    r = structure_counts.measure(tmp_path)
    assert r['circles'] == [['restore_dhp.a', 'restore_dhp.b']] and r['rooms'] == 4 and r['arrows'] == 3
    assert r['option_files'] == structure_counts.MAX_OPTION_FILES + 1
    assert r['readme_bytes'] == structure_counts.MAX_README_BYTES + 1
