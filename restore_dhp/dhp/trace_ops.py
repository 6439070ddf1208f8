"""The aten ops the tracer (:mod:`restore_dhp.dhp.trace`) knows, by what they do to channels, and how it reads a call."""
from __future__ import annotations

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


def op_name(target) -> str:
    packet = getattr(target, '_overloadpacket', None)
    name = getattr(packet, '__name__', None) or getattr(target, '__name__', str(target))
    name = name.split('.')[-1]
    return name[:-1] if name.endswith('_') and not name.startswith('_') else name


def conv_arguments(node, name: str) -> tuple:
    """``(input, weight, bias, transposed, groups)`` of an aten conv2d / conv_transpose2d / convolution call."""
    positions = {'conv2d': ('input', 'weight', 'bias', 'stride', 'padding', 'dilation', 'groups'),
                 'conv_transpose2d': ('input', 'weight', 'bias', 'stride', 'padding', 'output_padding', 'groups',
                                      'dilation'),
                 'convolution': ('input', 'weight', 'bias', 'stride', 'padding', 'dilation', 'transposed',
                                 'output_padding', 'groups')}[name]
    values = {**dict(zip(positions, node.args)), **node.kwargs}
    transposed = bool(values.get('transposed', name == 'conv_transpose2d'))
    return values['input'], values['weight'], values.get('bias'), transposed, int(values.get('groups', 1))


def module_of(node) -> str:
    stack = node.meta.get('nn_module_stack') or {}
    if not stack:
        return '<top>'
    path = list(stack.values())[-1][0]
    return path.replace('L__self___', '').replace('L["self"].', '') or '<top>'
