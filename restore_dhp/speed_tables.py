"""The speed tables of a side-by-side run, made to survive noise: a control row, the spread of every ratio,
enough rounds.  (:mod:`restore_dhp.speedup` measures; this module judges and prints.)

* **control row**: a second copy of the baseline (same architecture, same widths, its own deployed
  form) timed as one more model.  Its speedup over the baseline must read 1.00; a table whose
  control is more than ``tolerance`` (5%) away says so in a flagged line, as its other ratios are off
  by as much (issue 20: a control read 1.09 and every ratio of that table came out high).
* **spread**: each row's speedup is also taken round by round (the rounds are side by side, so a
  round's ratio cancels drift between rounds) and its interquartile range shown beside the median ratio.
* **enough rounds**: with ``--settle N`` the side-by-side run adds rounds, a block at a time, until
  the control's median reads 1.00 within ``settle_within`` (3%) or N rounds are done.
"""
from __future__ import annotations

import copy
import dataclasses
import statistics

from .timing import paired_ratios, quartiles

TARGET_EFFICIENCY = {'cpu': 0.9, 'cuda': None}
CONTROL_LABEL = 'control (baseline again)'
CONTROL_TOLERANCE = 0.05
SETTLE_WITHIN = 0.03


def with_control(entries: list) -> list:
    """``entries`` and, after them, a control: a fresh copy of the baseline entry (``is_control``)."""
    base = next(e for e in entries if e.is_baseline)
    control = dataclasses.replace(base, label=CONTROL_LABEL, model=copy.deepcopy(base.model), is_baseline=False,
                                  is_control=True)
    return [*entries, control]


def spread(runs: dict, base_key, key) -> tuple[float, float]:
    """Interquartile range (q1, q3) of the per-round speedups of ``key`` over ``base_key``."""
    q1, _, q3 = quartiles(paired_ratios(runs[base_key], runs[key]))
    return q1, q3


def control_speedup(runs: dict, base_key, control_key) -> float:
    return statistics.median(runs[base_key]) / statistics.median(runs[control_key])


def control_line(speedup: float, tolerance: float = CONTROL_TOLERANCE) -> str:
    """The verdict printed under a table: the control's speedup, flagged when it is off by more than ``tolerance``."""
    if abs(speedup - 1) > tolerance:
        return (f'!! CONTROL OFF: the control (the baseline timed again) reads {speedup:.2f}, more than '
                f'{tolerance:.0%} from 1.00: every ratio of this table is off by as much; measure again on a quiet '
                'machine with more rounds (--repeats, --settle)')
    return f'control (the baseline timed again) reads {speedup:.2f}: within {tolerance:.0%} of 1.00'


def settled(runs: dict, base_keys: list, control_keys: list, within: float = SETTLE_WITHIN) -> bool:
    """Whether every control reads 1.00 within ``within``."""
    return all(abs(control_speedup(runs, b, c) - 1) <= within for b, c in zip(base_keys, control_keys))


# ----------------------------------------------------------------------------- printing
def summarise_widths(widths: dict) -> str:
    vals = list(widths.values())
    return f'{min(vals)}-{max(vals)} ({sum(v % 8 != 0 for v in vals)}/{len(vals)} not /8)'


def table(title: str, entries: list, runs: dict, form: tuple[str, str], flops: dict, device: str,
          tolerance: float = CONTROL_TOLERANCE) -> list[str]:
    """One table: each model's median ms, speedup over the baseline (median ms over median ms) and its
    interquartile range over the rounds, and, under it, the control's verdict (``flops``: per label)."""
    base = next(e for e in entries if e.is_baseline)
    target = TARGET_EFFICIENCY[device]
    head = (f'{"model":<26}{"widths (min-max)":>22}{"GFLOPs":>9}{"FLOPs ratio":>13}{"ms (median)":>13}'
            f'{"ms/GFLOP":>10}{"speedup":>9}{"IQR":>12}{"ideal":>7}{"speedup/ideal":>15}')
    lines = ['', title, head, '-' * len(head)]
    base_key = (base.label, *form)
    t_base = statistics.median(runs[base_key])
    for e in entries:
        t = statistics.median(runs[(e.label, *form)])
        ratio = flops[e.label] / flops[base.label]
        eff = (t_base / t) * ratio
        q1, q3 = spread(runs, base_key, (e.label, *form))
        plain = e.is_baseline or e.is_control or target is None
        mark = '' if plain else ('  ok' if eff >= target else f'  < {target}')
        lines.append(f'{e.label:<26}{summarise_widths(e.widths):>22}{flops[e.label] / 1e9:>9.3f}{ratio:>13.3f}'
                     f'{t:>13.2f}{t / (flops[e.label] / 1e9):>10.2f}{t_base / t:>9.2f}{f"{q1:.2f}-{q3:.2f}":>12}'
                     f'{1 / ratio:>7.2f}{eff:>15.2f}{mark}')
    control = next((e for e in entries if e.is_control), None)
    if control is not None:
        lines.append(control_line(control_speedup(runs, base_key, (control.label, *form)), tolerance))
    return lines


def backend_table(entries: list, runs: dict, forms: list[tuple[str, str]]) -> list[str]:
    ms = {key: statistics.median(values) for key, values in runs.items()}
    base = next(e for e in entries if e.is_baseline)
    eager = ms.get((base.label, 'eager', 'fp32'))
    lines = ['', f'{base.label}: each deployed form against eager fp32' + ('' if eager else ' (eager fp32 not run)')]
    for b, p in forms:
        t = ms[(base.label, b, p)]
        lines.append(f'  {b + " " + p:<22}{t:>10.2f} ms' + (f'{eager / t:>8.2f}x' if eager else ''))
    return lines
