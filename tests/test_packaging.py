"""A pip install can restore an image: the wheel holds the shipped weights, and ``infer -n NAME`` finds them
from any folder; the package list in pyproject.toml covers every subpackage."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import numpy as np
import pytest

from restore_dhp.catalogue import TASKS, entries, shipped_names

REPO = Path(__file__).resolve().parents[1]


def test_every_subpackage_and_the_weights_are_packaged():
    setuptools = tomllib.loads((REPO / 'pyproject.toml').read_text())['tool']['setuptools']
    found = {'.'.join(p.parent.relative_to(REPO).parts) for p in (REPO / 'restore_dhp').rglob('__init__.py')}
    assert set(setuptools['packages']) == found | {'restore_dhp.weights'}, 'list the new subpackage in pyproject.toml'
    assert setuptools['package-dir'] == {'restore_dhp.weights': 'weights'}
    assert setuptools['package-data'] == {'restore_dhp.weights': ['*.safetensors']}
    names = shipped_names()
    assert len(names) == 11 and names == [e.run_name(v) for t in TASKS.values() for e in entries(t) for v in e.variants]
    assert all((REPO / 'weights' / f'{n}.safetensors').is_file() for n in names)


def _venv_with_wheel(tmp_path: Path) -> Path:
    """A fresh venv holding the built wheel, reusing this environment's installed dependencies through a .pth
    (the path only: the editable install's finder in this environment is not run there).  The wheel is built
    from a copy of what it is made of, so the build leaves nothing in the checkout."""
    src, dist = tmp_path / 'src', tmp_path / 'dist'
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc')
    shutil.copytree(REPO / 'restore_dhp', src / 'restore_dhp', ignore=ignore)
    (src / 'weights').mkdir()
    for name in ('pyproject.toml', 'README.md', 'LICENSE', *(f'weights/{n}.safetensors' for n in shipped_names())):
        shutil.copy2(REPO / name, src / name)
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w', str(dist),
                    str(src)], check=True, capture_output=True, cwd=tmp_path)
    wheel = next(dist.glob('restore_dhp-*.whl'))
    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True)
    site = Path(subprocess.run([venv / 'bin' / 'python', '-c', 'import sysconfig; print(sysconfig.get_path("purelib"))'],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / 'reuse_deps.pth').write_text(sysconfig.get_path('purelib') + '\n')
    subprocess.run([sys.executable, '-m', 'pip', '--python', str(venv / 'bin' / 'python'), 'install', '--no-deps',
                    '--no-index', '-q', str(wheel)], check=True, capture_output=True)
    return venv


@pytest.mark.slow
def test_installed_wheel_restores_by_name_outside_the_clone(tmp_path):
    from restore_dhp.data.imageio import write_png
    venv = _venv_with_wheel(tmp_path)
    work = tmp_path / 'elsewhere'
    write_png(work / 'in' / 'photo.png', np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8))
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV')}
    done = subprocess.run([venv / 'bin' / 'restore-dhp', 'infer', '-n', 'srresnet_x4_dhp40', '-i', 'in', '-o', 'out',
                           '--device', 'cpu'], cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (work / 'out' / 'photo.png').is_file()
    code = ('import restore_dhp, numpy as np; from restore_dhp.catalogue import resolve_model_name as r; '
            'print(restore_dhp.__file__); print(r("dncnn_s70_dhp20")); '
            'print(restore_dhp.restore(np.zeros((8, 8), np.uint8), weights="dncnn_s70_dhp20", device="cpu").shape)')
    lines = subprocess.run([venv / 'bin' / 'python', '-c', code], cwd=work, env=env, capture_output=True, text=True,
                           timeout=120, check=True).stdout.splitlines()
    installed = str(venv)
    assert lines[0].startswith(installed) and lines[1].startswith(installed), lines  # the wheel, not the clone
    assert lines[2] == '(8, 8)'
