"""Graph rewrites of a traced network for inference: exact, each checked against the network as trained.

* :func:`fold_batchnorm` -- each BatchNorm folded into the conv that feeds it alone (computed in float64).
* :func:`shuffle_as_block_copy` -- each conv -> PixelShuffle pair rewritten for ``channels_last``
  (:class:`ShuffleNHWC`: the conv's output channels reordered so the shuffle is a block copy).

:mod:`restore_dhp.deploy` applies both for its ``fused`` and ``compiled`` backends.
"""
from __future__ import annotations

import copy

import torch
from torch import fx, nn


def _fed_by_conv_alone(gm: fx.GraphModule, modules: dict, kind: type):
    """``(node, conv_node)`` for each ``kind`` module whose input is a Conv2d used by it alone (a snapshot)."""
    for node in list(gm.graph.nodes):
        if _is_module(node, modules, kind):
            src = node.args[0]
            if _is_module(src, modules, nn.Conv2d) and len(src.users) == 1:
                yield node, src


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A traced copy of ``model`` (eval mode) with each BatchNorm folded into the conv that feeds it alone.

    ``w' = w * g / sqrt(v + eps)``, ``b' = (b - m) * g / sqrt(v + eps) + beta``, computed in float64.  A forward
    that ``torch.fx`` cannot trace symbolically (control flow on shapes, as BasicSR's RRDBNet has) is kept as
    it is: an eval-mode copy, BatchNorm unfolded.
    """
    try:
        gm = fx.symbolic_trace(copy.deepcopy(model).eval())
    except Exception:  # fx raises many types for forwards it cannot follow
        return copy.deepcopy(model).eval()
    if not _traces_faithfully(gm, model):  # a forward that writes attributes (EDSR's mean) leaves proxies behind
        return copy.deepcopy(model).eval()
    modules = dict(gm.named_modules())
    for node, src in _fed_by_conv_alone(gm, modules, nn.BatchNorm2d):
        _fold_into(modules[src.target], modules[node.target])
        node.replace_all_uses_with(src)
        gm.graph.erase_node(node)
        gm.delete_submodule(node.target)
    gm.graph.lint()
    gm.recompile()
    return gm


def _traces_faithfully(gm: fx.GraphModule, model: nn.Module) -> bool:
    """Whether the traced graph computes what ``model`` does, on a small random input of its channels (where the
    model gives NaN or inf, so must the graph: the weights are checked after folding, see deploy.check_finite)."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        return False
    ref = next(model.parameters())
    x = torch.rand(1, conv.in_channels, 16, 16, generator=torch.Generator().manual_seed(0)).to(ref)
    try:
        with torch.no_grad():
            out, expected = gm(x), copy.deepcopy(model).eval()(x)
    except Exception:  # a graph that cannot run is not faithful
        return False
    return isinstance(out, torch.Tensor) and out.shape == expected.shape and torch.allclose(out, expected, atol=1e-5, equal_nan=True)


def _fold_into(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    w = conv.weight.double()
    b = conv.bias.double() if conv.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64,
                                                                      device=w.device)
    gain = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    conv.weight.copy_((w * gain.view(-1, 1, 1, 1)).to(conv.weight.dtype))
    new_bias = ((b - bn.running_mean.double()) * gain + bn.bias.double()).to(conv.weight.dtype)
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias)
    else:
        conv.bias.copy_(new_bias)


class ShuffleNHWC(nn.Module):
    """``PixelShuffle(r)`` for a channels_last input whose channels are ordered (i, j, c) instead of (c, i, j).

    Each output pixel then takes ``C`` contiguous values: a block copy instead of a strided gather.
    """

    def __init__(self, upscale: int):
        super().__init__()
        self.r = upscale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c4, h, w = x.shape
        r, c = self.r, x.shape[1] // (self.r * self.r)
        nhwc = x.permute(0, 2, 3, 1).reshape(n, h, w, r, r, c)
        out = nhwc.permute(0, 1, 3, 2, 4, 5).reshape(n, h * r, w * r, c)
        return out.permute(0, 3, 1, 2)  # a channels_last view of the N x C x rH x rW result


@torch.no_grad()
def shuffle_as_block_copy(gm: nn.Module) -> nn.Module:
    """Rewrite each conv -> PixelShuffle pair (conv used only there) for channels_last (see :class:`ShuffleNHWC`);
    a module that is not a traced graph is returned as it is."""
    if not isinstance(gm, fx.GraphModule):
        return gm
    modules = dict(gm.named_modules())
    for node, src in _fed_by_conv_alone(gm, modules, nn.PixelShuffle):
        conv, r = modules[src.target], modules[node.target].upscale_factor
        c = conv.out_channels // (r * r)
        order = torch.arange(conv.out_channels).view(c, r * r).t().reshape(-1)  # (i, j, c) <- (c, i, j)
        conv.weight.copy_(conv.weight[order])
        if conv.bias is not None:
            conv.bias.copy_(conv.bias[order])
        name = f'{src.target.replace(".", "_")}_shuffle'
        gm.add_submodule(name, ShuffleNHWC(r))
        with gm.graph.inserting_after(node):
            new = gm.graph.call_module(name, (src,))
        node.replace_all_uses_with(new)
        gm.graph.erase_node(node)
    gm.graph.eliminate_dead_code()
    gm.delete_all_unused_submodules()
    gm.graph.lint()
    gm.recompile()
    return gm


def _is_module(node, modules: dict, cls) -> bool:
    return isinstance(node, fx.Node) and node.op == 'call_module' and isinstance(modules.get(node.target), cls)
