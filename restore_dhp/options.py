"""Checks an option file completely before BasicSR starts, so a bad one fails at once, in one line naming the key.

BasicSR accepts any YAML and fails (or silently ignores a typo) much later,
after it has created the experiments folder; here, before anything is written:

* unknown keys in the sections we know, and in the datasets of our dataset types
  (each type lists its keys in ``OPTION_KEYS``), with the nearest known key;
* wrong types, and numbers that YAML reads as text (``lr: 2e-4``: YAML 1.1 needs
  a dot in a number with an exponent, so BasicSR would get the string ``'2e-4'``);
* every value training reads against its rule (:data:`RULES`, one table: positive integers, ranges,
  booleans, the registered or supported types of scheduler, optimizer, loss, network, dataset and
  model, ``name`` a plain folder name, ``num_gpu`` no more than this machine has);
* unknown registry names and a bad ``dhp`` section, and the latency table ``dhp.target`` names read: its
  format, the network it was measured for (this ``network_g``), and a warning if another machine measured it;
* dataset folders that are missing or hold no images, a ``gt_size`` larger than every image, files
  named in ``path`` (``pretrain_network_g``, ``resume_state``) that do not exist or are not
  checkpoints, and ``logger.wandb`` without wandb installed (:mod:`restore_dhp.option_files`);
* the file itself within limits: its size and its aliases expanded (:mod:`restore_dhp.yaml_file`).

``--force_yml key:sub=value`` overrides are applied here as BasicSR applies them
(:func:`restore_dhp.force_yml.apply_force_yml`) and the result is checked like the file; a key that is not a plain name
or a value BasicSR would ``eval`` is refused.  To add a rule, add a line to :data:`RULES`.
"""
from __future__ import annotations

import difflib
import inspect
import os
import re
import sys
from typing import Any, Callable, Iterator, NamedTuple

import yaml
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY

from .checkpoint import MAX_SCALE, CheckpointError, build_checked, check_arch_kwargs
from .data.imageio import list_images
from .force_yml import apply_force_yml
from .yaml_file import YamlLimitError, load_yaml_file

from . import network
from .errors import OptionError
from .option_files import check_latency_table, check_machine, check_patch_fits, check_path_files
from .models.dhp_model import SearchOptions
from .models.restoration_model import OPTIMIZERS, WEIGHT_DECAY_PARAMS, with_compact_pretrain
from .models.train_step import parse_step_options

TOP_LEVEL = {'name', 'model_type', 'scale', 'num_gpu', 'manual_seed', 'datasets', 'network_g', 'path', 'train',
             'val', 'logger', 'dist_params', 'find_unused_parameters', 'dhp', 'is_train', 'dist'}
SECTIONS = {
    'train': {'ema_decay', 'optim_g', 'scheduler', 'total_iter', 'warmup_iter', 'pixel_opt', 'perceptual_opt',
              'freeze_bn_iter', 'amp', 'capture', 'precise_bn'},
    'path': {'pretrain_network_g', 'strict_load_g', 'resume_state', 'param_key_g', 'ignore_resume_networks',
             'experiments_root', 'results_root', 'models', 'training_states', 'log', 'visualization'},
    'val': {'val_freq', 'save_img', 'suffix', 'pbar', 'metrics', 'also_live'},
    'logger': {'print_freq', 'save_checkpoint_freq', 'use_tb_logger', 'wandb'},
}
REQUIRED_TRAIN = ('name', 'model_type', 'network_g', 'datasets', 'train', 'path', 'logger')
# dataset keys BasicSR itself reads (options parser, build_dataloader, train loop), for every dataset type
BASICSR_DATASET_KEYS = frozenset({'name', 'type', 'phase', 'scale', 'batch_size_per_gpu', 'num_worker_per_gpu',
                                  'dataset_enlarge_ratio', 'use_shuffle', 'prefetch_mode', 'num_prefetch_queue',
                                  'pin_memory', 'persistent_workers'})
# a number with an exponent but no dot, which YAML 1.1 (PyYAML, BasicSR) reads as a string
NUMBER_AS_TEXT = re.compile(r'[-+]?(\d+|\d*\.\d+)[eE][-+]?\d+')


def load_yaml(path: str) -> dict:
    """The option file's mapping, read within :mod:`restore_dhp.yaml_file`'s limits (size, expanded aliases)."""
    if not os.path.isfile(path):
        raise OptionError(f'option file {path} does not exist')
    try:
        opt = load_yaml_file(path)
    except YamlLimitError as e:
        raise OptionError(f'option file {e}') from None
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as e:
        raise OptionError(f'option file {path} is not valid YAML: {" ".join(str(e).split())}') from None
    if not isinstance(opt, dict):
        raise OptionError(f'option file {path} must hold a mapping of options')
    return opt


# ----------------------------------------------------------------------------- value rules
class Rule(NamedTuple):
    """A value is accepted when ``accepts(value)``; else the message says the key ``must be <requirement>``."""
    accepts: Callable[[Any], bool]
    requirement: str | Callable[[Any], str]   # a callable (of the bad value) for registries, read at check time


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def integer(lo: int | None = None, hi: int | None = None) -> Rule:
    text = ('a positive integer' if lo == 1 and hi is None else 'a non-negative integer' if lo == 0 and hi is None
            else f'an integer in [{lo}, {hi}]' if hi is not None else f'an integer >= {lo}')
    return Rule(lambda v: _is_int(v) and (lo is None or v >= lo) and (hi is None or v <= hi), text)


def number(lo: float, hi: float | None = None, lo_open: bool = False) -> Rule:
    low = f'> {lo:g}' if lo_open else f'>= {lo:g}'
    text = f'a number {low}' + (f' and <= {hi:g}' if hi is not None else '')
    return Rule(lambda v: _is_number(v) and (v > lo if lo_open else v >= lo) and (hi is None or v <= hi), text)


def one_of(*values) -> Rule:
    return Rule(lambda v: not isinstance(v, (dict, list)) and v in values and type(v) in {type(x) for x in values},
                'one of ' + ', '.join(str(x).lower() if isinstance(x, bool) else str(x) for x in values))


def registered(registry, what: str) -> Rule:
    def requirement(value) -> str:
        close = difflib.get_close_matches(str(value), sorted(registry._obj_map), n=1, cutoff=0.6)
        return f'a registered {what}' + (f' (did you mean {close[0]}?)' if close else
                                          f' ({", ".join(sorted(registry._obj_map)[:12])}, ...)')
    return Rule(lambda v: isinstance(v, str) and v in registry._obj_map, requirement)


BOOLEAN = Rule(lambda v: isinstance(v, bool), 'true or false')
FOLDER_NAME = Rule(lambda v: isinstance(v, str) and re.fullmatch(r'[A-Za-z0-9][A-Za-z0-9._+-]{0,99}', v) is not None,
                   'a plain folder name (letters, digits, . _ + -; no / or leading dot; at most 100 characters)')
# BasicSR 1.4.2 builds only these schedulers (BaseModel.setup_schedulers); our models' optimizers: OPTIMIZERS
SCHEDULERS = ('MultiStepLR', 'MultiStepRestartLR', 'CosineAnnealingRestartLR')
POSITIVE, NON_NEGATIVE = integer(1), integer(0)
#: what training reads, key by key ('*' matches any dataset phase); the first bad value is reported
RULES: dict[str, Rule] = {
    'name': FOLDER_NAME,
    'model_type': registered(MODEL_REGISTRY, 'model'),
    'scale': integer(1, MAX_SCALE),
    'manual_seed': integer(0, 2 ** 32 - 1),
    'find_unused_parameters': BOOLEAN,
    'network_g.type': registered(ARCH_REGISTRY, 'architecture'),
    'datasets.*.type': registered(DATASET_REGISTRY, 'dataset'),
    'datasets.*.batch_size_per_gpu': POSITIVE,
    'datasets.*.num_worker_per_gpu': NON_NEGATIVE,
    'datasets.*.dataset_enlarge_ratio': POSITIVE,
    'datasets.*.scale': integer(1, MAX_SCALE),
    'datasets.*.gt_size': POSITIVE,
    'datasets.*.sigma': number(0, 255),
    'datasets.*.noise_seed': NON_NEGATIVE,
    'datasets.*.repeat': POSITIVE,
    'datasets.*.cache': one_of(True, False, 'gpu'),
    'datasets.*.use_hflip': BOOLEAN,
    'datasets.*.use_flip': BOOLEAN,
    'datasets.*.use_rot': BOOLEAN,
    'datasets.*.use_shuffle': BOOLEAN,
    'datasets.*.pin_memory': BOOLEAN,
    'datasets.*.persistent_workers': BOOLEAN,
    'path.strict_load_g': BOOLEAN,
    'train.total_iter': POSITIVE,
    'train.warmup_iter': integer(-1),
    'train.freeze_bn_iter': NON_NEGATIVE,
    'train.precise_bn': POSITIVE,
    'train.ema_decay': number(0, 1),
    'train.optim_g.type': one_of(*OPTIMIZERS),
    'train.optim_g.lr': number(0, lo_open=True),
    'train.optim_g.weight_decay': number(0),
    'train.optim_g.weight_decay_params': one_of(*WEIGHT_DECAY_PARAMS),
    'train.scheduler.type': one_of(*SCHEDULERS),
    'train.scheduler.gamma': number(0, lo_open=True),
    'train.pixel_opt.type': registered(LOSS_REGISTRY, 'loss'),
    'train.pixel_opt.loss_weight': number(0),
    'train.perceptual_opt.type': registered(LOSS_REGISTRY, 'loss'),
    'val.val_freq': number(0, lo_open=True),
    'val.save_img': BOOLEAN,
    'val.pbar': BOOLEAN,
    'val.also_live': BOOLEAN,
    'logger.print_freq': POSITIVE,
    'logger.save_checkpoint_freq': number(0, lo_open=True),
    'logger.use_tb_logger': BOOLEAN,
}


def _values(node, parts: list[str], where: str = '') -> Iterator[tuple[str, Any]]:
    """``(dotted key, value)`` of every present key matching ``parts`` ('*' matches any key)."""
    if not parts or not isinstance(node, dict):
        return
    head, rest = parts[0], parts[1:]
    for key in (node if head == '*' else [head] if head in node else []):
        name = f'{where}.{key}' if where else str(key)
        if rest:
            yield from _values(node[key], rest, name)
        else:
            yield name, node[key]


def _check_rules(opt: dict) -> None:
    for pattern, rule in RULES.items():
        for key, value in _values(opt, pattern.split('.')):
            if value is None and not pattern.endswith('.type') and pattern != 'name':
                continue  # BasicSR's default
            if not rule.accepts(value):
                need = rule.requirement(value) if callable(rule.requirement) else rule.requirement
                raise OptionError(f'option {key} must be {need}, got {value!r}')


def _arch_keys(cls) -> set[str]:
    keys = set()
    for klass in inspect.getmro(cls):
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        for name, p in inspect.signature(init).parameters.items():
            if name != 'self' and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                keys.add(name)
    return keys - {'dhp'}


def _unknown_key(where: str, key: str, known) -> OptionError:
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    hint = f'; did you mean {close[0]}?' if close else f' (known: {", ".join(sorted(known))})'
    return OptionError(f'unknown option {where}{key}{hint}')


def _check_numbers_as_text(node, where: str = '') -> None:
    """Reject strings that look like numbers in exponent form anywhere in the options, naming the key."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        name = f'{where}.{key}' if where else str(key)
        if isinstance(value, str) and NUMBER_AS_TEXT.fullmatch(value.strip()):
            mantissa, exponent = re.split('[eE]', value.strip())
            fixed = f'{mantissa if "." in mantissa else mantissa + ".0"}e{exponent}'
            raise OptionError(f'option {name}: YAML reads {value} as text, not a number '
                              f'(a number with an exponent needs a dot: write {fixed})')
        _check_numbers_as_text(value, name)


def _check_sections(opt: dict, is_train: bool) -> None:
    unknown = sorted(set(opt) - TOP_LEVEL - {k for k in opt if k.startswith('network_')})
    if unknown:
        raise _unknown_key('', unknown[0], TOP_LEVEL)
    for key in REQUIRED_TRAIN if is_train else ('name', 'model_type', 'network_g', 'datasets'):
        if key not in opt:
            raise OptionError(f'option {key} is required')
    for section, known in SECTIONS.items():
        body = opt.get(section)
        if body is None:
            continue
        if not isinstance(body, dict):
            raise OptionError(f'option {section} must be a mapping')
        for key, value in body.items():
            if key not in known:
                raise _unknown_key(f'{section}.', key, known)


def _check_network(opt: dict) -> None:
    """``network_g``: its arguments are the architecture's (bounded as a checkpoint's are), it builds on the meta
    device within the sane bounds, and a DHP search finds channels to prune in it (traced)."""
    net = opt['network_g']
    allowed = _arch_keys(ARCH_REGISTRY.get(net['type']))
    if 'checkpoint' in net or 'widths' in net:
        with_compact_pretrain(opt)  # raises: says what to write instead
    pretrain = str((opt.get('path') or {}).get('pretrain_network_g') or '')
    if pretrain.endswith('.safetensors') and os.path.isfile(pretrain):  # its structure arguments complete network_g
        try:
            net = with_compact_pretrain(opt)[0]['network_g']
        except CheckpointError as e:
            raise OptionError(f'option path.pretrain_network_g: {e}') from None
    for key in net:
        if key != 'type' and key not in allowed:
            raise _unknown_key('network_g.', key, allowed)
    kwargs = {k: v for k, v in net.items() if k != 'type'}
    try:
        check_arch_kwargs(kwargs, 'option network_g')
        skeleton = build_checked(net['type'], kwargs, None, 'option network_g', 'meta')
    except CheckpointError as e:
        raise OptionError(str(e)) from None
    spec = network.structure(skeleton).spec
    if opt.get('model_type') == 'DHPSearchModel' and not spec.prunable_groups:
        why = '; '.join(spec.unprunable) or 'every channel is an image channel'
        raise OptionError(f"option network_g: {net['type']} has no channels a DHP search can prune ({why})")


def _check_training(opt: dict) -> None:
    try:
        parse_step_options(opt['train'])
    except ValueError as e:
        raise OptionError(str(e)) from None
    for key in ('total_iter', 'scheduler'):
        if opt['train'].get(key) is None:
            raise OptionError(f'option train.{key} is required')
    if 'optim_g' not in opt['train'] or 'type' not in opt['train']['optim_g']:
        raise OptionError('option train.optim_g.type is required')
    if 'train' not in opt['datasets']:
        raise OptionError('option datasets.train is required for training')


def _check_dataset(phase: str, ds: dict, check_paths: bool, scale: int) -> None:
    known = getattr(DATASET_REGISTRY.get(ds['type']), 'OPTION_KEYS', None)  # only our types list theirs
    for key, value in ds.items():
        if known is not None and key not in known | BASICSR_DATASET_KEYS:
            raise _unknown_key(f'datasets.{phase}.', key, known | BASICSR_DATASET_KEYS)
        if check_paths and key.startswith('dataroot') and value is not None:
            for folder in value if isinstance(value, list) else [value]:
                folder = os.path.expanduser(str(folder))
                if not os.path.isdir(folder):
                    raise OptionError(f'option datasets.{phase}.{key}: folder {folder} does not exist '
                                      '(see README: python -m restore_dhp.prepare_data)')
                if not list_images(folder):
                    raise OptionError(f'option datasets.{phase}.{key}: folder {folder} holds no images '
                                      '(see README: python -m restore_dhp.prepare_data)')
    gt_size, scale = ds.get('gt_size'), ds.get('scale') or scale
    if gt_size is not None and gt_size % scale:
        raise OptionError(f'option datasets.{phase}.gt_size={gt_size} must be a multiple of scale={scale}')
    if gt_size is not None and check_paths and ds.get('dataroot_gt'):
        check_patch_fits(f'datasets.{phase}.gt_size', gt_size, ds['dataroot_gt'])


def _check_dhp(opt: dict, check_paths: bool) -> list[str]:
    """The ``dhp`` section (:meth:`SearchOptions.from_opt`), and the latency table it names (``check_paths``): a
    table, measured for this ``network_g``; returns a warning when it was measured on another machine."""
    if opt['model_type'] != 'DHPSearchModel':
        if 'dhp' in opt:
            raise OptionError(f"option dhp is only used by model_type DHPSearchModel, not {opt['model_type']}")
        return []
    search = SearchOptions.from_opt(opt.get('dhp'))
    return check_latency_table(search.target['table'], opt['network_g']) if check_paths and search.target else []


def validate(opt: dict, is_train: bool = True, check_paths: bool = True) -> list[str]:
    """Raise :class:`OptionError` naming the first bad key of ``opt`` (``check_paths``: files and folders exist,
    and this machine has what the options ask for); returns warnings (a latency table of another machine)."""
    _check_numbers_as_text(opt)
    _check_sections(opt, is_train)
    if not isinstance(opt['datasets'], dict) or not all(isinstance(d, dict) for d in opt['datasets'].values()):
        raise OptionError('option datasets must be a mapping of phases (train, val, ...) to datasets')
    for where, node in (('network_g', opt['network_g']),
                        *((f'datasets.{phase}', ds) for phase, ds in opt['datasets'].items())):
        if not isinstance(node, dict) or 'type' not in node:
            raise OptionError(f'option {where}.type is required')
    _check_rules(opt)
    if check_paths:
        check_path_files(opt)
        check_machine(opt)
    _check_network(opt)
    if is_train:
        _check_training(opt)
    warnings = _check_dhp(opt, check_paths)
    for phase, ds in opt['datasets'].items():
        _check_dataset(phase, ds, check_paths, opt.get('scale') or 1)
    return warnings


def validate_file(path: str, is_train: bool = True, check_paths: bool = True,
                  force_yml: list[str] | None = None) -> dict:
    """The options of ``path`` with ``force_yml`` applied (:func:`apply_force_yml`), checked by :func:`validate`;
    its warnings are printed on stderr."""
    opt = load_yaml(path)
    where = f'{path} with --force_yml' if force_yml else path
    try:
        opt = apply_force_yml(opt, force_yml)
        warnings = validate(opt, is_train, check_paths)
    except OptionError as e:
        raise OptionError(f'{where}: {e}') from None
    for warning in warnings:
        print(f'{where}: {warning}', file=sys.stderr)
    return opt
