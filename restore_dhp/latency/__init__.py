"""Measured latency tables: what widths cost on one device, backend, precision, thread count and input size.

    python -m restore_dhp.latency profile --arch srresnet --device cpu --backend fused --threads 1 --size 170x256
    python -m restore_dhp.latency check --table latency_tables/cpu-amd-epyc-1t/srresnet_fused_fp32_170x256.json

``profile`` (:mod:`.profile`) measures every conv class of the architecture alone, in the project's
deployed form (:func:`restore_dhp.deploy.prepare`), over a grid of input and output widths, then the
whole network at a few uniform widths to fit an elementwise term and a constant; ``check``
(:mod:`.check`) compares the table's prediction with the measured whole network at random widths.
A search reads the table as its cost (:class:`restore_dhp.dhp.LatencyTable`, option
``dhp.target: {latency: 0.4, table: FILE}``).

A table is a JSON file; its fields:

* ``format`` (``restore_dhp.latency.v1``), ``arch``, ``arch_kwargs``: the network it prices;
* ``device`` (``cpu`` / ``cuda``), ``device_name`` (the CPU model or GPU name), ``backend``, ``precision``,
  ``threads`` (``null`` on CUDA), ``size`` ([H, W] of the input; LR for SR), ``torch``, ``onnxruntime``,
  ``created`` (UTC), ``warmup``, ``rounds`` (untimed and timed runs per point, interleaved with
  the other points; the median is kept);
* ``unit`` (``us``), ``interpolation`` (``ceil`` or ``linear``), ``width_step`` (the widths where latency steps:
  ``round_to: auto``), ``sweep`` (``{layer, widths, us}``: the one-width sweep the step was read from),
  ``off_step_factor`` (optional: for each width 1..full of the sweep, its latency over that of the next
  multiple of the step; prices widths off the step, see :mod:`restore_dhp.dhp.latency_table`);
* ``layers``: ``{class: {kernel_size, scale, out_per_channel, widths, us}}`` for a class with one free width, or
  ``{..., in_widths, out_widths, us: [[...] per input width]}``; ``convs``: ``{conv name: class}``;
* ``layer_scale`` (optional, default 1), ``elementwise_us_per_element``, ``constant_us`` and ``fit`` (the
  uniform widths, measured and layer-sum
  microseconds they were fitted on).

Committed tables live under ``latency_tables/<device>-<model>-<threads>t/`` (CPU) or
``latency_tables/cuda-<gpu>/`` (:func:`table_path`), named ``<arch>_<backend>_<precision>_<H>x<W>.json``.
"""
from __future__ import annotations

import hashlib
import json
import os
import re

import torch

from ..complexity import arch_spec
from ..fileio import write_text
from ..timing import cpu_model
from ..dhp import LatencyTable

FORMAT = 'restore_dhp.latency.v1'
TABLES_DIR = 'latency_tables'


class LatencyError(ValueError):
    """A table that cannot be read or used, or settings that cannot be measured; the message is one line."""


def device_label(device: str) -> str:
    """The CPU model or GPU name a table is measured on."""
    if device != 'cuda':
        return cpu_model()
    if not torch.cuda.is_available():
        raise LatencyError('device cuda: no CUDA device is available')
    return torch.cuda.get_device_name(0)


def _slug(text: str) -> str:
    return re.sub(r'[^a-z0-9]+', '-', text.lower()).strip('-')


def table_path(arch: str, device: str, backend: str, precision: str, threads: int | None,
               size: tuple[int, int], root: str = TABLES_DIR) -> str:
    """Where the table of these settings is kept, e.g.
    ``latency_tables/cpu-amd-epyc-1t/srresnet_fused_fp32_170x256.json``."""
    folder = f'{device}-{_slug(device_label(device))}' + (f'-{threads}t' if device == 'cpu' else '')
    return os.path.join(root, folder, f'{arch}_{backend}_{precision}_{size[0]}x{size[1]}.json')


def load_data(path: str) -> dict:
    """The parsed JSON of a latency table (checked format)."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise LatencyError(f'latency table {path} does not exist (build it: python -m restore_dhp.latency '
                           'profile ...)') from None
    except (OSError, json.JSONDecodeError) as e:
        raise LatencyError(f'latency table {path} cannot be read: {e}') from None
    if not isinstance(data, dict) or data.get('format') != FORMAT:
        raise LatencyError(f'{path} is not a latency table (format {FORMAT})')
    return data


def read_table(path: str, spec=None) -> LatencyTable:
    """The table at ``path`` as a cost for ``spec`` (default: its own architecture's spec)."""
    data = load_data(path)
    try:
        return LatencyTable(spec or table_spec(data, path), data, source=path)
    except (KeyError, TypeError, ValueError) as e:
        raise LatencyError(f'latency table {path}: {e}') from None


def table_spec(data: dict, path: str):
    """The spec of the network a table was measured for (its ``arch`` and ``arch_kwargs``)."""
    try:
        return arch_spec(data['arch'], **data['arch_kwargs'])
    except (KeyError, TypeError, ValueError) as e:
        raise LatencyError(f'latency table {path}: its architecture {data.get("arch")!r} with '
                           f'{data.get("arch_kwargs")!r} cannot be built ({str(e).strip(chr(34))})') from None


def device_warning(data: dict) -> str | None:
    """A warning when this machine is not the one the table ``data`` was measured on (``None``: it is)."""
    try:
        here = device_label(data.get('device', 'cpu'))
    except LatencyError:
        here = 'a machine without CUDA'
    if here != data.get('device_name'):
        return (f'warning: the table was measured on {data.get("device_name")!r} ({data.get("device")}), this is '
                f'{here!r}: its latencies may not hold here')
    return None


def target_mismatch(meta: dict, device: str, backend: str) -> str | None:
    """A warning when a checkpoint searched for the latency of one device and backend (its search record's
    table) runs on another device kind or backend, as ``latency check`` warns for a table (``None``: it matches,
    or the checkpoint has no latency target)."""
    table = ((meta.get('info') or {}).get('search') or {}).get('latency_table')
    if not table:
        return None
    try:
        here = device_label(device)
    except LatencyError:
        here = 'a machine without CUDA'
    if table.get('device_name') == here and table.get('backend') == backend:
        return None
    return (f"warning: this model was searched for the latency of {table.get('device_name')!r} "
            f"({table.get('backend')}); this is {here!r} ({backend}): its speed-up may not hold here "
            '(restore-dhp prune makes one for this machine)')


def table_for_network(path: str, arch: str, arch_kwargs: dict) -> tuple[LatencyTable, str | None]:
    """The table at ``path`` as the cost of the network ``arch(**arch_kwargs)`` (any registered form): checked
    that it is a table, that it was measured for that network (the same spec: groups, widths, convs), and that it
    prices it; with a warning when this machine is not the one it was measured on.  :class:`LatencyError` else."""
    data = load_data(path)
    spec = arch_spec(arch, **arch_kwargs)
    if table_spec(data, path) != spec:
        raise LatencyError(f'latency table {path} was measured for {data["arch"]} {json.dumps(data["arch_kwargs"])}, '
                           f'not this network ({arch} {json.dumps(arch_kwargs, sort_keys=True)}); measure one for it: '
                           'python -m restore_dhp.latency profile ...')
    return read_table(path, spec), device_warning(data)


def file_sha256(path: str) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def write_json(data: dict, path: str) -> None:
    """Write ``data`` to ``path`` whole or not at all."""
    write_text(path, json.dumps(data, indent=1) + '\n')
