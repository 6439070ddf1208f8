"""Every command in the README's code blocks runs as written, up to the work itself: each ``restore-dhp ...`` and
``python -m ...`` (and ``torchrun ... -m ...``) line is parsed by its own entry's argument parser (a dry run:
parsing stops there, nothing is computed), so a renamed entry, a flag that is gone or a value a flag no longer
takes fails here; the checkout's files a command names (options/, weights/, tools/, ...) must exist."""
from __future__ import annotations

import argparse
import glob
import re
import runpy
import shlex
import sys
from pathlib import Path

import pytest

from restore_dhp import cli, commands

REPO = Path(__file__).resolve().parents[1]
OUR_MODULES = ('restore_dhp', 'tools', 'research')
REPO_PATHS = ('options/', 'weights/', 'tools/', 'research/', 'latency_tables/', 'reports/', 'app.py')


class DryRun(Exception):
    """The command's arguments parsed: stop before it does anything."""


def shell_blocks(text: str) -> list[str]:
    """The bodies of the fenced blocks marked bash/sh/shell/console (or unmarked), fences paired line by line."""
    blocks, body, lang = [], None, None
    for line in text.splitlines():
        fence = re.match(r'\s*```(\w*)', line)
        if fence and body is None:
            body, lang = [], fence.group(1)
        elif fence:
            if lang in ('', 'bash', 'sh', 'shell', 'console'):
                blocks.append('\n'.join(body))
            body = None
        elif body is not None:
            body.append(line)
    return blocks


def readme_commands(text: str) -> list[tuple[str, list[str]]]:
    """``(line, argv)`` of every project command in the fenced shell blocks: argv is ``['restore-dhp', ...]`` or
    ``['-m', module, ...]``."""
    found = []
    for block in shell_blocks(text):
        for line in block.replace('\\\n', ' ').splitlines():
            tokens = shlex.split(line, comments=True)
            while tokens and re.fullmatch(r'[A-Z_]+=\S*', tokens[0]):   # VAR=value prefixes
                tokens = tokens[1:]
            if tokens[:1] == ['restore-dhp']:
                found.append((line.strip(), tokens))
            elif tokens and tokens[0] in ('python', 'python3', 'torchrun') and '-m' in tokens:
                at = tokens.index('-m')
                if tokens[at + 1].split('.')[0] in OUR_MODULES:
                    found.append((line.strip(), tokens[at:]))
    return found


COMMANDS = readme_commands((REPO / 'README.md').read_text())


def test_the_readme_has_commands_of_every_kind():
    kinds = {argv[0] if argv[0] == 'restore-dhp' else argv[1].split('.')[0] for _, argv in COMMANDS}
    assert {'restore-dhp', 'restore_dhp'} <= kinds and len(COMMANDS) >= 10, COMMANDS
    assert readme_commands('```bash\nFOO=1 python -m restore_dhp.infer -i x  # note\nmake test\n```\n') == [
        ('FOO=1 python -m restore_dhp.infer -i x  # note', ['-m', 'restore_dhp.infer', '-i', 'x'])]


def dry_run(argv: list[str], monkeypatch) -> int | str | None:
    """The exit status of ``argv`` run until its entry has parsed its arguments (0 then)."""
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise DryRun(original(self, args, namespace))

    with monkeypatch.context() as m:
        m.setattr(argparse.ArgumentParser, 'parse_args', parse_then_stop)
        m.chdir(REPO)
        try:
            if argv[0] == 'restore-dhp':
                return cli.main(argv[1:])
            m.setattr(sys, 'argv', [argv[1], *argv[2:]])
            runpy.run_module(argv[1], run_name='__main__', alter_sys=True)
            return 0
        except DryRun:
            return 0
        except SystemExit as e:
            return e.code
        finally:
            commands.invoked_as = None


def test_the_dry_run_fails_on_what_the_readme_must_not_say(monkeypatch, capsys):
    assert dry_run(['restore-dhp', 'infer', '-n', 'srresnet_x4_dhp40', '-i', 'a', '-o', 'b'], monkeypatch) == 0
    assert dry_run(['restore-dhp', 'infer', '-w', 'x', '-i', 'a', '-o', 'b', '--no-such-flag'], monkeypatch) == 2
    assert dry_run(['restore-dhp', 'infer', '-w', 'x', '-i', 'a', '-o', 'b', '--ext', 'gif'], monkeypatch) == 2
    assert dry_run(['restore-dhp', 'meta', '--help'], monkeypatch) == 2
    assert dry_run(['-m', 'restore_dhp.latency', 'profile', '--arch', 'srresnet'], monkeypatch) == 2  # --size needed
    with pytest.raises(ImportError):
        dry_run(['-m', 'restore_dhp.no_such_entry'], monkeypatch)
    capsys.readouterr()


@pytest.mark.filterwarnings('ignore:.*found in sys.modules:RuntimeWarning')
@pytest.mark.parametrize('line,argv', COMMANDS, ids=[line[:70] for line, _ in COMMANDS])
def test_readme_command_parses_with_its_entry(line, argv, monkeypatch, capsys):
    for token in argv:
        if token.startswith(REPO_PATHS):
            assert glob.glob(str(REPO / token)), f'{line}: {token} is not in the checkout'
    status = dry_run(argv, monkeypatch)
    assert status in (0, None), f'{line}\n{capsys.readouterr().err}'
