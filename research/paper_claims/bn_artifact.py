"""Part 1 of reports/paper_claims.md: where a fall between two checkpoints of one SR run comes from.

    python -m research.paper_claims.bn_artifact experiments/pbn_dhp40_s10 --iters 1200 1600 \\
        --figure reports/paper_claims/sr_dhp40_s10_bird_1200_1600.jpg

Prints each checkpoint's Set5 PSNR-Y per image and Set14's mean, and, on the image that changes most, the largest
BatchNorm output (eval mode) and how many output pixels move by more than 0.2 (of 1) between the two; ``--figure``
writes that image's ground truth and both outputs side by side.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from restore_dhp.checkpoint import load_checkpoint
from restore_dhp.evaluation import evaluate, load_set
from restore_dhp.tasks import SRTask


def forward_with_bn_peak(model, x: torch.Tensor) -> tuple[torch.Tensor, float, str]:
    """The output of ``model`` on ``x`` and its largest |BatchNorm output| with that layer's name."""
    peaks: dict[str, float] = {}
    hooks = [m.register_forward_hook(lambda _m, _i, o, n=n: peaks.__setitem__(n, float(o.abs().amax())))
             for n, m in model.named_modules() if isinstance(m, _BatchNorm)]
    try:
        with torch.no_grad():
            y = model(x)
    finally:
        for h in hooks:
            h.remove()
    name = max(peaks, key=peaks.get) if peaks else '-'
    return y, peaks.get(name, 0.0), name


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('run', type=Path)
    ap.add_argument('--iters', type=int, nargs=2, default=[1200, 1600])
    ap.add_argument('--datasets', default='datasets')
    ap.add_argument('--figure', type=Path)
    args = ap.parse_args(argv)
    task = SRTask(scale=4)
    sets = {name: load_set(task, args.datasets, name) for name in ('Set5', 'Set14')}
    models, per_image = [], []
    for it in args.iters:
        model = load_checkpoint(args.run / 'models' / f'net_g_{it}.safetensors').model
        model.scale = 4  # what evaluate() reads of a plain module
        res = evaluate(model, task, sets, None, None, str(it), True)
        per_image.append({p['name']: p['psnr_y'] for p in res['Set5']['per_image']})
        models.append(model)
        print(f"{args.run.name} {it}: Set5 " + ' '.join(f'{k} {v:.2f}' for k, v in per_image[-1].items())
              + f" (mean {res['Set5']['psnr_y']:.2f}); Set14 {res['Set14']['psnr_y']:.2f}")
    worst = max(per_image[0], key=lambda k: abs(per_image[1][k] - per_image[0][k]))
    item = next(i for i in sets['Set5'] if i[0] == worst)
    x = task.model_input(item, 'cpu')
    outs = []
    for it, model in zip(args.iters, models):
        y, peak, layer = forward_with_bn_peak(model, x)
        outs.append(y[0].clamp(0, 1))
        print(f'{worst} at {it}: largest BatchNorm output {peak:.1f} ({layer})')
    moved = int(((outs[1] - outs[0]).abs().amax(0) > 0.2).sum())
    print(f'{worst}: {moved} of {outs[0][0].numel()} output pixels move by more than 0.2 between {args.iters}')
    if args.figure:
        from PIL import Image
        h, w = outs[0].shape[1:]
        tiles = [item[2][:h, :w]] + [(o.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for o in outs]
        Image.fromarray(np.concatenate(tiles, 1)).save(args.figure, quality=90)
        print(f'wrote {args.figure} (ground truth, {args.iters[0]}, {args.iters[1]})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
