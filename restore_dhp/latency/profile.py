"""Building a latency table: each conv class alone over a width grid, then the whole network to fit the rest.

1. **sweep**: the conv class with the most members, input width = output width = w for every w up to
   full width (``sweep_step`` apart); the widths after which latency jumps give the device's
   ``width_step`` (:func:`detect_step`), e.g. 16 where the convolution kernels work in blocks of 16 channels;
2. **layers**: every conv class (:func:`restore_dhp.dhp.latency_table.layer_class`) alone, as a one-conv
   network in the deployed form, at every width of the grid (multiples of ``grid_step``, default the
   detected step when it is at least 4, else 8, and the full width): a 2-D grid over input and output
   width, or 1-D where one side is fixed or both are one group;
3. **fit**: the whole network at a few uniform widths; what the conv sum misses (activations, residual
   additions, pixel shuffles, the per-call overhead) is fitted as ``elementwise_us_per_element`` times
   the elements the activations write, plus ``constant_us`` (least squares).

Every point is timed as the deployed model runs (:func:`time_us`): CPU torch backends call the prepared
module on an input already in its dtype and memory format; ONNX Runtime and CUDA (graph replay) run the
deployed model itself.  The median of ``rounds`` runs after ``warmup`` is kept.
"""
from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import torch
from torch import nn

from ..complexity import build_meta
from ..deploy import PRECISIONS, ort, prepare
from ..dhp.latency_table import LatencyTable, elementwise_elements, layer_class
from ..speedup import build_plain
from ..timing import measure_side_by_side
from . import FORMAT, LatencyError, device_label

STEP_CANDIDATES = (64, 32, 16, 8, 4, 2)


@dataclass(frozen=True)
class Settings:
    """What a table is measured on and how often each point runs."""
    device: str = 'cpu'
    backend: str = 'fused'
    precision: str = 'fp32'
    threads: int | None = 1
    size: tuple = (64, 64)
    warmup: int = 2
    rounds: int = 5


class ConvProbe(nn.Module):
    """One conv alone (``cin`` -> ``cout`` channels, ``k x k``): a layer of a class as the deployed form runs it."""
    scale = 1
    task = 'probe'

    def __init__(self, cin: int, cout: int, kernel_size: int):
        super().__init__()
        self.in_channels = cin
        self.conv = nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)

    def describe(self) -> dict:  # what an ONNX export records
        c = self.conv
        return {'arch': 'ConvProbe', 'task': self.task, 'scale': 1, 'widths': {},
                'arch_kwargs': {'cin': c.in_channels, 'cout': c.out_channels, 'kernel_size': c.kernel_size[0]}}


def time_us(model: nn.Module, settings: Settings, height: int, width: int) -> float:
    """Median microseconds of one forward of ``model``'s deployed form on a 1 x C x height x width input."""
    return statistics.median(side_by_side_us({'model': model}, settings, height, width)['model'])


def side_by_side_us(models: dict, settings: Settings, height: int, width: int) -> dict[str, list[float]]:
    """Microseconds of every round of each model's deployed form, interleaved (one input, all same channels)."""
    s = settings
    x = torch.rand(1, next(iter(models.values())).in_channels, height, width, device=s.device)
    runners = {}
    for name, model in models.items():
        runners[name], inp = _runner(prepare(model, s.device, s.backend, s.precision, s.threads), x)
    runs = measure_side_by_side(runners, inp, s.rounds, s.warmup)
    return {name: [ms * 1e3 for ms in values] for name, values in runs.items()}


def _runner(deployed, x: torch.Tensor):
    """What to time and on what: on the CPU, a torch backend's module on an input already in its dtype and
    memory format (no conversion in the timing); otherwise the deployed model itself."""
    if deployed.module is None or deployed.device.type != 'cpu':
        return deployed, x
    module = deployed.module
    fmt = torch.channels_last if deployed.layout == 'channels_last' else torch.contiguous_format

    def run(inp):
        with torch.inference_mode():
            return module(inp)
    return run, x.to(dtype=PRECISIONS[deployed.precision], memory_format=fmt)


def width_grid(full: int, step: int) -> list[int]:
    return sorted({*range(step, full + 1, step), full})


def detect_step(widths: list[int], us: list[float]) -> int:
    """The width step of a sweep at evenly spaced widths: the largest candidate step (a multiple of the spacing)
    at whose multiples at least 3/4 of the big jumps in latency happen (at least two of them); 1 when latency
    grows smoothly."""
    if len(widths) < 5:
        return 1
    spacing = widths[1] - widths[0]
    incs = [(widths[i - 1], us[i] - us[i - 1]) for i in range(1, len(widths)) if widths[i] - widths[i - 1] == spacing]
    typical = statistics.median(abs(d) for _, d in incs)
    threshold = max(4 * typical, 0.25 * max(d for _, d in incs))
    jumps = [w for w, d in incs if d > threshold]
    if len(jumps) < 2:
        return 1
    for step in (c for c in STEP_CANDIDATES if c % spacing == 0):
        if sum(w % step == 0 for w in jumps) >= 0.75 * len(jumps):
            return step
    return 1


class Profiler:
    """Measures one architecture's table with ``settings`` (``log``: a progress line at a time)."""

    def __init__(self, arch: str, arch_kwargs: dict, settings: Settings, log=None):
        self.arch, self.arch_kwargs, self.settings = arch, dict(arch_kwargs), settings
        try:
            self.spec = build_meta(arch, None, **arch_kwargs).spec
        except (TypeError, ValueError) as e:
            raise LatencyError(f'{arch} with arguments {arch_kwargs}: {e}') from None
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.classes: dict[str, list[str]] = {}
        for name in self.spec.convs:
            self.classes.setdefault(layer_class(self.spec, name), []).append(name)

    def conv_us(self, conv: str, cin: int, cout: int) -> float:
        c = self.spec.convs[conv]
        h, w = self.settings.size
        return time_us(ConvProbe(cin, cout * c.out_per_channel, c.kernel_size), self.settings, h * c.scale,
                       w * c.scale)

    def sweep(self, sweep_step: int) -> dict:
        """Input width = output width = w for every w up to full width (``sweep_step`` > 1: its multiples),
        for the free class with the most convs."""
        spec = self.spec
        free = [k for k, names in self.classes.items() if all(
            g not in spec.fixed_groups for g in (spec.convs[names[0]].in_group, spec.convs[names[0]].out_group))]
        if not free:
            return {'layer': None, 'widths': [], 'us': []}
        layer = max(free, key=lambda k: len(self.classes[k]))
        conv = spec.convs[self.classes[layer][0]]
        full = min(spec.group_widths[conv.in_group], spec.group_widths[conv.out_group])
        widths = list(range(sweep_step, full + 1, sweep_step)) if sweep_step > 1 else list(range(1, full + 1))
        us = [self.conv_us(self.classes[layer][0], w, w) for w in widths]
        return {'layer': layer, 'widths': widths, 'us': us}

    def layer(self, key: str, grid_step: int) -> dict:
        spec, conv_name = self.spec, self.classes[key][0]
        c = spec.convs[conv_name]
        fixed_in, fixed_out = c.in_group in spec.fixed_groups, c.out_group in spec.fixed_groups
        full_in, full_out = spec.group_widths[c.in_group], spec.group_widths[c.out_group]
        entry = {'kernel_size': c.kernel_size, 'scale': c.scale, 'out_per_channel': c.out_per_channel}
        if key.endswith('_tied'):
            widths = width_grid(full_in, grid_step)
            return {**entry, 'widths': widths, 'us': [self.conv_us(conv_name, w, w) for w in widths]}
        if fixed_in:
            widths = [full_out] if fixed_out else width_grid(full_out, grid_step)
            return {**entry, 'widths': widths, 'us': [self.conv_us(conv_name, full_in, w) for w in widths]}
        if fixed_out:
            widths = width_grid(full_in, grid_step)
            return {**entry, 'widths': widths, 'us': [self.conv_us(conv_name, w, full_out) for w in widths]}
        ins, outs = width_grid(full_in, grid_step), width_grid(full_out, grid_step)
        return {**entry, 'in_widths': ins, 'out_widths': outs,
                'us': [[self.conv_us(conv_name, i, o) for o in outs] for i in ins]}

    def network_us(self, widths: dict) -> float:
        h, w = self.settings.size
        return time_us(build_plain(self.arch, widths, self.arch_kwargs), self.settings, h, w)

    def fit(self, table: dict, fit_points: int) -> dict:
        """Elementwise term and constant, least squares on the whole network at uniform widths."""
        spec = self.spec
        layer_only = LatencyTable(spec, {**table, 'constant_us': 0.0, 'elementwise_us_per_element': 0.0})
        largest = max(spec.group_widths[g] for g in spec.prunable_groups)
        grid = width_grid(largest, table['grid_step'])
        picks = sorted({grid[round(i * (len(grid) - 1) / max(1, fit_points - 1))] for i in range(fit_points)})
        rows = []
        for u in picks:
            widths = {g: min(u, spec.group_widths[g]) for g in spec.prunable_groups}
            measured, layers = self.network_us(widths), layer_only.cost(widths)
            elements = elementwise_elements(spec, spec.resolve_widths(widths), table['size'][0] * table['size'][1])
            rows.append((u, measured, layers, elements))
            self.log(f'  network at uniform width {u}: {measured:.0f} us measured, {layers:.0f} us in its convs')
        e_mean = statistics.fmean(r[3] for r in rows)
        r_mean = statistics.fmean(r[1] - r[2] for r in rows)
        var = sum((r[3] - e_mean) ** 2 for r in rows)
        slope = sum((r[3] - e_mean) * (r[1] - r[2] - r_mean) for r in rows) / var if var > 0 else 0.0
        slope = max(slope, 0.0)
        return {'elementwise_us_per_element': slope, 'constant_us': r_mean - slope * e_mean,
                'fit': {'widths': [r[0] for r in rows], 'measured_us': [r[1] for r in rows],
                        'layers_us': [r[2] for r in rows]}}

    def run(self, grid_step: int | None = None, sweep_step: int = 1, fit_points: int = 5) -> dict:
        """The whole table (a JSON-ready mapping)."""
        start, s = time.monotonic(), self.settings
        sweep = self.sweep(sweep_step)
        step = detect_step(sweep['widths'], sweep['us'])
        grid_step = grid_step or (step if step >= 4 else 8)
        self.log(f'sweep of {sweep["layer"]}: width step {step}; grid every {grid_step} '
                 f'({time.monotonic() - start:.0f} s)')
        table = {'format': FORMAT, 'arch': self.arch, 'arch_kwargs': self.arch_kwargs, 'device': s.device,
                 'device_name': device_label(s.device), 'backend': s.backend, 'precision': s.precision,
                 'threads': s.threads if s.device == 'cpu' else None, 'size': list(s.size),
                 'torch': torch.__version__, 'onnxruntime': getattr(ort, '__version__', None),
                 'created': datetime.now(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'),
                 'warmup': s.warmup, 'rounds': s.rounds, 'unit': 'us',
                 'interpolation': 'ceil' if step > 1 else 'linear', 'width_step': step, 'grid_step': grid_step,
                 'sweep': sweep, 'layers': {}, 'convs': {}}
        for key, names in self.classes.items():
            table['layers'][key] = self.layer(key, grid_step)
            table['convs'].update(dict.fromkeys(names, key))
            self.log(f'layer {key} ({len(names)} convs) done ({time.monotonic() - start:.0f} s)')
        table.update(self.fit(table, fit_points))
        table['profile_seconds'] = round(time.monotonic() - start, 1)
        return table

