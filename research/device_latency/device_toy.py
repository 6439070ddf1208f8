"""Toy stand-ins for a DRY run of research/device_latency/device_search.sh: generated images, a tiny baseline, shrunken option files.

    python -m research.device_latency.device_toy data WORK                          # datasets/ images and tiny baselines under WORK
    python -m research.device_latency.device_toy options SRC.yml DST.yml [--table T] # SRC at toy size (tiny network, 4 iterations)

Only the sizes change (and the sparsity strength, so that 3 search iterations prune): the option file
keeps its target, round_to and seed, so the DRY run goes through the same code as the real one.
"""
from __future__ import annotations

import argparse
import os
import sys

import cv2
import numpy as np
import yaml

from restore_dhp.fileio import write_text

TINY = {'SRResNetDHP': {'num_feat': 8, 'num_blocks': 2}, 'DnCNNDHP': {'num_feat': 8, 'num_layers': 4}}
FOLDERS = {'datasets/SR291/HR': (6, 48, False), 'datasets/Set5/HR': (2, 32, False), 'datasets/Set14/HR': (2, 32, False),
           'datasets/Train400': (6, 48, True), 'datasets/Set12': (2, 32, True), 'datasets/BSD68': (2, 32, True)}


def make_data(work: str) -> None:
    import torch

    from restore_dhp.archs.dncnn_arch import DnCNNCompact
    from restore_dhp.archs.srresnet_arch import SRResNetCompact
    from restore_dhp.checkpoint import save_compact

    rng = np.random.default_rng(0)
    for folder, (count, size, gray) in FOLDERS.items():
        os.makedirs(os.path.join(work, folder), exist_ok=True)
        for i in range(count):
            img = cv2.GaussianBlur((rng.random((size, size, 3)) * 255).astype(np.uint8), (5, 5), 0)
            cv2.imwrite(os.path.join(work, folder, f'{i:03d}.png'), img[:, :, 0] if gray else img)
    os.makedirs(os.path.join(work, 'weights'), exist_ok=True)
    torch.manual_seed(0)
    save_compact(SRResNetCompact(**TINY['SRResNetDHP']), os.path.join(work, 'weights/srresnet_x4_baseline.safetensors'))
    save_compact(DnCNNCompact(**TINY['DnCNNDHP']), os.path.join(work, 'weights/dncnn_s70_baseline.safetensors'))


def toy_options(src: str, dst: str, table: str | None) -> None:
    with open(src) as f:
        opt = yaml.safe_load(f)
    opt['network_g'] = {'type': opt['network_g']['type'], **TINY[opt['network_g']['type']]}
    for ds in opt['datasets'].values():
        ds.pop('dataroot_lq', None)
        ds.update({k: v for k, v in (('gt_size', 16), ('batch_size_per_gpu', 2), ('dataset_enlarge_ratio', 2))
                   if k in ds})
    opt['train'].update(total_iter=4)
    opt['train']['scheduler']['milestones'] = [2, 3]
    # a strong sparsity so that 3 search iterations prune (the toy checks the pruned path, not the recipe)
    opt['dhp'].update(mask_interval=1, max_search_iter=3, min_search_iter=0, regularization=500.0)
    if table and 'target' in opt['dhp']:
        opt['dhp']['target']['table'] = table
    opt['val']['val_freq'] = 4
    opt['logger'].update(print_freq=1, save_checkpoint_freq=4, use_tb_logger=False)
    write_text(dst, yaml.safe_dump(opt, sort_keys=False))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = p.add_subparsers(dest='command', required=True)
    sub.add_parser('data').add_argument('work')
    o = sub.add_parser('options')
    o.add_argument('src')
    o.add_argument('dst')
    o.add_argument('--table')
    args = p.parse_args(argv)
    if args.command == 'data':
        make_data(args.work)
    else:
        toy_options(args.src, args.dst, args.table)
    return 0


if __name__ == '__main__':
    sys.exit(main())
