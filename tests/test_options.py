"""Option files are checked completely before anything is written: one line naming the key, no experiments folder."""
from __future__ import annotations

import os

import pytest

import restore_dhp  # noqa: F401
from restore_dhp.options import validate_file
from restore_dhp.train import main as train_main
from train_helpers import dncnn_options, make_images, sr_options, write_options


def _fails_before_training(root, opt_path, capsys, *expected):
    """``python -m restore_dhp.train`` refuses the file in one line naming ``expected``, writing nothing."""
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert train_main(['-opt', str(opt_path)]) == 2
    finally:
        os.chdir(cwd)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    for text in expected:
        assert text in err[0], err[0]
    assert not (root / 'experiments').exists()
    return err[0]


def test_valid_options_pass(tmp_path):
    validate_file(write_options(tmp_path, sr_options(tmp_path)))
    validate_file(write_options(tmp_path, dncnn_options(tmp_path), 'dn.yml'))


def test_dataset_key_typo_names_the_nearest_key(tmp_path, capsys):
    opt = dncnn_options(tmp_path)
    opt['datasets']['train']['sigm'] = 25            # would silently train at the default sigma=70
    _fails_before_training(tmp_path, write_options(tmp_path, opt), capsys,
                           'unknown option datasets.train.sigm', 'did you mean sigma?')
    opt = sr_options(tmp_path)
    opt['datasets']['val']['dataroot_q'] = str(tmp_path / 'hr')
    _fails_before_training(tmp_path, write_options(tmp_path, opt), capsys,
                           'datasets.val.dataroot_q', 'did you mean dataroot_lq?')


def test_section_key_typo_names_the_nearest_key(tmp_path, capsys):
    opt = sr_options(tmp_path)
    opt['train']['total_iters'] = 5
    _fails_before_training(tmp_path, write_options(tmp_path, opt), capsys,
                           'unknown option train.total_iters', 'did you mean total_iter?')


@pytest.mark.parametrize('text', ['2e-4', '1E-3', '5e+2'])
def test_number_yaml_reads_as_text_is_rejected_naming_the_key(tmp_path, capsys, text):
    path = write_options(tmp_path, sr_options(tmp_path))
    with open(path) as f:
        body = f.read()
    assert 'lr: 0.001' in body
    with open(path, 'w') as f:
        f.write(body.replace('lr: 0.001', f'lr: {text}'))
    _fails_before_training(tmp_path, path, capsys, 'option train.optim_g.lr', f'reads {text} as text', 'e')


def test_empty_dataset_folder_fails_in_one_line(tmp_path, capsys):
    opt = sr_options(tmp_path)
    empty = tmp_path / 'empty'
    empty.mkdir()
    (empty / 'notes.txt').write_text('no images here')
    opt['datasets']['train']['dataroot_gt'] = str(empty)
    _fails_before_training(tmp_path, write_options(tmp_path, opt), capsys,
                           'datasets.train.dataroot_gt', 'holds no images')


def test_missing_dataset_folder_fails_in_one_line(tmp_path, capsys):
    opt = dncnn_options(tmp_path)
    opt['datasets']['val']['dataroot_gt'] = str(tmp_path / 'nowhere')
    _fails_before_training(tmp_path, write_options(tmp_path, opt), capsys,
                           'datasets.val.dataroot_gt', 'does not exist')


@pytest.mark.parametrize('key', ['pretrain_network_g', 'resume_state'])
def test_missing_path_file_fails_in_one_line(tmp_path, capsys, key):
    opt = sr_options(tmp_path)
    opt['path'][key] = str(tmp_path / 'weights' / 'missing.safetensors')
    _fails_before_training(tmp_path, write_options(tmp_path, opt), capsys, f'option path.{key}', 'does not exist')


def test_a_list_of_folders_is_checked_folder_by_folder(tmp_path, capsys):
    opt = sr_options(tmp_path)
    (tmp_path / 'second').mkdir()
    opt['datasets']['train']['dataroot_gt'] = [str(make_images(tmp_path / 'first')), str(tmp_path / 'second')]
    _fails_before_training(tmp_path, write_options(tmp_path, opt), capsys, str(tmp_path / 'second'), 'no images')
