"""restore_dhp.tasks: each task's items, model input, floor and scores, the same for a test set and an upload."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import restore_dhp  # noqa: F401
from restore_dhp import tasks
from restore_dhp.data.imageio import write_png
from restore_dhp.data.sr_pairs import load_sr_pair
from restore_dhp.degradations import matlab_resize
from tools import structure_counts

REPO = Path(__file__).resolve().parents[1]


def _rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_names_and_objects():
    sr, dn = tasks.get('sr'), tasks.get('denoise')
    assert tasks.get(sr) is sr and (sr.key, dn.key) == ('sr', 'denoise') and (sr.channels, dn.channels) == (3, 1)
    assert sr.primary_metric == 'psnr_y' and dn.primary_metric == 'psnr'
    assert sr.score_columns == (('PSNR-Y (dB)', 'SSIM-Y'), ('psnr_y', 'ssim_y'))
    assert dn.score_columns == (('PSNR (dB)', 'SSIM'), ('psnr', 'ssim'))
    assert (sr.floor_label(), sr.floor_label(4), dn.floor_label(), dn.floor_label(1)) == (
        'Bicubic', 'Bicubic ×4', 'Noisy input', 'Noisy input')
    assert sr.conventions(70, 3) == {'sigma_255': None, 'noise_seed': None}
    assert dn.conventions(25, 3) == {'sigma_255': 25, 'noise_seed': 3}
    with pytest.raises(ValueError, match='unknown task'):
        tasks.get('deblur')


def test_sr_upload_is_degraded_as_a_test_set_is(tmp_path):
    """A simulated SR upload and an HR file without an LR partner give the same LR (MATLAB bicubic of the crop)."""
    img = _rgb(50, 61)
    write_png(tmp_path / 'hr.png', img)
    (name, lr, hr), notices = tasks.get('sr').upload_item(img, True, 'upload', 0, 4, 0, min_side=8)
    ref_lr, ref_hr = load_sr_pair(str(tmp_path / 'hr.png'), None, 4)
    assert np.array_equal(lr, ref_lr) and np.array_equal(hr, ref_hr) and hr.shape == (48, 60, 3)
    assert notices == ['Cropped to 60×48 (a multiple of 4).']
    sr = tasks.get('sr')
    x = sr.model_input((name, lr, hr))
    assert x.shape == (1, 3, 12, 15) and x.dtype == np.float32 and x.max() <= 1
    assert np.array_equal(sr.floor_output((name, lr, hr), 4), matlab_resize(lr, 4.0))
    with pytest.raises(tasks.InputError, match='needs at least 32×32'):
        sr.upload_item(_rgb(20, 40), True, 'upload', 0, 4, 0, min_side=8)
    (_, lr, ref), _ = sr.upload_item(_rgb(20, 40)[..., 0], False, 'upload', 0, 4, 0, min_side=8)
    assert lr.shape == (20, 40, 3) and ref is None   # gray replicated to RGB; nothing to score against


def test_denoise_upload_noise_is_seeded_and_its_floor_is_the_noisy_image():
    dn = tasks.get('denoise')
    rgb = _rgb(20, 24)
    (_, noisy, clean), notices = dn.upload_item(rgb, True, 'upload', 5, 1, 70.0, min_side=8)
    (_, again, _), _ = dn.upload_item(rgb, True, 'upload', 5, 1, 70.0, min_side=8)
    (_, other, _), _ = dn.upload_item(rgb, True, 'upload', 6, 1, 70.0, min_side=8)
    assert np.array_equal(noisy, again) and not np.array_equal(noisy, other)
    assert clean.shape == (20, 24) and notices[-1] == 'Noise: σ=70, seed 5.' and 'gray' in notices[0]
    assert abs(float((noisy - clean / 255.0).std()) - 70 / 255) < 0.03
    floor = dn.floor_output((None, noisy, clean), 1)
    assert floor.dtype == np.uint8 and np.array_equal(floor, np.clip(np.round(noisy * 255), 0, 255))
    (_, as_is, ref), _ = dn.upload_item(clean, False, 'upload', 0, 1, 70.0, min_side=8)
    assert ref is None and np.array_equal(dn.floor_output((None, as_is, None), 1), clean)
    assert dn.model_input((None, as_is, None)).shape == (1, 1, 20, 24)
    assert dn.metrics(clean, clean, 1)['psnr'] == float('inf')
    with pytest.raises(tasks.InputError, match='smallest input is 8×8'):
        dn.upload_item(clean[:5], False, 'upload', 0, 1, 70.0, min_side=8)


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
