"""The summary tables of reports/device/warm_start.md, from the device reports of ``run.sh report``.

    python -m research.warm_start.summary reports/device/warm_start_{sr,edsr,denoise}/device_*.json

For every warm-started model (``<start>_cpuNN``): its measured latency ratio against its target, and its PSNR minus
its control's (``<start>_cpuNN_control``: the same start pruned by magnitude to the same widths, fine-tuned as long)
and minus the shipped FLOPs-targeted family interpolated at its measured latency (``vs_flops_db`` of the report).
"""
from __future__ import annotations

import json
import re
import sys


def rows(report: dict) -> list[str]:
    models = {m['name']: m for m in report['models']}
    sets = report['sets']
    out = []
    for name, m in models.items():
        if not re.search(r'_cpu\d+$', name) or 'warm start' not in m['family']:
            continue
        control = models.get(f'{name}_control')
        diff = ' / '.join(f"{m['psnr'][s] - control['psnr'][s]:+.2f}" if control and s in control['psnr'] else '–'
                          for s in sets if s in m['psnr'])
        gpu = ' / '.join('outside' if (v := m.get('vs_flops_db', {}).get(s)) is None else f'{v:+.2f}'
                         for s in sets if s in m['psnr'])
        latency = f"{m['latency_ratio']:.3f} ({m['target']:.1f}, {'met' if m.get('target_met') else 'MISSED'})"
        control_latency = f"{control['latency_ratio']:.3f}" if control else '–'
        psnr = ' / '.join(f'{m["psnr"][s]:.2f}' for s in sets if s in m['psnr'])
        out.append(f'| {name} | {latency} | {control_latency} | {psnr} | {diff} | {gpu} |')
    return out


def main(argv=None) -> int:
    paths = sys.argv[1:] if argv is None else argv
    print('| model | latency ratio (target) | control\'s | PSNR | minus control | minus GPU family at equal latency |')
    print('|---|---|---|---|---|---|')
    for path in paths:
        with open(path) as f:
            report = json.load(f)
        for row in rows(report):
            print(row)
    return 0


if __name__ == '__main__':
    sys.exit(main())
