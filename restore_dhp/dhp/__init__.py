"""The DHP method, independent of any architecture."""
from .hyperconv import HyperConv2d
from .net import DEFAULT_KEEP_THRESHOLD, ArchSpec, ConvSpec, PrunableNet
from .proximal import PROX_TYPES, proximal_step
from .targeting import fill_to_target

__all__ = ['HyperConv2d', 'ArchSpec', 'ConvSpec', 'PrunableNet', 'proximal_step', 'PROX_TYPES',
           'DEFAULT_KEEP_THRESHOLD', 'fill_to_target']
