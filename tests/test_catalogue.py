"""restore_dhp.catalogue: the one list of shipped models, and names read from checkpoint metadata."""
from __future__ import annotations

from pathlib import Path

import restore_dhp  # noqa: F401
from restore_dhp.catalogue import TASKS, VARIANTS, default_weights, main, search_target, weight_path
from tools.recipes import recipe

REPO = Path(__file__).resolve().parents[1]


def test_runs_and_files_for_the_training_script(capsys):
    assert main(['runs']) == 0
    runs = capsys.readouterr().out.split()
    assert runs[:2] == ['dncnn_s70_baseline', 'srresnet_x4_baseline'] and len(runs) == 9
    assert 'srresnet_x4_dhp100' in runs and 'dncnn_s70_dhp100' not in runs  # SR ships the DHP-trained full width
    for run in runs:  # every run the training scripts start has its recipes (tests/test_tools.py checks them)
        assert recipe(f'{run}_gpu').file.is_file() and recipe(f'{run}_continue_gpu').file.is_file()
    assert main(['runs', '--task', 'denoise', '--suffix', '_bnfreeze']) == 0
    assert capsys.readouterr().out.split() == [f'dncnn_s70_{v}_bnfreeze' for v in VARIANTS]
    assert main(['files', '--task', 'sr', '--root', 'w']) == 0
    assert capsys.readouterr().out.split()[0] == 'w/srresnet_x4_baseline.safetensors'


def test_file_names_and_the_shipped_weights():
    assert weight_path('sr', 'dhp40') == Path('weights/srresnet_x4_dhp40.safetensors')
    shipped = default_weights('denoise', REPO / 'weights')
    assert shipped == [str(REPO / 'weights' / TASKS['denoise'].entry.filename(v)) for v in VARIANTS][:len(shipped)]


def test_search_target_follows_the_parent_chain():
    assert search_target({'search': {'target_ratio': 0.4}}) == 0.4
    assert search_target({'experiment': 'x', 'parent': {'parent': {'search': {'target_ratio': 0.2}}}}) == 0.2
    assert search_target({'experiment': 'baseline'}) is None


def test_a_full_width_network_searched_at_target_one_is_named_as_dhp_trained():
    from restore_dhp.catalogue import model_label
    meta = {'arch': 'SRResNet', 'arch_kwargs': {}, 'widths': {}, 'info': {'parent': {'search': {'target_ratio': 1.0}}}}
    assert model_label(meta, 'x.safetensors') == 'Full width, DHP-trained'
