"""restore_dhp.deploy and restore_dhp.export: exact folding, ONNX parity, tiling, errors, CUDA paths (on a GPU)."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

import restore_dhp  # noqa: F401
from nets import compact
from restore_dhp import deploy, network
from restore_dhp.catalogue import TASKS, VARIANTS
from restore_dhp.checkpoint import load_compact, save_compact
from restore_dhp.deploy import DeployError, ShuffleNHWC, fold_batchnorm, prepare, reuse_freed_memory
from restore_dhp.export import main as export_main
from restore_dhp.export import onnx_model_bytes, read_onnx_metadata
from restore_dhp.run_model import forward_tiled

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted(str(p) for p in (REPO / 'weights').glob('*.safetensors'))
DATA = Path('/work/shared/datasets')  # real test images where present; random ones otherwise
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')


def _randomise_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """BatchNorm statistics far from the identity, so that folding has something to get right."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.1)
            m.weight.data.copy_(torch.randn(n, generator=g))
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.3)
    return model.eval()


def _rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    return float((got - ref).abs().max() / ref.abs().max())


def _small_models():
    torch.manual_seed(0)
    return [_randomise_norms(compact('srresnet', {'trunk': 8, 'block00': 5}, num_blocks=2, num_feat=16)),
            _randomise_norms(compact('srresnet', None, num_blocks=2, num_feat=16, scale=2)),
            _randomise_norms(compact('dncnn', {'feat01': 3, 'feat02': 7}, num_layers=5, num_feat=16))]


@pytest.mark.parametrize('index', range(3))
def test_fused_equals_eager_and_has_no_batchnorm(index):
    model = _small_models()[index]
    x = torch.rand(2, network.structure(model).in_channels, 19, 23)
    with torch.no_grad():
        ref = model(x)
    fused = prepare(model, 'cpu', 'fused')
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.module.modules())
    heap = ', heap reuse' if reuse_freed_memory() else ''
    assert fused.layout == 'channels_last' and fused.describe() == f'fused fp32, channels_last{heap}, CPU'
    y = fused(x)
    assert y.dtype == torch.float32 and y.is_contiguous() and y.shape == ref.shape
    assert _rel_err(y, ref) <= 1e-5
    assert _rel_err(prepare(model, 'cpu', 'eager')(x), ref) == 0
    assert model.norms and all(isinstance(m, nn.BatchNorm2d) for m in model.norms.values())  # caller's untouched


def test_fold_keeps_a_batchnorm_whose_conv_output_is_used_elsewhere():
    class Branch(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y  # folding would change the second use

    model = _randomise_norms(Branch())
    x = torch.rand(1, 2, 8, 8)
    gm = fold_batchnorm(model)
    assert any(isinstance(m, nn.BatchNorm2d) for m in gm.modules())
    with torch.no_grad():
        assert torch.equal(gm(x), model(x))


def test_shuffle_as_block_copy_matches_pixel_shuffle():
    x = torch.rand(2, 4 * 5, 6, 7)
    order = torch.arange(20).view(5, 4).t().reshape(-1)  # channels as (i, j, c)
    ref = nn.PixelShuffle(2)(x)
    got = ShuffleNHWC(2)(x[:, order].contiguous(memory_format=torch.channels_last))
    assert torch.equal(got, ref) and got.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.skipif(not SHIPPED, reason='no shipped weights')
@pytest.mark.parametrize('path', SHIPPED, ids=[Path(p).stem for p in SHIPPED])
def test_every_shipped_checkpoint_folds_exactly_and_exports(path):
    model = load_compact(path, 'cpu')
    x = torch.rand(1, network.structure(model).in_channels, 24, 20, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(x)
    assert _rel_err(prepare(model, 'cpu', 'fused')(x), ref) <= 1e-5
    assert float((prepare(model, 'cpu', 'onnxruntime')(x) - ref).abs().max()) <= 1e-4


def _real_input(task: str, channels: int) -> torch.Tensor:
    """A crop of a real test image (Set5 LR / BSD68), or a smooth random image where the data is absent."""
    path = next(iter(sorted((DATA / ('Set5/LR_bicubic/X4' if task == 'sr' else 'BSD68')).glob('*.png'))), None)
    if path is None:
        img = cv2.resize(np.random.default_rng(0).random((8, 8, channels), np.float32), (48, 40))
    else:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR if channels == 3 else cv2.IMREAD_GRAYSCALE)[:40, :48]
        img = img[:, :, ::-1] if channels == 3 else img
        img = img.astype(np.float32) / 255
    img = img.reshape(img.shape[0], img.shape[1], channels)
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]


@pytest.mark.parametrize('index', range(3))
def test_onnxruntime_matches_torch_on_random_and_real_inputs(index):
    model = _small_models()[index]
    ort_model = prepare(model, 'cpu', 'onnxruntime', threads=torch.get_num_threads())
    assert ort_model.describe() == 'onnxruntime fp32, NCHW, CPUExecutionProvider, CPU'
    facts = network.structure(model)
    for x in (torch.rand(1, facts.in_channels, 17, 29), torch.rand(2, facts.in_channels, 8, 8),
              _real_input(facts.task, facts.in_channels)):
        with torch.no_grad():
            ref = model(x)
        assert float((ort_model(x) - ref).abs().max()) <= 1e-4


@pytest.mark.parametrize('index', (0, 2))
def test_compiled_equals_eager_and_compiles_once_for_every_image_size(index):
    model = _small_models()[index]
    compiled = prepare(model, 'cpu', 'compiled')
    heap = ', heap reuse' if reuse_freed_memory() else ''
    assert compiled.describe() == f'compiled fp32, channels_last{heap}, CPU'
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    for shape in ((1, 19, 23), (1, 24, 20), (1, 31, 16), (2, 24, 20)):
        x = torch.rand(shape[0], network.structure(model).in_channels, *shape[1:])
        with torch.no_grad():
            ref = model(x)
        y = compiled(x)
        assert y.dtype == torch.float32 and y.is_contiguous() and y.shape == ref.shape
        assert _rel_err(y, ref) <= 1e-5
        if shape[0] == 1:  # one compilation for these heights and widths (a batch > 1 compiles once more)
            assert torch._dynamo.utils.counters['stats']['unique_graphs'] == 1


def test_a_failing_compiler_is_one_deploy_error(monkeypatch):
    def no_compiler(gm, example_inputs):
        raise RuntimeError('no C++ compiler here\nmore detail')

    real_compile = torch.compile
    monkeypatch.setattr(torch, 'compile', lambda module, **kw: real_compile(module, backend=no_compiler, **kw))
    torch._dynamo.reset()
    d = prepare(_small_models()[2], 'cpu', 'compiled')
    words = "compiled': torch.compile failed .*no C.. compiler here.*use backend 'fused'"
    with pytest.raises(DeployError, match=words) as e:
        d(torch.rand(1, 1, 8, 8))
    assert '\n' not in str(e.value)


def test_forward_tiled_takes_a_deployed_model():
    model = _small_models()[0]
    x = torch.rand(1, 3, 30, 26)
    ref = forward_tiled(model, x, network.structure(model).scale, tile=12, overlap=8)
    for backend in deploy.BACKENDS:
        d = prepare(model, 'cpu', backend)
        tiled = forward_tiled(d, x, d.scale, tile=12, overlap=8)  # non-contiguous tile views go in
        assert tiled.shape == (1, 3, 120, 104) and _rel_err(tiled, ref) <= 1e-5


def test_export_cli_writes_a_checked_self_describing_model(tmp_path, capsys):
    model = _small_models()[0]
    weights, out = tmp_path / 'm.safetensors', tmp_path / 'sub' / 'm.onnx'
    save_compact(model, weights)
    assert export_main(['--weights', str(weights), '--onnx', str(out)]) == 0
    line = capsys.readouterr().out
    assert 'SRResNet sr x4' in line and 'max |onnxruntime - torch| =' in line
    meta = read_onnx_metadata(out)
    assert meta['arch'] == 'SRResNet' and meta['task'] == 'sr' and meta['scale'] == '4'
    assert '"trunk": 8' in meta['widths'] and '"num_blocks": 2' in meta['arch_kwargs']
    import onnx
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto)
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ['batch', 3, 'height', 'width']
    assert not any(n.op_type == 'BatchNormalization' for n in proto.graph.node)
    assert export_main(['--weights', str(tmp_path / 'missing.safetensors'), '--onnx', str(out)]) == 2
    assert capsys.readouterr().err.strip().count('\n') == 0


def test_bad_requests_give_one_line_errors(monkeypatch):
    model = _small_models()[2]
    for kwargs, words in (({'backend': 'tensorrt'}, 'unknown backend'), ({'precision': 'fp8'}, 'unknown precision'),
                          ({'precision': 'fp16'}, 'runs on CUDA'), ({'threads': 0}, 'threads')):
        with pytest.raises(DeployError, match=words):
            prepare(model, 'cpu', **kwargs)
    d = prepare(model, 'cpu')
    for x, words in ((torch.rand(1, 3, 8, 8), 'N x 1 x H x W'), (torch.rand(1, 1, 8, 8).double(), 'float32')):
        with pytest.raises(DeployError, match=words):
            d(x)
    monkeypatch.setattr(deploy, 'ort', None)
    with pytest.raises(DeployError, match='needs the onnxruntime package') as e:
        prepare(model, 'cpu', 'onnxruntime')
    assert '\n' not in str(e.value)
    if not torch.cuda.is_available():
        with pytest.raises(DeployError, match='no CUDA device'):
            prepare(model, 'cuda')


def test_onnx_bytes_for_every_catalogue_architecture():
    for task in TASKS.values():
        model = (compact('srresnet', num_blocks=1, num_feat=8) if task.key == 'sr' else
                 compact('dncnn', num_layers=3, num_feat=8))
        assert len(onnx_model_bytes(model)) > 1000
    assert VARIANTS[0] == 'baseline'


@cuda
@pytest.mark.parametrize('backend', ('fused', 'compiled'))
@pytest.mark.parametrize('precision,tol', [('fp32', 1e-2), ('fp16', 5e-2), ('bf16', 2e-1)])
def test_cuda_fused_graphs_match_eager(backend, precision, tol):
    torch.manual_seed(0)  # default BatchNorm statistics: activations stay in fp16 range (folding is tested above)
    model = compact('srresnet', {'trunk': 8, 'block00': 5}, num_blocks=2, num_feat=16).eval().cuda()
    x = torch.rand(1, 3, 24, 20, device='cuda')
    with torch.no_grad():
        ref = model(x)
    d = prepare(model, 'cuda', backend, precision)
    assert d.describe().startswith(f'{backend} {precision}, channels_last, CUDA graphs')
    for _ in range(3):  # capture, then replays
        assert _rel_err(d(x), ref) <= tol
    y2 = d(torch.rand(1, 3, 16, 16, device='cuda'))  # a new shape captures again
    assert y2.shape == (1, 3, 64, 64) and len(d._runner.graphs) == 2


@cuda
def test_cuda_graph_capture_failure_falls_back_with_a_warning():
    class Syncs(nn.Module):
        scale, in_channels = 1, 1

        def forward(self, x):
            return x * float(x.sum())  # a host sync: not capturable

    runner = deploy._CudaGraphRunner(Syncs().cuda(), torch.float32, torch.contiguous_format)
    x = torch.rand(1, 1, 8, 8, device='cuda')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        y = runner(x)
    assert any('capture failed' in str(w.message) for w in caught)
    assert torch.allclose(y, x * x.sum())


@cuda
def test_cuda_kernel_profile_names_conv_kernels(tmp_path, capsys):
    from restore_dhp.speedup import main as speedup_main
    path = tmp_path / 'dncnn_s70_dhp40.safetensors'
    save_compact(compact('dncnn', {'feat01': 8}, num_layers=5, num_feat=16), path)
    assert speedup_main(['--weights', str(path), '--profile', '--device', 'cuda', '--backends', 'fused', 'compiled',
                         '--precisions', 'fp16', '--sizes', '32', '--repeats', '2']) == 0
    text = capsys.readouterr().out
    assert text.count('CUDA kernels of one forward') == 4  # a full-width stand-in baseline and the model, two backends
    assert 'fused fp16, channels_last, CUDA graphs' in text and 'compiled fp16' in text


def test_a_backend_is_one_table_row(monkeypatch):
    """A new row in deploy.BACKEND_TABLE is built, described, offered and checked without another edit."""
    from restore_dhp import benchmark

    def build(source, device, dtype, threads):
        return (lambda x: source(x.to(dtype)).float()), 'NCHW'

    row = deploy.Backend('plain', build, available=lambda d: None if d.type == 'cpu' else 'CPU only',
                         precisions={'cpu': ('fp32',)}, labels=lambda runner, device: ['no rewrites'],
                         runs_torch_module=False, allocator='plain runtime')
    monkeypatch.setitem(deploy.BACKEND_TABLE, 'plain', row)
    model = _small_models()[2]
    x = torch.rand(1, 1, 12, 10)
    d = prepare(model, 'cpu', 'plain')
    with torch.no_grad():
        assert torch.equal(d(x), model(x))
    assert d.describe() == 'plain fp32, NCHW, no rewrites, CPU' and d.memory_allocator == 'plain runtime'
    assert 'plain' in deploy.usable_backends('cpu') and 'plain' in benchmark.default_backends('cpu')
    assert 'plain' not in deploy.usable_backends('cpu', torch_module_only=True)
    assert 'plain' not in deploy.usable_backends('cuda')
    assert deploy.precision_problem('plain', 'fp16', 'cpu') == 'backend plain does not run fp16; use fp32'
    assert deploy.precision_problem('fused', 'fp16', 'cpu').startswith('precision fp16 runs on CUDA only')
    from restore_dhp.timing import measure
    assert measure(d, x, repeats=1, warmup=0).method.endswith('(plain runtime allocates outside torch)')
