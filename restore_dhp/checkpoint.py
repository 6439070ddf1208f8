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

from . import archs  # noqa: F401  (registers the architectures)
from .archs.forms import CompactForm
from .cli import prog

FORMAT = 'restore_dhp.compact.v1'
_JSON_KEYS = ('arch_kwargs', 'widths', 'info')
#: short architecture names -> the registered plain class (the DHP class ends in 'DHP' instead of 'Compact')
ARCH_ALIASES = {'srresnet': 'SRResNetCompact', 'dncnn': 'DnCNNCompact'}
ACCEPTED = ('accepted: a compact .safetensors checkpoint written by restore_dhp (e.g. weights/*.safetensors, '
            'experiments/<name>/models/net_g_<iter>.safetensors); from a training state .pth make one with '
            '"python -m restore_dhp.checkpoint convert STATE.pth OUT.safetensors --arch srresnet|dncnn"')


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
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp'
    save_file(tensors, tmp, metadata=metadata)
    os.replace(tmp, path)  # never leave a half-written checkpoint under the real name
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)  # ordinary file permissions (the writer's temporary file is private)


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
    return meta


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


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = 'cpu') -> LoadedCheckpoint:
    """Read the metadata once, build the network it describes, load and check the tensors: ``(model, meta)``."""
    with _open(path) as f:
        meta = _parse_metadata(path, f.metadata())
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
                           **arch_kwargs) -> nn.Module:
    """Write the compact checkpoint of a BasicSR network state (``{'params': ...}``): a plain network's
    (widths read from the tensor shapes) or a DHP search state's (compacted with its masks)."""
    try:
        loaded = torch.load(str(state_path), map_location='cpu', weights_only=True)
    except Exception as e:  # torch.load raises many types for a foreign file
        raise CheckpointError(f'{state_path}: not a PyTorch training state ({str(e).splitlines()[0]})') from None
    state = loaded.get('params', loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f'{state_path}: holds no network state dict')
    compact_name = ARCH_ALIASES.get(arch, arch)
    if any(k == 'latents' or k.startswith(('latents.', 'banks.')) for k in state):  # a DHP search state
        net = ARCH_REGISTRY.get(compact_name.replace('Compact', 'DHP'))(**arch_kwargs)
        net.load_state_dict(state)
        model = net.compact()
    else:
        cls = ARCH_REGISTRY.get(compact_name)
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
    convert.add_argument('--arch', required=True, choices=sorted(ARCH_ALIASES))
    convert.add_argument('--arch-kwargs', default='{}', help='structure arguments as JSON, e.g. \'{"num_blocks": 16}\'')
    args = parser.parse_args(argv)
    try:
        kwargs = json.loads(args.arch_kwargs)
        model = convert_training_state(args.state, args.out, args.arch, **kwargs)
    except (CheckpointError, ValueError, TypeError, RuntimeError) as e:
        print(f'error: {str(e).splitlines()[0]}', file=sys.stderr)
        return 2
    print(f'wrote {args.out}: {type(model).__name__}, widths {model.kept_widths()}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
