"""Parts 2-3 of reports/paper_claims.md: DHP against the uniformly thinned network, l1 against l2, from a device report.

    python -m research.paper_claims.uniform --device reports/paper_claims/denoise/device_denoise.json --out reports/paper_claims/denoise

The device report (``restore_dhp.device_report`` over the runs' final checkpoints, named after their runs, and the
full-width baseline) holds each model's FLOPs ratio, widths, latency measured side by side and PSNR per set.  The
runs are told apart by name (``research/paper_claims/run_uniform.sh``): ``..._dhpNN_sS`` (the DHP recipe),
``..._uniW_sS`` (uniform width W, trained plainly), ``..._uniW_dhp_sS`` (uniform width W, the DHP procedure without
the width choice), ``..._dhp40_l2_sS`` (DHP-40 with the l2 proximal step).  Writes ``<out>/uniform.md`` (the tables:
each family's mean over seeds and its spread; each DHP model against the two uniform families interpolated at its
FLOPs ratio and at its measured latency ratio; l1 against l2 with the widths kept per layer) and
``<out>/uniform_<task>.png`` (PSNR against FLOPs and against latency; kept widths across depth, l1 and l2).
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

from restore_dhp.device_report import interpolate
from restore_dhp.fileio import write_text
from tools.markdown_block import splice

PATTERNS = (('DHP', re.compile(r'_dhp(\d+)_s(\d+)$')), ('uniform, plain', re.compile(r'_uni(\d+)_s(\d+)$')),
            ('uniform, DHP procedure', re.compile(r'_uni(\d+)_dhp_s(\d+)$')), ('DHP, l2', re.compile(r'_dhp(\d+)_l2_s(\d+)$')))
UNIFORM = ('uniform, plain', 'uniform, DHP procedure')


def classify(name: str) -> tuple[str, int, int] | None:
    """``(family, point, seed)`` of a run by its name (point: the DHP target in % or the uniform width)."""
    for family, pattern in PATTERNS:
        if m := pattern.search(name):
            return family, int(m.group(1)), int(m.group(2))
    return None


def against_baseline(report: dict) -> list[dict]:
    """The report's models with ``flops_ratio`` taken against the report's full-width baseline: the device report
    gives each model's FLOPs against its own architecture at full width, which for a network trained at a uniform
    width W is itself (1.0)."""
    base = next(m for m in report['models'] if m['name'] == report['baseline'])
    return [dict(m, flops_ratio=m['gflops'] / base['gflops']) for m in report['models']]


def groups(models: list[dict], sets: list[str]) -> dict[tuple[str, int], dict]:
    """Each (family, point): its seeds' records and their mean FLOPs ratio, latency ratio and PSNR per set."""
    out: dict[tuple[str, int], dict] = {}
    for r in models:
        if (kind := classify(r['name'])) is None:
            continue
        out.setdefault(kind[:2], {'runs': []})['runs'].append(dict(r, seed=kind[2]))
    for g in out.values():
        runs = g['runs']
        g['flops'] = statistics.mean(r['flops_ratio'] for r in runs)
        g['latency'] = statistics.mean(r['latency_ratio'] for r in runs)
        g['psnr'] = {s: statistics.mean(r['psnr'][s] for r in runs) for s in sets if all(s in r['psnr'] for r in runs)}
        g['spread'] = {s: max(r['psnr'][s] for r in runs) - min(r['psnr'][s] for r in runs) for s in g['psnr']}
    return out


def against_uniform(table: dict, sets: list[str], axis: str) -> dict[tuple[int, str], dict[str, float | None]]:
    """PSNR of each DHP point minus each uniform family's, interpolated at the DHP point's ``axis`` value."""
    out = {}
    for (family, point), g in table.items():
        if family != 'DHP':
            continue
        for uniform in UNIFORM:
            curve = sorted((u[axis], u) for (f, _), u in table.items() if f == uniform)
            out[point, uniform] = {s: None if (y := interpolate([(x, u['psnr'][s]) for x, u in curve if s in u['psnr']],
                                                                g[axis])) is None else g['psnr'][s] - y
                                   for s in g['psnr']}
    return out


def fmt(v: float | None) -> str:
    return 'outside' if v is None else f'{v:+.2f}'


def markdown(report: dict, table: dict) -> str:
    sets, task = report['sets'], report['task']
    lines = [f"### {task}: {report['table_settings'].get('device_name', '')}, {report['table_settings']['backend']}, "
             f"{report['table_settings']['threads']} thread(s), control {report['control_speedup']:.2f}", '',
             '| family | point | seeds | FLOPs ratio | latency ratio | ' + ' | '.join(f'{s} (spread)' for s in sets) + ' |',
             '|---|---|---|---|---|' + '---|' * len(sets)]
    for (family, point), g in sorted(table.items(), key=lambda kv: (kv[0][0], -kv[1]['flops'])):
        label = f'DHP-{point}' if family.startswith('DHP') else f'width {point}'
        cells = ' | '.join(f"{g['psnr'][s]:.2f} ({g['spread'][s]:.2f})" if s in g['psnr'] else '–' for s in sets)
        lines.append(f"| {family} | {label} | {len(g['runs'])} | {g['flops']:.3f} | {g['latency']:.3f} | {cells} |")
    present = [u for u in UNIFORM if any(f == u for f, _ in table)]   # a family not run yet has no columns
    for axis, what in (('flops', 'FLOPs'), ('latency', 'measured latency')):
        diff = against_uniform(table, sets, axis)
        lines += ['', f'DHP minus the uniform families interpolated at its {what} (dB; outside: beyond their range):',
                  '', '| DHP | ' + ' | '.join(f'vs {u}, {s}' for u in present for s in sets) + ' |',
                  '|---|' + '---|' * (len(present) * len(sets))]
        for point in sorted({p for p, _ in diff}, reverse=True):
            lines.append(f'| DHP-{point} | ' + ' | '.join(fmt(diff[point, u].get(s)) for u in present for s in sets) + ' |')
    for point in sorted(p for f, p in table if f == 'DHP, l2'):
        lines += ['', f'l1 against l2 at DHP-{point}, widths kept per group (each seed):', '',
                  '| run | FLOPs ratio | ' + ' | '.join(sets) + ' | widths |', '|---|---|' + '---|' * len(sets) + '---|']
        for family in ('DHP', 'DHP, l2'):
            for r in table.get((family, point), {'runs': []})['runs']:
                lines.append(f"| {r['name']} | {r['flops_ratio']:.3f} | " + ' | '.join(
                    f"{r['psnr'][s]:.2f}" if s in r['psnr'] else '–' for s in sets) + ' | ' +
                    ' '.join(str(w) for w in r['widths'].values()) + ' |')
    return '\n'.join(lines) + '\n'


def plot(report: dict, table: dict, path: Path) -> None:
    import matplotlib  # here: only the plot needs it
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    first = report['sets'][0]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for family, marker in zip(('DHP', *UNIFORM, 'DHP, l2'), 'osD^'):
        rows = sorted((g for (f, _), g in table.items() if f == family and first in g['psnr']), key=lambda g: g['flops'])
        for ax, axis in zip(axes[:2], ('flops', 'latency')):
            ax.plot([g[axis] for g in rows], [g['psnr'][first] for g in rows], marker=marker, label=family)
    for ax, what in zip(axes[:2], ('FLOPs ratio', 'measured latency ratio')):
        ax.set_xlabel(what), ax.set_ylabel(f'PSNR on {first} (dB), mean of seeds'), ax.grid(alpha=0.3), ax.legend()
    for family, style in (('DHP', '-'), ('DHP, l2', '--')):
        for (f, point), g in table.items():
            for r in g['runs'] if f == family else []:
                axes[2].plot(list(r['widths'].values()), style, marker='.', label=f"{family} {point} s{r['seed']}")
    axes[2].set_xlabel('prunable group (by name)'), axes[2].set_ylabel('kept width')
    axes[2].grid(alpha=0.3), axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def embed(report_path: Path, block: str, text: str) -> None:
    """Put ``text`` between the ``<!-- uniform:<block>:begin -->`` and ``...:end -->`` lines of ``report_path``."""
    try:
        write_text(report_path, splice(report_path.read_text(), f'uniform:{block}', text))
    except ValueError as e:
        raise SystemExit(f'error: {report_path} has {e}') from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m research.paper_claims.uniform', description=__doc__.split('\n')[0])
    parser.add_argument('--device', required=True, help="a restore_dhp.device_report JSON of the runs' checkpoints")
    parser.add_argument('--out', required=True, help='folder for uniform.md and the plot')
    parser.add_argument('--report', help='a Markdown file whose <!-- uniform:<block>:begin/end --> block gets the tables')
    parser.add_argument('--block', help="the block's name (default: the task; a variant's runs: their own block)")
    args = parser.parse_args(argv)
    report = json.loads(Path(args.device).read_text())
    table = groups(against_baseline(report), report['sets'])
    if not any(f == 'DHP' for f, _ in table):
        print(f'error: {args.device} holds no DHP run (..._dhpNN_sS)', file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(report, table)
    write_text(out / 'uniform.md', text)
    if args.report:
        embed(Path(args.report), args.block or report['task'], text)
    plot(report, table, out / f"uniform_{report['task']}.png")
    print(f"wrote {out / 'uniform.md'} and {out / ('uniform_' + report['task'] + '.png')}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
