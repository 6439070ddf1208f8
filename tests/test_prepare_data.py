import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

import restore_dhp  # noqa: F401
from restore_dhp import prepare_data as pd
from restore_dhp.data.imageio import read_image, write_png
from restore_dhp.degradations import bicubic_downscale
from restore_dhp.data.sets import NOT_VERIFIED
from restore_dhp.data.testsets import load_denoise_set, load_sr_pairs


def _rand(rng, h, w, c=3):
    img = rng.integers(0, 256, (h, w, c), dtype=np.uint8)
    return img[..., 0] if c == 1 else img


def _make_sources(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / 'downloads'
    # EDSR-style benchmark folder (already extracted): Set5 with HR + LR, 5 images, sizes not multiple of 4
    for i in range(5):
        hr = _rand(rng, 22 + i, 26)
        write_png(src / 'benchmark' / 'Set5' / 'HR' / f'img{i}.png', hr)
        if i < 3:  # LR for the first three only -> rest generated
            write_png(src / 'benchmark' / 'Set5' / 'LR_bicubic' / 'X4' / f'img{i}x4.png',
                      bicubic_downscale(hr, 4))
    # SelfExSR-style Set14 in a zip (only 2 of 14 -> partial)
    stage = tmp_path / 'stage' / 'Set14' / 'image_SRF_4'
    for i in range(1, 3):
        hr = _rand(rng, 24, 28)
        write_png(stage / f'img_{i:03d}_SRF_4_HR.png', hr)
        write_png(stage / f'img_{i:03d}_SRF_4_LR.png', bicubic_downscale(hr, 4))
    src.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(src / 'Set14_SR.zip', 'w') as zf:
        for p in stage.iterdir():
            zf.write(p, f'Set14/image_SRF_4/{p.name}')
    # Set12 (RGB source -> converted to gray) in a tar.gz
    g = tmp_path / 'stage' / 'Set12'
    for i in range(12):
        write_png(g / f'{i + 1:02d}.png', _rand(rng, 16, 16))
    with tarfile.open(src / 'Set12.tar.gz', 'w:gz') as tf:
        tf.add(g, arcname='testsets/Set12')
    # DIV2K valid HR folder with 2 images
    for n in ('0801', '0802'):
        write_png(src / 'DIV2K_valid_HR' / f'{n}.png', _rand(rng, 30, 34))
    return src


def test_prepare_and_check(tmp_path, capsys):
    src = _make_sources(tmp_path)
    dest = tmp_path / 'datasets'
    res = pd.prepare(src, dest, ['Set5', 'Set14', 'Set12', 'DIV2K', 'BSD68'])
    assert res == {'Set5': 5, 'Set14': 2, 'Set12': 12, 'DIV2K': 2, 'BSD68': 0}

    pairs = load_sr_pairs(dest, 'Set5')
    assert len(pairs) == 5
    for _, lr, hr in pairs:
        assert hr.shape[0] % 4 == 0 and hr.shape[1] % 4 == 0
        assert np.array_equal(lr, bicubic_downscale(hr, 4))
    s14 = load_sr_pairs(dest, 'Set14')
    assert [n for n, _, _ in s14] == ['img_001', 'img_002']
    assert (dest / 'Set14' / 'LR_bicubic' / 'X4' / 'img_001x4.png').is_file()
    set12 = load_denoise_set(dest, 'Set12')
    assert len(set12) == 12 and set12[0][2].ndim == 2
    assert read_image(dest / 'Set12' / '01.png', 'unchanged').ndim == 2
    assert len(load_sr_pairs(dest, 'DIV2K')) == 2
    assert (dest / 'DIV2K' / 'LR_bicubic' / 'X4' / '0801x4.png').is_file()

    manifest = (dest / pd.MANIFEST).read_text().splitlines()
    assert any(line.endswith('  Set5/HR/img0.png') for line in manifest)
    assert pd.verify_manifest(dest) == []

    rep = pd.check(dest, ['Set5', 'Set14', 'Set12', 'BSD68', 'DIV2K'])
    assert rep['Set5']['status'] == 'present'
    assert rep['Set12']['status'] == 'present'
    assert rep['Set14']['status'] == 'partial' and rep['Set14']['found'] == 2
    assert rep['BSD68']['status'] == 'missing'
    assert rep['DIV2K']['status'] == 'partial'

    # tampering is caught
    write_png(dest / 'Set5' / 'HR' / 'img0.png', np.zeros((4, 4, 3), np.uint8))
    assert pd.check(dest, ['Set5'])['Set5']['status'] == 'partial'

    rc = pd.main(['--dest', str(dest), '--check', '--sets', 'Set12', 'BSD68'])
    out = capsys.readouterr().out
    assert rc == 1 and 'BSD68' in out and 'missing' in out and 'github.com/cszn/DnCNN' in out
    assert pd.main(['--dest', str(dest), '--check', '--sets', 'Set12']) == 0


def test_table_complete():
    expected = {'Set5': 5, 'Set14': 14, 'B100': 100, 'Urban100': 100, 'DIV2K': 100, 'BSD68': 68, 'Set12': 12,
                'Train400': 400, 'T91': 91, 'BSD200': 200}
    for name, n in expected.items():
        assert pd.SETS[name].count == n
        assert pd.SETS[name].sha256 == NOT_VERIFIED
        assert 'http' in pd.where_to_get(name)
    assert 'DIV2K_train_HR.zip' in pd.where_to_get('DIV2K_train')


def test_bad_archive_and_source(tmp_path):
    with pytest.raises(FileNotFoundError):
        pd.prepare(tmp_path / 'nope', tmp_path / 'out')
    (tmp_path / 'src').mkdir()
    (tmp_path / 'src' / 'broken.zip').write_bytes(b'not a zip')
    with pytest.raises(ValueError, match='broken.zip'):
        pd.prepare(tmp_path / 'src', tmp_path / 'out', ['Set5'])
    assert pd.main(['--source', str(tmp_path / 'src'), '--dest', str(tmp_path / 'out'), '--sets', 'Set5']) == 2


def test_sr291_links_both_training_sets(tmp_path):
    rng = np.random.default_rng(1)
    src = tmp_path / 'src'
    for i in range(3):
        write_png(src / 'T91' / f't{i}.png', _rand(rng, 20, 20))
    for i in range(2):
        write_png(src / 'BSDS300' / 'images' / 'train' / f'{i}.png', _rand(rng, 20, 24))
    dest = tmp_path / 'datasets'
    res = pd.prepare(src, dest, ['T91', 'BSD200'])
    assert res['SR291'] == 5
    names = sorted(p.name for p in (dest / 'SR291' / 'HR').iterdir())
    assert names == ['BSD200_0.png', 'BSD200_1.png', 'T91_t0.png', 'T91_t1.png', 'T91_t2.png']
    assert np.array_equal(read_image(dest / 'SR291' / 'HR' / 'T91_t1.png'), read_image(dest / 'T91' / 't1.png'))
    assert pd.link_sr291(dest) == 5  # idempotent


def test_exit_code_when_some_sets_are_absent(tmp_path, capsys):
    """All sets in the source written in full, others absent: exit 0, the absent ones named; a set the source
    holds only in part, or one named with --sets and absent: exit 1."""
    src = _make_sources(tmp_path)
    shutil.rmtree(src / 'DIV2K_valid_HR')
    (src / 'Set14_SR.zip').unlink()  # left: Set5 (5/5) and Set12 (12/12), both complete
    assert pd.main(['--source', str(src), '--dest', str(tmp_path / 'all')]) == 0
    out = capsys.readouterr().out
    assert 'not in --source, skipped:' in out and 'DIV2K' in out.split('skipped:')[1] and 'Set5,' not in out
    assert pd.main(['--source', str(src), '--dest', str(tmp_path / 'named'), '--sets', 'Set5', 'BSD68']) == 1
    assert 'incomplete or not found: BSD68' in capsys.readouterr().err
    src2 = _make_sources(tmp_path / 'again')  # Set14 holds 2 of 14 images
    assert pd.main(['--source', str(src2), '--dest', str(tmp_path / 'partial')]) == 1
    assert 'Set14' in capsys.readouterr().err


def test_check_points_to_pages_that_exist(tmp_path, capsys):
    """Issue 32: --check sent the user to README "Datasets" links that this README does not have."""
    import re
    pd.main(['--dest', str(tmp_path / 'none'), '--check'])
    out = capsys.readouterr().out
    assert 'get it from: https://cv.snu.ac.kr/research/EDSR/benchmark.tar' in out
    readme_sections = set(re.findall(r'^#+ (.+)$', (Path(__file__).resolve().parents[1] / 'README.md').read_text(),
                                     flags=re.M))
    for quoted in re.findall(r'README "([^"]+)"', out):   # any section of our README named must exist
        assert quoted in readme_sections, quoted
    assert "that repository's own README" in out and '((' not in out and '))' not in out
