"""Writing benchmark results: the DHP paper's table in Markdown, CSV, JSON and a PSNR-vs-GFLOPs plot.

Measured rows and the paper's reported numbers are kept apart everywhere:
:data:`restore_dhp.catalogue.PAPER_REFERENCE` is used only for the plot's hollow "paper (reported)"
markers and for a separate, labelled block in ``report.md`` (and its own key
in ``report.json``); it never enters a measured row.

A result row (``dict``) as :mod:`restore_dhp.benchmark` builds it::

    {'name': 'DHP-40', 'kind': 'model' | 'floor', 'checkpoint': path | None, 'arch': 'SRResNet',
     'gflops': float | None, 'params': int | None, 'flops_ratio': float | None,
     'metrics': {set: {'psnr_y': .., 'ssim_y': .., 'psnr_rgb': .., ['lpips': ..], 'num_images': n,
                       'per_image': [{'name': .., 'psnr_y': .., ...}, ...]}},
     'timing': {'runtime_ms': .., 'peak_memory_mb': .., 'per_image': [...]} | None}
"""
from __future__ import annotations

import csv
import json
import math
import os
import platform
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from .archs import LEGACY_NAMES
from .catalogue import PAPER_REFERENCE, get_task
from .fileio import atomic_path, write_text



def primary_metric(task: str) -> str:
    return get_task(task).primary_metric


def metric_label(task: str, key: str) -> str:
    return dict(get_task(task).metric_columns)[key]


def below_floor_notes(task: str, sets: list[str], rows: list[dict], floor: dict) -> list[str]:
    """One warning per model and set on which some image came out worse than the trivial floor
    (bicubic for SR, the noisy input for denoising): a mean PSNR can hide a model that breaks on
    a few images."""
    key = primary_metric(task)
    notes = []
    for row in rows:
        for name in sets:
            floor_by_image = {d['name']: d[key] for d in floor['metrics'][name]['per_image']}
            images = row['metrics'][name]['per_image']
            bad = [d for d in images if d[key] < floor_by_image[d['name']]]
            if bad:
                worst = min(bad, key=lambda d: d[key] - floor_by_image[d['name']])
                notes.append(f"**Warning: {row['name']} is worse than the {floor['name'].lower()} on "
                             f"{len(bad)} of {len(images)} {name} images** (worst: {worst['name']}, "
                             f"{worst[key]:.2f} dB against {floor_by_image[worst['name']]:.2f} dB).")
    return notes


def software_versions() -> dict:
    """Versions of the packages the numbers depend on (``None`` for a package that is not installed)."""
    out = {'python': platform.python_version()}
    for key, dist in [('torch', 'torch'), ('torchvision', 'torchvision'), ('basicsr', 'basicsr'),
                      ('numpy', 'numpy'), ('opencv', 'opencv-python-headless'), ('lpips', 'lpips'), ('onnx', 'onnx'), ('onnxruntime', 'onnxruntime'),
                      ('restore_dhp', 'restore_dhp')]:
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[key] = None
    out['cuda'] = torch.version.cuda
    return out


def paper_reference(task: str, rows: list[dict]) -> dict | None:
    """The DHP paper's figures for ``task`` where the measured models are the paper's architecture (SRResNet,
    DnCNN); none for another network (EDSR, a UNet), whose table the paper does not print."""
    ref = PAPER_REFERENCE[task]
    archs = {LEGACY_NAMES.get(r['arch'], r['arch']) for r in rows if r.get('arch')}
    return ref if archs and archs <= {ref['arch']} else None


def _fmt(value, digits=2, scale=1.0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '—'
    return f'{value * scale:.{digits}f}'


def _metric_names(task: str, rows: list[dict]) -> list[tuple[str, str]]:
    """Metric columns present in at least one row (LPIPS only when it was computed)."""
    present = {k for r in rows for m in r['metrics'].values() for k in m}
    return [(k, label) for k, label in get_task(task).metric_columns if k in present]


def csv_columns(task: str, sets: list[str], rows: list[dict]) -> list[str]:
    cols = ['model', 'kind', 'checkpoint', 'arch']
    for s in sets:
        cols += [f'{s}_{k}' for k, _ in _metric_names(task, rows)]
    cols += ['gflops_128', 'params', 'flops_ratio', 'runtime_ms', 'peak_memory_mb', 'backend', 'precision',
             'device']
    return cols


def write_csv(path: Path, task: str, sets: list[str], rows: list[dict], device: dict, timing: dict) -> None:
    cols = csv_columns(task, sets, rows)
    with atomic_path(path) as tmp, open(tmp, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            rec = {'model': r['name'], 'kind': r['kind'], 'checkpoint': r.get('checkpoint') or '',
                   'arch': r.get('arch') or '', 'gflops_128': r.get('gflops'), 'params': r.get('params'),
                   'flops_ratio': r.get('flops_ratio'), 'device': device['label']}
            t = r.get('timing') or {}
            rec['backend'], rec['precision'] = t.get('backend'), t.get('precision')
            rec['runtime_ms'] = t.get('runtime_ms')
            rec['peak_memory_mb'] = t.get('peak_memory_mb')
            for s in sets:
                for k, _ in _metric_names(task, rows):
                    rec[f'{s}_{k}'] = r['metrics'].get(s, {}).get(k)
            w.writerow({k: ('' if v is None else v) for k, v in rec.items()})


def write_json(path: Path, payload: dict) -> None:
    write_text(path, json.dumps(payload, indent=2, default=_json_default))


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f'{type(o).__name__} is not JSON serialisable')


def _count(n, noun: str) -> str:
    return f'{n} {noun}' + ('' if n == 1 else 's')


def _timing_label(timing: dict) -> str:
    """'fused fp32' -- which deployed form the runtime column measured."""
    return f"{timing.get('backend')} {timing.get('precision')}" if timing.get('backend') else 'not timed'


def _intro(task: str, device: dict, timing: dict, run: dict) -> str:
    metric_desc = get_task(task).metric_description(run)
    head = (f'**Measured on {device["label"]}.** {metric_desc}. GFLOPs and parameters at a 128×128 input '
            '(paper convention: conv multiply-accumulates + activations/BN, for SR the low-resolution '
            'input). FLOPs ratio = model FLOPs / the same architecture at full width. Runtime: ')
    if not timing.get('num_images'):  # --no-timing
        return f"{head}not measured ({timing.get('set_reason') or 'no images timed'}), nor memory."
    runtime = (f"{_count(timing.get('warmup'), 'warm-up run')}, then the median of "
               f"{_count(timing.get('repeats'), 'timed run')} per image, averaged over "
               f"{timing.get('num_images', 0)} image(s) of {timing.get('set')} ({timing.get('set_reason', '')}); "
               f"deployed form: {timing.get('deployed', _timing_label(timing))}")
    others = timing.get('backends_total_ms') or {}
    if len(others) > 1:
        runtime += ' (the fastest exact backend here; all models in total: ' + ', '.join(
            f'{b} {ms:.0f} ms' for b, ms in others.items()) + ')'
    return (f"{head}{runtime}; {timing.get('isolation', '')}. All runtime and memory figures are "
            f'**{device["type"].upper()}** figures ({timing.get("method", "")}).')


def markdown(task: str, sets: list[str], rows: list[dict], device: dict, timing: dict, run: dict,
             notes: list[str]) -> str:
    """report.md: the measured table, further metrics, notes, and the paper's figures apart."""
    head = primary_metric(task)
    title = get_task(task).report_title(run)
    lines = [f'# DHP benchmark — {title}', '', _intro(task, device, timing, run), '']
    dev, form = device['type'].upper(), _timing_label(timing)
    mem_form = f"{timing['memory_backend']} fp32" if timing.get('memory_backend') else form
    header = ['Model'] + [f'{s} {metric_label(task, head)}' for s in sets] + \
        ['GFLOPs (128²)', 'Params (M)', 'FLOPs ratio', f'Runtime {dev}, {form} (ms)',
         f'Peak mem. {dev}, {mem_form} (MB)']
    lines += ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for r in rows:
        t = r.get('timing') or {}
        cells = [r['name'] + (' (floor)' if r['kind'] == 'floor' else '')]
        cells += [_fmt(r['metrics'].get(s, {}).get(head)) for s in sets]
        cells += [_fmt(r.get('gflops')), _fmt(r.get('params'), 3, 1e-6), _fmt(r.get('flops_ratio'), 3),
                  _fmt(t.get('runtime_ms'), 1), _fmt(t.get('peak_memory_mb'), 2)]
        lines.append('| ' + ' | '.join(cells) + ' |')
    others = [(k, label) for k, label in _metric_names(task, rows) if k != head]
    if others:
        lines += ['', '## Further measured metrics', '']
        header = ['Model'] + [f'{s} {label}' for s in sets for _, label in others]
        lines += ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
        for r in rows:
            cells = [r['name']] + [_fmt(r['metrics'].get(s, {}).get(k), 4 if k != 'psnr_rgb' else 2)
                                   for s in sets for k, _ in others]
            lines.append('| ' + ' | '.join(cells) + ' |')
    if notes:
        lines += ['', '## Notes', ''] + [f'- {n}' for n in notes]
    ref = paper_reference(task, rows)
    if ref is None:
        return '\n'.join(lines) + '\n'
    lines += ['', '## Paper (reported) — not measured here', '',
              f'{ref["title"]}, as printed in the DHP paper (Li et al., ECCV 2020); runtimes there were '
              'measured on a GPU and are not reproduced. For reference only: these numbers are not part '
              'of the measured table above.', '']
    header = ['Model (paper)'] + ref['sets'] + ['GFLOPs', 'Params (M)']
    lines += ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for pr in ref['rows']:
        lines.append('| ' + ' | '.join([pr['name']] + [f'{v:.2f}' for v in pr['psnr']] +
                                       [f'{pr["gflops"]:.2f}', f'{pr["params_m"]:.2f}']) + ' |')
    return '\n'.join(lines) + '\n'


def plot_psnr_vs_flops(path: Path, task: str, first_set: str, rows: list[dict], device: dict) -> None:
    """PSNR on ``first_set`` against GFLOPs: measured points solid, the paper's hollow with a dashed line."""
    import matplotlib  # here, not at the top: only the plot needs it (most of a second to import)
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    head = primary_metric(task)
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    by_arch: dict[str, list] = {}
    for r in rows:
        if r['kind'] == 'model' and r.get('gflops') is not None and first_set in r['metrics']:
            by_arch.setdefault(r['arch'], []).append((r['gflops'], r['metrics'][first_set][head], r['name']))
    colors = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for i, (arch, pts) in enumerate(sorted(by_arch.items())):
        pts.sort()
        c = colors[i % len(colors)]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], '-o', color=c, markersize=7,
                label=f'{arch.replace("Compact", "")} (measured, {device["type"].upper()} run)')
        for x, y, name in pts:
            ax.annotate(name, (x, y), textcoords='offset points', xytext=(4, 4), fontsize=7, color=c)
    ref = paper_reference(task, rows)
    if ref and first_set in ref['sets']:
        j = ref['sets'].index(first_set)
        pts = sorted((pr['gflops'], pr['psnr'][j], pr['name']) for pr in ref['rows'])
        ax.plot([p[0] for p in pts], [p[1] for p in pts], '--o', color='gray', markerfacecolor='none',
                markersize=7, label=f'{ref["arch"].replace("Compact", "")} paper (reported)')
    for r in rows:
        if r['kind'] == 'floor' and first_set in r['metrics']:
            ax.axhline(r['metrics'][first_set][head], color='black', linestyle=':', linewidth=1,
                       label=f'{r["name"]} (floor, measured)')
    ax.set_xlabel('GFLOPs at 128×128 input')
    ax.set_ylabel(f'{metric_label(task, head)} on {first_set} (dB)')
    ax.set_title(f'PSNR vs FLOPs — {first_set}')
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc='lower right')
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp)
    finally:
        plt.close(fig)


def write_all(out_dir: str | os.PathLike, task: str, sets: list[str], rows: list[dict], device: dict,
              timing: dict, run: dict, payload_extra: dict, notes: list[str] | None = None) -> dict[str, Path]:
    """Write report.md, report.csv, report.json and psnr_vs_flops.png into ``out_dir``; return their paths.

    ``run``: the run's conventions (``scale``; ``sigma_255`` for denoising), written into the text.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {'md': out / 'report.md', 'csv': out / 'report.csv', 'json': out / 'report.json',
             'png': out / 'psnr_vs_flops.png'}
    notes = list(notes or [])
    ref = paper_reference(task, rows)
    write_text(paths['md'], markdown(task, sets, rows, device, timing, run, notes))
    write_csv(paths['csv'], task, sets, rows, device, timing)
    payload = {'task': task, 'sets': sets, 'software': software_versions(), 'device': device,
               'timing': timing, 'results': rows, 'notes': notes, **payload_extra,
               'paper_reference': ref and {'note': 'numbers reported in the DHP paper; not measured by this run',
                                           **ref}}
    write_json(paths['json'], payload)
    if sets:
        plot_psnr_vs_flops(paths['png'], task, sets[0], rows, device)
    return paths
