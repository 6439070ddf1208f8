"""The shipped model catalogue: tasks, variants, labels, file names and the DHP paper's reported figures.

Each shipped task is a configured task object (:mod:`restore_dhp.tasks`) holding its catalogue entry:
``TASKS['sr']`` is ``SRTask(scale=4)`` with ``entry.prefix == 'srresnet_x4'``; :func:`get_task` finds one by
name.  Everything else about a model (task, scale, sigma, widths, provenance) is read from the checkpoint's
own metadata; :func:`model_label` names a checkpoint from it (its search target, or full width for
the baseline), never from its file name.

    python -m restore_dhp.catalogue runs                      # the eight training runs, baselines first
    python -m restore_dhp.catalogue runs --task denoise --suffix _bnfreeze
    python -m restore_dhp.catalogue files                     # weights/<run>.safetensors, one a line
"""
from __future__ import annotations

import argparse
import difflib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .complexity import metadata_complexity
from .commands import prog, run_entry
from .tasks import DenoiseTask, SRTask, Task


@dataclass(frozen=True)
class CatalogueEntry:
    """What the catalogue ships for one configured task (:attr:`restore_dhp.tasks.Task.entry`)."""
    prefix: str              # file and run names: <prefix>_<variant>
    arch: str                # the compact architecture's registry name
    network: str             # short name for labels
    title: str               # one line for pages and tables
    paper_timing_set: str    # the set the paper averaged runtimes over
    default_sets: tuple      # sets the benchmark evaluates by default
    variants: tuple = ('baseline', 'dhp60', 'dhp40', 'dhp20')   # the shipped models, baseline first

    def run_name(self, variant: str) -> str:
        return f'{self.prefix}_{variant}'

    def filename(self, variant: str) -> str:
        return f'{self.run_name(variant)}.safetensors'


TASKS: dict[str, Task] = {task.key: task for task in (
    SRTask(scale=4, entry=CatalogueEntry(
        'srresnet_x4', 'SRResNet', 'SRResNet', 'Super-resolution ×4 (SRResNet, RGB)', 'Urban100',
        ('Set5', 'Set14', 'B100'),
        # dhp100: the full-width network trained with the DHP recipe (target 1.0, issue 13)
        variants=('baseline', 'dhp100', 'dhp60', 'dhp40', 'dhp20'))),
    DenoiseTask(sigma=70.0, entry=CatalogueEntry(
        'dncnn_s70', 'DnCNN', 'DnCNN', 'Denoising σ=70 (DnCNN, gray images only)', 'BSD68', ('BSD68',))),
)}


#: further networks shipped for a task, pruned by tracing them (issue 29), at the CPU recipes' budget
MORE_NETWORKS: dict[str, tuple[CatalogueEntry, ...]] = {
    'sr': (CatalogueEntry('edsr_x4', 'EDSR', 'EDSR', "Super-resolution ×4 (BasicSR's EDSR, RGB)", 'Urban100',
                          ('Set5', 'Set14', 'B100'), variants=('baseline', 'dhp40')),),
}


def entries(task: Task) -> tuple[CatalogueEntry, ...]:
    """Every network the catalogue ships for ``task``: its main one first."""
    return (task.entry, *MORE_NETWORKS.get(task.key, ()))


def get_task(task: str | Task) -> Task:
    """The shipped task of a name ('sr', 'denoise'), holding its catalogue entry; a task object is returned as
    it is."""
    if isinstance(task, Task):
        return task
    try:
        return TASKS[task]
    except KeyError:
        raise ValueError(f'unknown task {task!r}; choose one of {", ".join(TASKS)}') from None


VARIANTS = ('baseline', 'dhp60', 'dhp40', 'dhp20')   # every task's; a task may ship more (CatalogueEntry.variants)
VARIANT_LABELS = {'baseline': 'Baseline', 'dhp100': 'Full width, DHP-trained', 'dhp60': 'DHP-60',
                  'dhp40': 'DHP-40', 'dhp20': 'DHP-20'}

# Numbers *reported* in the DHP paper (Li et al., "DHP: Differentiable Meta Pruning via HyperNetworks",
# ECCV 2020, image restoration tables).  PSNR in dB; GFLOPs at a 128x128 input; params in millions.
# GPU speedups of DHP-20 over the baseline are the paper's too.  Reference only: never measured here.
PAPER_REFERENCE = {
    'sr': {
        'title': 'SRResNet x4 (paper: Y-PSNR)',
        'arch': 'SRResNet',
        'sets': ['Set5', 'Set14', 'B100', 'Urban100', 'DIV2K'],
        'rows': [
            {'name': 'Baseline', 'psnr': [32.03, 28.50, 27.52, 25.88, 28.85], 'gflops': 32.83, 'params_m': 1.54},
            {'name': 'DHP-60', 'psnr': [31.97, 28.47, 27.48, 25.76, 28.79], 'gflops': 20.29, 'params_m': 0.95},
            {'name': 'DHP-40', 'psnr': [31.90, 28.45, 27.47, 25.72, 28.75], 'gflops': 13.71, 'params_m': 0.64},
            {'name': 'DHP-20', 'psnr': [31.77, 28.34, 27.40, 25.55, 28.60], 'gflops': 7.77, 'params_m': 0.36},
        ],
        'dhp20_gpu_speedup': 2.36,
    },
    'denoise': {
        'title': 'DnCNN, Gaussian noise sigma=70 (paper: PSNR)',
        'arch': 'DnCNN',
        'sets': ['BSD68', 'DIV2K'],
        'rows': [
            {'name': 'Baseline', 'psnr': [24.93, 26.73], 'gflops': 9.13, 'params_m': 0.56},
            {'name': 'DHP-60', 'psnr': [24.91, 26.69], 'gflops': 5.65, 'params_m': 0.34},
            {'name': 'DHP-40', 'psnr': [24.89, 26.65], 'gflops': 3.83, 'params_m': 0.23},
            {'name': 'DHP-20', 'psnr': [24.84, 26.58], 'gflops': 2.01, 'params_m': 0.12},
        ],
        'dhp20_gpu_speedup': 2.18,
    },
}


def weight_path(task: str, variant: str, root: str | os.PathLike = 'weights') -> Path:
    return Path(root) / TASKS[task].entry.filename(variant)


def default_weights(task: str, root: str | os.PathLike = 'weights') -> list[str]:
    """The shipped checkpoints of ``task`` that are present under ``root``, in catalogue order."""
    return [str(p) for v in TASKS[task].entry.variants if (p := weight_path(task, v, root)).is_file()]


class ModelNameError(ValueError):
    """A shipped-model name that is unknown or whose file is not installed; the message is one line."""


def shipped_names() -> list[str]:
    """The names ``-n`` and ``restore(weights=NAME)`` accept: every task's shipped variants, e.g.
    ``srresnet_x4_dhp40``."""
    return [e.run_name(v) for t in TASKS.values() for e in entries(t) for v in e.variants]


def weight_folders() -> list[Path]:
    """Where shipped weights are looked for: the package's own data (an installed wheel), then a clone's
    ``weights/`` beside the package."""
    here = Path(__file__).resolve().parent
    return [here / 'weights', here.parent / 'weights']


def resolve_model_name(name: str) -> Path:
    """The checkpoint file of a shipped model named ``name`` (:func:`shipped_names`); else
    :class:`ModelNameError`."""
    names = shipped_names()
    if name not in names:
        close = difflib.get_close_matches(str(name), names, n=1)
        hint = f'did you mean {close[0]}? ' if close else ''
        raise ModelNameError(f'unknown model name {name!r}; {hint}shipped: {", ".join(names)}')
    for folder in weight_folders():
        if (folder / f'{name}.safetensors').is_file():
            return folder / f'{name}.safetensors'
    raise ModelNameError(f'model {name}: {name}.safetensors is not installed (looked in '
                         f'{" and ".join(str(f) for f in weight_folders())}); give its file with --weights')


def search_record(info: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The record of the DHP search that produced a checkpoint: its own stage's, else the nearest earlier stage's
    along its ``parent`` chain (the shipped GPU weights were searched, then continued and BatchNorm-frozen); ``{}``
    for a network never searched."""
    while info:
        search = info.get('search')
        if isinstance(search, Mapping) and search:
            return search
        info = info.get('parent') or {}
    return {}


def search_target(info: Mapping[str, Any]) -> float | None:
    """The FLOPs target of the DHP search that produced a checkpoint (:func:`search_record`)."""
    target = search_record(info).get('target_ratio')
    return None if target is None else float(target)


def variant_of(meta: Mapping[str, Any]) -> str | None:
    """'baseline' for a full-width network, 'dhpNN' for one searched to NN% FLOPs, else ``None``."""
    target = search_target(meta.get('info') or {})
    if target is not None:
        return f'dhp{round(target * 100)}'
    return 'baseline' if metadata_complexity(meta)['flops_ratio'] == 1.0 else None


def model_label(meta: Mapping[str, Any], path: str | os.PathLike) -> str:
    """'Baseline', 'DHP-40', ... from the metadata; the file stem for a network the catalogue cannot name."""
    variant = variant_of(meta)
    if variant is None:
        return Path(path).name.split('.')[0]
    return VARIANT_LABELS.get(variant, f'DHP-{variant[3:]}' if variant.startswith('dhp') else variant)


def run_names(tasks: list[str], suffix: str = '') -> list[str]:
    """Training runs, every task's baseline first (later runs may compare against it)."""
    order = [(t, 'baseline') for t in tasks]
    order += [(t, v) for t in tasks for v in TASKS[t].entry.variants if v != 'baseline']
    return [TASKS[t].entry.run_name(v) + suffix for t, v in order]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=prog('catalogue'), description=__doc__.split('\n')[0])
    p.add_argument('what', choices=('runs', 'files'))
    p.add_argument('--task', choices=sorted(TASKS), action='append', help='only this task (repeatable)')
    p.add_argument('--suffix', default='', help="appended to each run name (e.g. '_bnfreeze')")
    p.add_argument('--root', default='weights', help='folder for `files` (default: weights)')
    args = p.parse_args(argv)
    tasks = args.task or ['denoise', 'sr']
    names = run_names(tasks, args.suffix)
    if args.what == 'files':
        names = [str(Path(args.root) / f'{n}.safetensors') for n in names]
    print('\n'.join(names))
    return 0


if __name__ == '__main__':
    sys.exit(run_entry(main))
