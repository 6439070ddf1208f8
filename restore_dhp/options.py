"""Checks an option file completely before BasicSR starts, so a bad one fails at once, in one line naming the key.

BasicSR accepts any YAML and fails (or silently ignores a typo) much later,
after it has created the experiments folder; here, before anything is written:

* unknown keys in the sections we know, and in the datasets of our dataset types
  (each type lists its keys in ``OPTION_KEYS``), with the nearest known key;
* wrong types, and numbers that YAML reads as text (``lr: 2e-4``: YAML 1.1 needs
  a dot in a number with an exponent, so BasicSR would get the string ``'2e-4'``);
* unknown registry names and a bad ``dhp`` section;
* dataset folders that are missing or hold no images, and files named in
  ``path`` (``pretrain_network_g``, ``resume_state``) that do not exist.
"""
from __future__ import annotations

import difflib
import inspect
import os
import re

import yaml
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY

from .data.imageio import list_images

from .models.dhp_model import OptionError, SearchOptions
from .models.restoration_model import with_compact_pretrain
from .models.train_step import parse_step_options

TOP_LEVEL = {'name', 'model_type', 'scale', 'num_gpu', 'manual_seed', 'datasets', 'network_g', 'path', 'train',
             'val', 'logger', 'dist_params', 'find_unused_parameters', 'dhp', 'is_train', 'dist'}
SECTIONS = {
    'train': {'ema_decay', 'optim_g', 'scheduler', 'total_iter', 'warmup_iter', 'pixel_opt', 'perceptual_opt',
              'freeze_bn_iter', 'amp', 'capture'},
    'path': {'pretrain_network_g', 'strict_load_g', 'resume_state', 'param_key_g', 'ignore_resume_networks',
             'experiments_root', 'results_root', 'models', 'training_states', 'log', 'visualization'},
    'val': {'val_freq', 'save_img', 'suffix', 'pbar', 'metrics'},
    'logger': {'print_freq', 'save_checkpoint_freq', 'use_tb_logger', 'wandb'},
}
TYPES = {'name': str, 'model_type': str, 'scale': int, 'manual_seed': int, 'train.total_iter': int,
         'train.warmup_iter': int, 'train.freeze_bn_iter': int, 'train.ema_decay': (int, float),
         'val.val_freq': (int, float), 'logger.print_freq': int, 'logger.save_checkpoint_freq': (int, float)}
REQUIRED_TRAIN = ('name', 'model_type', 'network_g', 'datasets', 'train', 'path', 'logger')
# dataset keys BasicSR itself reads (options parser, build_dataloader, train loop), for every dataset type
BASICSR_DATASET_KEYS = frozenset({'name', 'type', 'phase', 'scale', 'batch_size_per_gpu', 'num_worker_per_gpu',
                                  'dataset_enlarge_ratio', 'use_shuffle', 'prefetch_mode', 'num_prefetch_queue',
                                  'pin_memory', 'persistent_workers'})
PATH_FILES = ('pretrain_network_g', 'resume_state')
# a number with an exponent but no dot, which YAML 1.1 (PyYAML, BasicSR) reads as a string
NUMBER_AS_TEXT = re.compile(r'[-+]?(\d+|\d*\.\d+)[eE][-+]?\d+')


def load_yaml(path: str) -> dict:
    if not os.path.isfile(path):
        raise OptionError(f'option file {path} does not exist')
    try:
        with open(path) as f:
            opt = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise OptionError(f'option file {path} is not valid YAML: {e}') from None
    if not isinstance(opt, dict):
        raise OptionError(f'option file {path} must hold a mapping of options')
    return opt


def _check_type(key: str, value) -> None:
    kind = TYPES.get(key)
    if kind is None or value is None:
        return
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) or not isinstance(value, kinds):
        names = ' or '.join(k.__name__ for k in kinds)
        raise OptionError(f'option {key} must be {names}, got {value!r}')


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
    for key, value in opt.items():
        _check_type(key, value)
    for section, known in SECTIONS.items():
        body = opt.get(section)
        if body is None:
            continue
        if not isinstance(body, dict):
            raise OptionError(f'option {section} must be a mapping')
        for key, value in body.items():
            if key not in known:
                raise _unknown_key(f'{section}.', key, known)
            _check_type(f'{section}.{key}', value)


def _check_network(opt: dict) -> None:
    if opt['model_type'] not in MODEL_REGISTRY._obj_map:
        raise OptionError(f"option model_type: unknown model {opt['model_type']!r}")
    net = opt['network_g']
    if not isinstance(net, dict) or 'type' not in net:
        raise OptionError('option network_g.type is required')
    if net['type'] not in ARCH_REGISTRY._obj_map:
        raise OptionError(f"option network_g.type: unknown architecture {net['type']!r}")
    allowed = _arch_keys(ARCH_REGISTRY.get(net['type']))
    if 'checkpoint' in net:
        with_compact_pretrain(opt)  # raises: says what to write instead
    for key in net:
        if key != 'type' and key not in allowed:
            raise _unknown_key('network_g.', key, allowed)


def _check_training(opt: dict) -> None:
    try:
        parse_step_options(opt['train'])
    except ValueError as e:
        raise OptionError(str(e)) from None
    if not isinstance(opt['train'].get('total_iter'), int) or opt['train']['total_iter'] < 1:
        raise OptionError('option train.total_iter must be a positive integer')
    freeze = opt['train'].get('freeze_bn_iter')
    if freeze is not None and freeze < 0:
        raise OptionError(f'option train.freeze_bn_iter must be >= 0 (BatchNorm frozen after that iteration), '
                          f'got {freeze}')
    if 'optim_g' not in opt['train'] or 'type' not in opt['train']['optim_g']:
        raise OptionError('option train.optim_g.type is required')
    if 'train' not in opt['datasets']:
        raise OptionError('option datasets.train is required for training')


def _check_dataset(phase: str, ds, check_paths: bool) -> None:
    if not isinstance(ds, dict) or 'type' not in ds:
        raise OptionError(f'option datasets.{phase}.type is required')
    if ds['type'] not in DATASET_REGISTRY._obj_map:
        raise OptionError(f"option datasets.{phase}.type: unknown dataset {ds['type']!r}")
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
    for key in ('batch_size_per_gpu', 'num_worker_per_gpu'):
        if key in ds and (isinstance(ds[key], bool) or not isinstance(ds[key], int) or ds[key] < 0):
            raise OptionError(f'option datasets.{phase}.{key} must be a non-negative integer, got {ds[key]!r}')


def _check_dhp(opt: dict, check_paths: bool) -> None:
    """The ``dhp`` section (:meth:`SearchOptions.from_opt`), and the latency table it names (``check_paths``)."""
    if opt['model_type'] != 'DHPSearchModel':
        if 'dhp' in opt:
            raise OptionError(f"option dhp is only used by model_type DHPSearchModel, not {opt['model_type']}")
        return
    search = SearchOptions.from_opt(opt.get('dhp'))
    if check_paths and search.target and not os.path.isfile(os.path.expanduser(search.target['table'])):
        raise OptionError(f"option dhp.target.table: file {search.target['table']} does not exist (build it: "
                          'python -m restore_dhp.latency profile ..., see README)')


def validate(opt: dict, is_train: bool = True, check_paths: bool = True) -> None:
    """Raise :class:`OptionError` naming the first bad key of ``opt`` (``check_paths``: files and folders exist)."""
    _check_numbers_as_text(opt)
    _check_sections(opt, is_train)
    if check_paths:
        for key in PATH_FILES:
            path = (opt.get('path') or {}).get(key)
            if path and not os.path.isfile(os.path.expanduser(str(path))):
                raise OptionError(f'option path.{key}: file {path} does not exist')
    _check_network(opt)
    if is_train:
        _check_training(opt)
    _check_dhp(opt, check_paths)
    if not isinstance(opt['datasets'], dict):
        raise OptionError('option datasets must be a mapping of phases (train, val, ...) to datasets')
    for phase, ds in opt['datasets'].items():
        _check_dataset(phase, ds, check_paths)


def validate_file(path: str, is_train: bool = True, check_paths: bool = True) -> dict:
    opt = load_yaml(path)
    try:
        validate(opt, is_train, check_paths)
    except OptionError as e:
        raise OptionError(f'{path}: {e}') from None
    return opt
