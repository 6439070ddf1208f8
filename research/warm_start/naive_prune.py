"""The control a warm-started DHP search must beat: trained weights pruned by magnitude to given widths.

    python -m research.warm_start.naive_prune --weights weights/srresnet_x4_dhp100.safetensors \
        --like experiments/ws_sr_scaled_f40/models/net_g_latest.safetensors -o naive_f40.safetensors

Each prunable group keeps its channels of largest importance, as a magnitude-pruning library would
(:func:`restore_dhp.dhp.saliency.magnitude_scores`: the sum of ``|gamma|`` of the BatchNorms on the group where it
has any, network slimming, else the L1 norm of the filters that write it).  The widths are those of ``--like`` (a
pruned model), so the two run at the same measured latency; the result is then fine-tuned with the same budget
(``research/warm_start/options/control_*_cpu.yml``).
"""
from __future__ import annotations

import argparse
import sys

import torch

from restore_dhp import network
from restore_dhp.checkpoint import load_checkpoint, read_metadata, save_compact
from restore_dhp.dhp import select_channels
from restore_dhp.dhp.saliency import magnitude_scores


def naive_prune(weights: str, widths: dict) -> torch.nn.Module:
    model = load_checkpoint(weights).model
    structure = network.structure(model)
    scores = magnitude_scores(structure.spec, model.state_dict())
    keep = {g: torch.sort(scores[g].argsort(descending=True)[:widths[g]]).values for g in scores}
    pruned = select_channels(model, structure.spec, structure.widths, keep)
    network.with_widths(model, pruned)
    return model


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--weights', required=True, help='the trained full-width network')
    p.add_argument('--like', required=True, help='a pruned model whose widths to take')
    p.add_argument('-o', '--output', required=True)
    args = p.parse_args(argv)
    widths = read_metadata(args.like)['widths']
    model = naive_prune(args.weights, widths)
    save_compact(model, args.output, info={'naive_prune': {'from': args.weights, 'widths_of': args.like,
                                                           'criterion': 'BatchNorm |gamma|, else filter L1'}})
    print(f'wrote {args.output}: widths {dict(network.structure(model).widths)}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
