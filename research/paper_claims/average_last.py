"""Part 1 of reports/paper_claims.md: does averaging a run's last checkpoints steady its end point?

    python -m research.paper_claims.average_last experiments/pbn_dhp40_s10 experiments/pbn_baseline_s1? \\
        --iters 1200 1400 1600 --batches 100

For each SR run: Set5 PSNR-Y (crop 4) of its last checkpoint as saved (statistics recomputed by the recipe's
``precise_bn``), of the same weights with statistics recomputed here (the draw's own noise), and of the plain
average of the weights of the checkpoints at ``--iters`` with statistics recomputed for the average (stochastic
weight averaging over the last learning-rate phases).  Statistics: BatchNorm's cumulative mode over ``--batches``
random training batches of the recipe's shape (SR291 HR, 96x96 patches, batch 8, flips and rotations), the same
draw for every model of a run; ``--gt-size`` draws larger patches instead (does a whole test image need statistics
of larger inputs?).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np
import torch

from restore_dhp.checkpoint import load_checkpoint
from restore_dhp.data.sr_dataset import SRBicubicDataset
from restore_dhp.evaluation import evaluate, load_set
from restore_dhp.fileio import write_text
from restore_dhp.models.precise_bn import recompute_bn_statistics
from restore_dhp.tasks import SRTask


def training_batches(root: str, count: int, seed: int, gt_size: int = 96) -> list[torch.Tensor]:
    """``count`` LR batches of 8 random patches, by default 24x24 as the SR CPU recipes train on (``gt_size``
    HR pixels: larger ones draw from fewer images, the training images smaller than that are skipped)."""
    data = SRBicubicDataset({'name': 'SR291', 'phase': 'train', 'dataroot_gt': root, 'scale': 4, 'gt_size': gt_size,
                             'use_hflip': True, 'use_rot': True, 'cache': True})
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        idx = torch.randint(len(data), (8,), generator=gen).tolist()
        out.append(torch.stack([data[i]['lq'] for i in idx]))
    return out


def averaged(paths: list[Path]):
    """The network of the first checkpoint with the plain average of every checkpoint's floating tensors."""
    models = [load_checkpoint(p).model for p in paths]
    states = [m.state_dict() for m in models]
    avg = {k: (sum(s[k] for s in states) / len(states)) if v.is_floating_point() else v
           for k, v in states[0].items()}
    models[0].load_state_dict(avg)
    return models[0].eval()


def set5(model, items) -> float:
    model.scale = 4  # what evaluate() reads of a plain module
    return evaluate(model, SRTask(scale=4), {'Set5': items}, None, None, 'Set5', True)['Set5']['psnr_y']


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('runs', nargs='+', type=Path)
    ap.add_argument('--iters', type=int, nargs='+', default=[1200, 1400, 1600])
    ap.add_argument('--batches', type=int, default=100)
    ap.add_argument('--gt-size', type=int, default=96,
                    help='HR patch side of the batches the statistics are recomputed on (the recipes train on 96)')
    ap.add_argument('--train-root', default='datasets/SR291/HR')
    ap.add_argument('--datasets', default='datasets')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--json', type=Path)
    args = ap.parse_args(argv)
    random.seed(args.seed)
    np.random.seed(args.seed)  # the dataset's patch draws
    torch.manual_seed(args.seed)
    batches = training_batches(args.train_root, args.batches, args.seed, args.gt_size)
    items = load_set(SRTask(scale=4), args.datasets, 'Set5')
    rows = []
    for run in args.runs:
        paths = [run / 'models' / f'net_g_{i}.safetensors' for i in args.iters]
        if missing := [str(p) for p in paths if not p.is_file()]:
            print(f'{run}: missing {", ".join(missing)}', file=sys.stderr)
            return 2
        last = load_checkpoint(paths[-1]).model
        row = {'run': run.name, 'last_saved': set5(last, items)}
        recompute_bn_statistics(last, batches, torch.device('cpu'))
        row['last_recomputed'] = set5(last.eval(), items)
        avg = averaged(paths)
        recompute_bn_statistics(avg, batches, torch.device('cpu'))
        row['average'] = set5(avg.eval(), items)
        rows.append(row)
        print(f"{row['run']}: last {row['last_saved']:.2f} (recomputed here {row['last_recomputed']:.2f}), "
              f"average of {args.iters} {row['average']:.2f}", flush=True)
    if args.json:
        write_text(args.json, json.dumps({'iters': args.iters, 'batches': args.batches, 'gt_size': args.gt_size,
                                          'rows': rows}, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
