"""The README's library snippets run as written, and restore_dhp.restore behaves as documented."""
import os
import re
from pathlib import Path

import numpy as np
import pytest

import restore_dhp
from restore_dhp.checkpoint import CheckpointError, load_compact
from restore_dhp.data.imageio import write_png

REPO = Path(__file__).resolve().parents[1]


def _readme_python_blocks() -> list[str]:
    text = (REPO / 'README.md').read_text()
    section = text.split('## Command line and library', 1)[1].split('\n## ', 1)[0]
    return re.findall(r'```python\n(.*?)```', section, flags=re.S)


def test_readme_library_snippets_run(tmp_path, monkeypatch):
    blocks = _readme_python_blocks()
    assert len(blocks) == 2 and 'restore_dhp.restore(' in blocks[0] and 'load_checkpoint' in blocks[1]
    monkeypatch.chdir(tmp_path)
    os.symlink(REPO / 'weights', tmp_path / 'weights')
    photo = np.random.default_rng(1).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    write_png('photo.png', photo)
    ns: dict = {}
    for block in blocks:
        exec(compile(block, 'README.md', 'exec'), ns)
    assert ns['sr'].shape == (80, 96, 3) and ns['sr'].dtype == np.uint8
    assert ns['clean'].shape == (48, 48) and ns['clean'].dtype == np.uint8
    assert ns['out'].shape == (80, 96, 3)
    assert np.array_equal(ns['out'], ns['sr'])  # the one call and its steps give the same image


def test_restore_takes_arrays_models_and_keeps_dtype(tmp_path):
    weights = REPO / 'weights' / 'dncnn_s70_dhp20.safetensors'
    gray16 = np.random.default_rng(0).integers(0, 65536, (16, 12), dtype=np.uint16)
    a = restore_dhp.restore(gray16, weights=weights, device='cpu')
    b = restore_dhp.restore(gray16, weights=load_compact(weights), device='cpu', backend='eager')
    assert a.dtype == np.uint16 and a.shape == (16, 12)
    assert np.abs(a.astype(np.int64) - b.astype(np.int64)).max() <= 2  # fused vs eager, rounding apart
    with pytest.raises(CheckpointError, match='no such file'):
        restore_dhp.restore(gray16, weights=tmp_path / 'missing.safetensors')
