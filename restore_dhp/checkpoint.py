"""Self-describing compact checkpoints: safetensors tensors + architecture and widths in the metadata.

The one loader every consumer (inference, benchmark, demo, option files) uses:
:func:`load_checkpoint` reads the metadata once, builds the network it
describes, then loads and checks the tensors.  No pickle is involved: a file
names its architecture class, the structure arguments and the per-group
widths, so it rebuilds without any other config.  A training state (BasicSR's
``net_g_<iter>.pth``, or a DHP search state ``net_g_search_<iter>.pth``) becomes
one with::

    python -m restore_dhp.checkpoint convert net_g_search_600.pth out.safetensors --arch srresnet
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Mapping, NamedTuple

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from . import archs  # (importing it registers the architectures)
from .archs.forms import CompactForm
from .commands import prog
from .fileio import atomic_path, check_output

FORMAT = 'restore_dhp.compact.v1'
_JSON_KEYS = ('arch_kwargs', 'widths', 'info')
ACCEPTED = ('accepted: a compact .safetensors checkpoint written by restore_dhp (e.g. weights/*.safetensors, '
            'experiments/<name>/models/net_g_<iter>.safetensors); from a training state .pth make one with '
            '"python -m restore_dhp.checkpoint convert STATE.pth OUT.safetensors --arch srresnet|dncnn"')
# Sane bounds on the structure a file may describe, checked before anything is built: far above any
# restoration network (SRResNet/DnCNN use 64 channels, EDSR 256; 16-17 blocks or layers), far below what
# would exhaust memory (one 4096-channel 3x3 conv is 600 MB).
MAX_CHANNELS = 4096          # widths, num_feat, in_channels, embedding_dim
MAX_DEPTH = 256              # num_blocks, num_layers
MAX_SCALE = 8
DEPTH_KEYS = ('num_blocks', 'num_layers')


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and the problem."""


class LoadedCheckpoint(NamedTuple):
    model: nn.Module           # eval mode, on the requested device
    meta: dict[str, Any]       # arch, task, scale, arch_kwargs, widths, info (read once)


def save_compact(model: nn.Module, path: str | os.PathLike, info: dict[str, Any] | None = None) -> None:
    """Write a plain (baseline or compact) network; ``info`` is free-form provenance (JSON-serialisable)."""
    if not isinstance(model, CompactForm):
        raise TypeError(f'{type(model).__name__} is not a plain network: compact a DHP model '
                        '(model.compact()) before saving it as a compact checkpoint')
    desc = model.describe()
    metadata = {'format': FORMAT, 'arch': desc['arch'], 'task': desc['task'], 'scale': str(desc['scale']),
                'arch_kwargs': json.dumps(desc['arch_kwargs'], sort_keys=True),
                'widths': json.dumps(desc['widths'], sort_keys=True),
                'info': json.dumps(info or {}, sort_keys=True)}
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:  # never a half-written checkpoint under the real name
        save_file(tensors, str(tmp), metadata=metadata)


def _open(path) -> Any:
    if not os.path.exists(path):
        raise CheckpointError(f'{path}: no such file')
    if os.path.isdir(path):
        raise CheckpointError(f'{path}: is a folder, not a checkpoint file')
    try:
        return safe_open(str(path), framework='pt')
    except (SafetensorError, OSError, ValueError) as e:
        kind = 'a PyTorch pickle' if str(path).endswith(('.pth', '.pt')) else 'not a readable safetensors file'
        raise CheckpointError(f'{path}: {kind} ({str(e).splitlines()[0]}); {ACCEPTED}') from None


def _parse_metadata(path, raw: Mapping[str, str] | None) -> dict[str, Any]:
    raw = raw or {}
    if raw.get('format') != FORMAT:
        raise CheckpointError(f'{path}: no restore_dhp compact-model metadata (format={raw.get("format")!r}); '
                              f'{ACCEPTED}')
    meta: dict[str, Any] = dict(raw)
    try:
        for key in _JSON_KEYS:
            meta[key] = json.loads(raw[key])
        meta['scale'] = int(raw['scale'])
    except (KeyError, ValueError) as e:
        raise CheckpointError(f'{path}: corrupt metadata ({e})') from None
    _check_structure(meta, path)
    return meta


def _bounded(path, name: str, value, top: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
        raise CheckpointError(f'{path}: metadata {name}={value!r} is not an integer in [1, {top}]; '
                              'the file is damaged or not made by restore_dhp')


def _check_structure(meta: Mapping[str, Any], path) -> None:
    """Every width, channel and block count of the metadata is an integer under the sane bounds."""
    if not isinstance(meta['arch_kwargs'], dict) or not isinstance(meta['widths'], dict):
        raise CheckpointError(f'{path}: corrupt metadata (arch_kwargs and widths must be mappings)')
    _bounded(path, 'scale', meta['scale'], MAX_SCALE)
    for key, value in meta['arch_kwargs'].items():
        top = MAX_SCALE if key == 'scale' else MAX_DEPTH if key in DEPTH_KEYS else MAX_CHANNELS
        _bounded(path, f'arch_kwargs.{key}', value, top)
    for group, width in meta['widths'].items():
        _bounded(path, f'widths.{group}', width, MAX_CHANNELS)


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's metadata (arch, task, scale, arch_kwargs, widths, info), validated."""
    with _open(path) as f:
        return _parse_metadata(path, f.metadata())


def read_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file (no metadata check)."""
    try:
        with _open(path) as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f'{path}: tensors cannot be read ({e})') from None


def build_from_metadata(meta: Mapping[str, Any], path='checkpoint') -> nn.Module:
    """The (untrained) plain network the metadata describes."""
    try:
        cls = ARCH_REGISTRY.get(meta['arch'])
    except KeyError:
        raise CheckpointError(f"{path}: unknown architecture {meta['arch']!r}") from None
    try:
        return cls(widths=meta['widths'], **meta['arch_kwargs'])
    except (ValueError, TypeError) as e:
        raise CheckpointError(f'{path}: {e}') from None


def check_shapes(model: nn.Module, shapes: Mapping[str, tuple], path) -> None:
    """The tensor names and shapes of a file (``shapes``) are exactly ``model``'s (which may live on the meta
    device); else a :class:`CheckpointError` naming the file and the first difference."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f'{path}: tensors do not match {type(model).__name__}: '
                              f'missing {missing[:3]}{"..." if len(missing) > 3 else ""}, '
                              f'unexpected {unexpected[:3]}{"..." if len(unexpected) > 3 else ""}')
    for name, shape in shapes.items():
        if tuple(shape) != expected[name]:
            raise CheckpointError(f'{path}: tensor {name} has shape {tuple(shape)}, the widths in the '
                                  f'metadata need {expected[name]}')


def load_state_checked(model: nn.Module, state: dict[str, torch.Tensor], path) -> None:
    """Load ``state`` into ``model``, naming the file and the first problem on any mismatch."""
    check_shapes(model, {k: tuple(v.shape) for k, v in state.items()}, path)
    for name, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f'{path}: tensor {name} holds NaN or infinite values')
    model.load_state_dict(state, strict=True)


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = 'cpu') -> LoadedCheckpoint:
    """Read the metadata once, build the network it describes, load and check the tensors: ``(model, meta)``.

    Nothing is allocated before the file is known to agree with itself: the metadata's widths, channels
    and block counts are bounded (:data:`MAX_CHANNELS`, :data:`MAX_DEPTH`), and the network they describe,
    built on the meta device, must have exactly the tensor names and shapes the file's header lists.
    The network then takes the memory of the file's tensors, no more.
    """
    with _open(path) as f:
        meta = _parse_metadata(path, f.metadata())
        with torch.device('meta'):
            skeleton = build_from_metadata(meta, path)
        try:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f'{path}: tensors cannot be read ({e})') from None
        check_shapes(skeleton, shapes, path)
        model = build_from_metadata(meta, path)
        try:
            state = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f'{path}: tensors cannot be read ({e})') from None
    load_state_checked(model, state, path)
    return LoadedCheckpoint(model.to(device).eval(), meta)


def load_compact(path: str | os.PathLike, device: str | torch.device = 'cpu') -> nn.Module:
    """Build the network a compact checkpoint describes, load its weights, and return it in eval mode."""
    return load_checkpoint(path, device).model


# ----------------------------------------------------------------------------- training state -> compact
def _widths_from_shapes(net: nn.Module, state: Mapping[str, torch.Tensor], path) -> dict[str, int]:
    widths = {}
    for name, c in net.spec.convs.items():
        weight = state.get(f'convs.{name}.weight')
        if weight is None:
            raise CheckpointError(f'{path}: no tensor convs.{name}.weight; is --arch right?')
        widths[c.out_group], widths[c.in_group] = weight.shape[0] // c.out_per_channel, weight.shape[1]
    return {g: widths[g] for g in net.spec.prunable_groups}


def convert_training_state(state_path: str | os.PathLike, out_path: str | os.PathLike, arch: str,
                           overwrite: bool = False, **arch_kwargs) -> nn.Module:
    """Write the compact checkpoint of a BasicSR network state (``{'params': ...}``): a plain network's
    (widths read from the tensor shapes) or a DHP search state's (compacted with its masks).

    ``out_path`` must not be ``state_path``, and must not exist unless ``overwrite``
    (:func:`restore_dhp.fileio.check_output`, checked before anything is read)."""
    check_output(out_path, [state_path], overwrite, 'output')
    try:
        loaded = torch.load(str(state_path), map_location='cpu', weights_only=True)
    except Exception as e:  # torch.load raises many types for a foreign file
        raise CheckpointError(f'{state_path}: not a PyTorch training state ({str(e).splitlines()[0]})') from None
    state = loaded.get('params', loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f'{state_path}: holds no network state dict')
    if any(k == 'latents' or k.startswith(('latents.', 'banks.')) for k in state):  # a DHP search state
        net = archs.dhp_class_of(arch)(**arch_kwargs)
        net.load_state_dict(state)
        model = net.compact()
    else:
        cls = archs.compact_class(arch)
        with torch.device('meta'):
            widths = _widths_from_shapes(cls(**arch_kwargs), state, state_path)
        model = cls(widths=widths, **arch_kwargs)
        load_state_checked(model, state, state_path)
    save_compact(model, out_path, info={'converted_from': os.path.basename(str(state_path))})
    return model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=prog('checkpoint'),
                                     description='Convert a training state (.pth) to a compact checkpoint.')
    sub = parser.add_subparsers(dest='command', required=True)
    convert = sub.add_parser('convert', help='net_g_<iter>.pth or net_g_search_<iter>.pth -> .safetensors')
    convert.add_argument('state')
    convert.add_argument('out')
    convert.add_argument('--arch', required=True, choices=sorted(archs.aliases()))
    convert.add_argument('--arch-kwargs', default='{}', help='structure arguments as JSON, e.g. \'{"num_blocks": 16}\'')
    convert.add_argument('--overwrite', action='store_true', help='replace OUT if it exists (never STATE)')
    args = parser.parse_args(argv)
    try:
        kwargs = json.loads(args.arch_kwargs)
        model = convert_training_state(args.state, args.out, args.arch, args.overwrite, **kwargs)
    except (CheckpointError, ValueError, TypeError, RuntimeError) as e:
        print(f'error: {str(e).splitlines()[0]}', file=sys.stderr)
        return 2
    print(f'wrote {args.out}: {type(model).__name__}, widths {model.kept_widths()}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
