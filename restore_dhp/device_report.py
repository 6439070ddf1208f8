"""The device report: latency-targeted against FLOPs-targeted models, measured side by side on the table's device.

    python -m restore_dhp.device_report --task sr \\
        --table latency_tables/cpu-amd-epyc-1t/srresnet_fused_fp32_170x256.json \\
        --weights weights/srresnet_x4_baseline.safetensors weights/device/srresnet_x4_*.safetensors \\
        --quality reports/device/quality_sr/report.json --out reports/device

For one task: every checkpoint (and a control, the baseline timed again: :mod:`restore_dhp.speed_tables`)
is timed side by side as the table was measured (device, backend, precision, threads, input size;
:func:`restore_dhp.latency.profile.side_by_side_us`).  Each model's family comes from its metadata
(``search.target``: latency; ``search.target_ratio``: FLOPs).  The report section
(``<out>/device_<task>.md``, ``.json`` and ``psnr_vs_latency_<task>.png``) gives per model the
target, the table's prediction, the measured latency and its ratio to the baseline's (a latency
target is met within 15%), the PSNR on every set of ``--quality`` (a ``restore_dhp.benchmark``
report.json of the same checkpoints), and, at equal measured latency, the PSNR of the
latency-targeted model against the FLOPs-targeted family interpolated at its latency.
``--join`` writes ``<out>/report.md`` from the task sections present.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

from .catalogue import TASKS, search_record
from .checkpoint import CheckpointError, load_checkpoint
from .commands import prog, run_entry
from .complexity import metadata_complexity
from .latency import LatencyError, read_table, write_json
from .latency.check import settings_of
from .latency.profile import side_by_side_us
from .fileio import write_text
from .reporting import metric_label, primary_metric
from .speed_tables import control_line

TARGET_WITHIN = 0.15
CONTROL = 'control'


REFERENCE_FAMILIES = ('FLOPs', 'baseline')  # the curve every other model is compared with at equal latency


def family(meta: dict) -> tuple[str, float | None]:
    """('latency', target) / ('FLOPs', target) from the search record (a search warm-started from trained weights:
    'latency, warm start' / 'FLOPs, warm start'), ('baseline', None) at full width, else ('other', None)."""
    search = search_record(meta.get('info'))
    warm = ', warm start' if search.get('warm_start') else ''
    if search.get('target'):
        return f'latency{warm}', float(search['target']['latency'])
    if search.get('target_ratio') is not None:
        return f'FLOPs{warm}', float(search['target_ratio'])
    return ('baseline', None) if metadata_complexity(meta)['flops_ratio'] == 1.0 else ('other', None)


def quality_by_checkpoint(paths: list[str] | None, task: str) -> tuple[list[str], dict[str, dict[str, float]]]:
    """The sets and ``{checkpoint path, resolved: {set: headline metric}}`` of benchmark report.json files (none
    without; a checkpoint in several: the last file's).  A report's paths are read from the working folder, as the
    benchmark wrote them (both run from the checkout's root)."""
    key, sets, quality = primary_metric(task), [], {}
    for path in paths or []:
        report = json.loads(Path(path).read_text())
        sets += [s for s in report['sets'] if s not in sets]
        quality.update({str(Path(r['checkpoint']).resolve()): {s: m[key] for s, m in r['metrics'].items()}
                        for r in report['results'] if r.get('checkpoint')})
    return sets, quality


def measure(args) -> dict:
    """Every checkpoint's record and its measured latency, side by side as the table was measured."""
    table = read_table(args.table)
    settings = settings_of(table, args.rounds, args.warmup)
    models, records, paths = {}, [], {}
    for path in args.weights:
        model, meta = load_checkpoint(path, 'cpu')
        kind, target = family(meta)
        name = Path(path).name.split('.')[0]
        models[name], paths[name] = model, path
        counts = metadata_complexity(meta)
        records.append({'name': name, 'checkpoint': Path(path).name, 'family': kind, 'target': target,
                        'widths': meta['widths'], 'flops_ratio': counts['flops_ratio'], 'gflops': counts['gflops'],
                        'predicted_ms': table.cost(meta['widths']) / 1e3})
    full = [r for r in records if r['family'] == 'baseline']
    if not full:
        raise CheckpointError('the device report needs the full-width baseline among --weights')
    # the widest: a network trained at a uniform smaller width is full width of its own architecture too
    base = max(full, key=lambda r: r['gflops'])
    models[CONTROL] = load_checkpoint(paths[base['name']], 'cpu').model
    runs = side_by_side_us(models, settings, *table.data['size'])
    ms = {name: statistics.median(values) / 1e3 for name, values in runs.items()}
    sets, quality = quality_by_checkpoint(args.quality, args.task)
    for r in records:
        r['measured_ms'] = ms[r['name']]
        r['latency_ratio'] = ms[r['name']] / ms[base['name']]
        r['psnr'] = quality.get(str(Path(paths[r['name']]).resolve()), {})
        if r['family'].startswith('latency'):
            r['target_met'] = abs(r['latency_ratio'] / r['target'] - 1) <= TARGET_WITHIN
    compare_at_equal_latency(records)
    for r in records:  # a latency-targeted model the FLOPs search also found: a difference is training alone
        twin = next((f for f in records if f['family'] == 'FLOPs' and f['widths'] == r['widths']), None)
        if r['family'].startswith('latency') and twin:
            r['twin'] = {'name': twin['name'], 'identical': same_tensors(models[r['name']], models[twin['name']])}
    return {'task': args.task, 'table': args.table, 'table_settings': table.describe(), 'rounds': len(runs[CONTROL]),
            'control_speedup': ms[base['name']] / ms[CONTROL], 'baseline': base['name'], 'sets': sets,
            'models': records}


def same_tensors(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def compare_at_equal_latency(records: list[dict]) -> None:
    """For each model outside the FLOPs family (latency-targeted, warm-started, other): the FLOPs family's PSNR
    (with the baseline) interpolated at its measured latency, on every set both have; ``vs_flops_db`` per set
    (``None`` outside their range)."""
    curve = sorted((r for r in records if r['family'] in REFERENCE_FAMILIES), key=lambda r: r['measured_ms'])
    for r in records:
        if r['family'] in REFERENCE_FAMILIES:
            continue
        r['vs_flops_db'] = {}
        for s, psnr in r['psnr'].items():
            points = [(c['measured_ms'], c['psnr'][s]) for c in curve if s in c['psnr']]
            r['vs_flops_db'][s] = None if (at := interpolate(points, r['measured_ms'])) is None else psnr - at


def interpolate(points: list[tuple[float, float]], x: float) -> float | None:
    """Linear interpolation of sorted ``(x, y)`` points at ``x``; ``None`` outside their range."""
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return None


def markdown(result: dict) -> str:
    task, models, sets = result['task'], result['models'], result['sets']
    metric = metric_label(task, primary_metric(task))
    t = result['table_settings']
    lines = [f'## {TASKS[task].entry.network}: latency-targeted vs FLOPs-targeted', '',
             f"Measured side by side ({result['rounds']} interleaved rounds, median) as the table "
             f"`{result['table']}` was: {t['device_name']}, {t['backend']} {t['precision']}, {t['threads']} thread(s), "
             f"input {t['size'][0]}x{t['size'][1]}. {control_line(result['control_speedup'])}.", '',
             '| model | family | target | FLOPs ratio | predicted ms | measured ms | latency ratio '
             '| target met (±15%) | '
             + ' | '.join(f'{metric} {s}' for s in sets) + ' |',
             '|---' * (8 + len(sets)) + '|']
    for r in models:
        target = '' if r['target'] is None else f"{r['target']:.2f}"
        met = {True: 'yes', False: 'NO'}.get(r.get('target_met'), '')
        lines.append(f"| {r['name']} | {r['family']} | {target} | {r['flops_ratio']:.3f} | {r['predicted_ms']:.1f} | "
                     f"{r['measured_ms']:.1f} | {r['latency_ratio']:.3f} | {met} | "
                     + ' | '.join(f"{r['psnr'][s]:.2f}" if s in r['psnr'] else '' for s in sets) + ' |')
    lines += ['', f'At equal measured latency ({metric} of each model minus the FLOPs-targeted family interpolated '
              'at its latency; positive: the model is better):', '']
    for r in (r for r in models if r['family'] not in REFERENCE_FAMILIES):
        deltas = ', '.join(f'{s} {d:+.2f} dB' if d is not None else f'{s} outside the FLOPs family\'s range'
                           for s, d in r.get('vs_flops_db', {}).items()) or 'no quality measured'
        worse = [s for s, d in r.get('vs_flops_db', {}).items() if d is not None and round(d, 2) < 0]
        twin = r.get('twin')
        why = ('' if not twin else f" (identical to {twin['name']}: both searches kept the same widths, and the "
               'trainings ran alike)' if twin['identical'] else
               f" (the same widths as {twin['name']}: both searches kept them, so any difference between the two is "
               'the training\'s, not the target\'s)')
        lines.append(f"- {r['name']} ({r['measured_ms']:.1f} ms): {deltas}"
                     + (f' -- WORSE on {", ".join(worse)}' if worse else '') + why)
    return '\n'.join(lines) + '\n'


def plot(result: dict, path: Path) -> None:
    models, sets = result['models'], result['sets']
    if not sets:
        return
    import matplotlib  # here, not at the top: only the plot needs it (most of a second; not for --help)
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, marker in zip(dict.fromkeys(r['family'] for r in models), 'o*sD^vP'):
        rows = sorted((r for r in models if r['family'] == kind and sets[0] in r['psnr']),
                      key=lambda r: r['measured_ms'])
        if rows:
            ax.plot([r['measured_ms'] for r in rows], [r['psnr'][sets[0]] for r in rows], marker=marker,
                    label=kind if kind in ('baseline', 'other') else f'{kind.replace(",", "-targeted,", 1)}'
                    if ',' in kind else f'{kind}-targeted')
    ax.set_xlabel(f"measured latency (ms), {result['table_settings']['backend']}, "
                  f"{result['table_settings']['threads']} thread(s)")
    ax.set_ylabel(f"{metric_label(result['task'], primary_metric(result['task']))} on {sets[0]} (dB)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def join(out: Path) -> Path:
    """``report.md`` from the task sections present in ``out``."""
    parts = [p.read_text() for p in sorted(out.glob('device_*.md'))]
    plots = [f'![{p.stem}]({p.name})' for p in sorted(out.glob('psnr_vs_latency_*.png'))]
    text = ('# Pruned for the device: latency-targeted and FLOPs-targeted models\n\n'
            'Both families trained with the CPU recipes\' budget and seeds (options/train/*_cpu.yml and '
            '*_cpu{60,40,20}_cpu.yml), which is not the budget of the main weights under weights/.\n\n'
            + '\n'.join(parts) + '\n' + '\n'.join(plots) + '\n')
    write_text(out / 'report.md', text)
    return out / 'report.md'


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=prog('device_report'), description=__doc__.split('\n')[0],
                                epilog='\n'.join(__doc__.split('\n')[1:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--task', choices=sorted(TASKS))
    p.add_argument('--table', help='the latency table the models were searched with')
    p.add_argument('--weights', nargs='+', help='the baseline and both families\' checkpoints')
    p.add_argument('--quality', nargs='+', help='restore_dhp.benchmark report.json files of the same checkpoints (PSNR)')
    p.add_argument('--rounds', type=int, help='timed rounds (default: the table\'s)')
    p.add_argument('--warmup', type=int, help='untimed rounds (default: the table\'s)')
    p.add_argument('--out', default='reports/device')
    p.add_argument('--join', action='store_true', help='write report.md from the task sections in --out')
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.join:
        print(f'wrote {join(out)}')
        return 0
    if not (args.task and args.table and args.weights):
        p.error('--task, --table and --weights are required (or --join)')
    try:
        result = measure(args)
    except (CheckpointError, LatencyError, OSError, KeyError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    write_json(result, str(out / f'device_{args.task}.json'))
    write_text(out / f'device_{args.task}.md', markdown(result))
    plot(result, out / f'psnr_vs_latency_{args.task}.png')
    print(markdown(result))
    return 0


if __name__ == '__main__':
    sys.exit(run_entry(main))
