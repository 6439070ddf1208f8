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
import time
from dataclasses import dataclass, field

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import fx, nn

from .catalogue import PAPER_REFERENCE, TASKS, model_label
from .checkpoint import CheckpointError, load_checkpoint
from .complexity import ARCH_ALIASES, build_meta, count_flops
from .deploy import BACKENDS, PRECISIONS, DeployError, ort, prepare
from .speed_tables import CONTROL_TOLERANCE, backend_table, settled, table, with_control
from .timing import device_name, measure_side_by_side

DEFAULT_SIZES = {'sr': ['64x64', '170x256'], 'denoise': ['128x128', '321x481']}
PROFILE_ROWS = 20  # slowest nodes listed per model in --profile


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
    return ARCH_REGISTRY.get(ARCH_ALIASES.get(arch, arch))(widths=widths, **arch_kwargs).eval()


def random_widths(arch: str, target: float, rng: random.Random, size: int = 64) -> dict:
    """Per-group widths with uneven random keep fractions whose FLOPs ratio is as close to ``target`` as found."""
    full = build_meta(arch).kept_widths()
    full_flops = count_flops(build_meta(arch), size, size)['flops']
    shape = {g: rng.uniform(0.5, 1.5) for g in full}

    def widths_at(m: float) -> dict:
        return {g: max(1, min(n, round(n * m * shape[g]))) for g, n in full.items()}

    lo, hi = 0.0, 2.0 / min(shape.values())
    best = (float('inf'), widths_at(1.0))
    for _ in range(24):
        mid = (lo + hi) / 2
        w = widths_at(mid)
        ratio = count_flops(build_meta(arch, w), size, size)['flops'] / full_flops
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
        full = base.kept_widths()
        picks = []
        if kind == 'random':
            for target in args.random_widths:
                w = random_widths(arch, target, rng)
                picks.append((f'random-{target:g}', w))
                if args.round_to:
                    picks.append((f'random-{target:g} /{args.round_to}', round_widths(w, full, args.round_to)))
        else:
            picks = [(f'width {width}', {g: min(n, width) for g, n in full.items()}) for width in args.uniform_widths]
        entries = [Entry('baseline (full width)', base, full, True, base.task)]
        entries += [Entry(label, build_plain(arch, w, {}), w, task=base.task) for label, w in picks]
        groups[f'{type(base).__name__} ({kind} widths)'] = entries
    return groups


def checkpoint_groups(args) -> dict[str, list[Entry]]:
    """Checkpoints grouped by architecture; each group's baseline is its full-width checkpoint (else a copy)."""
    groups: dict[str, list[Entry]] = {}
    for path in args.weights:
        model, meta = load_checkpoint(path, 'cpu')
        full = build_meta(meta['arch'], None, **meta['arch_kwargs']).kept_widths()
        entries = groups.setdefault(meta['arch'], [])
        is_base = model.kept_widths() == full and not any(e.is_baseline for e in entries)
        label = model_label(meta, path)
        entries.append(Entry(label, model, model.kept_widths(), is_base, meta['task'], meta['arch_kwargs']))
        if args.round_to and not is_base:
            wr = round_widths(model.kept_widths(), full, args.round_to)
            entries.append(Entry(f'{label} /{args.round_to}', build_plain(meta['arch'], wr, meta['arch_kwargs']),
                                 wr, task=meta['task'], arch_kwargs=meta['arch_kwargs']))
        for multiple in ([] if is_base else args.pad_to):  # the same network, zero channels added (exact)
            padded = model.padded_to(multiple)
            if padded.kept_widths() != model.kept_widths():
                entries.append(Entry(f'{label} pad/{multiple}', padded, padded.kept_widths(), task=meta['task'],
                                     arch_kwargs=meta['arch_kwargs']))
    for arch, entries in groups.items():
        if not any(e.is_baseline for e in entries):
            base = build_plain(arch, None, entries[0].arch_kwargs)
            entries.insert(0, Entry('full width (random weights)', base, base.kept_widths(), True,
                                    base.task, entries[0].arch_kwargs))
        entries.sort(key=lambda e: (not e.is_baseline, -flops_at(e, (64, 64))))  # baseline, then widest first
    return groups


# ----------------------------------------------------------------------------- measuring and printing
def input_for(entry: Entry, size: tuple[int, int], device) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, entry.model.in_channels, *size, generator=g).to(device)


def flops_at(entry: Entry, size: tuple[int, int]) -> int:
    return count_flops(build_meta(type(entry.model).__name__, entry.widths, **entry.model.arch_kwargs),
                       *size)['flops']


def compare(entries: list[Entry], forms: list[tuple[str, str]], size, args) -> tuple[dict, dict]:
    """ms of every round of every (model, backend, precision), all interleaved in one side-by-side run; with
    ``args.settle``, blocks of ``args.repeats`` more rounds until the controls read 1.00 (at most ``settle``)."""
    deployed = {(e.label, b, p): prepare(e.model, args.device, b, p) for e in entries for b, p in forms}
    x = input_for(entries[0], size, args.device)
    runs = measure_side_by_side(deployed, x, args.repeats, args.warmup)
    base = next(e for e in entries if e.is_baseline).label
    control = next((e.label for e in entries if e.is_control), None)
    pairs = ([(base, *f) for f in forms], [(control, *f) for f in forms])
    while control and len(runs[pairs[0][0]]) < args.settle and not settled(runs, *pairs):
        for key, ms in measure_side_by_side(deployed, x, args.repeats, 0).items():
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
                    emit(table(f'{title}: input 1x{entries[0].model.in_channels}x{size[0]}x{size[1]}, {dev}, '
                               f'{form_desc}; median of {rounds} interleaved rounds after {args.warmup}',
                               timed, runs, form, {e.label: flops_at(e, size) for e in timed}, args.device,
                               args.control_tolerance))
                emit(backend_table(entries, runs, forms))


# ----------------------------------------------------------------------------- per-layer profile
class _LayerTimer(fx.Interpreter):
    """Runs a traced network node by node, adding each node's wall time (ms) to ``self.ms``."""

    def __init__(self, gm: fx.GraphModule):
        super().__init__(gm)
        self.ms: dict[str, float] = {}
        self.shapes: dict[str, tuple] = {}

    def run_node(self, n):
        start = time.perf_counter()
        out = super().run_node(n)
        if n.op in ('call_module', 'call_function', 'call_method'):
            self.ms[n.name] = self.ms.get(n.name, 0.0) + (time.perf_counter() - start) * 1e3
            self.shapes[n.name] = (n.target if isinstance(n.target, str) else n.target.__name__, tuple(out.shape))
        return out


@torch.no_grad()
def profile_layers(entry: Entry, size, args) -> list[str]:
    """Per-layer ms of the fused form (eager's layer order) on the CPU: where the time of one forward goes."""
    x = input_for(entry, size, 'cpu')
    fused = prepare(entry.model, 'cpu', 'fused').module
    fused(x.to(memory_format=torch.channels_last))
    timer = _LayerTimer(fused)
    for _ in range(args.repeats):
        timer.run(x.to(memory_format=torch.channels_last))
    total = sum(timer.ms.values()) / args.repeats
    modules = dict(fused.named_modules())
    head = f'{"node":<26}{"op":<24}{"output":>22}{"MMAC":>9}{"ms":>9}{"share":>8}{"GMAC/s":>8}'
    lines = ['', f'{entry.label}: per layer, fused fp32 channels_last, {device_name(torch.device("cpu"))}, '
             f'input {tuple(x.shape)}, mean of {args.repeats} runs (sum {total:.2f} ms); the {PROFILE_ROWS} '
             'slowest nodes, then every op kind in total', head, '-' * len(head)]
    by_op: dict[str, list[float]] = {}
    for rank, (name, ms) in enumerate(sorted(timer.ms.items(), key=lambda kv: -kv[1])):
        target, shape = timer.shapes[name]
        module = modules.get(target) if isinstance(target, str) else None
        macs = _conv_macs(module, shape) if isinstance(module, nn.Conv2d) else 0
        op = type(module).__name__ if module is not None else str(target)
        ms /= args.repeats
        kind = by_op.setdefault(op, [0.0, 0.0, 0])
        kind[0], kind[1], kind[2] = kind[0] + ms, kind[1] + macs, kind[2] + 1
        if rank < PROFILE_ROWS:
            lines.append(f'{name[:25]:<26}{op[:23]:<24}{str(shape[1:]):>22}{macs / 1e6:>9.1f}{ms:>9.3f}'
                         f'{ms / total:>8.1%}{_rate(macs, ms)}')
    lines.append('')
    for op, (ms, macs, count) in sorted(by_op.items(), key=lambda kv: -kv[1][0]):
        lines.append(f'{"all " + op:<26}{f"{count} nodes":<24}{"":>22}{macs / 1e6:>9.1f}{ms:>9.3f}'
                     f'{ms / total:>8.1%}{_rate(macs, ms)}')
    return lines


@torch.no_grad()
def profile_kernels(entry: Entry, size, backend: str, precision: str, args) -> list[str]:
    """The CUDA kernels of one forward of a deployed form (run uncaptured): count and device time per kernel.

    Where a GPU forward's time goes: convolution kernels (and which ones cuDNN picked for each width),
    elementwise passes, layout conversions.
    """
    deployed = prepare(entry.model, 'cuda', backend, precision)
    module = deployed.module
    layout = torch.channels_last if deployed.layout == 'channels_last' else torch.contiguous_format
    x = input_for(entry, size, 'cuda').to(dtype=PRECISIONS[precision], memory_format=layout)
    for _ in range(args.warmup + 1):
        module(x)
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(args.repeats):
            module(x)
        torch.cuda.synchronize()
    rows = sorted((e for e in prof.key_averages() if e.self_device_time_total > 0),
                  key=lambda e: -e.self_device_time_total)
    n = args.repeats
    total_ms = sum(e.self_device_time_total for e in rows) / n / 1e3
    lines = ['', f'{entry.label}: CUDA kernels of one forward, {deployed.describe()}, input {tuple(x.shape)}, '
             f'mean of {n} uncaptured runs: {sum(e.count for e in rows) / n:.0f} kernels, {total_ms:.3f} ms of '
             f'kernel time; the {PROFILE_ROWS} longest kernels in total',
             f'{"ms":>8}{"share":>8}{"calls":>7}  kernel']
    for e in rows[:PROFILE_ROWS]:
        ms = e.self_device_time_total / n / 1e3
        lines.append(f'{ms:>8.3f}{ms / total_ms:>8.1%}{e.count / n:>7.0f}  {e.key[:140]}')
    return lines


def _rate(macs: float, ms: float) -> str:
    return f'{macs / ms / 1e6:>8.1f}' if macs else f'{"":>8}'


def _conv_macs(conv: nn.Conv2d, out_shape: tuple) -> int:
    kh, kw = conv.kernel_size
    return out_shape[0] * out_shape[1] * out_shape[2] * out_shape[3] * conv.in_channels // conv.groups * kh * kw


# ----------------------------------------------------------------------------- entry
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='python -m restore_dhp.speedup', description=__doc__.split('\n')[0],
                                epilog='\n'.join(__doc__.split('\n')[1:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--weights', nargs='+', help='compact checkpoints to compare (grouped by architecture)')
    src.add_argument('--random-widths', nargs='+', type=float, metavar='RATIO',
                     help='random-width models at these FLOPs ratios (e.g. 0.6 0.4 0.2)')
    src.add_argument('--uniform-widths', nargs='+', type=int, metavar='W',
                     help='models with every prunable layer at width W (e.g. 56 48 40 32 24 16)')
    p.add_argument('--arch', nargs='+', choices=sorted(ARCH_ALIASES), default=['srresnet', 'dncnn'],
                   help='architectures for --random-widths / --uniform-widths (default: both)')
    p.add_argument('--backends', nargs='+', choices=BACKENDS,
                   help='default: eager fused compiled, and onnxruntime on CPU')
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
    if args.backends is None:
        on_cpu = ort is not None and args.device == 'cpu'
        args.backends = ['eager', 'fused', 'compiled'] + (['onnxruntime'] if on_cpu else [])
    if args.profile and args.device == 'cuda' and 'onnxruntime' in args.backends:
        p.error('--profile --device cuda profiles the torch backends; leave out onnxruntime')
    if 'onnxruntime' in args.backends and ort is None:
        p.error("--backends onnxruntime: the onnxruntime package is not installed (pip install -r requirements.txt)")
    if args.device == 'cpu' and args.precisions != ['fp32']:
        p.error('--precisions fp16/bf16 run on CUDA only; use fp32 on the CPU')


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
                        emit(profile_layers(e, size, args))
                        continue
                    for backend in args.backends:
                        for precision in args.precisions:
                            emit(profile_kernels(e, size, backend, precision, args))
        else:
            run_all(groups, args, emit)
            paper = ', '.join(f"{TASKS[t].network} {PAPER_REFERENCE[t]['dhp20_gpu_speedup']}x" for t in TASKS)
            target = ('CPU target: speedup/ideal >= 0.9.' if args.device == 'cpu' else
                      f"DHP-20's GPU speedup reported in the paper: {paper}.")
            emit(['', 'speedup = baseline ms / model ms in the same backend and precision (medians over rounds); '
                  'IQR = interquartile range of the per-round speedups; ideal = 1 / FLOPs ratio; the control row is '
                  f'the baseline timed again. {target}'])
    except (CheckpointError, DeployError, OSError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    if args.out:
        with open(args.out, 'w') as f:
            f.write('\n'.join(lines).lstrip('\n') + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
