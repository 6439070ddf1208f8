"""The DHP method, independent of any architecture."""
from .cost import FlopsTable, WidthCost
from .groups import GroupLayout
from .hyperconv import HyperConvBank
from .keep import DEFAULT_KEEP_THRESHOLD, KeepRule
from .latency_table import LatencyTable
from .net import PrunableNet
from .proximal import PROX_TYPES, grouped_proximal_step, proximal_step
from .pruner import DHPPruner, MaskCheck
from .spec import ArchSpec, ConvSpec, LayerSpec
from .targeting import fill_to_target

__all__ = ['ArchSpec', 'ConvSpec', 'LayerSpec', 'PrunableNet', 'GroupLayout', 'HyperConvBank', 'FlopsTable',
           'WidthCost', 'LatencyTable', 'KeepRule', 'DHPPruner', 'MaskCheck', 'proximal_step',
           'grouped_proximal_step', 'PROX_TYPES', 'DEFAULT_KEEP_THRESHOLD', 'fill_to_target']
