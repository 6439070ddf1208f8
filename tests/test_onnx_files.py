"""ONNX files say how to feed them, are not clamped (and say so), and load in OpenCV DNN without a warning."""
from pathlib import Path

import numpy as np
import pytest
import torch

import restore_dhp
from nets import compact
from restore_dhp import network
from restore_dhp.checkpoint import load_compact
from restore_dhp.export import INPUT_NAME, OUTPUT_NAME, onnx_model_bytes

onnx = pytest.importorskip('onnx')
REPO = Path(__file__).resolve().parents[1]


def _models():
    torch.manual_seed(0)
    return {'sr': compact('srresnet', {'trunk': 8, 'block00': 5}, num_blocks=2, num_feat=16).eval(),
            'denoise': compact('dncnn', {'feat01': 3}, num_layers=4, num_feat=8).eval()}


@pytest.mark.parametrize('task,order', [('sr', 'RGB'), ('denoise', 'gray')])
def test_metadata_says_how_to_feed_the_file(task, order):
    proto = onnx.load_from_string(onnx_model_bytes(_models()[task]))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta['input_range'] == '0-1' and meta['channel_order'] == order and meta['clamp'] == 'none'
    assert meta['restore_dhp_version'] == restore_dhp.__version__ == proto.producer_version
    assert proto.producer_name == 'restore_dhp'


def test_output_is_not_clamped_as_the_metadata_says():
    ort = pytest.importorskip('onnxruntime')
    model = _models()['sr']
    data = onnx_model_bytes(model)
    assert not any(n.op_type in ('Clip', 'Min', 'Max') for n in onnx.load_from_string(data).graph.node)
    x = torch.rand(1, 3, 12, 10, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(x).numpy()
    assert ref.min() < 0 or ref.max() > 1  # this untrained network leaves the range: a clamp would show
    got = ort.InferenceSession(data, providers=['CPUExecutionProvider']).run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
    assert np.abs(got - ref).max() < 1e-5


def _sources():
    models = _models()
    shipped = REPO / 'weights' / 'srresnet_x4_dhp20.safetensors'
    return [('sr', models['sr']), ('denoise', models['denoise'])] + \
        ([('shipped sr dhp20', load_compact(shipped))] if shipped.is_file() else [])


@pytest.mark.parametrize('index', range(3))
def test_opencv_dnn_loads_without_warning_and_matches_torch(index, tmp_path, capfd):
    cv2 = pytest.importorskip('cv2')
    sources = _sources()
    if index >= len(sources):
        pytest.skip('shipped weights not present')
    name, model = sources[index]
    data = onnx_model_bytes(model)
    assert not any(n.op_type == 'Identity' for n in onnx.load_from_string(data).graph.node)
    path = tmp_path / 'model.onnx'
    path.write_bytes(data)
    capfd.readouterr()
    net = cv2.dnn.readNetFromONNX(str(path))
    x = np.random.default_rng(0).random((1, network.facts(model).in_channels, 20, 24), dtype=np.float32)
    net.setInput(x)
    got = net.forward()
    err = capfd.readouterr().err
    assert 'WARN' not in err and 'older parser' not in err, err
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert got.shape == ref.shape and np.abs(got - ref).max() < 1e-4, name
