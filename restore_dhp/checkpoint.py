"""Self-describing compact checkpoints: safetensors tensors + architecture and widths in the metadata.

The one loader every consumer (inference, benchmark, demo, option files) uses.
No pickle is involved: a file names its architecture class, the structure
arguments and the per-group widths, so it rebuilds without any other config.
"""
from __future__ import annotations

import json
import os
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

FORMAT = 'restore_dhp.compact.v1'
_JSON_KEYS = ('arch_kwargs', 'widths', 'info')


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and the problem."""


def save_compact(model: nn.Module, path: str | os.PathLike, info: dict[str, Any] | None = None) -> None:
    """Write a plain (baseline or compact) network; ``info`` is free-form provenance (JSON-serialisable)."""
    from .archs.forms import CompactForm
    if not isinstance(model, CompactForm):
        raise TypeError(f'{type(model).__name__} is not a plain network: compact a DHP model '
                        '(model.compact()) before saving it as a compact checkpoint')
    desc = model.describe()
    metadata = {'format': FORMAT, 'arch': desc['arch'], 'task': desc['task'], 'scale': str(desc['scale']),
                'arch_kwargs': json.dumps(desc['arch_kwargs'], sort_keys=True),
                'widths': json.dumps(desc['widths'], sort_keys=True),
                'info': json.dumps(info or {}, sort_keys=True)}
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp'
    save_file(tensors, tmp, metadata=metadata)
    os.replace(tmp, path)  # never leave a half-written checkpoint under the real name
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)  # ordinary file permissions (the writer's temporary file is private)


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's metadata (arch, task, scale, arch_kwargs, widths, info), validated."""
    from safetensors import safe_open
    _check_file(path)
    try:
        with safe_open(str(path), framework='pt') as f:
            raw = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f'{path}: not a readable safetensors file ({e})') from None
    if raw.get('format') != FORMAT:
        raise CheckpointError(f'{path}: no restore_dhp compact-model metadata (format={raw.get("format")!r}); '
                              f'expected a checkpoint written by restore_dhp.checkpoint.save_compact')
    meta: dict[str, Any] = dict(raw)
    try:
        for key in _JSON_KEYS:
            meta[key] = json.loads(raw[key])
        meta['scale'] = int(raw['scale'])
    except (KeyError, ValueError) as e:
        raise CheckpointError(f'{path}: corrupt metadata ({e})') from None
    return meta


def read_compact(path: str | os.PathLike, expect_arch: str | None = None) -> tuple[dict, dict[str, torch.Tensor]]:
    meta = read_metadata(path)
    if expect_arch is not None and meta['arch'] != expect_arch:
        raise CheckpointError(f"{path}: holds a {meta['arch']}, not a {expect_arch}")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f'{path}: tensors cannot be read ({e})') from None
    return meta, state


def load_state_checked(model: nn.Module, state: dict[str, torch.Tensor], path) -> None:
    """Load ``state`` into ``model``, naming the file and the first problem on any mismatch."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f'{path}: tensors do not match {type(model).__name__}: '
                              f'missing {missing[:3]}{"..." if len(missing) > 3 else ""}, '
                              f'unexpected {unexpected[:3]}{"..." if len(unexpected) > 3 else ""}')
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(f'{path}: tensor {name} has shape {tuple(tensor.shape)}, the widths in the '
                                  f'metadata need {tuple(expected[name].shape)}')
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f'{path}: tensor {name} holds NaN or infinite values')
    model.load_state_dict(state, strict=True)


def load_compact(path: str | os.PathLike, device: str | torch.device = 'cpu') -> nn.Module:
    """Build the network a compact checkpoint describes, load its weights, and return it in eval mode."""
    from basicsr.utils.registry import ARCH_REGISTRY

    from . import archs  # noqa: F401  (registers the architectures)
    meta = read_metadata(path)
    try:
        cls = ARCH_REGISTRY.get(meta['arch'])
    except KeyError:
        raise CheckpointError(f"{path}: unknown architecture {meta['arch']!r}") from None
    try:
        model = cls(checkpoint=str(path))
    except CheckpointError:
        raise
    except (ValueError, TypeError) as e:
        raise CheckpointError(f'{path}: {e}') from None
    model.checkpoint_path = str(path)
    model.checkpoint_info = meta['info']
    return model.to(device).eval()


def _check_file(path) -> None:
    if not os.path.exists(path):
        raise CheckpointError(f'{path}: no such file')
    if os.path.isdir(path):
        raise CheckpointError(f'{path}: is a folder, not a checkpoint file')
