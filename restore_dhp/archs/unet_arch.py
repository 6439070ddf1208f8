"""A UNet denoiser in the shape of the official DHP code's: 5 levels, max-pool down, 2x2 transposed-conv up,
concatenated skips.

Level ``i`` (``i = 0 ... depth-1``) has ``num_feat * 2**i`` channels: two conv3x3 + ReLU, then a 2x2 max-pool
(except the deepest level).  Going up, a 2x2 stride-2 transposed conv halves the channels, its output is
concatenated with the skip of the same level (``[up, skip]``), and two conv3x3 + ReLU follow.  A 1x1 conv
writes the image channels.  Like DnCNN the network predicts the noise (``residual=True``: it returns
``input - output``).  An input whose sides are not multiples of ``2**(depth-1)`` is padded by reflection and
the output cropped back.  The official code starts at 64 channels; the registered default starts at 32,
which keeps the hypernetwork of the DHP search (about ten parameters per weight) trainable on a CPU.
"""
from __future__ import annotations

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn
from torch.nn import functional as F


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(inplace=True))


@ARCH_REGISTRY.register()
class UNetDenoiser(nn.Module):
    def __init__(self, num_feat=32, depth=5, in_channels=1, residual=True):
        super().__init__()
        if depth < 2:
            raise ValueError(f'UNetDenoiser needs at least 2 levels, got depth={depth}')
        widths = [num_feat * 2 ** i for i in range(depth)]
        self.residual, self.multiple = residual, 2 ** (depth - 1)
        self.down = nn.ModuleList(_double_conv(cin, cout) for cin, cout in zip([in_channels] + widths, widths))
        self.upconv = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                                    for i in reversed(range(depth - 1)))
        self.up = nn.ModuleList(_double_conv(2 * widths[i], widths[i]) for i in reversed(range(depth - 1)))
        self.tail = nn.Conv2d(num_feat, in_channels, 1)

    def forward(self, x):
        h, w = x.shape[-2:]
        # always padded (by 0 where the sides divide): no branch on the input's size, so an ONNX export keeps it
        y = F.pad(x, (0, -w % self.multiple, 0, -h % self.multiple), mode='reflect')
        skips = []
        for i, block in enumerate(self.down):
            y = block(y if i == 0 else F.max_pool2d(y, 2))
            skips.append(y)
        for upconv, block, skip in zip(self.upconv, self.up, reversed(skips[:-1])):
            y = block(torch.cat([upconv(y), skip], dim=1))
        y = self.tail(y)[..., :h, :w]
        return x - y if self.residual else y

