"""How well a table predicts: predicted against measured whole-network latency at random widths.

Each random width set draws one keep fraction for the network and a per-group jitter around it;
every other set is rounded up to the table's ``width_step`` (the widths a ``round_to: auto`` search
produces), the rest are arbitrary widths (the interpolation between grid widths).  The sets are
measured as the table was (same device, backend, precision, threads, input size, rounds; all sets
together, rounds interleaved) and the relative error ``predicted / measured - 1`` reported; the target
is a median of at most 10%.

The full-width network is timed in the same rounds, and each set's latency as a fraction of it (what a
search's ``dhp.target.latency`` is) compared with the table's fraction as well: that error does not move
with the machine's speed between the table's minutes and the check's (a shared machine drifts by 10%).
"""
from __future__ import annotations

import random
import statistics
from dataclasses import dataclass

from ..dhp import LatencyTable
from . import device_warning
from .profile import Profiler, Settings


@dataclass
class CheckRow:
    widths: dict
    predicted_us: float
    measured_us: float
    predicted_ratio: float  # of the full-width network's latency (what a search's target is)
    measured_ratio: float   # against the full-width network timed in the same interleaved rounds

    @property
    def error(self) -> float:
        return self.predicted_us / self.measured_us - 1

    @property
    def ratio_error(self) -> float:
        return self.predicted_ratio / self.measured_ratio - 1

    def on_step(self, step: int) -> bool:
        return all(w % step == 0 for w in self.widths.values())


def random_width_sets(table: LatencyTable, count: int, seed: int = 0) -> list[dict]:
    """``count`` width sets of the table's architecture (see the module docstring)."""
    rng, spec, step = random.Random(seed), table.spec, table.width_step
    sets = []
    for i in range(count):
        keep = rng.uniform(0.2, 1.0)
        widths = {}
        for g in spec.prunable_groups:
            full = spec.group_widths[g]
            w = max(1, min(full, round(full * keep * rng.uniform(0.75, 1.25))))
            widths[g] = min(full, -(-w // step) * step) if i % 2 == 0 else w
        sets.append(widths)
    return sets


def settings_of(table: LatencyTable, rounds: int | None = None, warmup: int | None = None) -> Settings:
    d = table.data
    return Settings(d['device'], d['backend'], d['precision'], d['threads'], tuple(d['size']),
                    d['warmup'] if warmup is None else warmup, d['rounds'] if rounds is None else rounds)


def device_mismatch(table: LatencyTable) -> str | None:
    """A warning when this machine is not the one the table was measured on."""
    return device_warning(table.data)


def check_table(table: LatencyTable, count: int = 20, seed: int = 0, rounds: int | None = None,
                warmup: int | None = None, log=None) -> list[CheckRow]:
    """Predicted and measured microseconds of ``count`` random width sets."""
    d = table.data
    profiler = Profiler(d['arch'], d['arch_kwargs'], settings_of(table, rounds, warmup), log)
    sets = random_width_sets(table, count, seed)
    full_widths = {g: table.spec.group_widths[g] for g in table.spec.prunable_groups}
    *measured, full = profiler.networks_us([*sets, full_widths], desc='check')
    rows = [CheckRow(w, table.cost(w), us, table.cost(w) / table.full, us / full) for w, us in zip(sets, measured)]
    for r in rows if log else ():
        log(f'  {r.predicted_us / 1e3:9.2f} ms predicted {r.measured_us / 1e3:9.2f} ms measured '
            f'{r.error:+7.1%}; of full width {r.predicted_ratio:.3f} predicted {r.measured_ratio:.3f} measured '
            f'{r.ratio_error:+7.1%}  (widths {min(r.widths.values())}-{max(r.widths.values())})')
    return rows


def summary(rows: list[CheckRow], step: int = 1) -> dict:
    """Median, worst and mean signed error; with ``step`` > 1 also the median of the sets on the step (every
    width a multiple of it) and of the others, apart."""
    errors, ratio_errors = [abs(r.error) for r in rows], [abs(r.ratio_error) for r in rows]
    result = {'sets': len(rows), 'median_abs_error': statistics.median(errors), 'worst_abs_error': max(errors),
              'mean_error': statistics.fmean(r.error for r in rows),
              'median_abs_ratio_error': statistics.median(ratio_errors), 'worst_abs_ratio_error': max(ratio_errors)}
    if step > 1:
        on = [r.on_step(step) for r in rows]
        for name, pick in (('on_step', True), ('off_step', False)):
            part = [e for e, o in zip(errors, on) if o == pick]
            result[f'median_abs_error_{name}'] = statistics.median(part) if part else None
    return result
