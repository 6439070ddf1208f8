"""tools/: every shipped weight's recipe (option file + --force_yml overlay) and tools/train_weights.sh's dry run."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import restore_dhp  # noqa: F401
from restore_dhp.catalogue import TASKS
from restore_dhp.checkpoint import read_metadata
from restore_dhp.options import validate_file
from tools import recipes

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted(REPO.glob('weights/*.safetensors')) + sorted(REPO.glob('weights/device/*.safetensors'))


def _stages(info: dict) -> list[dict]:
    chain = [info]
    while 'parent' in chain[0]:
        chain.insert(0, chain[0]['parent'])
    return chain


def _checked(file: str | Path, force: list[str]) -> dict:
    """The options of a run as restore_dhp.train checks them (folders and checkpoints not needed here)."""
    return validate_file(str(file), is_train=True, check_paths=False, force_yml=force)


@pytest.mark.parametrize('path', SHIPPED, ids=lambda p: str(p.relative_to(REPO / 'weights')))
def test_every_shipped_weight_names_the_recipe_that_trained_it(path):
    """Each stage of a shipped checkpoint resolves to a recipe that passes the option checks and agrees with what the
    checkpoint recorded of that stage: its name, its model and its search settings."""
    stages = _stages(read_metadata(path)['info'])
    for info in stages:
        r = recipes.of_checkpoint(info)
        opt = _checked(r.file, list(r.force))
        assert opt['name'] == info['experiment'] and r.model == path.name.split('.')[0]
        search = info.get('search')
        assert opt['model_type'] == ('DHPSearchModel' if search else 'RestorationModel')
        if search:   # the file's dhp section is what the search ran with (defaults aside)
            assert {k: v for k, v in search['search_options'].items() if k in opt['dhp'] and k != 'target'} == {
                k: v for k, v in opt['dhp'].items() if k in search['search_options'] and k != 'target'}
            assert opt['dhp'].get('target', {}).get('latency') == (search.get('target') or {}).get('latency')
    if path.parent.name == 'weights':   # the main set: the task's chain of stages, first to last
        assert [recipes.parse(s['experiment'])['stage'] for s in stages] == list(recipes.shipped_stages(r.model))


def test_catalogue_models_have_their_recipes_and_each_passes_the_checks():
    runs = recipes.catalogue_runs()
    for spec in TASKS.values():
        for variant in spec.entry.variants:
            for stage in ('', '_cpu', '_gpu', '_continue_gpu', '_bnfreeze_gpu'):   # paper, budgets, later stages
                assert spec.entry.run_name(variant) + stage in runs
    for run in runs:
        r = recipes.recipe(run)
        assert _checked(r.file, list(r.force))['name'] == run
    assert len(list((REPO / 'options' / 'train').glob('*.yml'))) <= 24   # one file per family (issue 31)


def test_run_names_resolve_to_a_family_and_its_overlay():
    r = recipes.recipe('dncnn_s70_dhp40_bnfreeze_gpu')
    assert r.path == 'options/train/dncnn_s70_bnfreeze_gpu.yml' and r.model == 'dncnn_s70_dhp40'
    assert r.overlay() == ['path:pretrain_network_g=experiments/dncnn_s70_dhp40_gpu/models/net_g_latest.safetensors']
    full = recipes.recipe('srresnet_x4_dhp100_cpu').options()['dhp']   # the full width trained as DHP, CPU budget
    assert (full['target_ratio'], full['ratio_tolerance']) == (1.0, 0.0)
    assert full['min_search_iter'] == full['max_search_iter']
    assert recipes.recipe('srresnet_x4_dhp100_gpu').force == ()   # a file of its own wins over the family
    tagged = recipes.recipe('srresnet_x4_cpu40_cpu_device')
    assert tagged.model == 'srresnet_x4_cpu40' and tagged.options()['dhp']['target']['latency'] == 0.4
    for bad in ('srresnet_x4_dhp40_tpu', 'edsr_x4_dhp40_gpu', 'srresnet_x4_cpu40'):
        with pytest.raises(recipes.RecipeError):
            recipes.recipe(bad)
    assert recipes.following('gpu', 'srresnet_x4_dhp40') == []   # the continuation is a budget of its own
    assert recipes.following('continue_gpu', 'srresnet_x4_dhp40') == ['srresnet_x4_dhp40_bnfreeze_gpu']
    assert recipes.following('gpu', 'dncnn_s70_dhp40') == ['dncnn_s70_dhp40_bnfreeze_gpu']


def _dry(budget: str, *args: str) -> list[list[str]]:
    out = subprocess.run(['bash', 'tools/train_weights.sh', *args], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, 'DRY': '1', 'BUDGET': budget, 'PY': sys.executable}, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return [line.split() for line in out.stdout.splitlines() if ' -m restore_dhp.train ' in line]


@pytest.mark.parametrize('budget,args,stages', [
    ('cpu', (), {'cpu': 9}),
    ('gpu-continue', ('--iters', '7'), {'continue_gpu': 9, 'bnfreeze_gpu': 5}),
])
def test_train_weights_dry_run_trains_every_model_with_a_valid_recipe(budget, args, stages):
    """DRY=1 tools/train_weights.sh: one run per catalogue model at the budget (and the stages that follow it),
    each an option file with an overlay that passes the checks training makes first."""
    commands = _dry(budget, *args)
    seen = {}
    for cmd in commands:
        file, force = cmd[cmd.index('-opt') + 1], cmd[cmd.index('--force_yml') + 1:]
        opt = _checked(REPO / file, force)
        stage = recipes.parse(opt['name'])['stage']
        seen[stage] = seen.get(stage, 0) + 1
        assert ('train:total_iter=7' in force) == (stage == 'continue_gpu')
    assert seen == stages


@pytest.mark.parametrize('path', sorted(REPO.glob('weights/device/*/*.safetensors')),
                         ids=lambda p: str(p.relative_to(REPO / 'weights')))
def test_weights_pruned_for_a_cpu_name_their_start_and_that_cpus_table(path):
    """weights/device/<cpu folder>/: made by `restore-dhp prune` from a shipped checkpoint, searched with a table of
    the CPU the folder names (the table committed, its checksum the one the search read)."""
    from restore_dhp.catalogue import shipped_names
    from restore_dhp.latency import file_sha256
    search = read_metadata(path)['info']['search']
    assert Path(search['warm_start']['file']).name.split('.')[0] in shipped_names()
    assert search['warm_start']['max_abs_difference'] <= 1e-4
    table = REPO / 'latency_tables' / path.parent.name / Path(search['latency_table']['table']).name
    assert table.is_file() and file_sha256(str(table)) == search['latency_table']['sha256']
    assert search['stop_reason'] in ('target_reached', 'max_search_iter')
