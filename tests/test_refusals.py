"""Issue 32's tracebacks, each now one line that names the problem and leaves nothing behind: complexity on
crafted files, export at a bad opset or with weights that give NaN, values checked after BatchNorm folding,
restore() on bad arguments or over the memory budget, and a closed pipe."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import restore_dhp
from nets import compact
from restore_dhp.checkpoint import load_compact, save_compact
from restore_dhp.deploy import DeployError, prepare

REPO = Path(__file__).resolve().parents[1]


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: ') and 'Traceback' not in err[0], err
    return err[0]


def _recrafted(src: Path, dst: Path, **changes) -> Path:
    """``src`` with metadata entries replaced (JSON for the structured ones)."""
    with safe_open(str(src), 'pt') as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    meta.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in changes.items()})
    save_file(tensors, str(dst), metadata=meta)
    return dst


@pytest.fixture()
def small(tmp_path):
    torch.manual_seed(0)
    save_compact(compact('dncnn', num_layers=4, num_feat=8).eval(), tmp_path / 'dn.safetensors')
    save_compact(compact('srresnet', num_blocks=1, num_feat=8).eval(), tmp_path / 'sr.safetensors')
    return tmp_path


def test_complexity_on_crafted_files_is_one_line(small, capsys):
    from restore_dhp.complexity import main
    dn, sr = small / 'dn.safetensors', small / 'sr.safetensors'
    cases = {'unknown architecture': _recrafted(dn, small / 'a.safetensors', arch='Nope'),
             "unexpected keyword argument 'extra'": _recrafted(dn, small / 'b.safetensors',
                                                                arch_kwargs={'num_layers': 4, 'num_feat': 8,
                                                                             'extra': 3}),
             # the DHP form's class name of the files before the traced DHP form: no such class now
             "unknown architecture 'DnCNNDHP'": _recrafted(dn, small / 'c.safetensors', arch='DnCNNDHP'),
             'power of two': _recrafted(sr, small / 'd.safetensors', scale='3',
                                        arch_kwargs={'num_blocks': 1, 'num_feat': 8, 'scale': 3})}
    for words, path in cases.items():
        assert main(['--weights', str(path)]) == 2
        line = _one_line(capsys)
        assert str(path) in line and words in line, line


def test_export_opset_out_of_range_and_nan_parity_write_nothing(small, capsys, monkeypatch):
    from restore_dhp import export
    out = small / 'x.onnx'
    assert export.main(['--weights', str(small / 'dn.safetensors'), '--onnx', str(out), '--opset', '99']) == 2
    assert 'opset 99' in _one_line(capsys) and not out.exists()
    pytest.importorskip('onnxruntime')
    monkeypatch.setattr(export, 'parity_error', lambda model, data: float('nan'))
    assert export.main(['--weights', str(small / 'dn.safetensors'), '--onnx', str(out)]) == 2
    line = _one_line(capsys)
    assert 'max |onnxruntime - torch| = nan' in line and 'nothing written' in line and not out.exists()


def test_export_of_weights_that_give_nan_writes_nothing(small, capsys):
    """A BatchNorm running_var of -1 (issue 32: export printed 'max |onnxruntime - torch| = nan' and returned 0):
    refused in one line, by the loader or by the parity check, and no file is written."""
    from restore_dhp import export
    model = load_compact(small / 'dn.safetensors')
    next(iter(model.norms.values())).running_var[0] = -1.0
    save_compact(model, small / 'bad.safetensors')
    out = small / 'bad.onnx'
    assert export.main(['--weights', str(small / 'bad.safetensors'), '--onnx', str(out)]) == 2
    line = _one_line(capsys)
    assert ('nan' in line or 'running_var' in line) and not out.exists(), line
    with pytest.raises(ValueError, match=r'bad.safetensors.*(running_var|BatchNorm|variance)'):  # the file named
        restore_dhp.restore(np.zeros((8, 8), np.uint8), weights=small / 'bad.safetensors', device='cpu')
    from restore_dhp.data.imageio import write_png
    from restore_dhp.infer import main as infer_main
    write_png(small / 'a.png', np.zeros((8, 8), np.uint8))
    assert infer_main(['-w', str(small / 'bad.safetensors'), '-i', str(small / 'a.png'), '-o', str(small / 'o')]) == 2
    assert 'bad.safetensors' in _one_line(capsys) and not (small / 'o').exists()


def test_values_are_checked_before_and_after_batchnorm_folding():
    torch.manual_seed(0)
    model = compact('dncnn', num_layers=4, num_feat=8).eval()
    bad_var = load_like(model)
    bad_var.norms[next(iter(bad_var.norms))].running_var[0] = -1.0
    for backend in ('eager', 'fused'):
        with pytest.raises(DeployError, match='running_var holds values below 0'):
            prepare(bad_var, 'cpu', backend)
    overflow = load_like(model)   # finite as stored, infinite once the gain is folded into the conv
    bn = overflow.norms[next(iter(overflow.norms))]
    bn.weight.data[0], bn.running_var[0] = 1e30, 0.0
    bn.eps = 1e-30
    with pytest.raises(DeployError, match='after folding BatchNorm'):
        prepare(overflow, 'cpu', 'fused')
    assert prepare(model, 'cpu', 'fused') is not None


def load_like(model):
    import copy
    return copy.deepcopy(model)


def test_restore_refuses_bad_arguments_with_typed_one_line_errors(small):
    weights = small / 'dn.safetensors'
    img = np.zeros((8, 8), np.uint8)
    cases = [(dict(tile=0), ValueError, 'tile must be None'), (dict(tile=-3), ValueError, 'tile must be'),
             (dict(overlap=-1), ValueError, 'overlap must be'), (dict(device='tpu'), ValueError, "device 'tpu'"),
             (dict(max_memory_gb=0), ValueError, 'max_memory_gb must be positive')]
    for kwargs, kind, words in cases:
        with pytest.raises(kind, match=words) as e:
            restore_dhp.restore(img, weights=weights, **kwargs)
        assert '\n' not in str(e.value)
    for bad, words in ((np.zeros((0, 0), np.uint8), 'empty image'), (np.zeros((4, 4, 2), np.uint8), 'shape'),
                       (np.zeros((4, 4), np.float32), 'pixel type')):
        with pytest.raises(ValueError, match=words):
            restore_dhp.restore(bad, weights=weights)
    with pytest.raises(ValueError, match="unknown model name 'srresnet_x4_dhp45'; did you mean srresnet_x4_dhp40"):
        restore_dhp.restore(img, weights='srresnet_x4_dhp45')


def test_restore_shares_the_memory_budget_before_decoding(small, monkeypatch):
    from test_imageio import png_header_only

    from restore_dhp import api
    from restore_dhp.budget import MemoryBudgetError, process_bytes
    huge = small / 'huge.png'
    huge.write_bytes(png_header_only(20000, 20000))   # only the header is real: decoding it would fail
    monkeypatch.setattr(api, 'decode_image', lambda *a: pytest.fail('decoded before the budget check'))
    with pytest.raises(MemoryBudgetError, match=r'huge.png: 20000×20000 needs about .* over the memory limit of 8.0 GB;'
                                                r' raise it with max_memory_gb=\d+'):
        restore_dhp.restore(huge, weights=small / 'sr.safetensors', max_memory_gb=8)
    # the process's own size counts: a limit below it refuses even a tiny image
    with pytest.raises(MemoryBudgetError, match='this process'):
        restore_dhp.restore(np.zeros((8, 8, 3), np.uint8), weights=small / 'sr.safetensors',
                            max_memory_gb=process_bytes() / 2e9)


def test_infer_budget_counts_the_process(small, capsys):
    from restore_dhp.budget import process_bytes
    from restore_dhp.data.imageio import write_png
    from restore_dhp.infer import main
    write_png(small / 'a.png', np.zeros((8, 8, 3), np.uint8))
    assert main(['-w', str(small / 'sr.safetensors'), '-i', str(small / 'a.png'), '-o', str(small / 'o'),
                 '--max-memory-gb', f'{process_bytes() / 2e9:.3f}', '--quiet']) == 2
    line = _one_line(capsys)
    assert 'this process' in line and 'over the memory limit' in line and not (small / 'o').exists()


def test_restore_cache_keys_on_the_resolved_file_and_its_time(small, monkeypatch):
    import os

    from restore_dhp import api
    api._deployed.cache_clear()
    weights, img = small / 'dn.safetensors', np.full((8, 8), 100, np.uint8)
    first = restore_dhp.restore(img, weights=str(weights), device='cpu')
    restore_dhp.restore(img, weights=str(small / '.' / 'x' / '..' / 'dn.safetensors').replace('/x/..', ''),
                        device='cpu')
    os.symlink(weights, small / 'link.safetensors')
    restore_dhp.restore(img, weights=small / 'link.safetensors', device='cpu')
    assert api._deployed.cache_info().misses == 1   # one file, named three ways: loaded once
    torch.manual_seed(5)
    save_compact(compact('dncnn', num_layers=4, num_feat=8).eval(), weights)   # replaced on disk
    os.utime(weights, ns=(1, 10 ** 18))
    again = restore_dhp.restore(img, weights=weights, device='cpu')
    assert api._deployed.cache_info().misses == 2 and not np.array_equal(first, again)


def test_onnx_output_dimensions_have_their_own_names():
    onnx = pytest.importorskip('onnx')
    from restore_dhp.export import onnx_model_bytes
    torch.manual_seed(0)
    for model, dims in ((compact('srresnet', num_blocks=1, num_feat=8).eval(), ['batch', 'height_x4', 'width_x4']),
                        (compact('dncnn', num_layers=3, num_feat=8).eval(), ['batch', 'height', 'width'])):
        graph = onnx.load_from_string(onnx_model_bytes(model)).graph
        shape = [d.dim_param for d in graph.output[0].type.tensor_type.shape.dim]
        assert [shape[0], shape[2], shape[3]] == dims
        assert [d.dim_param for d in graph.input[0].type.tensor_type.shape.dim][2:] == ['height', 'width']


@pytest.mark.parametrize('cmd', [['-m', 'restore_dhp', '--help'], ['-m', 'restore_dhp', 'infer', '--help'],
                                 ['-m', 'restore_dhp.catalogue', 'files']])
def test_a_closed_pipe_ends_quietly(cmd):
    """``restore-dhp --help | head -1``: the reader goes after one line; no BrokenPipeError traceback."""
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
        proc.stdout.readline()
        proc.stdout.close()   # as head does after its line
        err = proc.stderr.read().decode()
        assert proc.wait() in (0, 141) and err == '', err
