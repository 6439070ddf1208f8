"""restore_dhp.timing: runtimes, a reproducible CPU memory peak, side-by-side rounds, isolated measurement."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import restore_dhp  # noqa: F401
from nets import compact
from restore_dhp.archs.dncnn_arch import DnCNN
from restore_dhp.checkpoint import save_compact
from restore_dhp.deploy import prepare, reuse_freed_memory
from restore_dhp.evaluation import measure_checkpoint, measure_checkpoint_isolated
from restore_dhp.timing import (METHOD_CPU, METHOD_CPU_NO_MEMORY, cpu_model, measure, measure_side_by_side,
                                 weight_bytes)


def _model(width: int = 16) -> DnCNN:
    torch.manual_seed(0)
    return compact('dncnn', num_layers=5, num_feat=width).eval()


def test_cpu_peak_is_reproducible_and_follows_the_activations():
    model = _model()
    small, large = torch.rand(1, 1, 32, 32), torch.rand(1, 1, 64, 64)
    first = [measure(prepare(model, 'cpu', b), small, repeats=1, warmup=0) for b in ('eager', 'fused')]
    again = [measure(prepare(model, 'cpu', b), small, repeats=2, warmup=1) for b in ('eager', 'fused')]
    for a, b in zip(first, again):  # identical requests, cold and warm: the same figure within 5%
        assert a.method == METHOD_CPU and a.threads == torch.get_num_threads()
        assert abs(a.peak_memory_bytes - b.peak_memory_bytes) <= 0.05 * b.peak_memory_bytes
    m_small = measure(model, small, repeats=1, warmup=0)
    m_large = measure(model, large, repeats=1, warmup=0)
    act_small = m_small.peak_memory_bytes - weight_bytes(model) - small.numel() * 4
    act_large = m_large.peak_memory_bytes - weight_bytes(model) - large.numel() * 4
    # at least two 16-channel feature maps are alive at once (oneDNN's own buffers, e.g. an im2col
    # workspace at some sizes, come on top: they go through the same allocator)
    assert act_small >= 2 * 16 * 32 * 32 * 4 and act_large >= 2 * 16 * 64 * 64 * 4
    narrow = measure(_model(width=4), large, repeats=1, warmup=0)
    assert narrow.peak_memory_bytes < m_large.peak_memory_bytes  # a pruned model needs less


def test_onnxruntime_memory_is_not_claimed():
    m = measure(prepare(_model(), 'cpu', 'onnxruntime'), torch.rand(1, 1, 16, 16), repeats=1, warmup=0)
    assert m.peak_memory_bytes is None and m.peak_memory_mb is None and m.method == METHOD_CPU_NO_MEMORY


def test_side_by_side_runs_every_model_every_round():
    calls = []

    def make(name):
        return lambda x: calls.append(name)

    runs = measure_side_by_side({'a': make('a'), 'b': make('b'), 'c': make('c')}, torch.zeros(1), 3, 1)
    assert {k: len(v) for k, v in runs.items()} == {'a': 3, 'b': 3, 'c': 3}
    assert calls[:3] == ['a', 'b', 'c'] and calls[3:6] == ['b', 'c', 'a']  # order rotated each round
    with pytest.raises(ValueError):
        measure_side_by_side({'a': make('a')}, torch.zeros(1), 0, 0)


def test_checkpoint_measured_in_a_fresh_process(tmp_path):
    path = tmp_path / 'm.safetensors'
    save_compact(_model(), path)
    inputs = [np.random.default_rng(0).random((1, 1, 16, 20), dtype=np.float32)]
    here = measure_checkpoint(str(path), inputs, 'cpu', 2, 1, 'fused', 'fp32', 1)
    there = measure_checkpoint_isolated(str(path), inputs, 'cpu', 2, 1, 'fused', 'fp32', 1)
    for r in (here, there):
        heap = ', heap reuse' if reuse_freed_memory() else ''
        assert r['deployed'] == f'fused fp32, channels_last{heap}, CPU' and r['threads'] == 1
        assert r['per_image'][0]['size'] == [16, 20] and r['runtime_ms'] > 0
    assert there['pid'] != os.getpid() == here['pid']
    assert abs(here['peak_memory_mb'] - there['peak_memory_mb']) <= 0.05 * here['peak_memory_mb']
    with pytest.raises(Exception, match='no such file'):
        measure_checkpoint_isolated(str(tmp_path / 'missing.safetensors'), inputs, 'cpu', 1, 0)


def test_profiler_is_quiet_on_stderr():
    """No kineto 'USDT'/'STAGE' progress lines, no 'gpuGetDeviceCount failed' on a CPU machine (issue 21)."""
    import subprocess
    import sys
    code = ('import torch\nfrom restore_dhp.timing import measure\n'
            'm = measure(torch.nn.Conv2d(3, 3, 3), torch.rand(1, 3, 16, 16), repeats=1, warmup=0)\n'
            'assert m.peak_memory_bytes\n')
    env = {k: v for k, v in os.environ.items() if k != 'KINETO_LOG_LEVEL'}
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300, env=env,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert r.returncode == 0, r.stderr
    assert 'USDT' not in r.stderr and 'gpuGetDeviceCount' not in r.stderr and 'STAGE' not in r.stderr, r.stderr


def test_cpu_model_tells_apart_cpus_a_virtual_machine_names_alike(tmp_path):
    def model(text):
        path = tmp_path / 'cpuinfo'
        path.write_text(text)
        return cpu_model(str(path))

    block = 'processor\t: {n}\ncpu family\t: 25\nmodel\t\t: {m}\nmodel name\t: {name}\nflags\t\t: avx512f\n\n'
    assert model(block.format(n=0, m=17, name='AMD EPYC') + block.format(n=1, m=1, name='other')) == \
        'AMD EPYC (family 25, model 17)'
    assert model(block.format(n=0, m=1, name='AMD EPYC')) == 'AMD EPYC (family 25, model 1)'
    xeon = 'Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz'
    assert model(block.format(n=0, m=106, name=xeon)) == xeon   # a name with a number says which CPU it is
