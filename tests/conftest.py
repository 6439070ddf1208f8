"""Shared fixtures. ``demo_app``: the Gradio demo (app.py) running as a subprocess on tiny random checkpoints.

Set ``RESTORE_DHP_DEMO_WEIGHTS=weights`` to serve real checkpoints instead, from that folder as the demo
itself does (e.g. to take the README's screenshot: ``RESTORE_DHP_DEMO_WEIGHTS=weights pytest
tests/test_app_browser.py``, then copy test-artifacts/demo.png to reports/demo_screenshot.png).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEMO_VARIANTS = ('baseline', 'dhp60', 'dhp40', 'dhp20')


def pytest_configure(config) -> None:
    """Under pytest-xdist (``make test`` runs ``-n auto``) each worker gets its share of the cores for torch's
    intra-op threads, so the workers do not oversubscribe the machine."""
    workers = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '0'))
    if workers > 1:
        import torch
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def write_tiny_demo_weights(folder: Path, seed: int = 0, variants=DEMO_VARIANTS, tasks=('sr', 'denoise')) -> None:
    """Tiny SRResNet/DnCNN compact checkpoints under the demo's file names: the baseline at full width, the
    others at random widths, each with the search target its name states (the demo names models from it)."""
    import torch

    import restore_dhp  # noqa: F401
    from restore_dhp import network
    from restore_dhp.checkpoint import save_compact
    g = torch.Generator().manual_seed(seed)

    def rnd(lo, hi):
        return int(torch.randint(lo, hi + 1, (1,), generator=g))

    torch.manual_seed(seed)
    for v in variants:
        full = v == 'baseline'
        info = {'note': 'test', **({} if full else {'search': {'target_ratio': int(v[3:]) / 100}})}
        if 'sr' in tasks:
            widths = None if full else {'trunk': rnd(4, 16), 'block00': rnd(2, 16), 'block01': rnd(2, 16)}
            save_compact(network.build('srresnet', dict(num_blocks=2, num_feat=16), widths),
                         folder / f'srresnet_x4_{v}.safetensors', info)
        if 'denoise' in tasks:
            widths = None if full else {f'feat{i:02d}': rnd(2, 16) for i in range(4)}
            save_compact(network.build('dncnn', dict(num_layers=5, num_feat=16), widths),
                         folder / f'dncnn_s70_{v}.safetensors', info)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start_demo(weights_dir: Path, log_path: Path, extra=(), timeout: float = 240.0, examples_dir: Path | None = None):
    """Start app.py; return (process, url) once the page answers. Fails with the log if it dies first."""
    port = free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED='False', PYTHONUNBUFFERED='1')
    log = open(log_path, 'w')
    examples_dir = examples_dir or Path(weights_dir) / 'examples'
    proc = subprocess.Popen([sys.executable, str(REPO / 'app.py'), '--weights-dir', str(weights_dir),
                             '--port', str(port), '--examples-dir', str(examples_dir), *extra],
                            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f'http://127.0.0.1:{port}/'
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.close()
            pytest.fail(f'app.py exited with {proc.returncode}:\n{log_path.read_text()}')
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            pass
        time.sleep(0.5)
    proc.kill()
    pytest.fail(f'app.py did not answer within {timeout:.0f} s:\n{log_path.read_text()}')


@pytest.fixture(scope='session')
def demo_app(tmp_path_factory):
    """(url, weights_dir, log_path) of one app.py server shared by the demo tests."""
    folder = tmp_path_factory.mktemp('demo_weights')
    real = os.environ.get('RESTORE_DHP_DEMO_WEIGHTS')
    if not real:
        write_tiny_demo_weights(folder)
    log_path = folder / 'app.log'
    # real weights are served from their own folder (named as given, relative to the checkout), as the demo does
    served = REPO / real if real else folder
    proc, url = start_demo(Path(real) if real else folder, log_path, examples_dir=folder / 'examples')
    yield url, served, log_path
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
