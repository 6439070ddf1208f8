"""Export a compact checkpoint to ONNX: ``python -m restore_dhp.export --weights W --onnx OUT.onnx``.

The graph takes ``image`` (N x C x H x W float32, 0-1) and returns ``restored`` (N x C x sH x sW),
with batch, height and width dynamic (SR outputs have their own dimension names: ``height_x4``,
``width_x4``).  BatchNorm is folded into the convs (the model is exported in
eval mode).  The file is validated with the onnx checker and describes itself in its
``metadata_props``: ``format``, ``arch``, ``task``, ``scale``, ``arch_kwargs`` and ``widths`` (JSON),
as the safetensors checkpoint does, and how to feed it: ``input_range`` (``0-1``: divide 8-bit
pixels by 255), ``channel_order`` (``RGB`` or ``gray``; NCHW, no mean shift), ``clamp`` (``none``:
the output is not clipped in the graph, as torch's is not, so clip it to 0-1 before quantising)
and ``restore_dhp_version``.  OpenCV DNN loads the files with its current parser (a parameter
shared by two layers, SRResNet's upsampler PReLU, is stored once instead of through an Identity
node).  With onnxruntime installed, the export is checked against torch on a random input before it is
written and the largest absolute difference is printed; a difference that is not finite (weights that give
NaN) or above :data:`PARITY_LIMIT` is refused and nothing is written.  ``--opset`` is 7 to 20 (the
TorchScript exporter's range).
"""
from __future__ import annotations

import argparse
import copy
import io
import json
import os
import sys
import warnings

import numpy as np
import torch
from torch import nn

from . import network
from .checkpoint import CheckpointError, load_compact
from .commands import prog, run_entry
from .fileio import OutputError, check_output, write_bytes

try:
    import onnxruntime as ort
except ImportError:  # optional: only the parity check needs it
    ort = None

FORMAT = 'restore_dhp.onnx.v1'
OPSET = 17
OPSETS = range(7, 21)  # the TorchScript exporter's (torch.onnx); every one runs in onnxruntime within 2e-6
PARITY_LIMIT = 1e-3    # onnxruntime against torch, on 0-1 images: measured 1e-6 to 2e-6
INPUT_NAME, OUTPUT_NAME = 'image', 'restored'
INPUT_RANGE = '0-1'  # float32 pixels divided by their peak (255 for 8-bit), no mean shift
CLAMP = 'none'       # the graph does not clip its output (torch's forward does not either): clip to 0-1 yourself
EXIT_ERROR = 2


class ExportError(ValueError):
    """An export that cannot be done; the message is one line."""


def _onnx():
    """The onnx package, imported on first use (it takes most of a second)."""
    try:
        import onnx
    except ImportError:  # optional: only export needs it
        raise ExportError('ONNX export needs the onnx package: pip install onnx') from None
    return onnx


def onnx_metadata(model: nn.Module) -> dict[str, str]:
    """What the ONNX file says about itself and how to feed it (string values, JSON for the structured ones)."""
    from ._version import __version__
    facts = network.facts(model)
    desc = facts.describe()
    return {'format': FORMAT, 'arch': desc['arch'], 'task': desc['task'], 'scale': str(desc['scale']),
            'arch_kwargs': json.dumps(desc['arch_kwargs'], sort_keys=True),
            'widths': json.dumps(desc['widths'], sort_keys=True),
            'input_range': INPUT_RANGE, 'channel_order': 'RGB' if facts.in_channels == 3 else 'gray',
            'clamp': CLAMP, 'restore_dhp_version': __version__}


def inline_shared_initializers(graph) -> int:
    """Feed the consumers of each ``Identity`` of an initializer from the initializer itself; returns how many.

    The TorchScript exporter writes a parameter used by several layers (SRResNet's shared PReLU) once and
    passes it on through ``Identity`` nodes (chains of them), which OpenCV DNN's current parser refuses.
    """
    initializers = {t.name for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    dropped = 0
    while True:
        found = [n for n in graph.node if n.op_type == 'Identity' and n.input[0] in initializers
                 and n.output[0] not in outputs]
        if not found:
            return dropped
        renames = {n.output[0]: n.input[0] for n in found}
        for node in found:
            graph.node.remove(node)
        for node in graph.node:
            for i, name in enumerate(node.input):
                node.input[i] = renames.get(name, name)
        dropped += len(found)


def onnx_model_bytes(model: nn.Module, opset: int = OPSET) -> bytes:
    """The serialised, checked ONNX model of a compact network (baseline or pruned) in eval mode."""
    from ._version import __version__
    onnx = _onnx()
    source = copy.deepcopy(model).float().cpu().eval()
    if opset not in OPSETS:
        raise ExportError(f'opset {opset} is not one the exporter writes; choose {OPSETS[0]} to {OPSETS[-1]} '
                          f'(default {OPSET})')
    facts = network.facts(model)
    example = torch.rand(1, facts.in_channels, 16, 16)
    axes = {0: 'batch', 2: 'height', 3: 'width'}
    tail = f'_x{facts.scale}' if int(facts.scale) > 1 else ''  # the output's own size, when it differs
    out_axes = {0: 'batch', 2: f'height{tail}', 3: f'width{tail}'}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # the TorchScript exporter's deprecation notice
        try:
            torch.onnx.export(source, (example,), buf, dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME], dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: out_axes},
                              do_constant_folding=True)
        except (RuntimeError, ValueError, TypeError, torch.onnx.errors.OnnxExporterError) as e:
            raise ExportError(f'the ONNX exporter failed at opset {opset}: '
                              f'{(str(e).strip().splitlines() or [type(e).__name__])[0][:300]}') from None
    proto = onnx.load_from_string(buf.getvalue())
    inline_shared_initializers(proto.graph)
    for key, value in onnx_metadata(source).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name, proto.producer_version = 'restore_dhp', __version__
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    proto = _onnx().load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


def parity_error(model: nn.Module, data: bytes, height: int = 48, width: int = 40, seed: int = 0) -> float:
    """Largest absolute difference between ONNX Runtime (CPU) and torch on one random input."""
    if ort is None:
        raise ExportError('the parity check needs the onnxruntime package: pip install -r requirements.txt')
    x = torch.rand(1, network.facts(model).in_channels, height, width, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        expected = model.float().cpu().eval()(x).numpy()
    try:
        session = ort.InferenceSession(data, providers=['CPUExecutionProvider'])
        got = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
    except RuntimeError as e:  # onnxruntime's own errors (e.g. an operator it lacks at this opset)
        raise ExportError(f'onnxruntime cannot run the export: {(str(e).strip().splitlines() or [""])[0][:300]}') \
            from None
    return float(np.abs(got.astype(np.float64) - expected).max())


def check_parity(model: nn.Module, data: bytes) -> str:
    """The parity line ``export`` prints; :class:`ExportError` when the difference is not finite or too large."""
    if ort is None:
        return 'onnxruntime not installed: no parity check'
    error = parity_error(model, data)
    if not np.isfinite(error) or error > PARITY_LIMIT:
        why = 'the weights give NaN or infinite values' if not np.isfinite(error) else 'the export is wrong'
        raise ExportError(f'max |onnxruntime - torch| = {error:.2e} on a random input (limit {PARITY_LIMIT:g}); '
                          f'{why}, nothing written')
    return f'max |onnxruntime - torch| = {error:.2e}'



def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=prog('export'), description=__doc__.split('\n')[0],
                                epilog='\n'.join(__doc__.split('\n')[1:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--weights', required=True, help='compact checkpoint (.safetensors)')
    p.add_argument('--onnx', required=True, help='output file (.onnx)')
    p.add_argument('--opset', type=int, default=OPSET, help=f'ONNX opset (default {OPSET})')
    p.add_argument('--overwrite', action='store_true', help='replace --onnx if it exists (never --weights)')
    args = p.parse_args(argv)
    try:
        check_output(args.onnx, [args.weights], args.overwrite, '--onnx')
        model = load_compact(args.weights, 'cpu')
        data = onnx_model_bytes(model, args.opset)
        parity = check_parity(model, data)
        write_bytes(args.onnx, data)
    except (CheckpointError, ExportError, OutputError, OSError) as e:
        print(f'error: {e}', file=sys.stderr)
        return EXIT_ERROR
    meta = onnx_metadata(model)
    print(f"wrote {args.onnx} ({len(data) / 2**20:.2f} MB, opset {args.opset}): {meta['arch']} {meta['task']} "
          f"x{meta['scale']}, dynamic batch/height/width; {parity}")
    return 0


if __name__ == '__main__':
    sys.exit(run_entry(main))
