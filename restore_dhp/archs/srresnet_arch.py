"""SRResNet (Ledig et al., CVPR 2017) as pruned in the DHP paper: a plain torch module, traced for DHP.

Structure (``num_feat`` = 64, ``num_blocks`` = 16, x4):
9x9 head conv 3->64 + PReLU; 16 residual blocks (conv3x3 -> BN -> PReLU ->
conv3x3 -> BN, + identity); body-end conv3x3 + BN; global skip from the head
output; log2(scale) upsampling stages (conv3x3 64->256 -> PixelShuffle(2) ->
PReLU); 3x3 tail conv 64->3.  Like the reference implementation, one PReLU
module serves both upsampling stages (this is what makes the paper's
1,535,637 parameters).  Images are in the 0-1 range (the original code used
0-255), with no mean shift.

Width groups (found by :func:`restore_dhp.dhp.trace.trace_spec`; :attr:`dhp_hints` names them and adds the
paper's one modelling choice the graph does not show): ``trunk`` is every feature map on the residual
stream (head output, each block's second conv, the body-end conv) and, tied to it, the upsamplers'
channels (each kept channel keeps its 4 sub-pixel channels); ``block00`` ... ``block15`` are the blocks'
inner widths.  The image channels are never pruned.
"""
from __future__ import annotations

import math

from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from .init import init_convs


def upsample_stages(scale: int) -> int:
    stages = int(math.log2(scale)) if scale >= 2 else 0
    if 2 ** stages != scale:
        raise ValueError(f'SRResNet scale must be a power of two (2, 4, 8), got {scale}')
    return stages


@ARCH_REGISTRY.register()
class SRResNet(nn.Module):
    """SRResNet x``scale`` with ``num_blocks`` residual blocks of ``num_feat`` channels.

    ``body_init_scale`` (an initialisation, for the experiments of research/sr_inversion): the body convs'
    weights start normal with std x sqrt(fan-in) equal to it (He init: sqrt(2)).
    """

    def __init__(self, num_feat=64, num_blocks=16, in_channels=3, scale=4, body_init_scale=None):
        super().__init__()
        stages = upsample_stages(scale)
        self.num_blocks, self.num_upsample = num_blocks, stages
        convs = {'head': nn.Conv2d(in_channels, num_feat, 9, padding=4)}
        norms = {}
        for i in range(num_blocks):
            for j in (1, 2):
                convs[f'block{i:02d}_conv{j}'] = nn.Conv2d(num_feat, num_feat, 3, padding=1)
                norms[f'block{i:02d}_bn{j}'] = nn.BatchNorm2d(num_feat)
        convs['body'] = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        norms['body_bn'] = nn.BatchNorm2d(num_feat)
        for s in range(stages):
            convs[f'up{s}'] = nn.Conv2d(num_feat, 4 * num_feat, 3, padding=1)
        convs['tail'] = nn.Conv2d(num_feat, in_channels, 3, padding=1)
        self.convs, self.norms = nn.ModuleDict(convs), nn.ModuleDict(norms)
        self.head_act = nn.PReLU()
        self.block_acts = nn.ModuleList(nn.PReLU() for _ in range(num_blocks))
        self.up_act = nn.PReLU()
        self.shuffle = nn.PixelShuffle(2)
        # the shipped baseline was trained from He init
        body = [f'block{i:02d}_conv{j}' for i in range(num_blocks) for j in (1, 2)] + ['body']
        init_convs(self.convs, 'he', body, body_init_scale)
        self.dhp_hints = {'names': {'convs.head': 'trunk',
                                    **{f'convs.block{i:02d}_conv1': f'block{i:02d}' for i in range(num_blocks)}},
                          'ties': [(f'convs.up{s}', 'convs.head') for s in range(stages)]}

    def forward(self, x):
        c, n = self.convs, self.norms
        feat = self.head_act(c['head'](x))
        res = feat
        for i, act in enumerate(self.block_acts):
            h = act(n[f'block{i:02d}_bn1'](c[f'block{i:02d}_conv1'](res)))
            res = res + n[f'block{i:02d}_bn2'](c[f'block{i:02d}_conv2'](h))
        res = feat + n['body_bn'](c['body'](res))
        for s in range(self.num_upsample):
            res = self.up_act(self.shuffle(c[f'up{s}'](res)))
        return c['tail'](res)
