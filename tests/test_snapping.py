"""Deploy-time width snapping (a table of this machine says padded widths run faster), and the warning when a
latency-targeted checkpoint runs on another device or backend than its table's."""
import json

import torch

from restore_dhp import network
from restore_dhp.deploy import prepare
from restore_dhp.dhp.latency_table import layer_class
from restore_dhp.latency import target_mismatch
from restore_dhp.timing import cpu_model

ARCH, KWARGS = 'dncnn', dict(num_feat=16, num_layers=5)


def _table(spec, step: int, off_step_penalty: float) -> dict:
    """A table of this machine where a conv costs its MACs at the next multiple of ``step``, times
    ``off_step_penalty`` for each width off the step (as an AVX-512 CPU dips at its step)."""
    layers, convs = {}, {}

    def us(cin, cout):
        penalty = (off_step_penalty if cin % step else 1.0) * (off_step_penalty if cout % step else 1.0)
        return float(-(-cin // step) * step * -(-cout // step) * step) * penalty

    for name, c in spec.convs.items():
        key = layer_class(spec, name)
        convs[name] = key
        fin, fout = c.in_group in spec.fixed_groups, c.out_group in spec.fixed_groups
        full_in, full_out = spec.group_widths[c.in_group], spec.group_widths[c.out_group]
        if fin:
            layers[key] = {'widths': list(range(1, full_out + 1)), 'us': [us(full_in, w) for w in range(1, full_out + 1)]}
        elif fout:
            layers[key] = {'widths': list(range(1, full_in + 1)), 'us': [us(w, full_out) for w in range(1, full_in + 1)]}
        else:
            grid = list(range(1, full_in + 1))
            layers[key] = {'in_widths': grid, 'out_widths': grid, 'us': [[us(i, o) for o in grid] for i in grid]}
    return {'format': 'restore_dhp.latency.v1', 'arch': ARCH, 'arch_kwargs': KWARGS, 'device': 'cpu',
            'device_name': cpu_model(), 'backend': 'fused', 'precision': 'fp32', 'threads': 1, 'size': [8, 8],
            'interpolation': 'linear', 'width_step': step, 'layers': layers, 'convs': convs,
            'elementwise_us_per_element': 0.0, 'constant_us': 0.0}


def _write(tmp_path, data) -> None:
    folder = tmp_path / 'latency_tables' / 'cpu-this-1t'
    folder.mkdir(parents=True)
    (folder / f'{ARCH}_fused_fp32_8x8.json').write_text(json.dumps(data))


def test_prepare_pads_widths_when_this_machines_table_says_faster(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = network.build(ARCH, KWARGS, {'feat00': 6, 'feat01': 7, 'feat02': 4}).eval()
    spec = network.structure(model).spec
    monkeypatch.chdir(tmp_path)
    x = torch.rand(1, 1, 9, 11)
    with torch.no_grad():
        expected = model(x)
    assert prepare(model, 'cpu', threads=1).note is None               # no table for this machine: as it is
    _write(tmp_path, _table(spec, step=4, off_step_penalty=1.5))
    deployed = prepare(model, 'cpu', threads=1)
    assert deployed.note and 'multiples of 4' in deployed.note
    assert deployed.structure['widths'] == {'feat00': 8, 'feat01': 8, 'feat02': 4, 'feat03': 16}
    assert torch.allclose(deployed(x), expected, atol=1e-5)
    assert network.structure(model).widths['feat01'] == 7  # the caller's model unchanged
    assert prepare(model, 'cpu', threads=1, snap_widths='off').note is None
    assert prepare(model, 'cpu', threads=2).note is None                # a table of 1 thread: not this setting


def test_no_padding_where_the_table_prices_it_dearer(tmp_path, monkeypatch):
    model = network.build(ARCH, KWARGS, {'feat00': 6, 'feat01': 7, 'feat02': 4}).eval()
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, _table(network.structure(model).spec, step=4, off_step_penalty=1.0))  # the same cost padded
    assert prepare(model, 'cpu', threads=1).note is None


def test_latency_targeted_checkpoint_on_another_device_or_backend_warns():
    record = {'info': {'search': {'latency_table': {'device_name': cpu_model(), 'backend': 'fused', 'threads': 1}}}}
    assert target_mismatch(record, 'cpu', 'fused') is None
    assert 'onnxruntime' in target_mismatch(record, 'cpu', 'onnxruntime')
    other = {'info': {'search': {'latency_table': {'device_name': 'Another CPU 9000', 'backend': 'fused'}}}}
    assert "searched for the latency of 'Another CPU 9000'" in target_mismatch(other, 'cpu', 'fused')
    assert target_mismatch({'info': {'search': {'target_ratio': 0.4}}}, 'cpu', 'fused') is None
