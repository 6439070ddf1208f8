"""Self-describing compact checkpoints: safetensors tensors + architecture and widths in the metadata.

The one loader every consumer (inference, benchmark, demo, option files) uses:
:func:`load_checkpoint` reads the metadata once, builds the network it describes
(any registered architecture: its name, its constructor arguments as JSON, the
width of each traced group), then loads and checks the tensors.  No pickle is
involved.  A training state (BasicSR's ``net_g_<iter>.pth``, or a DHP search
state ``net_g_search_<iter>.pth``) becomes one with::

    python -m restore_dhp.checkpoint convert net_g_search_600.pth out.safetensors --arch srresnet
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any, Mapping, NamedTuple

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from . import network
from .commands import prog
from .dhp import DHPNet, TraceError
from .fileio import atomic_path, check_output

FORMAT = 'restore_dhp.compact.v1'
_JSON_KEYS = ('arch_kwargs', 'widths', 'info')
ACCEPTED = ('accepted: a compact .safetensors checkpoint written by restore_dhp (e.g. weights/*.safetensors, '
            'experiments/<name>/models/net_g_<iter>.safetensors); from a training state .pth make one with '
            '"python -m restore_dhp.checkpoint convert STATE.pth OUT.safetensors --arch NAME"')
# Sane bounds on what a file (or a command line) may describe, checked before anything is built: far above
# any restoration network, far below what would exhaust memory or time (one 4096-channel 3x3 conv is 600 MB).
MAX_CHANNELS = 4096      # every width
MAX_SCALE = 8
MAX_ARG = 4096           # every integer constructor argument
MAX_ARG_ITEMS = 64       # entries of the constructor arguments, nested ones counted
MAX_MODULES = 8192       # modules of the network the arguments build (checked on the meta device)
MAX_PARAMS = 500_000_000


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and the problem."""


class LoadedCheckpoint(NamedTuple):
    model: nn.Module           # eval mode, on the requested device
    meta: dict[str, Any]       # arch, task, scale, arch_kwargs, widths, info (read once)


def save_compact(model: nn.Module, path: str | os.PathLike, info: dict[str, Any] | None = None) -> None:
    """Write a plain (baseline or compact) network built here; ``info`` is free-form provenance (JSON)."""
    if isinstance(model, DHPNet):
        raise TypeError('a DHP search network is not a compact network: compact it (net.compact()) first')
    desc = network.structure(model).describe()
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


def _bounded(path, name: str, value, low: int, top: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= top:
        raise CheckpointError(f'{path}: {name}={value!r} is not an integer in [{low}, {top}]; '
                              'the file is damaged or not made by restore_dhp')


def check_arch_kwargs(kwargs, where) -> None:
    """Constructor arguments a file or a command line may give: a mapping of plain JSON values, integers at most
    :data:`MAX_ARG` in size, at most :data:`MAX_ARG_ITEMS` entries (``CheckpointError`` naming ``where``)."""
    if not isinstance(kwargs, dict):
        raise CheckpointError(f'{where}: arch_kwargs must be a mapping of constructor arguments')
    count = 0

    def visit(name, value, depth):
        nonlocal count
        count += 1
        if count > MAX_ARG_ITEMS or depth > 3:
            raise CheckpointError(f'{where}: arch_kwargs holds more than {MAX_ARG_ITEMS} values or nests too deep')
        if isinstance(value, bool) or value is None or (isinstance(value, str) and len(value) <= 256):
            return
        if isinstance(value, int):
            return _bounded(where, f'arch_kwargs.{name}', value, -MAX_ARG, MAX_ARG)
        if isinstance(value, float):
            if not math.isfinite(value) or abs(value) > MAX_ARG:
                raise CheckpointError(f'{where}: arch_kwargs.{name}={value!r} is not a finite number under {MAX_ARG}')
            return
        if isinstance(value, (list, tuple)):
            return [visit(f'{name}[{i}]', v, depth + 1) for i, v in enumerate(value)]
        if isinstance(value, dict):
            return [visit(f'{name}.{k}', v, depth + 1) for k, v in value.items()]
        raise CheckpointError(f'{where}: arch_kwargs.{name} is not a plain JSON value')

    for key, value in kwargs.items():
        visit(key, value, 0)


def _check_structure(meta: Mapping[str, Any], path) -> None:
    """Every width, scale and constructor argument of the metadata is within the sane bounds."""
    if not isinstance(meta['widths'], dict) or not isinstance(meta['arch'], str):
        raise CheckpointError(f'{path}: corrupt metadata (arch must be a name, widths a mapping)')
    _bounded(path, 'metadata scale', meta['scale'], 1, MAX_SCALE)
    check_arch_kwargs(meta['arch_kwargs'], path)
    for group, width in meta['widths'].items():
        _bounded(path, f'metadata widths.{group}', width, 1, MAX_CHANNELS)


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


def build_checked(arch: str, arch_kwargs: Mapping[str, Any], widths: Mapping[str, int] | None, where,
                  device: str | torch.device = 'cpu') -> nn.Module:
    """The (untrained) network ``arch(**arch_kwargs)`` at ``widths``, built only once its size is known sane: on
    the meta device first (module and parameter counts bounded), then on ``device``."""
    try:
        cls = network.arch_class(arch)
    except KeyError:
        raise CheckpointError(f'{where}: unknown architecture {arch!r} (a network of your own: import the module '
                              'that registers it first, or name it in $RESTORE_DHP_ARCHS)') from None
    try:
        with torch.device('meta'):
            skeleton = cls(**arch_kwargs)
    except Exception as e:  # a constructor given values it cannot use may raise anything: name what it was given
        raise CheckpointError(f'{where}: {arch} cannot be built with {dict(arch_kwargs)} '
                              f'({str(e).splitlines()[0] if str(e) else type(e).__name__})') from None
    try:
        modules, params = sum(1 for _ in skeleton.modules()), sum(p.numel() for p in skeleton.parameters())
        if modules > MAX_MODULES or params > MAX_PARAMS:
            raise CheckpointError(f'{where}: {arch} with {dict(arch_kwargs)} has {modules} modules and {params} '
                                  f'parameters, above the bounds ({MAX_MODULES}, {MAX_PARAMS})')
        return network.build(arch, arch_kwargs, widths, device)
    except (ValueError, TypeError, TraceError, RuntimeError) as e:
        if isinstance(e, CheckpointError):
            raise
        built = f' (built with {dict(arch_kwargs)})' if isinstance(e, TraceError) else ''  # what made it untraceable
        raise CheckpointError(f'{where}: {str(e).splitlines()[0] if str(e) else type(e).__name__}{built}') from None


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


def check_values(state: Mapping[str, torch.Tensor], path) -> None:
    """Values a network can run with: floating-point tensors (integer counters aside), all finite, no negative
    BatchNorm variance (``CheckpointError`` naming the tensor)."""
    for name, tensor in state.items():
        if name.endswith('num_batches_tracked'):
            continue
        if not tensor.is_floating_point():
            raise CheckpointError(f'{path}: tensor {name} is {str(tensor.dtype).replace("torch.", "")}, not floating '
                                  'point: the file was not written by a training')
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f'{path}: tensor {name} holds NaN or infinite values')
        if name.endswith('running_var') and (tensor < 0).any():
            raise CheckpointError(f'{path}: tensor {name} holds a negative variance')


def load_state_checked(model: nn.Module, state: dict[str, torch.Tensor], path) -> None:
    """Load ``state`` into ``model``, naming the file and the first problem on any mismatch."""
    check_shapes(model, {k: tuple(v.shape) for k, v in state.items()}, path)
    check_values(state, path)
    model.load_state_dict(state, strict=True)


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = 'cpu') -> LoadedCheckpoint:
    """Read the metadata once, build the network it describes, load and check the tensors: ``(model, meta)``.

    Nothing is allocated before the file is known to agree with itself: the metadata's widths and arguments
    are bounded, and the network they describe, built on the meta device, must have exactly the tensor names
    and shapes the file's header lists.  The network then takes the memory of the file's tensors, no more.
    """
    with _open(path) as f:
        meta = _parse_metadata(path, f.metadata())
        skeleton = build_checked(meta['arch'], meta['arch_kwargs'], meta['widths'], path, 'meta')
        try:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f'{path}: tensors cannot be read ({e})') from None
        check_shapes(skeleton, shapes, path)
        model = build_checked(meta['arch'], meta['arch_kwargs'], meta['widths'], path)
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
def widths_from_shapes(arch: str, arch_kwargs: Mapping[str, Any], state: Mapping[str, torch.Tensor],
                       path) -> dict[str, int]:
    """Each prunable group's width, read off the conv weights of a plain network's state dict."""
    spec = network.spec_of(arch, arch_kwargs)
    widths = {}
    for module, c in spec.modules.items():
        weight = state.get(f'{module}.weight')
        if weight is None or weight.dim() != 4:
            raise CheckpointError(f'{path}: no 4-D tensor {module}.weight; is the architecture right?')
        out = weight.shape[1] if c.transposed else weight.shape[0]
        widths[c.out_group] = out // c.out_per_channel
    return {g: widths.get(g, spec.group_widths[g]) for g in spec.prunable_groups}


def convert_training_state(state_path: str | os.PathLike, out_path: str | os.PathLike, arch: str,
                           overwrite: bool = False, **arch_kwargs) -> nn.Module:
    """Write the compact checkpoint of a BasicSR network state (``{'params': ...}``): a plain network's
    (widths read from the tensor shapes) or a DHP search state's (compacted with its masks).

    ``out_path`` must not be ``state_path``, and must not exist unless ``overwrite``
    (:func:`restore_dhp.fileio.check_output`, checked before anything is read)."""
    check_output(out_path, [state_path], overwrite, 'output')
    check_arch_kwargs(arch_kwargs, '--arch-kwargs')
    build_checked(arch, arch_kwargs, None, '--arch-kwargs', 'meta')  # sane before anything is read or traced
    try:
        loaded = torch.load(str(state_path), map_location='cpu', weights_only=True)
    except Exception as e:  # torch.load raises many types for a foreign file
        raise CheckpointError(f'{state_path}: not a PyTorch training state ({str(e).splitlines()[0]})') from None
    state = loaded.get('params', loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f'{state_path}: holds no network state dict')
    if 'latents' in state:  # a DHP search state
        plain = build_checked(arch, arch_kwargs, None, state_path)
        net = DHPNet(plain, network.structure(plain).spec)
        try:
            net.load_state_dict(state)
        except RuntimeError as e:
            raise CheckpointError(f'{state_path}: not a DHP search state of {arch} ({str(e).splitlines()[0]})') from None
        model, widths = net.compact()
        network.with_widths(model, widths)
    else:
        widths = widths_from_shapes(arch, arch_kwargs, state, state_path)
        model = build_checked(arch, arch_kwargs, widths, state_path)
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
    convert.add_argument('--arch', required=True,
                         help='registered architecture (short names: ' + ', '.join(sorted(network.aliases())) + ')')
    convert.add_argument('--arch-kwargs', default='{}', help='constructor arguments as JSON, e.g. \'{"num_blocks": 16}\'')
    convert.add_argument('--overwrite', action='store_true', help='replace OUT if it exists (never STATE)')
    args = parser.parse_args(argv)
    try:
        kwargs = json.loads(args.arch_kwargs)
        check_arch_kwargs(kwargs, '--arch-kwargs')
        model = convert_training_state(args.state, args.out, args.arch, args.overwrite, **kwargs)
    except (CheckpointError, ValueError, TypeError, RuntimeError, OSError) as e:
        print(f'error: {str(e).splitlines()[0]}', file=sys.stderr)
        return 2
    print(f'wrote {args.out}: {network.structure(model).arch}, widths {network.structure(model).widths}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
