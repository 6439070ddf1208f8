"""The pruner's cost part (FLOPs or a measured latency table) and its keep rule."""
import pytest
import torch

import restore_dhp  # noqa: F401
from restore_dhp import network
from restore_dhp.network import spec_of
from restore_dhp.dhp import DHPNet, DHPPruner, FlopsTable, GroupLayout, KeepRule, LatencyTable
from restore_dhp.dhp.latency_table import elementwise_elements, layer_class, lookup
from restore_dhp.latency.profile import detect_step, fit_network, off_step_factors


def synthetic_table(spec, us_of, step=4, constant=7.0, per_element=0.0, size=(4, 4)) -> dict:
    """A table whose conv grids hold ``us_of(cin, cout, conv spec)`` at every multiple of ``step``."""
    layers, convs = {}, {}
    for name, c in spec.convs.items():
        key = layer_class(spec, name)
        convs[name] = key
        fin, fout = c.in_group in spec.fixed_groups, c.out_group in spec.fixed_groups  # (one input group here)
        grid_in = sorted({*range(step, spec.group_widths[c.in_group] + 1, step), spec.group_widths[c.in_group]})
        grid_out = sorted({*range(step, spec.group_widths[c.out_group] + 1, step), spec.group_widths[c.out_group]})
        if key.endswith('_tied'):
            layers[key] = {'widths': grid_in, 'us': [us_of(w, w, c) for w in grid_in]}
        elif fin:
            layers[key] = {'widths': grid_out, 'us': [us_of(spec.group_widths[c.in_group], w, c) for w in grid_out]}
        elif fout:
            layers[key] = {'widths': grid_in, 'us': [us_of(w, spec.group_widths[c.out_group], c) for w in grid_in]}
        else:
            layers[key] = {'in_widths': grid_in, 'out_widths': grid_out,
                           'us': [[us_of(i, o, c) for o in grid_out] for i in grid_in]}
    return {'size': list(size), 'constant_us': constant, 'elementwise_us_per_element': per_element,
            'interpolation': 'ceil', 'width_step': step, 'layers': layers, 'convs': convs}


def macs(cin, cout, c):
    return cin * cout * c.out_per_channel * c.kernel_area * c.scale ** 2


def test_keep_rule_thresholds_rounds_and_validates():
    layout = GroupLayout({'a': 6, 'b': 4})
    z = torch.tensor([0.9, 0.001, 0.5, 0.002, 0.3, 0.0, 0.1, 0.2, 0.001, 0.4])
    alive = torch.ones(10, dtype=torch.bool)
    assert KeepRule().keep(z, alive, layout).tolist() == [True, False, True, False, True, False,
                                                          True, True, False, True]
    rounded = KeepRule(round_to=4).keep(z, alive, layout)
    assert layout.counts(rounded).tolist() == [4, 4]  # a: 3 kept -> 4 (its best pruned one comes back)
    assert rounded[3] and not rounded[1]               # 0.002 ranks above 0.001
    dead = alive.clone()
    dead[3] = False
    assert not KeepRule(round_to=4).keep(z, dead, layout)[3]  # a pruned channel stays pruned
    for bad in ({'round_to': 0}, {'min_width': 0}, {'threshold': -1.0}, {'round_to': 2.0}):
        with pytest.raises(ValueError):
            KeepRule(**bad)


def test_flops_table_is_a_cost():
    spec = spec_of("dncnn", dict(num_feat=8, num_layers=4))
    table = FlopsTable(spec, 16)
    assert table.unit == 'FLOPs' and table.cost(None) == table.full == table.full_flops
    half = {g: 4 for g in spec.prunable_groups}
    assert table.ratio(half) == pytest.approx(table.flops(half) / table.full_flops)
    assert table.describe()['kind'] == 'flops'


def test_lookup_ceil_and_linear():
    grid, us = [4, 8, 12], [10.0, 20.0, 40.0]
    assert lookup(grid, us, 8, 'ceil') == 20.0
    assert lookup(grid, us, 9, 'ceil') == 40.0
    assert lookup(grid, us, 10, 'linear') == pytest.approx(30.0)
    assert lookup(grid, us, 2, 'linear') == 10.0  # below the grid: its first value
    with pytest.raises(ValueError, match='above the table grid'):
        lookup(grid, us, 13, 'ceil')


@pytest.mark.parametrize('spec', [spec_of("dncnn", dict(num_feat=8, num_layers=5)),
                                  spec_of("srresnet", dict(num_feat=8, num_blocks=2, scale=4))])
def test_latency_table_sums_its_layers(spec):
    """On a grid multiple, the prediction is the sum of the measured layers + elementwise term + constant."""
    table = LatencyTable(spec, synthetic_table(spec, lambda i, o, c: float(macs(i, o, c)), per_element=0.5))
    widths = {g: 4 for g in spec.prunable_groups}
    full_widths = spec.resolve_widths(widths)
    layer_sum = sum(macs(full_widths[c.in_group], full_widths[c.out_group], c) for c in spec.convs.values())
    expected = layer_sum + 0.5 * elementwise_elements(spec, full_widths, 4, 4) + 7.0
    assert table.cost(widths) == pytest.approx(expected)
    assert table.ratio(None) == pytest.approx(1.0) and table.unit == 'us'
    # ceil: a conv at width 5 costs what it does at the next grid width (8); the elementwise term is exact
    five = {g: 5 for g in spec.prunable_groups}
    elements_saved = (elementwise_elements(spec, spec.group_widths, 4, 4)
                      - elementwise_elements(spec, spec.resolve_widths(five), 4, 4))
    assert table.cost(five) == pytest.approx(table.cost(None) - 0.5 * elements_saved)


def test_latency_table_rejects_another_architecture():
    data = synthetic_table(spec_of("dncnn", dict(num_feat=8, num_layers=4)), lambda i, o, c: 1.0)
    with pytest.raises(ValueError, match='does not match'):
        LatencyTable(spec_of("dncnn", dict(num_feat=8, num_layers=5)), data)
    with pytest.raises(ValueError, match='above the table grid'):
        LatencyTable(spec_of("dncnn", dict(num_feat=16, num_layers=4)), data)


def test_pruner_lands_on_a_latency_target_priced_by_the_table():
    """Latency that steps every 4 channels: the refill keeps widths where the table says they are cheap."""
    torch.manual_seed(0)
    plain = network.build('dncnn', dict(num_feat=16, num_layers=5))
    spec = network.structure(plain).spec
    net = DHPNet(plain, spec)

    def stepped(cin, cout, c):  # a device whose kernels work in blocks of 4 channels
        return float(macs(-(-cin // 4) * 4, -(-cout // 4) * 4, c))

    table = LatencyTable(spec, synthetic_table(spec, stepped, step=4, constant=0.0))
    pruner = DHPPruner(net, 0.5, ratio_tolerance=0.0, rule=KeepRule(round_to=table.width_step), cost=table)
    pruner.check()
    with torch.no_grad():
        net.latents[torch.rand_like(net.latents) < 0.9] = 0.0  # prune far past the target at once
    check = pruner.check()
    assert check.refilled_from is not None and check.refilled_from < 0.5
    assert check.ratio == pytest.approx(table.ratio(check.widths)) and check.ratio <= 0.5
    assert all(w % 4 == 0 for w in check.widths.values()), check.widths
    assert pruner.cost_ratio() == check.ratio


def test_detect_step_finds_the_block_and_smooth_curves():
    widths = list(range(1, 65))
    blocks = [100.0 * -(-w // 16) + 0.01 * (w % 3) for w in widths]
    assert detect_step(widths, blocks) == 16
    assert detect_step(widths, [100.0 * -(-w // 8) for w in widths]) == 8
    assert detect_step(widths, [3.0 * w + 0.1 * (w % 2) for w in widths]) == 1
    assert detect_step([1, 2, 3], [1.0, 2.0, 3.0]) == 1
    coarse = list(range(4, 65, 4))  # a sweep every 4 widths still finds a step of 16
    assert detect_step(coarse, [100.0 * -(-w // 16) for w in coarse]) == 16


def dips(w: int) -> float:
    """This CPU's pattern (oneDNN, 1 thread): multiples of 8 run faster than the widths just below them."""
    return 10.0 * w * w * (0.7 if w % 8 == 0 else 1.0)


def test_detect_step_finds_dips_at_the_fast_widths():
    widths = list(range(1, 65))
    assert detect_step(widths, [dips(w) for w in widths]) == 8
    smooth_noise = [10.0 * w * w * (1 + 0.02 * ((w * 7) % 3 - 1)) for w in widths]  # 2% wiggles are no dips
    assert detect_step(widths, smooth_noise) == 1
    factors = off_step_factors(widths, [dips(w) for w in widths], 8)
    assert factors[63] == 1.0 and factors[62] == pytest.approx(63 * 63 / (0.7 * 64 * 64), abs=1e-3)
    assert off_step_factors(widths[::4], [dips(w) for w in widths[::4]], 8) is None  # a sweep that skips widths


def test_off_step_factor_prices_widths_between_grid_points():
    spec = spec_of("dncnn", dict(num_feat=16, num_layers=4))
    data = synthetic_table(spec, lambda i, o, c: 0.7 * macs(i, o, c), step=8, constant=0.0)
    plain = LatencyTable(spec, data)
    factors = off_step_factors(list(range(1, 17)), [dips(w) for w in range(1, 17)], 8)
    table = LatencyTable(spec, {**data, 'off_step_factor': factors})
    on, off = {g: 8 for g in spec.prunable_groups}, {g: 7 for g in spec.prunable_groups}
    assert table.cost(on) == pytest.approx(plain.cost(on))     # on the step: the grid as measured
    assert plain.cost(off) == plain.cost(on)                   # ceil alone: 7 costs what 8 does
    assert table.cost(off) > plain.cost(off)                   # 7 really costs more than 8 on such a device
    tied = [n for n in spec.convs if layer_class(spec, n).endswith('_tied') or 'inw_outw' in layer_class(spec, n)]
    name = tied[0]
    assert table.layer_us(name, off) == pytest.approx(plain.layer_us(name, off) * factors[6])


def test_network_fit_is_relative_and_non_negative():
    """The whole-network fit (latency profile): scale, elementwise term and constant come back from exact
    rows; a term that would come out negative is left at zero rather than bending the others."""
    rows = [(u, 0.8 * 100.0 * u * u + 0.5 * 10.0 * u + 300.0, 100.0 * u * u, 10.0 * u) for u in (8, 24, 40, 48, 64)]
    assert fit_network(rows) == pytest.approx((0.8, 0.5, 300.0), rel=1e-6)
    shrinking = [(u, 0.9 * 100.0 * u * u - 2.0 * u, 100.0 * u * u, 10.0 * u) for u in (8, 24, 40, 48, 64)]
    scale, per_element, constant = fit_network(shrinking)
    assert per_element == 0.0 and constant >= 0.0 and 0.85 < scale < 0.95


def test_a_reference_probe_in_every_chunk_cancels_the_drift_between_chunks(monkeypatch):
    """interleaved_us: each chunk of probes runs at its own speed (a shared machine drifts); the reference timed
    in every chunk brings them to one level, so the points' ratios are the true ones."""
    from restore_dhp.latency import profile
    chunks = []

    def drifting(probes, settings, on_run=None):  # the n-th chunk runs n times slower
        chunks.append(list(probes))
        return {k: (10.0 if k == 'ref' else float(k)) * len(chunks) for k in probes}
    monkeypatch.setattr(profile, '_time_chunk', drifting)
    monkeypatch.setattr(profile, 'CHUNK', 4)
    probes = {k: (profile.ConvProbe(1, 1, 3), 4, 4) for k in [1, 2, 3, 4, 5, 6, 7, 'ref']}
    out = profile.interleaved_us(probes, profile.Settings(), reference='ref')
    assert len(chunks) == 3 and all(c[-1] == 'ref' for c in chunks)
    assert sorted(k for c in chunks for k in c if k != 'ref') == [1, 2, 3, 4, 5, 6, 7]
    assert {k: v / out['ref'] for k, v in out.items()} == pytest.approx({**{k: k / 10 for k in range(1, 8)}, 'ref': 1})
    chunks.clear()
    plain = profile.interleaved_us(probes, profile.Settings())  # without one, the drift stays in the numbers
    assert len({round(plain[k] / k, 6) for k in range(1, 8)}) > 1
