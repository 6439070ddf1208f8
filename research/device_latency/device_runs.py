"""The runs of research/device_latency/device_search.sh: each run's option file, the networks' names, a DRY run's toys.

    python -m research.device_latency.device_runs options RUN DST [--table T] [--toy]  # RUN's recipe as one file
    python -m research.device_latency.device_runs shell NET ...   # bash: the arch, task and DRY size of each network
    python -m research.device_latency.device_runs data WORK       # generated images and tiny baselines under WORK

A latency run on the CPU (``<net>_cpuNN_cpu``) and a FLOPs run (``<net>_dhpNN_cpu``, trained again as
``<net>_dhpNN_cpu_device``) are recipes in options/train; a latency run on a GPU (``<net>_gpuNN_gpu``) is one in this
study's options/ (``python -m tools.recipes``). ``options`` writes the run's options, its ``dhp.target.table``
pointed at ``T`` (the table device_search.sh built). ``--toy`` shrinks it for a DRY run: only the sizes change (and
the sparsity strength, so that 3 search iterations prune); the file keeps its target, round_to and seed, so the DRY
run goes through the same code as the real one.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import yaml

from restore_dhp.catalogue import TASKS
from restore_dhp.fileio import write_text
from tools.recipes import OPTIONS, RecipeError, recipe

STUDY_OPTIONS = Path(__file__).resolve().parent / 'options'
TINY = {'srresnet': {'num_feat': 8, 'num_blocks': 2}, 'dncnn': {'num_feat': 8, 'num_layers': 4}}  # by arch, DRY size
# a DRY run's images per task (folder under datasets/, count, side): training, validation and the report's sets
TOY_FOLDERS = {'sr': (('SR291/HR', 6, 48), ('Set5/HR', 2, 32), ('Set14/HR', 2, 32)),
               'denoise': (('Train400', 6, 48), ('Set12', 2, 32), ('BSD68', 2, 32))}


def nets() -> dict[str, tuple[str, str]]:
    """{catalogue prefix: (short arch name, task)} from the catalogue and the architecture registry."""
    from restore_dhp.archs import aliases
    short = {cls: alias for alias, cls in aliases().items()}
    return {spec.entry.prefix: (short[spec.entry.arch], task) for task, spec in TASKS.items()}


def make_data(work: str) -> None:
    import torch

    from restore_dhp import network
    from restore_dhp.checkpoint import save_compact

    rng = np.random.default_rng(0)
    for task, folders in TOY_FOLDERS.items():
        for folder, count, size in folders:
            os.makedirs(os.path.join(work, 'datasets', folder), exist_ok=True)
            for i in range(count):
                img = cv2.GaussianBlur((rng.random((size, size, 3)) * 255).astype(np.uint8), (5, 5), 0)
                gray = TASKS[task].channels == 1
                cv2.imwrite(os.path.join(work, 'datasets', folder, f'{i:03d}.png'), img[:, :, 0] if gray else img)
    os.makedirs(os.path.join(work, 'weights'), exist_ok=True)
    torch.manual_seed(0)
    for prefix, (arch, task) in nets().items():
        save_compact(network.build(arch, TINY[arch]),
                     os.path.join(work, 'weights', TASKS[task].entry.filename('baseline')))


def shrink(opt: dict) -> dict:
    """``opt`` at toy size: a tiny network, tiny patches and batches, 4 iterations."""
    from restore_dhp.archs import arch_class
    arch = next(alias for alias, _ in nets().values() if arch_class(alias) is arch_class(opt['network_g']['type']))
    opt['network_g'] = {'type': opt['network_g']['type'], **TINY[arch]}
    for ds in opt['datasets'].values():
        ds.pop('dataroot_lq', None)
        ds.update({k: v for k, v in (('gt_size', 16), ('batch_size_per_gpu', 2), ('dataset_enlarge_ratio', 2))
                   if k in ds})
    opt['train'].update(total_iter=4)
    opt['train']['scheduler']['milestones'] = [2, 3]
    # a strong sparsity so that 3 search iterations prune (the toy checks the pruned path, not the recipe)
    opt['dhp'].update(mask_interval=1, max_search_iter=3, min_search_iter=0, regularization=500.0)
    opt['val']['val_freq'] = 4
    opt['logger'].update(print_freq=1, save_checkpoint_freq=4, use_tb_logger=False)
    return opt


def write_options(run: str, dst: str, table: str | None, toy: bool) -> None:
    try:
        r = recipe(run, OPTIONS)
    except RecipeError:
        r = recipe(run, STUDY_OPTIONS)
    opt = r.options()
    if table and 'target' in opt['dhp']:
        opt['dhp']['target']['table'] = table
    write_text(dst, yaml.safe_dump(shrink(opt) if toy else opt, sort_keys=False))


def shell(names: list[str]) -> str:
    """bash assignments: ARCH[net]=<short arch> TASK[net]=<task> TINY[net]=<DRY network size as JSON>."""
    table = nets()
    return '\n'.join(f"ARCH[{n}]={table[n][0]} TASK[{n}]={table[n][1]} TINY[{n}]='{json.dumps(TINY[table[n][0]])}'"
                     for n in names)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='python -m research.device_latency.device_runs',
                                description=__doc__.split('\n')[0])
    sub = p.add_subparsers(dest='command', required=True)
    sub.add_parser('data').add_argument('work')
    sub.add_parser('shell').add_argument('nets', nargs='+')
    o = sub.add_parser('options')
    o.add_argument('run')
    o.add_argument('dst')
    o.add_argument('--table')
    o.add_argument('--toy', action='store_true')
    args = p.parse_args(argv)
    if args.command == 'data':
        make_data(args.work)
    elif args.command == 'shell':
        print(shell(args.nets))
    else:
        write_options(args.run, args.dst, args.table, args.toy)
    return 0


if __name__ == '__main__':
    sys.exit(main())
