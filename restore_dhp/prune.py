"""Prune a trained network for this device in one command, starting from its weights (a DHP warm start).

    restore-dhp prune --weights weights/srresnet_x4_dhp100.safetensors --latency 0.4 -o sr_cpu40.safetensors
    restore-dhp prune -n dncnn_s70_baseline --flops 0.4 -o dncnn_dhp40.safetensors

A thin entry over the option-file path: it takes the task's warm-start recipe (``options/prune/<task>_cpu.yml``,
or ``--recipe``), sets ``network_g`` from the checkpoint, ``path.pretrain_network_g``
to it and the target, and runs ``restore-dhp train`` on that (BasicSR's log is the progress).  The run is named
after the weights and the target, so the same command after a kill resumes it (``--auto_resume``).  At the end
the compact checkpoint is copied to ``-o``.  ``--latency`` prices widths by a latency table of this machine
(fused, fp32, one thread, at the task's table size): ``--table`` names one, else the one under
``latency_tables/`` for this CPU is used, measured first when there is none (a minute or a few).
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

from .commands import prog, run_entry

RECIPE = 'options/prune/{task}_cpu.yml'
TABLE_SIZES = {'sr': (170, 256), 'denoise': (321, 481)}  # the committed tables' input sizes (LR for SR)


class PruneError(ValueError):
    """A bad argument or a missing file; one line."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog('prune'), description=__doc__.split('\n')[0],
                                epilog='\n'.join(__doc__.split('\n')[1:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--weights', help='a compact checkpoint (.safetensors) of any registered architecture')
    src.add_argument('-n', '--model-name', help='a shipped model by name (restore-dhp catalogue --files)')
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument('--flops', type=float, metavar='RATIO', help='keep this fraction of the full width\'s FLOPs')
    target.add_argument('--latency', type=float, metavar='RATIO',
                        help='keep this fraction of the full width\'s latency on this machine')
    p.add_argument('--table', help='with --latency: the latency table (default: this CPU\'s, measured if missing)')
    p.add_argument('-o', '--output', help='the pruned compact checkpoint (default: <weights>_<target>.safetensors)')
    p.add_argument('--overwrite', action='store_true', help='replace --output if it exists')
    p.add_argument('--recipe', help=f'the option file to start from (default: {RECIPE.format(task="<task>")})')
    p.add_argument('--iters', type=int, help="total iterations, search and fine-tuning (default: the recipe's)")
    p.add_argument('--seed', type=int, help="random seed (default: the recipe's)")
    p.add_argument('--name', help='the run\'s name under experiments/ (default: from the weights and the target)')
    p.add_argument('--dry-run', action='store_true', help='print the option file it would train with, and stop')
    return p


def _ratio(value: float, flag: str) -> float:
    if not 0 < value <= 1:
        raise PruneError(f'{flag} must be a fraction in (0, 1], got {value}')
    return value


def run_name(weights: str, kind: str, ratio: float) -> str:
    stem = re.sub(r'[^A-Za-z0-9_.+-]', '_', Path(weights).name.split('.')[0])
    return f'prune_{stem}_{kind}{round(ratio * 100):d}'


def latency_table(meta: dict, table: str | None) -> str:
    """The table to price widths by: ``table``, else this CPU's for the network (measured now if missing)."""
    from .latency import table_path, write_json
    from .latency.profile import Profiler, Settings
    if table:
        if not os.path.isfile(table):
            raise PruneError(f'--table {table}: no such file')
        return table
    from . import network
    size = TABLE_SIZES[meta['task']]
    registered = network.registered_name(meta['arch'])
    short = {name: alias for alias, name in network.aliases().items()}.get(registered, registered)
    path = table_path(short, 'cpu', 'fused', 'fp32', 1, size)
    if os.path.isfile(path):
        print(f'latency table: {path}', file=sys.stderr)
        return path
    print(f'no latency table for this machine at {path}: measuring one now (fused, fp32, 1 thread, '
          f'{size[0]}x{size[1]}; a minute or a few)', file=sys.stderr)
    settings = Settings(device='cpu', backend='fused', precision='fp32', threads=1, size=size)
    write_json(Profiler(short, meta['arch_kwargs'], settings).run(), path)
    print(f'wrote {path}', file=sys.stderr)
    return path


def prune_options(args, weights: str, meta: dict) -> dict:
    """The option dict of the run: the recipe, with the network, its weights, the target and the budget."""
    from . import network
    from .yaml_file import load_yaml_file
    recipe = args.recipe or RECIPE.format(task=meta['task'])
    if not os.path.isfile(recipe):
        raise PruneError(f'no recipe {recipe}: run from the project\'s checkout, or give --recipe FILE')
    opt = load_yaml_file(recipe)
    kind, ratio = ('latency', _ratio(args.latency, '--latency')) if args.latency is not None else \
        ('flops', _ratio(args.flops, '--flops'))
    opt['name'] = args.name or run_name(weights, kind, ratio)
    opt['network_g'] = {'type': network.registered_name(meta['arch']), **meta['arch_kwargs']}
    opt.setdefault('path', {})['pretrain_network_g'] = os.path.abspath(weights)
    dhp = {k: v for k, v in (opt.get('dhp') or {}).items() if k not in ('target_ratio', 'target')}
    if kind == 'latency':
        dhp['target'] = {'latency': ratio, 'table': os.path.abspath(latency_table(meta, args.table))}
        dhp['round_to'] = 'auto'  # widths in the table's step, the device's (8 or 16 channels on the CPUs seen)
    else:
        dhp['target_ratio'] = ratio
    opt['dhp'] = dhp
    if meta['scale'] > 1:  # an SR network: its data at its scale
        opt['scale'] = meta['scale']
        for dataset in opt['datasets'].values():
            dataset['scale'] = meta['scale']
    if args.iters is not None:
        if args.iters < 1:
            raise PruneError(f'--iters must be positive, got {args.iters}')
        opt['train']['total_iter'] = args.iters
    if args.seed is not None:
        opt['manual_seed'] = args.seed
    return opt


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import yaml

    from .catalogue import ModelNameError, resolve_model_name
    from .checkpoint import CheckpointError, read_metadata
    from .errors import OptionError
    from .fileio import OutputError, check_output, write_bytes, write_text
    from .latency import LatencyError
    from .train import run_pipeline
    try:
        weights = str(resolve_model_name(args.model_name)) if args.model_name else args.weights
        meta = read_metadata(weights)
        opt = prune_options(args, weights, meta)
        output = args.output or f"{Path(weights).name.split('.')[0]}_{opt['name'].rsplit('_', 1)[1]}.safetensors"
        check_output(output, [weights], args.overwrite, '--output')
    except (PruneError, ModelNameError, CheckpointError, OptionError, OutputError, LatencyError, KeyError) as e:
        print(f'error: {str(e).strip(chr(34))}', file=sys.stderr)
        return 2
    text = yaml.safe_dump(opt, sort_keys=False)
    if args.dry_run:
        print(text, end='')
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        option_file = os.path.join(tmp, f"{opt['name']}.yml")
        write_text(option_file, text)
        status = run_pipeline(['-opt', option_file, '--auto_resume'], is_train=True)
    if status:
        return status
    result = os.path.join('experiments', opt['name'], 'models', 'net_g_latest.safetensors')
    if not os.path.isfile(result):
        print(f'error: the run ended without {result}', file=sys.stderr)
        return 1
    write_bytes(output, Path(result).read_bytes())
    widths = read_metadata(output)['widths']
    print(f'wrote {output}: widths {widths}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(run_entry(main))
