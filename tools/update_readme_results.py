#!/usr/bin/env python
"""Regenerate the README's results section from the committed benchmark reports.

Copies, for each network of the catalogue whose report exists (reports/sr and
reports/denoise for each task's main network, reports/<name> for the others, e.g.
reports/edsr_x4), the measured table and its caption from report.md (the paper's
figures stay in the reports' separately labelled block) between the README's
``results`` markers.

    python -m tools.update_readme_results
"""
from __future__ import annotations

import argparse
import pathlib
import re
import sys

from restore_dhp.catalogue import TASKS, CatalogueEntry, entries
from restore_dhp.fileio import write_text
from tools.markdown_block import splice

ROOT = pathlib.Path(__file__).resolve().parent.parent


def report_folder(task: str, entry: CatalogueEntry) -> str:
    """Where the benchmark report of a catalogue network lives, relative to the repository: ``reports/<task>`` for
    the task's main network, ``reports/<name>`` (e.g. ``reports/edsr_x4``) for the others."""
    return f'reports/{task}' if entry is TASKS[task].entry else f'reports/{entry.prefix}'


def measured_section(report: str) -> str:
    """The caption paragraph and the first table of a report.md (everything before its first '## ')."""
    body = report.split('\n', 1)[1]  # drop the '# ' title
    return re.split(r'^## ', body, maxsplit=1, flags=re.M)[0].strip()


def measured_table(report: str) -> str:
    """The measured table of a report.md alone, without the columns it left unmeasured (a --no-timing run's)."""
    lines = [line for line in measured_section(report).splitlines() if line.startswith('|')]
    cells = [line.strip('|').split('|') for line in lines]
    keep = [i for i in range(len(cells[0]))
            if 'not timed' not in cells[0][i] and not all(row[i].strip() == '—' for row in cells[2:])]
    return '\n'.join('|' + '|'.join(row[i] for i in keep) + '|' for row in cells)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m tools.update_readme_results', description=__doc__.split('\n\n')[0])
    parser.parse_args(argv)
    parts = ['(Generated from `reports/*/report.md` by `tools/update_readme_results.py`; '
             'how each model was trained: `weights/README.md`.)']
    for task, spec in TASKS.items():   # each titled as the catalogue titles it
        for entry in entries(spec):
            folder = report_folder(task, entry)
            path = ROOT / folder / 'report.md'
            if not path.exists():
                continue
            if entry is spec.entry:
                parts.append(f'### {entry.title}\n\n{measured_section(path.read_text())}\n\n'
                             f"Full report with SSIM, the paper's reported figures and the plot: "
                             f'[`{folder}/report.md`]({folder}/report.md), '
                             f'![PSNR vs FLOPs]({folder}/psnr_vs_flops.png)')
            else:   # a further network: its table, its caption in its report
                parts.append(f'### {entry.title}\n\n{measured_table(path.read_text())}\n\n'
                             f'Conventions, SSIM and the plot: [`{folder}/report.md`]({folder}/report.md)')
    readme = ROOT / 'README.md'
    text = readme.read_text()
    try:
        write_text(readme, splice(text, 'results', '\n\n'.join(parts) + '\n'))
    except ValueError as e:
        print(f'error: {readme} has {e}', file=sys.stderr)
        return 2
    print(f'updated {readme}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
