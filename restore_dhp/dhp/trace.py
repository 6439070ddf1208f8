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

from .spec import ArchSpec, ConvSpec, LayerSpec, Segment

# ops that pass every channel through unchanged; those in ACTIVATIONS also count as an activation (FLOPs: +1 per
# output element, the paper's convention)
ACTIVATIONS = frozenset({'relu', 'leaky_relu', 'prelu', 'sigmoid', 'tanh', 'gelu', 'silu', 'elu', 'selu', 'celu',
                         'hardtanh', 'hardswish', 'hardsigmoid', 'softplus', 'mish', 'relu6', 'rrelu'})
PASS_THROUGH = frozenset({'clone', 'contiguous', 'detach', 'alias', 'dropout', 'feature_dropout', 'type_as', 'to',
                          '_to_copy', 'max_pool2d', 'avg_pool2d', 'adaptive_avg_pool2d', 'adaptive_max_pool2d',
                          'max_pool2d_with_indices', 'upsample_nearest2d', 'upsample_bilinear2d',
                          'upsample_bicubic2d', '_upsample_nearest_exact2d', 'pad', 'constant_pad_nd',
                          'reflection_pad2d', 'replication_pad2d', 'clamp', 'clamp_min', 'clamp_max', 'abs', 'neg',
                          'exp', 'square', 'sqrt', 'rsqrt', 'lift_fresh_copy', 'copy', 'identity',
                          'native_dropout'}) | ACTIVATIONS
ELEMENTWISE = frozenset({'add', 'sub', 'mul', 'div', 'rsub', 'maximum', 'minimum', 'pow', 'true_divide'})
BATCH_NORMS = frozenset({'batch_norm', '_native_batch_norm_legit_no_training', '_native_batch_norm_legit',
                         '_native_batch_norm_legit_functional', 'native_batch_norm', 'cudnn_batch_norm'})
SPATIAL_REDUCTIONS = frozenset({'mean', 'sum', 'amax', 'amin'})
VALUE_PRESERVING = frozenset({'type_as', 'to', '_to_copy', 'clone', 'detach', 'alias', 'contiguous',
                              'lift_fresh_copy'})
IGNORED = frozenset({'sym_size', 'sym_numel', 'sym_stride', '_assert_tensor_metadata', '_assert_async',
                     'sym_constrain_range_for_size', 'empty', 'zeros', 'ones', 'full', 'arange', 'scalar_tensor'})


class TraceError(ValueError):
    """The network cannot be traced (the message says why, in one line)."""


class _Seg:
    """A mutable segment: refining a group rewrites every segment that names it (see :meth:`_Graph.refine`)."""
    __slots__ = ('gid', 'per')

    def __init__(self, gid: int, per: int):
        self.gid, self.per = gid, per


class _Graph:
    """Union-find of channel groups, and the segments that name them."""

    def __init__(self):
        self.parent: list[int] = []
        self.width: list[int] = []
        self.fixed: list[bool] = []
        self.origin: list[str] = []          # the module path (or role) that made the group, for its name
        self.segments: list[_Seg] = []
        self.reasons: list[str] = []

    def new(self, width: int, origin: str, fixed: bool = False) -> tuple:
        gid = len(self.parent)
        self.parent.append(gid)
        self.width.append(width)
        self.fixed.append(fixed)
        self.origin.append(origin)
        return (self.seg(gid, 1),)

    def seg(self, gid: int, per: int) -> _Seg:
        s = _Seg(gid, per)
        self.segments.append(s)
        return s

    def find(self, gid: int) -> int:
        while self.parent[gid] != gid:
            self.parent[gid] = self.parent[self.parent[gid]]
            gid = self.parent[gid]
        return gid

    def channels(self, space) -> int:
        return sum(self.width[self.find(s.gid)] * s.per for s in space)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.width[ra] != self.width[rb]:
            raise TraceError(f'internal: uniting groups of widths {self.width[ra]} and {self.width[rb]}')
        keep, drop = min(ra, rb), max(ra, rb)
        self.parent[drop] = keep
        self.fixed[keep] = self.fixed[keep] or self.fixed[drop]

    def refine(self, gid: int, factor: int) -> bool:
        """Make each entry of group ``gid`` cover ``factor`` of its present entries (False if its width does not
        divide): every segment naming it gets ``per * factor``."""
        root = self.find(gid)
        if factor == 1:
            return True
        if self.width[root] % factor:
            return False
        self.width[root] //= factor
        for s in self.segments:
            if self.find(s.gid) == root:
                s.per *= factor
        return True

    def unite_spaces(self, a, b) -> bool:
        """Make two spaces of equal channels one, segment by segment (False where their segments don't align)."""
        if len(a) != len(b):
            return False
        for sa, sb in zip(a, b):
            ca, cb = self.width[self.find(sa.gid)] * sa.per, self.width[self.find(sb.gid)] * sb.per
            if ca != cb:
                return False
            if sa.per != sb.per:
                small, big = (sa, sb) if sa.per < sb.per else (sb, sa)
                if big.per % small.per or not self.refine(small.gid, big.per // small.per):
                    return False
            self.union(sa.gid, sb.gid)
        return True

    def fix(self, spaces, why: str) -> None:
        groups = sorted({self.find(s.gid) for space in spaces for s in space})
        prunable = [g for g in groups if not self.fixed[g]]
        for g in groups:
            self.fixed[g] = True
        if prunable:
            self.reasons.append((why, prunable))


def _op_name(target) -> str:
    packet = getattr(target, '_overloadpacket', None)
    name = getattr(packet, '__name__', None) or getattr(target, '__name__', str(target))
    name = name.split('.')[-1]
    return name[:-1] if name.endswith('_') and not name.startswith('_') else name


def _conv_arguments(node, name: str) -> tuple:
    """``(input, weight, bias, transposed, groups)`` of an aten conv2d / conv_transpose2d / convolution call."""
    positions = {'conv2d': ('input', 'weight', 'bias', 'stride', 'padding', 'dilation', 'groups'),
                 'conv_transpose2d': ('input', 'weight', 'bias', 'stride', 'padding', 'output_padding', 'groups',
                                      'dilation'),
                 'convolution': ('input', 'weight', 'bias', 'stride', 'padding', 'dilation', 'transposed',
                                 'output_padding', 'groups')}[name]
    values = {**dict(zip(positions, node.args)), **node.kwargs}
    transposed = bool(values.get('transposed', name == 'conv_transpose2d'))
    return values['input'], values['weight'], values.get('bias'), transposed, int(values.get('groups', 1))


def _module_of(node) -> str:
    stack = node.meta.get('nn_module_stack') or {}
    if not stack:
        return '<top>'
    path = list(stack.values())[-1][0]
    return path.replace('L__self___', '').replace('L["self"].', '') or '<top>'


class _Tracer:
    def __init__(self, exported, hints: Mapping[str, Any] | None):
        self.ep = exported
        self.g = _Graph()
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
            name = _op_name(node.target) if node.op == 'call_function' else ''
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
                and _op_name(node.target) in VALUE_PRESERVING and node.args:
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
        self.new_feature(node, f'{sources[0]}/{_op_name(node.target)}' if sources else _op_name(node.target), fixed=True)

    def fix_inputs(self, node, why: str) -> None:
        spaces = [s for s in (self.feature(a) for a in node.all_input_nodes) if s]
        if spaces:
            self.g.fix(spaces, f'{why} ({_op_name(node.target)} in {_module_of(node)})')

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
        name = _op_name(node.target)
        args = node.args
        if name in IGNORED or not any(isinstance(a, torch.fx.Node) for a in node.all_input_nodes):
            return
        if name in ('conv2d', 'conv_transpose2d', 'convolution'):
            return self.conv(node, *_conv_arguments(node, name))
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
        module = wname.rsplit('.', 1)[0] if wname else _module_of(node)
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
            self.acts[f'{_module_of(node)}:{node.name}'] = {'space': space, 'scale': self.scale_of(node)}
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
                self.g.fix([base, space], f'feature maps of unaligned channel segments combined ({_module_of(node)})')
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
                self.g.fix(spaces, f'a concatenation along batch or space of unaligned channels ({_module_of(node)})')
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

    # ------------------------------------------------------------------ hints and the spec
    def apply_hints(self) -> None:
        for a, b in self.hints.get('ties', ()):
            if a not in self.module_convs or b not in self.module_convs:
                raise TraceError(f'dhp_hints tie ({a}, {b}): no conv module of that name')
            ga = self.convs[self.module_convs[a]]['out'][0].gid
            gb = self.convs[self.module_convs[b]]['out'][0].gid
            if self.g.width[self.g.find(ga)] != self.g.width[self.g.find(gb)]:
                raise TraceError(f'dhp_hints tie ({a}, {b}): their output groups differ in width')
            self.g.union(ga, gb)

    def names(self) -> dict[int, str]:
        named = {}
        for module, name in (self.hints.get('names') or {}).items():
            if module not in self.module_convs:
                raise TraceError(f'dhp_hints name {name!r}: no conv module {module!r}')
            named.setdefault(self.g.find(self.convs[self.module_convs[module]]['out'][0].gid), name)
        out, taken = {}, set(named.values())
        for gid in range(len(self.g.parent)):
            root = self.g.find(gid)
            if root in out:
                continue
            name = named.get(root) or self.g.origin[root]
            if name in taken - {named.get(root)} or name in out.values():
                i = 2
                while f'{name}#{i}' in taken or f'{name}#{i}' in out.values():
                    i += 1
                name = f'{name}#{i}'
            out[root] = name
        return out

    def spec(self) -> ArchSpec:
        self.apply_hints()
        names = self.names()
        used = set()

        def space(segs) -> tuple:
            out = []
            for s in segs:
                used.add(self.g.find(s.gid))
                out.append(Segment(names[self.g.find(s.gid)], s.per))
            return tuple(out)

        convs = {}
        for call, c in self.convs.items():
            out = c['out'][0]
            convs[call] = ConvSpec(space(c['inputs']), names[self.g.find(out.gid)], c['kernel'], out.per, *c['scale'],
                                   c['transposed'], c['depthwise'], c['bias'], c['module'], c['taps'])
            used.add(self.g.find(out.gid))
        norms = {m: LayerSpec(space(n['space']), *n['scale']) for m, n in self.norms.items()}
        acts = {m: LayerSpec(space(a['space']), *a['scale']) for m, a in self.acts.items()}
        params = {p: LayerSpec(space(u['space']), 1, 0, u['dim']) for p, u in self.params_used.items()}
        roots = sorted(used, key=lambda r: (not self.g.fixed[r], r))
        widths = {names[r]: self.g.width[r] for r in roots}
        fixed = frozenset(names[r] for r in roots if self.g.fixed[r])
        image = {r for r in roots if self.g.origin[r] in ('image_in', 'image_out')}
        unprunable = []
        for why, gs in self.g.reasons:  # a fix that only touched image channels was no loss
            lost = sorted({names[self.g.find(g)] for g in gs if self.g.find(g) not in image and self.g.find(g) in used})
            if lost:
                unprunable.append(f"{why}: fixes {', '.join(lost)}")
        in_channels = self.shape(next(n for n in self.ep.graph.nodes if n.name in self.user_inputs))[1]
        scale = self.output_hw[0] // self.input_hw[0] if self.output_hw and self.input_hw else 1
        return ArchSpec(widths, fixed, convs, norms, acts, params, tuple(unprunable), in_channels, scale)


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
    return tracer.spec()
