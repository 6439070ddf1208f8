"""The option check's look at files and this machine: pretrain and resume files, training images big enough
for the patch, GPUs and wandb, and a latency table that prices the network (:mod:`restore_dhp.options` runs
these when it checks paths).  Each raises :class:`~restore_dhp.errors.OptionError` naming the key.
"""
from __future__ import annotations

import importlib.util
import os
import zipfile

from .checkpoint import CheckpointError, read_metadata
from .data.imageio import ImageReadError, list_images, read_file_header
from .errors import OptionError
from .latency import LatencyError, table_for_network

PATH_FILES = ('pretrain_network_g', 'resume_state')


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_patch_fits(key: str, gt_size: int, roots) -> None:
    """Some training image is at least ``gt_size`` on its shorter side (sizes read from the file headers)."""
    largest, folder = 0, None
    for folder in roots if isinstance(roots, list) else [roots]:
        for path in list_images(os.path.expanduser(str(folder))):
            try:
                header = read_file_header(path)
            except ImageReadError:
                continue  # the dataset reports unreadable files itself
            largest = max(largest, min(header.width, header.height))
            if largest >= gt_size:
                return
    raise OptionError(f'option {key}={gt_size} is larger than every training image (the largest has a '
                      f'shorter side of {largest} px in {folder}); use a smaller patch')


def check_path_files(opt: dict) -> None:
    """``path.pretrain_network_g`` and ``path.resume_state`` exist and are checkpoints (a header check)."""
    for key in PATH_FILES:
        path = (opt.get('path') or {}).get(key)
        if not path:
            continue
        path = os.path.expanduser(str(path))
        if not os.path.isfile(path):
            raise OptionError(f'option path.{key}: file {path} does not exist')
        if path.endswith('.safetensors'):
            try:
                read_metadata(path)
            except CheckpointError as e:
                raise OptionError(f'option path.{key}: {e}') from None
        elif not zipfile.is_zipfile(path):  # what torch.save writes (.pth, .state)
            raise OptionError(f'option path.{key}: {path} is neither a compact .safetensors checkpoint nor a '
                              'PyTorch file written by training (.pth, .state)')


def check_machine(opt: dict) -> None:
    """What this machine must provide: the GPUs asked for, and wandb when ``logger.wandb`` is used."""
    num_gpu = opt.get('num_gpu')
    if num_gpu is not None and num_gpu != 'auto':
        import torch
        available = torch.cuda.device_count()
        if not _is_int(num_gpu) or not 0 <= num_gpu <= available:
            raise OptionError(f'option num_gpu must be auto or an integer in [0, {available}] (this machine has '
                              f'{available} CUDA device(s); 0 trains on the CPU), got {num_gpu!r}')
    wandb = (opt.get('logger') or {}).get('wandb')
    if isinstance(wandb, dict) and wandb.get('project') is not None and importlib.util.find_spec('wandb') is None:
        raise OptionError('option logger.wandb: wandb is not installed; pip install wandb, or remove logger.wandb')


def check_latency_table(path: str, network_g: dict) -> list[str]:
    """``dhp.target.table``: a latency table file, measured for ``network_g`` (:func:`table_for_network`, read
    here, before BasicSR creates or renames anything); returns a warning when it was measured on another machine."""
    table = os.path.expanduser(path)
    if not os.path.isfile(table):
        raise OptionError(f'option dhp.target.table: file {path} does not exist (build it: '
                          'python -m restore_dhp.latency profile ..., see README)')
    try:
        _, warning = table_for_network(table, network_g['type'], {k: v for k, v in network_g.items() if k != 'type'})
    except LatencyError as e:
        raise OptionError(f'option dhp.target.table: {e}') from None
    return [warning] if warning else []
