"""Does pruning's FLOPs cut turn into real speed?  Every model and backend measured side by side, in one run.

For every compact model: its FLOPs ratio to the full-width baseline, its time, the speedup
(baseline ms / model ms, both in the same backend and precision) and the efficiency
speedup / (1 / FLOPs ratio): 1.0 means the FLOPs saving is fully realised.  Within one thread
count and input size, all models in all backends are timed interleaved (one run of each per round,
order rotated; :func:`restore_dhp.timing.measure_side_by_side`) and the median over rounds is
reported, so the ratios are side by side.  Each table has a control row (the baseline timed again,
which must read 1.00; a table whose control is more than 5% off is flagged) and shows each speedup's
interquartile range over the rounds (:mod:`restore_dhp.speed_tables`); ``--settle N`` adds rounds until
the controls read 1.00 within 3% (at most N rounds).  A last table compares each backend's baseline with eager.

    python -m restore_dhp.speedup --weights weights/srresnet_x4_*.safetensors --threads 1 2
    python -m restore_dhp.speedup --weights weights/srresnet_x4_*.safetensors --backends fused --settle 200   # quiet
    python -m restore_dhp.speedup --weights weights/*.safetensors --device cuda --precisions fp32 fp16 bf16
    python -m restore_dhp.speedup --weights weights/dncnn_s70_*.safetensors --backends fused compiled --sizes 1080
    python -m restore_dhp.speedup --random-widths 0.6 0.4 0.2 --round-to 8   # are odd widths slow here?
    python -m restore_dhp.speedup --weights weights/dncnn_s70_*.safetensors --device cuda --pad-to 16 32  # exact
    python -m restore_dhp.speedup --uniform-widths 56 48 40 32 24 16 --device cuda   # this device's width-latency curve
    python -m restore_dhp.speedup --weights weights/srresnet_x4_dhp20.safetensors --profile   # per layer
    python -m restore_dhp.speedup --weights weights/dncnn_s70_dhp40.safetensors --profile --device cuda \
        --backends fused compiled --precisions fp16 --sizes 321x481      # which kernels, how long

Default sizes (H x W of the input; LR for SR): SR 64x64 and 170x256 (the most common Urban100 LR
size at x4), DnCNN 128x128 and 321x481 (BSD68).  Weights do not affect the timing of these dense
convolutions, so random-width models keep their random initialisation.
"""
from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass, field

import torch
from torch import nn

from .catalogue import PAPER_REFERENCE, TASKS, model_label
from .checkpoint import CheckpointError, load_checkpoint
from .commands import prog, run_entry
from .archs import aliases as arch_aliases
from . import network
from .complexity import count_flops
from .deploy import BACKEND_TABLE, BACKENDS, PRECISIONS, DeployError, precision_problem, prepare, usable_backends
from .fileio import write_text
from .profiling import PROFILE_ROWS, profile_kernels, profile_layers  # noqa: F401  (PROFILE_ROWS: re-exported)
from .speed_tables import CONTROL_TOLERANCE, backend_table, settled, table, with_control
from .progress import progress
from .timing import device_name, measure_side_by_side

DEFAULT_SIZES = {'sr': ['64x64', '170x256'], 'denoise': ['128x128', '321x481']}


@dataclass
class Entry:
    label: str
    model: nn.Module
    widths: dict
    is_baseline: bool = False
    task: str = ''
    arch_kwargs: dict = field(default_factory=dict)
    is_control: bool = False  # the baseline timed again (restore_dhp.speed_tables)


def parse_size(text: str) -> tuple[int, int]:
    """'64' -> (64, 64); '170x256' -> (170, 256) (height x width)."""
    parts = text.lower().split('x')
    try:
        h, w = (int(parts[0]), int(parts[0])) if len(parts) == 1 else (int(parts[0]), int(parts[1]))
    except ValueError:
        raise argparse.ArgumentTypeError(f'size {text!r}: expected N or HxW, e.g. 64 or 170x256') from None
    if len(parts) > 2 or h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f'size {text!r}: expected N or HxW with positive numbers')
    return h, w


# ----------------------------------------------------------------------------- models to compare
def build_plain(arch: str, widths, arch_kwargs: dict) -> nn.Module:
    return network.build(arch, arch_kwargs, widths).eval()


def meta_net(arch: str, widths=None, arch_kwargs: dict | None = None) -> nn.Module:
    return network.build(arch, arch_kwargs, widths, 'meta').eval()


def random_widths(arch: str, target: float, rng: random.Random, size: int = 64) -> dict:
    """Per-group widths with uneven random keep fractions whose FLOPs ratio is as close to ``target`` as found."""
    full = dict(network.structure(meta_net(arch)).widths)
    full_flops = count_flops(meta_net(arch), size, size)['flops']
    shape = {g: rng.uniform(0.5, 1.5) for g in full}

    def widths_at(m: float) -> dict:
        return {g: max(1, min(n, round(n * m * shape[g]))) for g, n in full.items()}

    lo, hi = 0.0, 2.0 / min(shape.values())
    best = (float('inf'), widths_at(1.0))
    for _ in range(24):
        mid = (lo + hi) / 2
        w = widths_at(mid)
        ratio = count_flops(meta_net(arch, w), size, size)['flops'] / full_flops
        best = min(best, (abs(ratio - target), w), key=lambda b: b[0])
        lo, hi = (mid, hi) if ratio < target else (lo, mid)
    return best[1]


def round_widths(widths: dict, full: dict, multiple: int) -> dict:
    """Each width rounded to the nearest multiple of ``multiple`` (at least one multiple, at most full width)."""
    return {g: min(full[g], max(multiple, multiple * round(w / multiple))) for g, w in widths.items()}


def synthetic_groups(args) -> dict[str, list[Entry]]:
    """Models of chosen widths per architecture, after its full-width baseline: ``--random-widths`` (uneven
    random widths at each FLOPs ratio, and rounded to ``--round-to``) or ``--uniform-widths`` (every prunable
    group at one width, capped at its full width: the latency of a width on this device)."""
    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)
    kind = 'random' if args.random_widths else 'uniform'
    groups = {}
    for arch in args.arch:
        base = build_plain(arch, None, {})
        full, task = dict(network.structure(base).widths), network.structure(base).task
        picks = []
        if kind == 'random':
            for target in args.random_widths:
                w = random_widths(arch, target, rng)
                picks.append((f'random-{target:g}', w))
                if args.round_to:
                    picks.append((f'random-{target:g} /{args.round_to}', round_widths(w, full, args.round_to)))
        else:
            picks = [(f'width {width}', {g: min(n, width) for g, n in full.items()}) for width in args.uniform_widths]
        entries = [Entry('baseline (full width)', base, full, True, task)]
        entries += [Entry(label, build_plain(arch, w, {}), w, task=task) for label, w in picks]
        groups[f'{network.structure(base).arch} ({kind} widths)'] = entries
    return groups


def checkpoint_groups(args) -> dict[str, list[Entry]]:
    """Checkpoints grouped by architecture; each group's baseline is its full-width checkpoint (else a copy)."""
    groups: dict[str, list[Entry]] = {}
    for path in args.weights:
        model, meta = load_checkpoint(path, 'cpu')
        structure = network.structure(model)
        full = {g: structure.spec.group_widths[g] for g in structure.spec.prunable_groups}
        entries = groups.setdefault(structure.arch, [])
        is_base = dict(structure.widths) == full and not any(e.is_baseline for e in entries)
        label = model_label(meta, path)
        entries.append(Entry(label, model, dict(structure.widths), is_base, meta['task'], meta['arch_kwargs']))
        if args.round_to and not is_base:
            wr = round_widths(dict(structure.widths), full, args.round_to)
            entries.append(Entry(f'{label} /{args.round_to}', build_plain(meta['arch'], wr, meta['arch_kwargs']),
                                 wr, task=meta['task'], arch_kwargs=meta['arch_kwargs']))
        for multiple in ([] if is_base else args.pad_to):  # the same network, zero channels added (exact)
            padded = network.padded(model, multiple)
            if network.structure(padded).widths != structure.widths:
                entries.append(Entry(f'{label} pad/{multiple}', padded, dict(network.structure(padded).widths),
                                     task=meta['task'], arch_kwargs=meta['arch_kwargs']))
    for arch, entries in groups.items():
        if not any(e.is_baseline for e in entries):
            base = build_plain(arch, None, entries[0].arch_kwargs)
            entries.insert(0, Entry('full width (random weights)', base, dict(network.structure(base).widths), True,
                                    network.structure(base).task, entries[0].arch_kwargs))
        entries.sort(key=lambda e: (not e.is_baseline, -flops_at(e, (64, 64))))  # baseline, then widest first
    return groups


# ----------------------------------------------------------------------------- measuring and printing
def input_for(entry: Entry, size: tuple[int, int], device) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, network.facts(entry.model).in_channels, *size, generator=g).to(device)


def flops_at(entry: Entry, size: tuple[int, int]) -> int:
    structure = network.structure(entry.model)
    return count_flops(meta_net(structure.arch, entry.widths, structure.arch_kwargs), *size)['flops']


def compare(entries: list[Entry], forms: list[tuple[str, str]], size, args) -> tuple[dict, dict]:
    """ms of every round of every (model, backend, precision), all interleaved in one side-by-side run; with
    ``args.settle``, blocks of ``args.repeats`` more rounds until the controls read 1.00 (at most ``settle``)."""
    deployed = {(e.label, b, p): prepare(e.model, args.device, b, p, snap_widths='off') for e in entries
                for b, p in forms}
    x = input_for(entries[0], size, args.device)
    with progress(total=len(deployed) * (args.warmup + args.repeats), desc=f'{size[0]}x{size[1]}', unit='run',
                  leave=False) as bar:
        runs = measure_side_by_side(deployed, x, args.repeats, args.warmup, lambda: bar.update(1))
        base = next(e for e in entries if e.is_baseline).label
        control = next((e.label for e in entries if e.is_control), None)
        pairs = ([(base, *f) for f in forms], [(control, *f) for f in forms])
        while control and len(runs[pairs[0][0]]) < args.settle and not settled(runs, *pairs):
            bar.total += len(deployed) * args.repeats   # settling: more rounds
            for key, ms in measure_side_by_side(deployed, x, args.repeats, 0, lambda: bar.update(1)).items():
                runs[key].extend(ms)
    return runs, {k: d.describe() for k, d in deployed.items()}


def run_all(groups: dict[str, list[Entry]], args, emit) -> None:
    """Every group at every thread count and size; ``emit(lines)`` prints (and keeps) each table as it is done."""
    forms = [(b, p) for b in args.backends for p in args.precisions]
    for threads in (args.threads if args.device == 'cpu' else [None]):
        if threads:
            torch.set_num_threads(threads)
        dev = device_name(torch.device(args.device))
        for title, entries in groups.items():
            timed = with_control(entries)
            for size in args.sizes or [parse_size(s) for s in DEFAULT_SIZES[entries[0].task]]:
                runs, described = compare(timed, forms, size, args)
                rounds = len(runs[(timed[0].label, *forms[0])])
                for form in forms:
                    form_desc = described[(entries[0].label, *form)]
                    emit(table(f'{title}: input 1x{network.facts(entries[0].model).in_channels}x{size[0]}x{size[1]}, {dev}, '
                               f'{form_desc}; median of {rounds} interleaved rounds after {args.warmup}',
                               timed, runs, form, {e.label: flops_at(e, size) for e in timed}, args.device,
                               args.control_tolerance))
                emit(backend_table(entries, runs, forms))


# ----------------------------------------------------------------------------- entry
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog('speedup'), description=__doc__.split('\n')[0],
                                epilog='\n'.join(__doc__.split('\n')[1:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--weights', nargs='+', help='compact checkpoints to compare (grouped by architecture)')
    src.add_argument('--random-widths', nargs='+', type=float, metavar='RATIO',
                     help='random-width models at these FLOPs ratios (e.g. 0.6 0.4 0.2)')
    src.add_argument('--uniform-widths', nargs='+', type=int, metavar='W',
                     help='models with every prunable layer at width W (e.g. 56 48 40 32 24 16)')
    p.add_argument('--arch', nargs='+', default=['srresnet', 'dncnn'],
                   help='architectures for --random-widths / --uniform-widths, at their default arguments (default: '
                   'srresnet dncnn; short names: ' + ', '.join(sorted(arch_aliases())) + ')')
    p.add_argument('--backends', nargs='+', choices=BACKENDS,
                   help='default: every one that runs on the device here (with --profile on CUDA, the torch ones)')
    p.add_argument('--precisions', nargs='+', choices=sorted(PRECISIONS), default=['fp32'],
                   help='default fp32; fp16/bf16 on CUDA')
    p.add_argument('--sizes', nargs='+', type=parse_size, metavar='HxW',
                   help='input sizes (default: SR 64x64 170x256, DnCNN 128x128 321x481)')
    p.add_argument('--threads', nargs='+', type=int, default=[1], help='CPU thread counts (default 1)')
    p.add_argument('--repeats', type=int, default=10, help='timed interleaved rounds (default 10)')
    p.add_argument('--warmup', type=int, default=3, help='untimed rounds first (default 3)')
    p.add_argument('--settle', type=int, default=0, metavar='N',
                   help='add --repeats rounds at a time until every control row reads 1.00 within 3%% (at most N '
                        'rounds in all; default 0: --repeats rounds only)')
    p.add_argument('--control-tolerance', type=float, default=CONTROL_TOLERANCE, metavar='F',
                   help='flag a table whose control row is more than F from 1.00 (default 0.05)')
    p.add_argument('--round-to', type=int, default=0, metavar='N',
                   help='also time each pruned model with widths rounded to a multiple of N')
    p.add_argument('--pad-to', nargs='+', type=int, default=[], metavar='N',
                   help='also time each pruned checkpoint with its widths padded up to a multiple of N by zero '
                        'channels (the same output; for devices whose kernels are slow at some widths)')
    p.add_argument('--profile', action='store_true',
                   help='where the time goes instead: per-layer times of the fused form on the CPU, the CUDA '
                        'kernels of each --backends form and precision on CUDA')
    p.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    p.add_argument('--out', help='also write the tables to this text file')
    p.add_argument('--seed', type=int, default=0)
    return p


def check_args(p: argparse.ArgumentParser, args) -> None:
    if args.repeats < 1 or args.warmup < 0 or args.round_to < 0 or min(args.threads) < 1 or args.settle < 0:
        p.error('--repeats and --threads must be positive, --warmup, --round-to and --settle non-negative')
    if not 0 < args.control_tolerance < 1:
        p.error('--control-tolerance must be in (0, 1)')
    if any(n < 1 for n in args.pad_to) or (args.pad_to and not args.weights):
        p.error('--pad-to takes positive multiples and applies to --weights')
    if args.random_widths and not all(0 < r <= 1 for r in args.random_widths):
        p.error('--random-widths ratios must be in (0, 1]')
    if args.uniform_widths and min(args.uniform_widths) < 1:
        p.error('--uniform-widths must be positive')
    if args.device == 'cuda' and not torch.cuda.is_available():
        p.error('--device cuda: no CUDA device is available')
    kernels = args.profile and args.device == 'cuda'  # --profile on CUDA profiles the kernels of torch modules
    usable = usable_backends(args.device, torch_module_only=kernels)
    args.backends = args.backends or [b for b in usable if not any(  # those that run every precision asked for
        precision_problem(b, q, args.device) for q in args.precisions)] or usable
    for b in args.backends:
        if kernels and not BACKEND_TABLE[b].runs_torch_module:
            p.error(f'--profile --device cuda profiles the backends that run a torch module; leave out {b}')
        if missing := BACKEND_TABLE[b].available(torch.device(args.device)):
            p.error(f'--backends {b}: {missing}')
        if problem := next(filter(None, (precision_problem(b, q, args.device) for q in args.precisions)), None):
            p.error(f'--precisions: {problem}')


def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    check_args(p, args)
    lines: list[str] = []

    def emit(block: list[str]) -> None:
        print('\n'.join(block), flush=True)
        lines.extend(block)

    try:
        groups = synthetic_groups(args) if args.random_widths or args.uniform_widths else checkpoint_groups(args)
        if args.profile:
            torch.set_num_threads(args.threads[0])
            for entries in groups.values():
                size = (args.sizes or [parse_size(DEFAULT_SIZES[entries[0].task][0])])[0]
                for e in entries:
                    if args.device == 'cpu':
                        emit(profile_layers(e, input_for(e, size, 'cpu'), args))
                        continue
                    for backend in args.backends:
                        for precision in args.precisions:
                            emit(profile_kernels(e, input_for(e, size, 'cuda'), backend, precision, args))
        else:
            run_all(groups, args, emit)
            paper = ', '.join(f"{TASKS[t].entry.network} {PAPER_REFERENCE[t]['dhp20_gpu_speedup']}x" for t in TASKS)
            target = ('CPU target: speedup/ideal >= 0.9.' if args.device == 'cpu' else
                      f"DHP-20's GPU speedup reported in the paper: {paper}.")
            emit(['', 'speedup = baseline ms / model ms in the same backend and precision (medians over rounds); '
                  'IQR = interquartile range of the per-round speedups; ideal = 1 / FLOPs ratio; the control row is '
                  f'the baseline timed again. {target}'])
    except (CheckpointError, DeployError, OSError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    if args.out:
        write_text(args.out, '\n'.join(lines).lstrip('\n') + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(run_entry(main))
