#!/usr/bin/env python
"""Cost of DHP search: one search iteration vs one plain training iteration, measured side by side.

Both networks have the same architecture and batch; a step is zero_grad ->
forward -> L1 loss -> backward -> Adam step (+ the proximal step on the
latents for DHP).  Steps are interleaved (one of each per round) and the
median over rounds is reported, so load drift hits both alike.  Also times
the compaction of a full-size searched network.  Target: ratio <= 1.3.

    python scripts/benchmark_search_step.py --arch srresnet --batch 16 --patch 24
    python scripts/benchmark_search_step.py --arch dncnn --batch 16 --patch 40
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.nn import functional as F

import restore_dhp  # noqa: F401
from restore_dhp.archs.dncnn_arch import DnCNNCompact, DnCNNDHP
from restore_dhp.archs.srresnet_arch import SRResNetCompact, SRResNetDHP

ARCHS = {'srresnet': (SRResNetCompact, SRResNetDHP), 'dncnn': (DnCNNCompact, DnCNNDHP)}
TARGET_RATIO = 1.3


def make_step(net, x, y, dhp: bool, regularization=0.1):
    optim = torch.optim.Adam(net.parameters(), lr=1e-4)

    def step():
        optim.zero_grad(set_to_none=True)
        loss = F.l1_loss(net(x), y)
        loss.backward()
        optim.step()
        if dhp:
            net.proximal_step(regularization * 1e-4)
    return step


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arch', choices=sorted(ARCHS), default='srresnet')
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--patch', type=int, default=24, help='input patch side (LR for SR)')
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=1)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    plain_cls, dhp_cls = ARCHS[args.arch]
    plain, dhp = plain_cls().train(), dhp_cls().train()
    x = torch.rand(args.batch, plain.in_channels, args.patch, args.patch)
    y = torch.rand(args.batch, plain.in_channels, args.patch * plain.scale, args.patch * plain.scale)
    steps = {'plain': make_step(plain, x, y, False), 'dhp': make_step(dhp, x, y, True)}
    for _ in range(args.warmup):
        for step in steps.values():
            step()
    times = {k: [] for k in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    plain_s, dhp_s = (statistics.median(times[k]) for k in ('plain', 'dhp'))
    with torch.no_grad():
        dhp.eval()
        for z in dhp.latents.values():
            z[torch.rand_like(z) < 0.4] = 0
        dhp.update_masks()
        start = time.perf_counter()
        dhp.compact()
        compact_s = time.perf_counter() - start
    ratio = dhp_s / plain_s
    print(f'{args.arch}: batch {args.batch}, {args.patch}x{args.patch} input, {torch.get_num_threads()} CPU threads, '
          f'median of {args.rounds} interleaved rounds')
    print(f'  plain training step  {plain_s * 1e3:9.1f} ms')
    print(f'  DHP search step      {dhp_s * 1e3:9.1f} ms')
    print(f'  ratio                {ratio:9.2f}   (target <= {TARGET_RATIO}: {"yes" if ratio <= TARGET_RATIO else "NO"})')
    print(f'  compaction           {compact_s * 1e3:9.1f} ms')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
