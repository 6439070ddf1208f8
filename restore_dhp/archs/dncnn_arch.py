"""DnCNN (Zhang et al., TIP 2017) as pruned in the DHP paper: a plain torch module, traced for DHP.

Structure (``num_feat`` = 64, 17 conv layers): conv3x3 1->64 head *without*
an activation (as in the DHP code; the paper's 9.13 GFLOPs assume none),
15 x (conv3x3 64->64 -> BN -> ReLU), conv3x3 64->1 tail.  The network predicts
the noise residual and returns ``input - predicted noise``; images are gray,
0-1 range.  Every conv has a bias (557,057 parameters at full width).

Width groups (traced; :attr:`dhp_hints` names them): ``feat00`` (head output) ... ``feat15``, one per
feature map; the image channel is never pruned.
"""
from __future__ import annotations

from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from .init import init_convs


@ARCH_REGISTRY.register()
class DnCNN(nn.Module):
    """DnCNN with ``num_layers`` convs of ``num_feat`` channels (``body_init_scale``: see SRResNet)."""

    def __init__(self, num_feat=64, num_layers=17, in_channels=1, body_init_scale=None):
        super().__init__()
        if num_layers < 3:
            raise ValueError(f'DnCNN needs at least 3 layers, got {num_layers}')
        self.num_layers = num_layers
        convs = {'head': nn.Conv2d(in_channels, num_feat, 3, padding=1)}
        norms = {}
        for i in range(1, num_layers - 1):
            convs[f'conv{i:02d}'] = nn.Conv2d(num_feat, num_feat, 3, padding=1)
            norms[f'bn{i:02d}'] = nn.BatchNorm2d(num_feat)
        convs['tail'] = nn.Conv2d(num_feat, in_channels, 3, padding=1)
        self.convs, self.norms = nn.ModuleDict(convs), nn.ModuleDict(norms)
        self.act = nn.ReLU(inplace=False)
        # PyTorch's default init: on a 400-iteration CPU budget at lr 2e-4 the baseline reached 22.04 dB
        # on Set12 from it and 19.64 dB from He init (the scale the DHP form generates); at lr 1e-3 the
        # training L1 after 160 iterations was 0.069 from it and 0.086 from He init.
        init_convs(self.convs, 'default', [f'conv{i:02d}' for i in range(1, num_layers - 1)], body_init_scale)
        self.dhp_hints = {'names': {'convs.head': 'feat00',
                                    **{f'convs.conv{i:02d}': f'feat{i:02d}' for i in range(1, num_layers - 1)}}}

    def forward(self, x):
        h = self.convs['head'](x)
        for i in range(1, self.num_layers - 1):
            h = self.act(self.norms[f'bn{i:02d}'](self.convs[f'conv{i:02d}'](h)))
        return x - self.convs['tail'](h)
