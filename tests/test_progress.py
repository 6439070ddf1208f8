"""Long work shows progress on stderr on a terminal, and nothing when stderr is a file or a pipe (issue 32:
``latency check`` printed nothing for 2.5 minutes)."""
from __future__ import annotations

import json

import pytest
import torch

import restore_dhp  # noqa: F401
from restore_dhp import progress
from restore_dhp.latency.__main__ import main as latency_main
from restore_dhp.speedup import main as speedup_main
from restore_dhp.timing import measure_side_by_side

FAST = ['--rounds', '2', '--warmup', '1', '--grid-step', '4', '--fit-points', '2', '--threads', '1']


def test_side_by_side_reports_every_run():
    calls = []
    models = {'a': torch.nn.Identity(), 'b': torch.nn.Identity()}
    runs = measure_side_by_side(models, torch.zeros(1, 1, 2, 2), repeats=3, warmup=2, on_run=lambda: calls.append(1))
    assert len(calls) == 2 * (3 + 2) and all(len(v) == 3 for v in runs.values())


def test_bars_only_on_a_terminal(monkeypatch):
    monkeypatch.setattr(progress, 'stderr_is_terminal', lambda: False)
    assert progress.progress_disabled() and progress.progress(range(3)).disable
    monkeypatch.setattr(progress, 'stderr_is_terminal', lambda: True)
    assert not progress.progress_disabled() and progress.progress_disabled(quiet=True)


@pytest.mark.parametrize('terminal', [False, True])
def test_latency_profile_and_check_show_progress_on_a_terminal(tmp_path, capsys, monkeypatch, terminal):
    monkeypatch.setattr(progress, 'stderr_is_terminal', lambda: terminal)
    table = tmp_path / 'dn.json'
    assert latency_main(['profile', '--arch', 'dncnn', '--arch-kwargs', '{"num_feat": 8, "num_layers": 3}',
                         '--size', '10x10', '--out', str(table), *FAST]) == 0
    err = capsys.readouterr().err
    assert ('sweep of' in err and 'layer points' in err and 'width sets' in err and 'run/s' in err) == terminal, err
    assert json.loads(table.read_text())['format']
    assert latency_main(['check', '--table', str(table), '--sets', '2', '--rounds', '1']) == 0
    err = capsys.readouterr().err
    assert ('check: 3 width sets' in err) == terminal, err


def test_speedup_shows_progress_on_a_terminal(capsys, monkeypatch):
    args = ['--uniform-widths', '8', '--arch', 'dncnn', '--sizes', '12', '--repeats', '1', '--warmup', '0',
            '--threads', '1', '--backends', 'eager']
    monkeypatch.setattr(progress, 'stderr_is_terminal', lambda: False)
    assert speedup_main(args) == 0
    err = capsys.readouterr().err
    assert '12x12' not in err and 'run/s' not in err
    monkeypatch.setattr(progress, 'stderr_is_terminal', lambda: True)
    assert speedup_main(args) == 0
    assert '12x12' in capsys.readouterr().err
