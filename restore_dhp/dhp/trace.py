"""Derive a network's :class:`~restore_dhp.dhp.spec.ArchSpec` by tracing it: the width groups, found, not written.

``trace_spec(module, example)`` runs ``torch.export`` (non-strict, on a copy: a
forward may write attributes, as BasicSR's EDSR does) and follows the channel
spaces through the graph:

* a conv or transposed conv makes a new group of its outputs; a depthwise conv
  passes its input's group through (input and output are one group); any other
  grouped conv fixes its input and output;
* BatchNorm, elementwise activations (PReLU with per-channel weights too),
  pooling, interpolation, padding and ops with scalars pass channels through;
* add / sub / mul / div between two feature maps unite their groups (an
  ``N x C x 1 x 1`` attention map too); with a ``1 x C x 1 x 1`` parameter or
  buffer the tensor becomes a per-channel parameter of that space;
* ``cat`` along channels concatenates the segments; ``pixel_shuffle(r)`` folds
  ``r*r`` channels into one (the conv before it writes ``r*r`` per kept channel),
  ``pixel_unshuffle`` unfolds them;
* anything else that reads a feature map (a reshape across channels, a linear
  layer, slicing channels, an op it does not know) fixes the groups it reads, and
  says so: :attr:`ArchSpec.unprunable` names the op, the module path and the groups;
* the network's input and output channels are fixed.

``hints`` (an architecture's ``dhp_hints`` attribute) carry modelling choices
the graph does not show: ``names`` (conv module path -> name of its output group)
and ``ties`` (pairs of conv module paths whose output groups are one).
"""
from __future__ import annotations

import copy
import math
import warnings
from fractions import Fraction
from typing import Any, Mapping

import torch
from torch import nn

from .channel_graph import ChannelGraph, TraceError
from .spec import ArchSpec
from .trace_assembly import assemble
from .trace_ops import (ACTIVATIONS, BATCH_NORMS, ELEMENTWISE, IGNORED, PASS_THROUGH, SPATIAL_REDUCTIONS,
                        VALUE_PRESERVING, conv_arguments, module_of, op_name)

__all__ = ['trace_spec', 'TraceError']


class _Tracer:
    def __init__(self, exported, hints: Mapping[str, Any] | None):
        self.ep = exported
        self.g = ChannelGraph()
        self.hints = dict(hints or {})
        sig = exported.graph_signature
        self.params = dict(sig.inputs_to_parameters)
        self.params.update(sig.inputs_to_buffers)
        self.params.update(getattr(sig, 'inputs_to_lifted_tensor_constants', {}) or {})
        self.user_inputs = list(sig.user_inputs)
        self.space: dict[str, tuple] = {}      # node name -> channel space of the tensor it holds (4-D feature maps)
        self.convs: dict[str, dict] = {}       # call name -> record
        self.module_convs: dict[str, str] = {} # module path -> first call name
        self.norms: dict[str, dict] = {}
        self.acts: dict[str, dict] = {}
        self.params_used: dict[str, dict] = {}
        self.input_hw = None
        self.absolute: dict[str, bool] = {}
        self.output_hw = None

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def shape(node):
        val = node.meta.get('val') if hasattr(node, 'meta') else None
        return tuple(val.shape) if isinstance(val, torch.Tensor) else None

    def scale_of(self, node) -> tuple[float, int]:
        """``(scale, pixels)``: the node's spatial size relative to the input, or (0, its pixels) where it has a
        fixed size at any input size (after a global pooling)."""
        shape = self.shape(node)
        if not shape or len(shape) != 4 or not self.input_hw:
            return 1.0, 0
        if self.is_global(node):
            return 0.0, shape[2] * shape[3]
        return float(Fraction(shape[2], self.input_hw[0])), 0

    def is_global(self, node) -> bool:
        """Whether a feature map's size is fixed whatever the input's (a global pooling, and what follows it)."""
        if node.name not in self.absolute:
            name = op_name(node.target) if node.op == 'call_function' else ''
            if name in ('adaptive_avg_pool2d', 'adaptive_max_pool2d') or name in SPATIAL_REDUCTIONS:
                self.absolute[node.name] = True
            else:
                inputs = [a for a in node.all_input_nodes if self.feature(a) is not None]
                self.absolute[node.name] = bool(inputs) and all(self.is_global(a) for a in inputs) \
                    and node.op == 'call_function'
        return self.absolute[node.name]

    def param_name(self, node) -> str | None:
        """The parameter, buffer or constant a node holds (through dtype and copy ops), else None."""
        while isinstance(node, torch.fx.Node) and node.name not in self.params and node.op == 'call_function' \
                and op_name(node.target) in VALUE_PRESERVING and node.args:
            node = node.args[0]
        return self.params.get(node.name) if isinstance(node, torch.fx.Node) else None

    def feature(self, node) -> tuple | None:
        return self.space.get(node.name) if isinstance(node, torch.fx.Node) else None

    def new_feature(self, node, origin: str, fixed: bool = False) -> None:
        shape = self.shape(node)
        if shape and len(shape) == 4:
            self.space[node.name] = self.g.new(shape[1], origin, fixed)

    def fixed_output(self, node) -> None:
        """A new fixed group for an op's output, named after the groups it was made from."""
        sources = [self.g.origin[self.g.find(s.gid)] for a in node.all_input_nodes if self.feature(a)
                   for s in self.feature(a)]
        self.new_feature(node, f'{sources[0]}/{op_name(node.target)}' if sources else op_name(node.target), fixed=True)

    def fix_inputs(self, node, why: str) -> None:
        spaces = [s for s in (self.feature(a) for a in node.all_input_nodes) if s]
        if spaces:
            self.g.fix(spaces, f'{why} ({op_name(node.target)} in {module_of(node)})')

    # ------------------------------------------------------------------ ops
    def run(self) -> None:
        for node in self.ep.graph.nodes:
            if node.op == 'placeholder':
                if node.name in self.user_inputs:
                    shape = self.shape(node)
                    if not shape or len(shape) != 4:
                        raise TraceError(f'the network input must be an N x C x H x W image batch, got {shape}')
                    self.input_hw = shape[2:]
                    self.space[node.name] = self.g.new(shape[1], 'image_in', fixed=True)
            elif node.op == 'call_function':
                self.call(node)
            elif node.op == 'output':
                outs = list(node.all_input_nodes)
                spaces = [self.feature(a) for a in outs if self.feature(a)]
                if not spaces:
                    raise TraceError('the network output is not an N x C x H x W image batch')
                self.output_hw = self.shape(outs[0])[2:]
                for space in spaces:
                    for s in space:
                        self.g.fixed[self.g.find(s.gid)] = True
                        if self.g.origin[self.g.find(s.gid)] != 'image_in':
                            self.g.origin[self.g.find(s.gid)] = 'image_out'

    def call(self, node) -> None:
        name = op_name(node.target)
        args = node.args
        if name in IGNORED or not any(isinstance(a, torch.fx.Node) for a in node.all_input_nodes):
            return
        if name in ('conv2d', 'conv_transpose2d', 'convolution'):
            return self.conv(node, *conv_arguments(node, name))
        if name in BATCH_NORMS:
            return self.batch_norm(node)
        if name == 'getitem':
            source, index = args
            if self.feature(source) and index == 0:
                self.space[node.name] = self.feature(source)
            elif self.feature(source):
                self.fix_inputs(node, 'an index into a feature map')
            return
        if name in ('max_pool2d_with_indices',) and self.feature(args[0]):
            self.space[node.name] = self.feature(args[0])
            return
        if name in PASS_THROUGH:
            return self.pass_through(node, name)
        if name in ELEMENTWISE:
            return self.elementwise(node, name)
        if name == 'cat':
            return self.cat(node)
        if name in ('pixel_shuffle', 'pixel_unshuffle'):
            return self.shuffle(node, name)
        if name in ('slice', 'narrow') and len(self.shape(args[0]) or ()) == 4 and (args[1] if len(args) > 1 else 0) in (2, 3, -1, -2):
            return self.pass_through(node, name)
        if name in SPATIAL_REDUCTIONS:
            return self.reduction(node)
        if name in ('view', 'reshape', '_unsafe_view', 'expand') and self.shape(node) == self.shape(args[0]):
            return self.pass_through(node, name)
        self.fix_inputs(node, 'an op that mixes or reorders channels')
        self.fixed_output(node)

    def conv(self, node, x, weight, bias, transposed: bool, groups: int) -> None:
        wname = self.param_name(weight)
        module = wname[:-len('.weight')] if wname and wname.endswith('.weight') else None
        in_space = self.feature(x)
        if module is None or in_space is None:
            self.fix_inputs(node, 'a conv whose weight is not a module parameter')
            self.fixed_output(node)
            return
        wshape = self.shape(weight)
        cin, cout = (wshape[0], wshape[1] * groups) if transposed else (wshape[1] * groups, wshape[0])
        kernel = wshape[2] if wshape[2] == wshape[3] else (wshape[2], wshape[3])
        depthwise = groups > 1 and groups == cin == cout and not transposed
        if groups > 1 and not depthwise:
            self.g.fix([in_space], f'grouped conv ({module})')
            self.new_feature(node, module, fixed=True)
            out = self.space[node.name]
        elif depthwise:
            out = in_space
            self.space[node.name] = out
        elif module in self.module_convs:  # a module called again: the same weights read and write the same groups
            first = self.convs[self.module_convs[module]]
            if not self.g.unite_spaces(first['inputs'], in_space):
                self.g.fix([first['inputs'], in_space], f'a conv called on different channels ({module})')
            out = first['out']
            self.space[node.name] = out
        else:
            self.new_feature(node, module)
            out = self.space[node.name]
        call = module if module not in self.module_convs else f'{module}@{sum(c["module"] == module for c in self.convs.values()) + 1}'
        self.module_convs.setdefault(module, call)
        taps = 0
        if transposed:  # each output element gathers kernel area / stride^2 taps per input channel
            taps = float(Fraction(wshape[2] * wshape[3] * math.prod(self.shape(x)[2:]), math.prod(self.shape(node)[2:])))
        self.convs[call] = {'module': module, 'inputs': in_space, 'out': out, 'kernel': kernel,
                            'transposed': transposed, 'depthwise': depthwise, 'bias': bias is not None,
                            'scale': self.scale_of(node), 'taps': taps}

    def batch_norm(self, node) -> None:
        x, weight = node.args[0], node.args[1]
        space = self.feature(x)
        if space is None:
            return
        self.space[node.name] = space
        wname = self.param_name(weight) or self.param_name(node.args[3])
        module = wname.rsplit('.', 1)[0] if wname else module_of(node)
        if module in self.norms:
            if not self.g.unite_spaces(self.norms[module]['space'], space):
                self.g.fix([self.norms[module]['space'], space], f'a BatchNorm used on different channels ({module})')
            return
        self.norms[module] = {'space': space, 'scale': self.scale_of(node)}

    def pass_through(self, node, name: str) -> None:
        x = node.args[0] if node.args else None
        space = self.feature(x)
        if space is None:
            return
        self.space[node.name] = space
        if name in ACTIVATIONS:
            self.acts[f'{module_of(node)}:{node.name}'] = {'space': space, 'scale': self.scale_of(node)}
        if name == 'prelu':
            weight = node.args[1]
            wshape = self.shape(weight)
            if wshape and math.prod(wshape) > 1:
                self.channel_param(node, weight, space, 0)

    def channel_param(self, node, tensor, space, dim: int) -> None:
        pname = self.param_name(tensor)
        if pname is None:
            self.fix_inputs(node, 'a per-channel tensor that is not a parameter or buffer')
            return
        if pname in self.params_used:
            if not self.g.unite_spaces(self.params_used[pname]['space'], space):
                self.g.fix([self.params_used[pname]['space'], space], f'a parameter used on different channels ({pname})')
            return
        self.params_used[pname] = {'space': space, 'dim': dim}

    def elementwise(self, node, name: str) -> None:
        tensors = [a for a in node.args if isinstance(a, torch.fx.Node)]
        features = [(a, self.feature(a)) for a in tensors if self.feature(a)]
        out_shape = self.shape(node)
        if not features:
            return
        base = max(features, key=lambda f: self.shape(f[0])[1])[1]
        for a, space in features:
            if space is base:
                continue
            if self.shape(a)[1] == 1 and self.g.channels(base) != 1:
                continue  # broadcast over channels
            if not self.g.unite_spaces(base, space):
                self.g.fix([base, space], f'feature maps of unaligned channel segments combined ({module_of(node)})')
        for a in tensors:
            if self.feature(a):
                continue
            shape = self.shape(a)
            if not shape or math.prod(shape) == 1:
                continue
            dims = [i for i, n in enumerate(shape) if n > 1]
            channel_dim = len(shape) - 3 if len(shape) >= 3 else None
            if channel_dim is not None and dims == [channel_dim]:
                self.channel_param(node, a, base, channel_dim)
            else:
                self.fix_inputs(node, 'a tensor operand that is not per channel')
        if out_shape and len(out_shape) == 4:
            self.space[node.name] = base

    def cat(self, node) -> None:
        tensors, dim = node.args[0], (node.args[1] if len(node.args) > 1 else 0)
        spaces = [self.feature(t) for t in tensors]
        if any(s is None for s in spaces):
            self.fix_inputs(node, 'a concatenation with a tensor that is not a feature map')
            self.fixed_output(node)
            return
        if dim in (1, -3):
            self.space[node.name] = tuple(s for space in spaces for s in space)
            return
        for space in spaces[1:]:
            if not self.g.unite_spaces(spaces[0], space):
                self.g.fix(spaces, f'a concatenation along batch or space of unaligned channels ({module_of(node)})')
        self.space[node.name] = spaces[0]

    def shuffle(self, node, name: str) -> None:
        space = self.feature(node.args[0])
        if space is None:
            return
        r2 = node.args[1] ** 2
        if name == 'pixel_unshuffle':
            self.space[node.name] = tuple(self.g.seg(s.gid, s.per * r2) for s in space)
            return
        if len(space) == 1 and (space[0].per % r2 == 0 or self.g.refine(space[0].gid, r2 // math.gcd(space[0].per, r2))):
            self.space[node.name] = (self.g.seg(space[0].gid, space[0].per // r2),)
            return
        self.fix_inputs(node, 'a pixel shuffle of channels that do not fold')
        self.fixed_output(node)

    def reduction(self, node) -> None:
        x = node.args[0]
        dims = node.args[1] if len(node.args) > 1 else None
        shape = self.shape(node)
        dims = [dims] if isinstance(dims, int) else list(dims or [])
        spatial = dims and {d % 4 for d in dims} <= {2, 3} and shape and len(shape) == 4
        if self.feature(x) and spatial:
            self.space[node.name] = self.feature(x)
            return
        self.fix_inputs(node, 'a reduction over channels')
        self.fixed_output(node)

def trace_spec(module: nn.Module, example: torch.Tensor, hints: Mapping[str, Any] | None = None) -> ArchSpec:
    """The width groups and layers of ``module`` for an input like ``example`` (see the module docstring).

    ``hints`` default to the module's ``dhp_hints`` attribute.  The module is not changed (a copy is traced);
    a module on the meta device traces without allocating.
    """
    hints = getattr(module, 'dhp_hints', None) if hints is None else hints
    copied = copy.deepcopy(module).eval()
    try:
        with warnings.catch_warnings():  # (a forward that writes a tensor attribute, e.g. EDSR's mean: harmless here)
            warnings.filterwarnings('ignore', message='The tensor attribute .* was assigned during export')
            exported = torch.export.export(copied, (example,), strict=False)
    except Exception as e:  # torch.export raises many types for forwards it cannot follow
        raise TraceError(f'{type(module).__name__} cannot be traced by torch.export: '
                         f'{str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}') from None
    tracer = _Tracer(exported, hints)
    tracer.run()
    return assemble(tracer)
