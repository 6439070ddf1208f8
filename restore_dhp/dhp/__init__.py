"""The DHP method, independent of any architecture: trace a plain network, search its widths, compact it."""
from .cost import FlopsTable, WidthCost
from .groups import GroupLayout
from .hyperconv import HyperConvBank
from .keep import DEFAULT_KEEP_THRESHOLD, KeepRule
from .latency_table import LatencyTable
from .net import HYPER_INITS, DHPNet
from .proximal import PROX_TYPES, grouped_proximal_step, proximal_step
from .pruner import STOP_REASONS, DHPPruner, MaskCheck, Schedule, SearchStep
from .resize import first_channels, padded_widths, select_channels
from .spec import ArchSpec, ConvSpec, LayerSpec, Segment
from .targeting import fill_to_target
from .trace import TraceError, trace_spec

__all__ = ['ArchSpec', 'ConvSpec', 'LayerSpec', 'Segment', 'DHPNet', 'HYPER_INITS', 'GroupLayout', 'HyperConvBank',
           'FlopsTable', 'WidthCost', 'LatencyTable', 'KeepRule', 'DHPPruner', 'MaskCheck', 'Schedule', 'SearchStep',
           'STOP_REASONS', 'proximal_step', 'grouped_proximal_step', 'PROX_TYPES', 'DEFAULT_KEEP_THRESHOLD',
           'fill_to_target', 'select_channels', 'first_channels', 'padded_widths', 'trace_spec', 'TraceError']
