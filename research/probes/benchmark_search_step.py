#!/usr/bin/env python
"""Cost of DHP search: training steps per second, plain vs DHP search, measured side by side.

A step is the training step the BasicSR model runs (restore_dhp.models.train_step.TrainStep:
forward, L1 loss, backward, Adam, fused on CUDA) on random data already on the device; the DHP step adds the
DHPPruner's proximal step.  For every architecture, device, batch size and mode (``eager``;
``captured``: the step in one CUDA graph, CUDA only) the plain and DHP steps run interleaved in
rounds and the median rate is reported with the ratio of step times DHP/plain (target <= 1.3).
Then the pruner's costs: a mask check that refills channels, the FLOPs ratio of 100 random width
sets through ``restore_dhp.complexity.remaining_flops_ratio``, and compaction.

    OMP_NUM_THREADS=2 python -m research.probes.benchmark_search_step --devices cpu --batches 16
    python -m research.probes.benchmark_search_step --devices cuda --batches 16 64 --modes eager captured --amp bf16
"""
from __future__ import annotations

import argparse
import random
import statistics
import time

import torch
from torch.nn import functional as F

import restore_dhp  # noqa: F401  (registries)
from restore_dhp import network
from restore_dhp.catalogue import TASKS
from restore_dhp.complexity import remaining_flops_ratio
from restore_dhp.dhp import DHPNet, DHPPruner, KeepRule
from restore_dhp.models.train_step import TrainStep
from tools.recipes import recipe

TARGET_RATIO = 1.3
LR = 1e-4


def arch_table() -> dict[str, tuple[int, str]]:
    """{short arch name: (input patch side, task)} for every catalogue task: the names from the architecture
    registry, the patch from the task's CPU recipe (its training patch at the network's input)."""
    from restore_dhp.archs import aliases
    short = {cls: alias for alias, cls in aliases().items()}
    table = {}
    for task, spec in TASKS.items():
        patch = recipe(f'{spec.entry.prefix}_baseline_cpu').options()['datasets']['train']['gt_size'] // spec.scale
        table[short[spec.entry.arch]] = (patch, task)
    return table


def dhp_net(arch: str) -> DHPNet:
    """The DHP form of ``arch`` at its default (paper) size."""
    plain = network.build(arch)
    return DHPNet(plain, network.structure(plain).spec)


def l1(output, gt):
    loss = F.l1_loss(output, gt)
    return loss, {'l_pix': loss}


def make_runner(net, x, y, device, mode, amp, pruner=None):
    net = net.to(device).train()
    # fused Adam on CUDA (one pass over the hypernetworks' parameters instead of several), as the fast option files
    optimizer = torch.optim.Adam(net.parameters(), lr=LR, fused=device.type == 'cuda')
    step = TrainStep(net, l1, optimizer, device, amp, 'cuda_graph' if mode == 'captured' else None,
                     notice=lambda msg: None)

    def run():
        step(x, y)
        if pruner is not None:
            pruner.proximal_step(LR)
    return run


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize()


def steps_per_second(runners, device, steps, rounds, warmup):
    for run in runners.values():
        for _ in range(warmup):
            run()
    sync(device)
    rates = {k: [] for k in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            for _ in range(steps):
                run()
            sync(device)
            rates[name].append(steps / (time.perf_counter() - start))
    return {k: statistics.median(v) for k, v in rates.items()}


def pruner_costs(arch):
    """Seconds for one refilling mask check, 100 random-width FLOPs ratios, and one compaction."""
    torch.manual_seed(0)
    net = dhp_net(arch).eval()
    pruner = DHPPruner(net, target_ratio=0.5, rule=KeepRule(round_to=8))
    pruner.check()                       # the first check records the latents the refill ranks by
    with torch.no_grad():                # then prune far past the target at once
        for z in net.group_latents().values():
            z[torch.rand_like(z) < 0.8] = 0
    start = time.perf_counter()
    check = pruner.check()
    check_s = time.perf_counter() - start
    rng = random.Random(0)
    width_sets = [{g: rng.randint(1, net.spec.group_widths[g]) for g in net.spec.prunable_groups} for _ in range(100)]
    start = time.perf_counter()
    for widths in width_sets:
        remaining_flops_ratio(arch, widths)
    ratio_s = time.perf_counter() - start
    start = time.perf_counter()
    net.compact()
    compact_s = time.perf_counter() - start
    return check, check_s, ratio_s, compact_s


def main(argv=None) -> int:
    archs = arch_table()
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--archs', nargs='+', choices=sorted(archs), default=sorted(archs, reverse=True))
    parser.add_argument('--devices', nargs='+', choices=['cpu', 'cuda'], default=['cpu', 'cuda'])
    parser.add_argument('--batches', nargs='+', type=int, default=[16, 64])
    parser.add_argument('--modes', nargs='+', choices=['eager', 'captured'], default=['eager', 'captured'])
    parser.add_argument('--amp', choices=['bf16', 'fp16'], default=None)
    parser.add_argument('--steps', type=int, default=None, help='steps per timed block (default: 2 CPU, 50 CUDA)')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=None, help='default: 1 CPU, 10 CUDA')
    args = parser.parse_args(argv)
    devices = [torch.device(d) for d in args.devices if d == 'cpu' or torch.cuda.is_available()]
    skipped = sorted(set(args.devices) - {d.type for d in devices})
    print(f'torch {torch.__version__}, {torch.get_num_threads()} CPU threads'
          + (f', {torch.cuda.get_device_name()}' if torch.cuda.is_available() else '')
          + (f'; skipped (no CUDA): {", ".join(skipped)}' if skipped else '') + f'; amp {args.amp or "off"}')
    print(f"{'arch':9} {'device':6} {'batch':>5} {'mode':9} {'plain it/s':>10} {'DHP it/s':>9} {'DHP/plain':>9}")
    for arch in args.archs:
        patch, _ = archs[arch]
        for device in devices:
            cuda = device.type == 'cuda'
            steps, warmup = args.steps or (50 if cuda else 2), args.warmup or (10 if cuda else 1)
            for batch in args.batches:
                for mode in args.modes:
                    if mode == 'captured' and not cuda:
                        print(f'{arch:9} {device.type:6} {batch:5} {mode:9} {"(CUDA graphs need CUDA)":>30}')
                        continue
                    torch.manual_seed(0)
                    plain, dhp = network.build(arch), dhp_net(arch)
                    facts = network.structure(plain)
                    x = torch.rand(batch, facts.in_channels, patch, patch, device=device)
                    y = torch.rand(batch, facts.in_channels, patch * facts.scale, patch * facts.scale, device=device)
                    runners = {'plain': make_runner(plain, x, y, device, mode, args.amp),
                               'dhp': make_runner(dhp, x, y, device, mode, args.amp, DHPPruner(dhp, 0.5))}
                    rates = steps_per_second(runners, device, steps, args.rounds, warmup)
                    ratio = rates['plain'] / rates['dhp']
                    print(f'{arch:9} {device.type:6} {batch:5} {mode:9} {rates["plain"]:10.2f} {rates["dhp"]:9.2f} '
                          f'{ratio:9.2f}{"" if ratio <= TARGET_RATIO else "  (over the 1.3 target)"}', flush=True)
        check, check_s, ratio_s, compact_s = pruner_costs(arch)
        print(f'{arch}: refilling mask check {check_s:.4f} s (ratio {check.refilled_from:.3f} -> {check.ratio:.3f}, '
              f'target < 0.1 s); 100 random width sets through remaining_flops_ratio {ratio_s:.4f} s '
              f'(target < 1 s); compaction {compact_s:.3f} s', flush=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
