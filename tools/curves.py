"""Validation curves of training runs, read from the metadata of each run's last compact checkpoint.

Every compact checkpoint training writes records every validation so far (``info.validation``: iteration, set,
metrics) and the wall time of all its segments, so no BasicSR log is parsed for them.
"""
from __future__ import annotations

import re
from pathlib import Path

from restore_dhp.checkpoint import read_metadata
from restore_dhp.fileio import write_text
from restore_dhp.models.restoration_model import LIVE_SUFFIX   # the set name val.also_live's validations carry


def last_checkpoint(name: str, root: Path = Path('experiments')) -> Path | None:
    """The newest compact checkpoint of an experiment: ``net_g_latest``, else the highest ``net_g_<iter>``."""
    models = root / name / 'models'
    latest = models / 'net_g_latest.safetensors'
    if latest.is_file():
        return latest
    numbered = [(int(m.group(1)), p) for p in models.glob('net_g_*.safetensors')
                if (m := re.fullmatch(r'net_g_(\d+)\.safetensors', p.name))]
    return max(numbered)[1] if numbered else None


def curve_of(info: dict, live: bool = False, metric: str | None = None) -> list[tuple[int, str, float]]:
    """(iteration, metric, value) of every validation a checkpoint's ``info`` records (``metric``, default the first
    one each validation has); ``live``: those of the trained network that a run with EMA and ``val.also_live``
    validates beside the average's (set ``<name>_live``), instead of the rest."""
    curve = []
    for iteration, set_name, metrics in info.get('validation', []):
        if metrics and set_name.endswith(LIVE_SUFFIX) == live and (metric is None or metric in metrics):
            name = metric or next(iter(metrics))
            curve.append((int(iteration), name, float(metrics[name])))
    return curve


def validation_curve(name: str, live: bool = False, root: Path = Path('experiments')) -> list[tuple[int, str, float]]:
    """The curve (:func:`curve_of`) an experiment's last compact checkpoint records; empty when the run wrote none
    (a run cut in its search, before compaction)."""
    path = last_checkpoint(name, root)
    return curve_of(read_metadata(path)['info'], live) if path else []


def write_summary(path: str, names: list[str]) -> None:
    curves = {name: validation_curve(name) for name in names}
    iters = sorted({i for c in curves.values() for i, _, _ in c})
    lines = ['| run | ' + ' | '.join(f'@{i}' for i in iters) + ' |', '|---|' + '---|' * len(iters)]
    for name, curve in curves.items():
        by_iter = {i: v for i, _, v in curve}
        lines.append(f'| {name} | ' + ' | '.join(f'{by_iter[i]:.2f}' if i in by_iter else '' for i in iters) + ' |')
    metric = next((m for c in curves.values() for _, m, _ in c), 'psnr')
    write_text(path, f'Validation {metric} (dB) by iteration, from each run\'s last compact checkpoint.\n\n'
               + '\n'.join(lines) + '\n')
    print('\n'.join(lines))


