"""Building a latency table: each conv class alone over a width grid, then the whole network to fit the rest.

1. **sweep**: the conv class with the most members, input width = output width = w for every w up to
   full width (``sweep_step`` apart; three times the rounds); the widths after which latency jumps give the device's
   ``width_step`` (:func:`detect_step`), e.g. 16 where the convolution kernels work in blocks of 16 channels,
   or 8 where multiples of 8 run faster than the widths just below them; how much each width costs against
   the next multiple (``off_step_factor``, from this sweep) prices widths between grid points;
2. **layers**: every conv class (:func:`restore_dhp.dhp.latency_table.layer_class`) alone, as a one-conv
   network in the deployed form, at every width of the grid (multiples of ``grid_step``, default the
   detected step when it is 4 to 16, else 8, and the full width): a 2-D grid over input and output
   width, or 1-D where one side is fixed or both are one group;
3. **fit**: the whole network at a few uniform widths; the conv sum is scaled (``layer_scale``: what timing
   each conv alone gets wrong for all alike) and what it misses (activations, residual additions, pixel
   shuffles, the per-call overhead) is fitted as ``elementwise_us_per_element`` times the elements the
   activations write, plus ``constant_us`` (least squares, :func:`fit_network`).

Every point is timed as the deployed model runs (:func:`interleaved_us`): CPU torch backends call the
prepared module on an input already in its dtype and memory format; ONNX Runtime and CUDA (graph replay)
run the deployed model itself.  The points of each step are shuffled and timed in chunks whose rounds
interleave, so that a shared machine's slow spells do not bend the curves; the median of ``rounds`` runs
after ``warmup`` is kept.
"""
from __future__ import annotations

import dataclasses
import itertools
import random
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import torch
from torch import nn

from .. import network
from ..complexity import arch_spec
from ..deploy import PRECISIONS, ort, prepare
from ..dhp.latency_table import LatencyTable, elementwise_elements, layer_class
from ..speedup import build_plain
from ..progress import progress
from ..timing import measure_side_by_side
from . import FORMAT, LatencyError, device_label

STEP_CANDIDATES = (64, 32, 16, 8, 4, 2)
CHUNK = 32  # probes timed together (their inputs and deployed forms are held at once)
MAX_GRID_STEP = 16  # a coarser grid (2 points at full width 64) prices nothing between them
SWEEP_ROUNDS = 3  # the sweep's rounds, as a multiple of the table's
DIP = 0.97  # a multiple counts as a dip when it is more than 3% faster than the mean of its two neighbours


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
    """One conv alone (``cin`` -> ``cout`` channels, ``k x k``): a layer of a class as the deployed form runs it
    (a transposed conv of stride ``k``, or a depthwise one, as the class's conv is)."""
    scale = 1
    task = 'probe'

    def __init__(self, cin: int, cout: int, kernel_size, transposed: bool = False, depthwise: bool = False):
        super().__init__()
        self.in_channels = cin
        k = kernel_size if isinstance(kernel_size, int) else tuple(kernel_size)
        if transposed:
            self.conv = nn.ConvTranspose2d(cin, cout, k, stride=k)
        else:
            pad = k // 2 if isinstance(k, int) else (k[0] // 2, k[1] // 2)
            self.conv = nn.Conv2d(cin, cout, k, padding=pad, groups=cin if depthwise else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)

    def describe(self) -> dict:  # what an ONNX export records
        c = self.conv
        return {'arch': 'ConvProbe', 'task': self.task, 'scale': 1, 'widths': {},
                'arch_kwargs': {'cin': c.in_channels, 'cout': c.out_channels, 'kernel_size': c.kernel_size[0]}}


def interleaved_us(probes: dict, settings: Settings, seed: int = 0, reference=None, desc: str = 'timing') -> dict:
    """Median microseconds of one forward of each probe ``key -> (model, height, width)``'s deployed form.

    The probes are shuffled (``seed``) and timed ``CHUNK`` at a time with their rounds interleaved (one run of
    each per round): a slow spell of a shared machine (1.2-1.4x, lasting seconds, on this project's CPU) then
    falls on random points of every layer class rather than on one class or one end of a sweep.  With
    ``reference`` (one of the keys), that probe is timed in every chunk and each chunk's times are scaled by
    the reference's median over all chunks / its time in that chunk: the drift between chunks cancels, as a
    speed table's control row shows it.  Progress: one bar (``desc``) over every run, on a terminal."""
    keys = [k for k in probes if k != reference]
    random.Random(seed).shuffle(keys)
    size = CHUNK - (reference is not None)
    chunks = [keys[i:i + size] + ([reference] if reference is not None else []) for i in range(0, len(keys), size)]
    if not keys and reference is not None:  # the reference alone
        chunks = [[reference]]
    runs = (settings.warmup + settings.rounds) * sum(map(len, chunks))
    with progress(total=runs, desc=desc, unit='run', leave=False) as bar:
        timed = [_time_chunk({key: probes[key] for key in chunk}, settings, lambda: bar.update(1)) for chunk in chunks]
    if reference is None:
        return {key: us for chunk in timed for key, us in chunk.items()}
    level = statistics.median(chunk[reference] for chunk in timed)
    out = {key: us * level / chunk[reference] for chunk in timed for key, us in chunk.items() if key != reference}
    return {**out, reference: level}


def _time_chunk(probes: dict, settings: Settings, on_run=None) -> dict:
    return {key: statistics.median(us) for key, us in rounds_us(probes, settings, on_run).items()}


def rounds_us(probes: dict, settings: Settings, on_run=None) -> dict[str, list[float]]:
    """Microseconds of every round of each probe ``key -> (model, height, width)``'s deployed form, all rounds
    interleaved (probes of one input shape share one input)."""
    runners, inputs, made = {}, {}, {}
    for key, (model, height, width) in probes.items():
        shape = (network.facts(model).in_channels, height, width)
        if shape not in made:
            made[shape] = torch.rand(1, *shape, device=settings.device)
        deployed = prepare(model, settings.device, settings.backend, settings.precision, settings.threads,
                           snap_widths='off')  # measured as built
        runners[key], inputs[key] = _runner(deployed, made[shape])
    runs = measure_side_by_side(runners, inputs, settings.rounds, settings.warmup, on_run)
    return {key: [ms * 1e3 for ms in values] for key, values in runs.items()}


def side_by_side_us(models: dict, settings: Settings, height: int, width: int) -> dict[str, list[float]]:
    """Microseconds of every round of each model's deployed form, interleaved, on one input size."""
    return rounds_us({name: (model, height, width) for name, model in models.items()}, settings)


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
    """The width step of a sweep at evenly spaced widths; 1 when latency grows smoothly.  Two patterns:

    - a staircase: latency jumps just after the step's multiples (a width costs what the next block does);
      the largest candidate step at whose multiples at least 3/4 of the big jumps happen (two at least);
    - dips: the step's multiples run faster than their neighbours (seen on this project's AMD EPYC with
      oneDNN at 1 thread, 3x3 convs at 170x256: 15 channels cost 1.35x what 16 do, 41 cost 1.27x 40's): the
      candidate step the largest share of whose multiples (two at least) are more than 3% faster than the
      mean of the widths a spacing either side, the smaller on a tie, if that share is at least 3/4.

    Dips are looked for first: a noisy sweep shows a small staircase step (2) by chance where the dips are
    plain (8).
    """
    if len(widths) < 5:
        return 1
    return _dip_step(widths, us) or _staircase_step(widths, us) or 1


def _staircase_step(widths: list[int], us: list[float]) -> int | None:
    spacing = widths[1] - widths[0]
    incs = [(widths[i - 1], us[i] - us[i - 1]) for i in range(1, len(widths)) if widths[i] - widths[i - 1] == spacing]
    typical = statistics.median(abs(d) for _, d in incs)
    threshold = max(4 * typical, 0.25 * max(d for _, d in incs))
    jumps = [w for w, d in incs if d > threshold]
    if len(jumps) < 2:
        return None
    for step in (c for c in STEP_CANDIDATES if c % spacing == 0):
        if sum(w % step == 0 for w in jumps) >= 0.75 * len(jumps):
            return step
    return None


def _dip_step(widths: list[int], us: list[float]) -> int | None:
    at, spacing = dict(zip(widths, us)), widths[1] - widths[0]
    scores = {}
    for step in sorted(c for c in STEP_CANDIDATES if c % spacing == 0 and c > spacing):
        multiples = [m for m in widths if m % step == 0 and m - spacing in at]
        if len(multiples) >= 2:
            dips = sum(at[m] < DIP * (at[m - spacing] + at.get(m + spacing, at[m - spacing])) / 2 for m in multiples)
            scores[step] = dips / len(multiples)
    best = max(scores.values(), default=0.0)
    return min(s for s, v in scores.items() if v == best) if best >= 0.75 else None


def off_step_factors(widths: list[int], us: list[float], step: int) -> list[float] | None:
    """Latency of each width 1..full over that of the next multiple of ``step`` (1 on the multiples), from a sweep
    at every width; None when there is nothing to correct (no step, or a sweep that skips widths)."""
    if step == 1 or widths != list(range(1, len(widths) + 1)):
        return None
    at, full = dict(zip(widths, us)), widths[-1]
    return [round(at[w] / at[min(full, -(-w // step) * step)], 4) for w in widths]


def fit_network(rows: list[tuple]) -> tuple[float, float, float]:
    """``(layer_scale, us per element, constant)`` fitted to ``(width, measured, layer sum, elements)`` rows:
    measured = scale * layer sum + per_element * elements + constant, in relative error (each row divided by
    its measurement: a small network counts as much as the full one), none of the three negative.

    The scale takes up what timing each conv alone gets wrong for all of them alike (an ONNX Runtime session
    per conv copies its input and output on each call); the non-negative least squares is found by trying
    each subset of the terms (the others at zero) and keeping the best whose terms all come out non-negative."""
    measured = np.array([r[1] for r in rows], dtype=float)
    columns = np.stack([np.array([r[2] for r in rows], dtype=float), np.array([r[3] for r in rows], dtype=float),
                        np.ones(len(rows))], 1) / measured[:, None]
    best, best_err = np.zeros(3), float('inf')
    for subset in itertools.chain.from_iterable(itertools.combinations(range(3), k) for k in (1, 2, 3)):
        x = np.zeros(3)
        x[list(subset)] = np.linalg.lstsq(columns[:, subset], np.ones(len(rows)), rcond=None)[0]
        err = float(np.sum((columns @ x - 1) ** 2))
        if (x >= 0).all() and err < best_err - 1e-12:
            best, best_err = x, err
    return float(best[0]) or 1.0, float(best[1]), float(best[2])


class Profiler:
    """Measures one architecture's table with ``settings`` (``log``: a progress line at a time)."""

    def __init__(self, arch: str, arch_kwargs: dict, settings: Settings, log=None):
        self.arch, self.arch_kwargs, self.settings = arch, dict(arch_kwargs), settings
        try:
            self.spec = arch_spec(arch, **arch_kwargs)
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise LatencyError(f'{arch} with arguments {arch_kwargs}: {e}') from None
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.classes: dict[str, list[str]] = {}
        for name in self.spec.convs:
            self.classes.setdefault(layer_class(self.spec, name), []).append(name)

    def conv_probe(self, conv: str, cin: int, cout: int) -> tuple:
        """What :func:`interleaved_us` times for conv ``conv`` of the spec at ``cin`` -> ``cout`` widths."""
        c = self.spec.convs[conv]
        h, w = self.settings.size
        probe = ConvProbe(cin, cout * c.out_per_channel, c.kernel_size, c.transposed, c.depthwise)
        if c.pixels:  # after a global pooling: a fixed size
            side = max(1, round(c.pixels ** 0.5))
            return probe, side, side
        step = (c.kernel_size if isinstance(c.kernel_size, int) else c.kernel_size[0]) if c.transposed else 1
        return probe, max(1, round(h * c.scale / step)), max(1, round(w * c.scale / step))

    def sweep_plan(self, sweep_step: int) -> tuple[str | None, list[int]]:
        """The free class with the most convs, and its sweep's widths (input = output = w for every w up to full
        width; ``sweep_step`` > 1: its multiples)."""
        spec = self.spec
        free = [k for k, names in self.classes.items() if spec.convs[names[0]].in_group is not None and all(
            g not in spec.fixed_groups for g in (spec.convs[names[0]].in_group, spec.convs[names[0]].out_group))
            and not spec.convs[names[0]].depthwise and not spec.convs[names[0]].transposed]
        if not free:
            return None, []
        layer = max(free, key=lambda k: len(self.classes[k]))
        conv = spec.convs[self.classes[layer][0]]
        full = min(spec.group_widths[conv.in_group], spec.group_widths[conv.out_group])
        return layer, list(range(sweep_step, full + 1, sweep_step)) if sweep_step > 1 else list(range(1, full + 1))

    def sweep(self, sweep_step: int) -> dict:
        layer, widths = self.sweep_plan(sweep_step)
        if layer is None:
            return {'layer': None, 'widths': [], 'us': []}
        conv = self.classes[layer][0]  # the step rests on small differences: three times the rounds
        settings = dataclasses.replace(self.settings, rounds=SWEEP_ROUNDS * self.settings.rounds)
        us = interleaved_us({w: self.conv_probe(conv, w, w) for w in widths}, settings, reference=widths[-1],
                            desc=f'sweep of {layer}')
        return {'layer': layer, 'widths': widths, 'us': [us[w] for w in widths]}

    def layer_points(self, key: str, grid_step: int) -> tuple[dict, list[tuple[int, int]]]:
        """A class's table entry (without its timings) and the (input, output) widths to time, in order: a 1-D
        entry has ``widths``, a 2-D one ``in_widths`` x ``out_widths`` (row-major)."""
        spec, c = self.spec, self.spec.convs[self.classes[key][0]]
        fixed_in = all(s.group in spec.fixed_groups for s in c.inputs)
        fixed_out = c.out_group in spec.fixed_groups
        full_in, full_out = c.in_width(spec.group_widths), spec.group_widths[c.out_group]
        entry = {'kernel_size': c.kernel_size, 'scale': c.scale, 'out_per_channel': c.out_per_channel}
        if key.endswith('_tied') or c.depthwise:
            widths = width_grid(full_in, grid_step)
            return {**entry, 'widths': widths}, [(w, w) for w in widths]
        if fixed_in:
            widths = [full_out] if fixed_out else width_grid(full_out, grid_step)
            return {**entry, 'widths': widths}, [(full_in, w) for w in widths]
        if fixed_out:
            widths = width_grid(full_in, grid_step)
            return {**entry, 'widths': widths}, [(w, full_out) for w in widths]
        ins, outs = width_grid(full_in, grid_step), width_grid(full_out, grid_step)
        return {**entry, 'in_widths': ins, 'out_widths': outs}, [(i, o) for i in ins for o in outs]

    def layers(self, grid_step: int) -> dict:
        """Every class's grid, all points timed together (:func:`interleaved_us`)."""
        plans = {key: self.layer_points(key, grid_step) for key in self.classes}
        probes = {(key, i, o): self.conv_probe(self.classes[key][0], i, o)
                  for key, (_, points) in plans.items() for i, o in points}
        main = max(probes, key=lambda k: (len(self.classes[k[0]]), k[1], k[2]))  # the biggest class at full width
        us = interleaved_us(probes, self.settings, reference=main, desc=f'{len(probes)} layer points')
        layers = {}
        for key, (entry, points) in plans.items():
            values = [us[(key, i, o)] for i, o in points]
            if 'in_widths' in entry:
                n = len(entry['out_widths'])
                values = [values[r * n:(r + 1) * n] for r in range(len(entry['in_widths']))]
            layers[key] = {**entry, 'us': values}
        return layers

    def networks_us(self, width_sets: list[dict], desc: str = 'whole network') -> list[float]:
        """Microseconds of the whole network at each width set, timed together; the last set (the full width,
        for the callers here) is the reference timed in every chunk."""
        h, w = self.settings.size
        us = interleaved_us({i: (build_plain(self.arch, widths, self.arch_kwargs), h, w)
                             for i, widths in enumerate(width_sets)}, self.settings, reference=len(width_sets) - 1,
                            desc=f'{desc}: {len(width_sets)} width sets')
        return [us[i] for i in range(len(width_sets))]

    def fit(self, table: dict, fit_points: int) -> dict:
        """``layer_scale``, elementwise term and constant: least squares on the whole network at uniform widths."""
        spec = self.spec
        layer_only = LatencyTable(spec, {**table, 'constant_us': 0.0, 'elementwise_us_per_element': 0.0})
        largest = max(spec.group_widths[g] for g in spec.prunable_groups)
        grid = width_grid(largest, table['grid_step'])
        picks = sorted({grid[round(i * (len(grid) - 1) / max(1, fit_points - 1))] for i in range(fit_points)})
        width_sets = [{g: min(u, spec.group_widths[g]) for g in spec.prunable_groups} for u in picks]
        rows = []
        for u, widths, measured in zip(picks, width_sets, self.networks_us(width_sets)):
            layers = layer_only.cost(widths)
            elements = elementwise_elements(spec, spec.resolve_widths(widths), *table['size'])
            rows.append((u, measured, layers, elements))
            self.log(f'  network at uniform width {u}: {measured:.0f} us measured, {layers:.0f} us in its convs')
        scale, per_element, constant = fit_network(rows)
        return {'layer_scale': scale, 'elementwise_us_per_element': per_element, 'constant_us': constant,
                'fit': {'widths': [r[0] for r in rows], 'measured_us': [r[1] for r in rows],
                        'layers_us': [r[2] for r in rows]}}

    def run(self, grid_step: int | None = None, sweep_step: int = 1, fit_points: int = 5) -> dict:
        """The whole table (a JSON-ready mapping)."""
        start, s = time.monotonic(), self.settings
        sweep = self.sweep(sweep_step)
        step = detect_step(sweep['widths'], sweep['us'])
        grid_step = grid_step or (step if 4 <= step <= MAX_GRID_STEP else 8)
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
        factors = off_step_factors(sweep['widths'], sweep['us'], step) if grid_step == step else None
        if factors:
            table['off_step_factor'] = factors
        table['layers'] = self.layers(grid_step)
        for key, names in self.classes.items():
            table['convs'].update(dict.fromkeys(names, key))
        self.log(f'{len(self.classes)} layer classes, {sum(map(len, self.classes.values()))} convs: grids done '
                 f'({time.monotonic() - start:.0f} s)')
        table.update(self.fit(table, fit_points))
        table['profile_seconds'] = round(time.monotonic() - start, 1)
        return table

