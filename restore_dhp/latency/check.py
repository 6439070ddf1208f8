"""How well a table predicts: predicted against measured whole-network latency at random widths.

Each random width set draws one keep fraction for the network and a per-group jitter around it;
every other set is rounded up to the table's ``width_step`` (the widths a ``round_to: auto`` search
produces), the rest are arbitrary widths (the interpolation between grid widths).  Each set is
measured as the table was (same device, backend, precision, threads, input size, rounds) and the
relative error ``predicted / measured - 1`` reported; the target is a median of at most 10%.
"""
from __future__ import annotations

import random
import statistics
from dataclasses import dataclass

from ..dhp import LatencyTable
from . import device_label
from .profile import Profiler, Settings


@dataclass
class CheckRow:
    widths: dict
    predicted_us: float
    measured_us: float

    @property
    def error(self) -> float:
        return self.predicted_us / self.measured_us - 1


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
    here = device_label(table.data['device'])
    if here != table.data['device_name']:
        return f'warning: the table was measured on {table.data["device_name"]!r}, this is {here!r}'
    return None


def check_table(table: LatencyTable, count: int = 20, seed: int = 0, rounds: int | None = None,
                warmup: int | None = None, log=None) -> list[CheckRow]:
    """Predicted and measured microseconds of ``count`` random width sets."""
    d = table.data
    profiler = Profiler(d['arch'], d['arch_kwargs'], settings_of(table, rounds, warmup), log)
    rows = []
    for widths in random_width_sets(table, count, seed):
        rows.append(CheckRow(widths, table.cost(widths), profiler.network_us(widths)))
        if log:
            r = rows[-1]
            log(f'  {r.predicted_us / 1e3:9.2f} ms predicted {r.measured_us / 1e3:9.2f} ms measured '
                f'{r.error:+7.1%}  (widths {min(widths.values())}-{max(widths.values())})')
    return rows


def summary(rows: list[CheckRow]) -> dict:
    errors = [abs(r.error) for r in rows]
    return {'sets': len(rows), 'median_abs_error': statistics.median(errors), 'worst_abs_error': max(errors),
            'mean_error': statistics.fmean(r.error for r in rows)}
