#!/usr/bin/env python
"""Write weights/README.md (the model card) from the shipped checkpoints, their recipes and the reports.

Everything in the card is read from files, nothing is typed in by hand:
checkpoint metadata (architecture, widths, search record, provenance, validation curve, wall time), the
recipe of each run (its option file and overlay, tools/recipes.py: data, iterations, lambda), the complexity
counter (FLOPs ratio), and reports/*/report.md (the measured table and, separately labelled, the paper's figures).

    python -m tools.write_model_card            # the prose is in tools/model_card_intro.md
    python -m tools.write_model_card --check    # exit 1 if weights/README.md is not what it would write
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import statistics
import sys

from restore_dhp.catalogue import TASKS, VARIANT_LABELS, entries
from restore_dhp.checkpoint import read_metadata
from restore_dhp.complexity import checkpoint_complexity
from restore_dhp.fileio import write_text
from tools.curves import curve_of
from tools.recipes import following, of_checkpoint, parse
from tools.update_readme_results import report_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INTRO_TEMPLATE = os.path.join(ROOT, 'tools', 'model_card_intro.md')   # the prose; {budgets} is filled in
CARD_TASKS = ('sr', 'denoise')   # in this order; each titled as the catalogue titles it


def wall_time(info: dict) -> str:
    """Wall time of a run, as its checkpoint records it (summed over resumed segments)."""
    if 'wall_time_s' not in info:
        return 'unknown (not recorded in the checkpoint)'
    total, segments = float(info['wall_time_s']), int(info.get('segments', 1))
    text = f'{int(total // 60)} min {int(total % 60)} s'
    return text + (f' in {segments} segments (resumed with --auto_resume)' if segments > 1 else '')


def validation_curve(info: dict) -> str:
    """'iteration: PSNR' of every validation, as the run's checkpoint records it."""
    points = {i: v for i, _, v in curve_of(info, metric='psnr')}
    return ', '.join(f'{i}: {v:.2f}' for i, v in sorted(points.items())) or 'unknown (not recorded in the checkpoint)'


SIDE_BY_SIDE = ' (the eight runs side by side on the one GPU)'
ALONE = {'srresnet_x4_dhp100_gpu'}  # GPU runs trained alone, in a later lease (research/gpu_campaign/gpu_session.sh)


def runner(experiment: str) -> str:
    """The command that ran a shipped run: tools/train_weights.sh at its stage's budget (the full width alone)."""
    stage = parse(experiment)['stage']
    if experiment in ALONE:
        return 'research/gpu_campaign/gpu_session.sh'
    if stage == 'continue_gpu' or experiment in following('continue_gpu', experiment):
        return 'BUDGET=gpu-continue bash tools/train_weights.sh --iters 3000'
    return 'BUDGET=gpu bash tools/train_weights.sh' if stage.endswith('gpu') else 'bash tools/train_weights.sh'


def widths_line(widths: dict) -> str:
    """``group width, ...`` in the network's order (body.2 before body.10)."""
    def natural(name: str) -> list:
        return [int(part) if part.isdigit() else part for part in re.split(r'(\d+)', name)]
    return ', '.join(f'{g} {widths[g]}' for g in sorted(widths, key=natural))


def _stages(info: dict) -> list[dict]:
    """The training runs behind a checkpoint, first to last (a run from a compact checkpoint names it as parent)."""
    chain = [info]
    while 'parent' in chain[0]:
        chain.insert(0, chain[0]['parent'])
    return chain


def _optimizer(train: dict, total: int | None = None) -> str:
    sched, total = train['scheduler'], total or train['total_iter']
    if sched['type'] == 'CosineAnnealingRestartLR':
        shape = f"cosine to {sched.get('eta_min', 0):g} over {total} iterations"
        if train.get('warmup_iter', -1) > 0:
            shape = f"linear warm-up, then {shape}"
    else:
        steps = [m for m in sched['milestones'] if m < total]
        shape = f"lr ×{sched['gamma']} at {steps}" if steps else 'constant lr'
    text = f"Adam lr {train['optim_g']['lr']:g}, L1 loss, {shape}"
    if train.get('freeze_bn_iter') is not None:
        text += (', BatchNorm frozen' + (f" after iteration {train['freeze_bn_iter']}" if train['freeze_bn_iter']
                                          else ' throughout'))
    return text


def _trained_on(info: dict) -> str:
    device = info.get('trained_on', 'this project’s 2-core CPU machine')
    if device.startswith('NVIDIA'):
        alone = info['experiment'] in ALONE or info['experiment'].endswith('_continue_gpu')
        device += ' (alone on the GPU)' if alone else SIDE_BY_SIDE
    return f"{device}, wall time {wall_time(info)}"


def section(name: str) -> str | None:
    path = os.path.join(ROOT, 'weights', f'{name}.safetensors')
    if not os.path.exists(path):
        return None
    meta = read_metadata(path)
    first, *later = _stages(meta['info'])
    experiment = first['experiment']
    opt = of_checkpoint(first).options()
    train_set = opt['datasets']['train']
    cx = checkpoint_complexity(path)
    rows = [
        ('file', f'`weights/{name}.safetensors` ({os.path.getsize(path) / 1e6:.2f} MB)'),
        ('recipe' + ('s' if later else ''),
         ', then '.join(str(of_checkpoint(s)) for s in [first, *later]) + f' (run by `{runner(experiment)}`)'),
        ('training data', f"{train_set['name']} (`{train_set['dataroot_gt']}`), patch {train_set['gt_size']}, "
                          f"batch {train_set['batch_size_per_gpu']}"
                          + (f", σ={train_set['sigma']} noise" if 'sigma' in train_set else '')),
        ('optimizer', _optimizer(opt['train'])),
    ]
    search = first.get('search')
    total = opt['train']['total_iter']
    if search:
        so = search['search_options']
        rows += [('iterations', f"{total} in all: DHP search {search['iteration']}, "
                                f"then fine-tuning of the compact network {total - search['iteration']}"),
                 ('search', f"target {so['target_ratio']}, λ={so['regularization']:g} ({so['prox']} prox), "
                            f"masks every {so['mask_interval']} iterations; stopped at iteration "
                            f"{search['iteration']} by **{search['stop_reason']}** with FLOPs ratio "
                            f"{search['flops_ratio']:.3f}")]
    else:
        rows.append(('iterations', f'{total} (plain training)'))
    rows += [('trained on', _trained_on(first)),
             ('validation PSNR while training', f"{opt['datasets']['val']['name']}, iteration: dB — "
                                                f"{validation_curve(first)}")]
    for n, stage in enumerate(later, start=2):
        s_opt = of_checkpoint(stage).options()
        s_total = stage.get('iterations_run') or stage.get('total_iter') or s_opt['train']['total_iter']
        rows.append((f'stage {n}', f"{s_total} more iterations from the result above: "
                                   f"{_optimizer(s_opt['train'], stage.get('total_iter') or s_total)}; "
                                   f"on {_trained_on(stage)}; "
                                   f"{s_opt['datasets']['val']['name']} validation, iteration: dB — "
                                   f"{validation_curve(stage)}"))
    rows += [('FLOPs ratio to baseline', f"{cx['flops_ratio']:.3f} ({cx['gflops']:.2f} GFLOPs at 128×128, "
                                         f"{cx['params'] / 1e6:.3f} M params)"),
             ('widths', widths_line(meta['widths']))]
    table = '\n'.join(f'| {k} | {v} |' for k, v in rows)
    return f'### `{name}`\n\n| | |\n|---|---|\n{table}'


BAND_BELOW, BAND_ABOVE = 0.05, 0.03  # the quality bar: FLOPs ratio within [target - 0.05, target + 0.03]


def observations(task: str) -> str:
    """Pruning cost measured here next to the paper's, and the FLOPs-ratio band, computed from report.json.

    One table per full-width reference present: the plain baseline and, where shipped, the full-width
    network trained with the DHP recipe (the pruned models' own procedure at target 1.0).
    """
    path = os.path.join(ROOT, 'reports', task, 'report.json')
    if not os.path.exists(path):
        return ''
    rep = json.load(open(path))
    first = rep['sets'][0]
    key = TASKS[task].primary_metric
    ours = {r['name']: r for r in rep['results'] if r.get('kind') == 'model'}
    paper = {r['name']: r['psnr'] for r in rep['paper_reference']['rows']}
    paper_col = rep['paper_reference']['sets'].index(first) if first in rep['paper_reference']['sets'] else None
    if 'Baseline' not in ours:
        return ''
    references = [name for name in ('Baseline', VARIANT_LABELS['dhp100']) if name in ours]  # full-width rows
    blocks = [_pruning_cost(ours, name, first, key, paper, paper_col) for name in references]
    if paper_col is not None:
        paper_base = paper['Baseline'][paper_col]
        refs = '; '.join(f"{_in_sentence(name)} {ours[name]['metrics'][first][key]:.2f} dB" for name in references)
        blocks.append(f'Our full-width networks on {first}: {refs}; the paper\'s baseline: {paper_base:.2f} dB.')
    return '\n\n'.join(blocks)


def _in_sentence(label: str) -> str:
    """'Full width, DHP-trained' -> 'full width, DHP-trained' (only the first letter lowered)."""
    return label[0].lower() + label[1:]


def _pruning_cost(ours: dict, ref_name: str, first: str, key: str, paper: dict, paper_col) -> str:
    ref = ours[ref_name]
    ref_text = _in_sentence(ref_name)
    base = ref['metrics'][first][key]
    base_by_image = {d['name']: d[key] for d in ref['metrics'][first]['per_image']}
    lines = [f'| model | {first} PSNR change vs {ref_text} (dB) | median change per image (dB) '
             f'| paper\'s change (dB) | {first} images '
             f'> 1 dB below it | worst image ({ref_text} → model, dB) | FLOPs ratio '
             f'| target band [t−{BAND_BELOW}, t+{BAND_ABOVE}] |', '|---|---|---|---|---|---|---|---|']
    for name, row in ours.items():
        if not name.startswith('DHP-'):
            continue
        target = int(name.split('-')[1]) / 100
        ratio = row['flops_ratio']
        inside = target - BAND_BELOW <= ratio <= target + BAND_ABOVE
        paper_delta = (f'{paper[name][paper_col] - paper["Baseline"][paper_col]:+.2f}'
                       if paper_col is not None and name in paper else 'n/a')
        diffs = sorted((d[key] - base_by_image[d['name']], d['name'], d[key])
                       for d in row['metrics'][first]['per_image'])
        _, worst_name, worst_value = diffs[0]
        n_bad = sum(1 for d in diffs if d[0] < -1)
        median = statistics.median(d[0] for d in diffs)
        lines.append(f"| {name} | {row['metrics'][first][key] - base:+.2f} | {median:+.2f} | {paper_delta} "
                     f"| {n_bad} of {len(diffs)} | {worst_name} ({base_by_image[worst_name]:.2f} → "
                     f"{worst_value:.2f}) | {ratio:.3f} | {'inside' if inside else '**outside**'} |")
    return '\n'.join(lines)


def report_blocks(folder: str) -> str:
    path = os.path.join(ROOT, folder, 'report.md')
    if not os.path.exists(path):
        return f'(no `{folder}/report.md` yet)'
    text = open(path).read().split('\n', 1)[1]
    return text.replace('\n## ', '\n#### ').strip()


def shipped_option(task: str) -> dict:
    """The option file of the first stage that trained the task's shipped baseline (named in its metadata)."""
    info = read_metadata(os.path.join(ROOT, 'weights', TASKS[task].entry.filename('baseline')))['info']
    return of_checkpoint(_stages(info)[0]).options()


def budgets() -> str:
    """'<data> (<task>, <iterations> iterations at batch <b>)' per architecture, read from the shipped option files."""
    parts = []
    for task, words in (('sr', 'SR'), ('denoise', 'denoising')):
        opt = shipped_option(task)
        data = opt['datasets']['train']
        data_name = {'T91+BSD200': 'the "291" set'}.get(data['name'], data['name'])
        parts.append(f"{data_name} ({words}, {opt['train']['total_iter']:,} iterations at batch "
                     f"{data['batch_size_per_gpu']}, patch {data['gt_size']})")
    return ' or '.join(parts)


def intro() -> str:
    """The card's opening prose (tools/model_card_intro.md) with the training budgets filled in."""
    with open(INTRO_TEMPLATE) as f:
        return f.read().format(budgets=budgets())


def task_parts(task: str) -> list[str]:
    """One task's part of the card, per network of the catalogue: a section per shipped checkpoint, the measured
    tables; for the task's main network also the cost of pruning against the paper's."""
    parts = []
    for entry in entries(TASKS[task]):
        folder = report_folder(task, entry)
        parts.append(f'## {entry.title}\n')
        for name in (entry.run_name(v) for v in entry.variants):
            block = section(name)
            parts.append(block if block else f'### `{name}`\n\nnot trained yet.')
        if entry is TASKS[task].entry:
            parts.append(f'### Cost of pruning in this budget (computed from `{folder}/report.json`)\n\n'
                         f'{observations(task)}')
        parts.append(f'### Measured (from `{folder}/report.md`)\n\n{report_blocks(folder)}')
    return parts


def device_part() -> str | None:
    """The weights of the device comparison (weights/device/, issue 20): their budget, family and search."""
    paths = sorted(glob.glob(os.path.join(ROOT, 'weights', 'device', '*.safetensors')))
    if not paths:
        return None
    rows = []
    for path in paths:
        info = read_metadata(path)['info']
        search, recipe = info['search'], of_checkpoint(info)
        data = recipe.options()['datasets']['train']
        if search.get('target'):
            t = search['target']
            family = (f"latency {t['latency']:g} of full width on `{t['table']}` "
                      f"(predicted {search['predicted_latency_ratio']:.3f})")
        else:
            family = f"FLOPs {search['target_ratio']:g} (reached {search['flops_ratio']:.3f})"
        widths = search['widths'].values()
        rows.append(f"| `weights/device/{os.path.basename(path)}` | {family} | {recipe}: {info['total_iter']:,} "
                    f"iterations at batch {data['batch_size_per_gpu']}, patch {data['gt_size']} | "
                    f"{search['iteration']} ({search['stop_reason']}) | {min(widths)}–{max(widths)} | "
                    f"{_trained_on(info)} |")
    return ('## Device-targeted weights (`weights/device/`)\n\n'
            'These compare two ways of pruning at equal training: to a fraction of the full width\'s measured '
            'latency on this project\'s CPU (1 thread, fused backend; `latency_tables/`), and to a FLOPs ratio as '
            'before. They were trained with the CPU option files\' budget, far smaller than the budget of the '
            'weights above, so their PSNR is lower. Use them to compare the two searches, not as the best '
            'models. Measured latency and PSNR are in `reports/device/report.md`.\n\n'
            '| checkpoint | pruned to | recipe and budget | search stopped at | widths | trained on |\n'
            '|---|---|---|---|---|---|\n' + '\n'.join(rows))


def warm_start_part() -> str | None:
    """The weights `restore-dhp prune` made from shipped weights for one CPU (weights/device/<cpu folder>/, issue 33):
    what each started from, the CPU and table it was searched for, and its search."""
    paths = sorted(glob.glob(os.path.join(ROOT, 'weights', 'device', '*', '*.safetensors')))
    if not paths:
        return None
    rows = []
    for path in paths:
        meta = read_metadata(path)
        info, kind = meta['info'], meta['task']
        search, table = info['search'], info['search']['latency_table']
        start = os.path.basename(search['warm_start']['file']).split('.')[0]
        landed = ' (landed by the latents)' if search['stop_reason'] == 'max_search_iter' else ''
        rows.append(f"| `{os.path.relpath(path, ROOT)}` | `{start}` | {table['device_name']}, {table['backend']} "
                    f"{table['precision']}, {table['threads']} thread(s), {table['size'][0]}×{table['size'][1]} | "
                    f"{search['target']['latency']:g} (predicted {search['predicted_latency_ratio']:.3f}) | "
                    f"`restore-dhp prune -n {start} --latency {search['target']['latency']:g}` "
                    f"(`options/prune/{kind}_cpu.yml`, warm start `{search['warm_start']['mode']}`): "
                    f"{info['total_iter']:,} iterations | "
                    f"{search['iteration']} ({search['stop_reason']}){landed} | "
                    f"{search['warm_start']['max_abs_difference']:.1e} | {_trained_on(info)} |")
    return ('## Pruned from the shipped weights for one CPU (`weights/device/<cpu>/`)\n\n'
            'Made by `restore-dhp prune` from a shipped full-width checkpoint, searched to a fraction of its latency '
            'on the CPU its folder names (`latency_tables/<cpu>/`), at the CPU recipes\' budget. At iteration 0 '
            'the DHP network computed what the starting checkpoint does (the largest output difference is listed). '
            'They are fast only on that CPU kind; `restore()` and `infer` warn elsewhere. What they measure, with the '
            'magnitude-pruning control: `reports/device/warm_start.md`.\n\n'
            '| checkpoint | started from | searched for | latency target | command and budget | search stopped at | '
            'iteration-0 difference | trained on |\n|---|---|---|---|---|---|---|---|\n' + '\n'.join(rows))


def card_text() -> str:
    parts = [intro()] + [part for task in CARD_TASKS for part in task_parts(task)]
    extra = [part for part in (device_part(), warm_start_part()) if part]
    return '\n\n'.join(parts + extra) + '\n'


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--check', action='store_true', help='write nothing; exit 1 if weights/README.md is not up to date')
    args = p.parse_args(argv)
    out, text = os.path.join(ROOT, 'weights', 'README.md'), card_text()
    if args.check:
        same = os.path.exists(out) and open(out).read() == text
        print(f'{out} is ' + ('up to date' if same else 'out of date: run python -m tools.write_model_card'))
        return 0 if same else 1
    write_text(out, text)
    print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
