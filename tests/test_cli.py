"""The restore-dhp command, start-up without BasicSR's heavy parts, and `python -m restore_dhp.X` without warnings."""
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from restore_dhp import cli, commands

REPO = Path(__file__).resolve().parents[1]
HEAVY = ('torchvision', 'basicsr.archs', 'basicsr.models', 'lpips', 'onnx', 'matplotlib.pyplot')


def _python(*args, **kw):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO, **kw)


def test_console_script_is_declared_and_lists_every_entry(capsys):
    scripts = tomllib.loads((REPO / 'pyproject.toml').read_text())['project']['scripts']
    assert scripts == {'restore-dhp': 'restore_dhp.cli:main'}
    assert cli.main(['--help']) == 0
    out = capsys.readouterr().out
    for name, (module, _) in cli.COMMANDS.items():
        assert f'  {name} ' in out and (REPO / 'restore_dhp' / f'{module.replace(".", "/")}.py').is_file()
    assert cli.main(['infre']) == 2 and 'did you mean infer?' in capsys.readouterr().err
    assert cli.main([]) == 2


@pytest.mark.parametrize('name', ['infer', 'train', 'prepare-data', 'latency', 'device-report'])
def test_subcommand_help_names_the_command(name, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([name, '--help'])
    assert e.value.code == 0 and f'usage: restore-dhp {name}' in capsys.readouterr().out
    commands.invoked_as = None


def test_train_and_test_help_list_basicsr_flags_and_ours():
    for entry in ('train', 'test'):
        done = _python('-m', f'restore_dhp.{entry}', '--help')
        assert done.returncode == 0, done.stderr
        for flag in ('-opt', '--launcher', '--auto_resume', '--debug', '--local_rank', '--force_yml'):
            assert flag in done.stdout


def test_every_help_and_a_small_inference_skip_basicsrs_heavy_parts(tmp_path):
    """What made start-up slow (torchvision's model zoo through BasicSR's archs, onnx, lpips) is not imported."""
    from PIL import Image
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8)).save(tmp_path / 'a.png')
    code = f'''
import sys, importlib, contextlib, io
from restore_dhp import cli, commands
for name, (module, _) in cli.COMMANDS.items():
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            importlib.import_module('restore_dhp.' + module).main(['--help'])
        except SystemExit as e:
            assert e.code == 0, (name, e.code)
from restore_dhp import infer
assert infer.main(['-w', 'weights/dncnn_s70_dhp20.safetensors', '-i', {str(tmp_path / 'a.png')!r},
                   '-o', {str(tmp_path / 'out')!r}, '--device', 'cpu', '--quiet']) == 0
print(sorted(m for m in {HEAVY!r} if m in sys.modules))
'''
    done = _python('-c', code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == '[]'
    assert (tmp_path / 'out' / 'a.png').is_file()


@pytest.mark.parametrize('entry', ['restore_dhp.checkpoint', 'restore_dhp.complexity', 'restore_dhp'])
def test_python_m_runs_without_runpy_warning(entry):
    done = _python('-W', 'error::RuntimeWarning', '-m', entry, '--help')
    assert done.returncode == 0 and 'RuntimeWarning' not in done.stderr, done.stderr


def test_packaging_metadata_has_one_version_a_licence_and_extras():
    project = tomllib.loads((REPO / 'pyproject.toml').read_text())
    assert 'version' not in project['project'] and project['project']['dynamic'] == ['version']
    assert project['tool']['setuptools']['dynamic']['version'] == {'attr': 'restore_dhp._version.__version__'}
    assert project['project']['license'] == 'Apache-2.0' and project['project']['license-files'] == ['LICENSE']
    assert 'Apache License' in (REPO / 'LICENSE').read_text() and 'Version 2.0' in (REPO / 'LICENSE').read_text()
    deps = ' '.join(project['project']['dependencies'])
    assert 'torch' in deps and 'basicsr' not in deps  # BasicSR goes in with --no-deps (requirements-nodeps.txt)
    assert set(project['project']['optional-dependencies']) == {'demo', 'test'}
    pins = {line.split('==')[0].lower() for line in (REPO / 'requirements.txt').read_text().splitlines()
            if '==' in line and not line.startswith('#')}
    declared = {re.split(r'[<>=\[ ]', d)[0].lower() for d in project['project']['dependencies']}
    assert declared <= pins, declared - pins  # every dependency has its tested pin


def test_catalogue_is_described_as_what_it_prints(capsys):
    """Issue 32: the listing promised FLOPs and the paper's figures; catalogue prints run names or weight files."""
    text = cli.COMMANDS['catalogue'][1]
    assert 'FLOPs' not in text and 'paper' not in text and 'run names' in text and 'weight files' in text
    assert cli.main(['catalogue', 'files']) == 0
    files = capsys.readouterr().out.split()
    assert files and all(f.startswith('weights/') and f.endswith('.safetensors') for f in files)
    commands.invoked_as = None
