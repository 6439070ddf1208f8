"""Checks an option file before BasicSR starts, so a bad one fails at once with a message naming the key.

BasicSR accepts any YAML and fails (or silently ignores a typo) much later;
here unknown keys in the sections we know, wrong types, missing dataset
folders, unknown registry names and a bad ``dhp`` section are reported first.
"""
from __future__ import annotations

import inspect
import os

import yaml

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


def validate(opt: dict, is_train: bool = True, check_paths: bool = True) -> None:
    """Raise :class:`OptionError` naming the first bad key of ``opt`` (``check_paths``: files and folders exist)."""
    from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY

    unknown = sorted(set(opt) - TOP_LEVEL - {k for k in opt if k.startswith('network_')})
    if unknown:
        raise OptionError(f'unknown option {unknown[0]}')
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
                raise OptionError(f'unknown option {section}.{key}')
            _check_type(f'{section}.{key}', value)
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
            raise OptionError(f"unknown option network_g.{key} for {net['type']} (known: {', '.join(sorted(allowed))})")
    if is_train:
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
    if opt['model_type'] == 'DHPSearchModel':
        SearchOptions.from_opt(opt.get('dhp'))
    elif 'dhp' in opt:
        raise OptionError(f"option dhp is only used by model_type DHPSearchModel, not {opt['model_type']}")
    for phase, ds in opt['datasets'].items():
        if not isinstance(ds, dict) or 'type' not in ds:
            raise OptionError(f'option datasets.{phase}.type is required')
        if ds['type'] not in DATASET_REGISTRY._obj_map:
            raise OptionError(f"option datasets.{phase}.type: unknown dataset {ds['type']!r}")
        for key, value in ds.items():
            if check_paths and key.startswith('dataroot') and value is not None:
                for folder in value if isinstance(value, list) else [value]:
                    if not os.path.isdir(str(folder)):
                        raise OptionError(f'option datasets.{phase}.{key}: folder {folder} does not exist '
                                          '(see README: python -m restore_dhp.prepare_data)')
        for key in ('batch_size_per_gpu', 'num_worker_per_gpu'):
            if key in ds and (isinstance(ds[key], bool) or not isinstance(ds[key], int) or ds[key] < 0):
                raise OptionError(f'option datasets.{phase}.{key} must be a non-negative integer, got {ds[key]!r}')


def validate_file(path: str, is_train: bool = True, check_paths: bool = True) -> dict:
    opt = load_yaml(path)
    try:
        validate(opt, is_train, check_paths)
    except OptionError as e:
        raise OptionError(f'{path}: {e}') from None
    return opt
