"""Deploy-time width snapping: pad a pruned network's widths up to its device's kernel step when that is faster.

A device's kernels often work in blocks of channels (oneDNN at one thread dips at multiples of 8 on an AMD EPYC,
steps by 16 on an Intel Ice Lake; ONNX Runtime's MLAS rises like a saw between multiples of 16).  Zero channels
added up to the next multiple leave the output as it is (:func:`restore_dhp.network.padded`) and can run faster:
on the Ice Lake, DnCNN DHP-20 at 128x128 ran 56.7 ms as pruned and 48.4 ms padded to multiples of 16.
:func:`snap` asks this machine's latency table for the network (``latency_tables/``: same architecture, device,
backend, precision and threads) whether the padded widths cost less, and pads only then.  Without a table for
this machine nothing changes.
"""
from __future__ import annotations

import glob
import json
import os

import torch
from torch import nn

from . import network

SNAP_MODES = ('table', 'off')


def machine_table(structure, device: torch.device, backend: str, precision: str, threads: int | None,
                  root: str = 'latency_tables'):
    """This machine's latency table for the network's architecture and these settings, else ``None``."""
    from .latency import LatencyError, device_label, read_table
    try:
        label = device_label(device.type)
    except LatencyError:
        return None
    threads = threads or torch.get_num_threads()
    names = {a for a, registered in network.aliases().items() if registered == structure.arch} | {structure.arch}
    for path in sorted(glob.glob(os.path.join(root, '*', f'*_{backend}_{precision}_*.json'))):
        if path.endswith('.check.json') or os.path.basename(path).split(f'_{backend}_')[0] not in names:
            continue
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue
        if data.get('device_name') != label or (device.type == 'cpu' and data.get('threads') != threads) \
                or data.get('arch_kwargs', {}) != dict(structure.arch_kwargs):
            continue
        try:
            return read_table(path, structure.spec)
        except LatencyError:
            continue
    return None


def snap(model: nn.Module, device: torch.device, backend: str, precision: str, threads: int | None,
         mode: str = 'table') -> tuple[nn.Module, str | None]:
    """``(model, None)``, or a padded copy and a line saying why, when this machine's table predicts the padded
    widths faster (``mode='off'``: never)."""
    if mode not in SNAP_MODES:
        raise ValueError(f'width snapping must be one of {SNAP_MODES}, got {mode!r}')
    structure = getattr(model, network.ATTRIBUTE, None)
    if mode == 'off' or structure is None:
        return model, None
    table = machine_table(structure, device, backend, precision, threads)
    if table is None or table.width_step <= 1:
        return model, None
    step, full = table.width_step, structure.spec.group_widths
    widths = dict(structure.widths)
    padded = {g: min(full[g], -(-w // step) * step) for g, w in widths.items()}
    before, after = table.cost(widths), table.cost(padded)
    if padded == widths or after >= before:
        return model, None
    note = (f'widths padded with zero channels to multiples of {step} (this machine\'s latency table '
            f'{os.path.basename(table.source)}: {before / 1e3:.1f} -> {after / 1e3:.1f} ms at its size)')
    return network.padded(model, step), note
