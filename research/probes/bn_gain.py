#!/usr/bin/env python
"""How far one test image pushes each BatchNorm of a compact model away from its running statistics.

For every BN layer, in eval mode: the largest ratio, over channels, of the variance of the layer's
input on this image to the BN's running variance.  A model whose ratios grow layer after layer
amplifies an input unlike its training patches; this is how the DnCNN DHP models' failures on
saturated BSD68 images were diagnosed (weights/README.md).

    python -m research.probes.bn_gain \
        --weights weights/dncnn_s70_baseline.safetensors weights/dncnn_s70_dhp60.safetensors \
        --set BSD68 --image test028
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

from restore_dhp.catalogue import get_task
from restore_dhp.checkpoint import load_compact, read_metadata
from restore_dhp.evaluation import load_set


def variance_ratios(model: torch.nn.Module, x: torch.Tensor) -> list[tuple[str, float]]:
    ratios = []

    def hook(module, inputs, _output, name):
        var = inputs[0][0].var(dim=(1, 2))
        ratios.append((name, (var / (module.running_var + module.eps)).max().item()))

    handles = [m.register_forward_hook(lambda m, i, o, n=n: hook(m, i, o, n))
               for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return ratios


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--weights', nargs='+', required=True)
    p.add_argument('--data-root', default='datasets')
    p.add_argument('--set', default='BSD68')
    p.add_argument('--image', required=True, help='file stem, e.g. test028')
    p.add_argument('--sigma', type=float, default=70)
    args = p.parse_args(argv)
    meta = read_metadata(args.weights[0])
    task = get_task(meta['task']).at(scale=meta.get('scale', 1), sigma=args.sigma)
    items = load_set(task, args.data_root, args.set, 0, None)
    item = next((it for it in items if it[0] == args.image), None)
    if item is None:
        p.error(f'no image {args.image!r} in {args.set}')
    x = task.model_input(item)
    for path in args.weights:
        model = load_compact(path, 'cpu').eval()
        ratios = variance_ratios(model, x)
        print(f'{os.path.basename(path)}: ' + ' '.join(f'{n.split(".")[-1]} {r:.1f}' for n, r in ratios))
    return 0


if __name__ == '__main__':
    sys.exit(main())
