"""One atomic-write helper for every file the project writes; no command writes over a file it was not asked to."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import restore_dhp  # noqa: F401
from nets import compact
from restore_dhp.checkpoint import main as checkpoint_main
from restore_dhp.checkpoint import read_metadata, save_compact
from restore_dhp.fileio import OutputError, atomic_path, check_output, remove_write_debris, write_bytes, write_text

REPO = Path(__file__).resolve().parents[1]


def test_atomic_write_replaces_only_on_success(tmp_path):
    target = tmp_path / 'sub' / 'a.txt'
    write_text(target, 'first')
    assert target.read_text() == 'first'
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.parent == target.parent and tmp.suffix == '.txt'   # same folder, same extension
            tmp.write_text('half')
            raise RuntimeError('writer failed')
    assert target.read_text() == 'first'
    assert sorted(p.name for p in target.parent.iterdir()) == ['a.txt']   # no temporary file left behind
    write_bytes(target, b'second')
    assert target.read_bytes() == b'second' and (target.stat().st_mode & 0o777) != 0o600


def test_interrupt_leaves_no_temporary_file(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(tmp_path / 'x.png') as tmp:
            tmp.write_bytes(b'partial')
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_a_killed_writers_temporary_is_recognised_and_nothing_else(tmp_path):
    """A SIGKILL runs no ``except``: the temporary stays, and resume removes it (only names atomic_path makes)."""
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / '12.state') as tmp:
        left = tmp  # the name a kill at this point would leave behind
        raise KeyboardInterrupt
    left.write_bytes(b'half')
    kept = [tmp_path / n for n in ('12.state', 'notes.tmp', '.hidden.state', '.12.state.short.tmp.state')]
    for k in kept:
        k.write_bytes(b'x')
    assert remove_write_debris(tmp_path) == [left]
    assert not left.exists() and all(k.exists() for k in kept)
    assert remove_write_debris(tmp_path / 'missing') == []


def test_check_output_refuses_inputs_and_existing_files(tmp_path):
    src = tmp_path / 'in.pth'
    src.write_bytes(b'state')
    with pytest.raises(OutputError, match='is the input file'):
        check_output(src, [src], overwrite=True)
    with pytest.raises(OutputError, match='is the input file'):   # another name for the same file
        check_output(tmp_path / '.' / 'in.pth', [src], overwrite=True)
    out = tmp_path / 'out.bin'
    check_output(out, [src])
    out.write_bytes(b'old')
    with pytest.raises(OutputError, match=r'already exists; pass --overwrite'):
        check_output(out, [src])
    check_output(out, [src], overwrite=True)
    with pytest.raises(OutputError, match='is a folder'):
        check_output(tmp_path, [src], overwrite=True)


def test_no_hand_written_temporary_file_writers():
    """Every writer goes through restore_dhp.fileio: no other module renames a temporary file into place."""
    offenders = []
    for path in [*REPO.glob('restore_dhp/**/*.py'), *REPO.glob('tools/*.py'), *REPO.glob('research/**/*.py'), REPO / 'app.py']:
        if path.name == 'fileio.py':
            continue
        for line in path.read_text().splitlines():
            if 'atomic_path(' in line or 'live log' in line:   # written through the helper / a stream, not a file
                continue
            if re.search(r'os\.replace\(|os\.rename\(|\.tmp[\'"]|\.write_text\(|open\([^)]*[\'"]w', line):
                offenders.append(f'{path.relative_to(REPO).as_posix()}: {line.strip()}')
    assert offenders == []


@pytest.fixture()
def ckpt(tmp_path):
    path = tmp_path / 'm.safetensors'
    save_compact(compact('srresnet', num_blocks=1, num_feat=8), path)
    return path


def test_export_refuses_its_input_and_an_existing_output(ckpt, tmp_path, capsys):
    from restore_dhp.export import main as export_main
    before = ckpt.read_bytes()
    assert export_main(['--weights', str(ckpt), '--onnx', str(ckpt)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f'error: --onnx {ckpt} is the input file {ckpt}; write the output to another file'
    assert ckpt.read_bytes() == before
    out = tmp_path / 'm.onnx'
    out.write_bytes(b'keep me')
    assert export_main(['--weights', str(ckpt), '--onnx', str(out)]) == 2
    assert capsys.readouterr().err.strip() == f'error: --onnx {out} already exists; pass --overwrite to replace it'
    assert out.read_bytes() == b'keep me'
    assert export_main(['--weights', str(ckpt), '--onnx', str(out), '--overwrite']) == 0
    assert out.read_bytes()[:8] != b'keep me'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['m.onnx', 'm.safetensors']


def test_failed_export_leaves_nothing(ckpt, tmp_path, monkeypatch, capsys):
    from restore_dhp import export, fileio

    def broken_write(self, data):
        with open(self, 'wb') as f:
            f.write(data[:10])
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(fileio.Path, 'write_bytes', broken_write)
    out = tmp_path / 'x.onnx'
    assert export.main(['--weights', str(ckpt), '--onnx', str(out)]) == 2
    assert 'No space left on device' in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['m.safetensors']


def test_convert_refuses_its_input_and_an_existing_output(tmp_path, capsys):
    state = tmp_path / 'net_g_5.pth'
    net = compact('srresnet', num_blocks=1, num_feat=8)
    torch.save({'params': net.state_dict()}, state)
    before = state.read_bytes()
    args = ['convert', str(state), str(state), '--arch', 'srresnet', '--arch-kwargs', '{"num_blocks": 1, "num_feat": 8}']
    assert checkpoint_main(args) == 2
    assert capsys.readouterr().err.strip() == (f'error: output {state} is the input file {state}; '
                                               'write the output to another file')
    assert state.read_bytes() == before
    out = tmp_path / 'c.safetensors'
    args[2] = str(out)
    assert checkpoint_main(args) == 0
    capsys.readouterr()
    assert checkpoint_main(args) == 2
    assert capsys.readouterr().err.strip() == f'error: output {out} already exists; pass --overwrite to replace it'
    assert checkpoint_main(args + ['--overwrite']) == 0
    assert read_metadata(out)['arch'] == 'SRResNet'
