"""Initialisation of the plain architectures' convs (a choice each architecture makes once; see its module)."""
from __future__ import annotations

import math

from torch import nn

INITS = ('he', 'default')


def init_convs(convs: nn.ModuleDict, init: str, body: list[str], body_init_scale: float | None = None) -> None:
    """``init``: ``'he'`` (fan-in He normal, the scale the DHP hypernetworks generate) or ``'default'`` (PyTorch's,
    3x smaller variance).  ``body_init_scale``: the ``body`` convs' weights normal with std x sqrt(fan-in) equal
    to it instead (He: sqrt(2))."""
    if init not in INITS:
        raise ValueError(f'init must be one of {INITS}, got {init!r}')
    if body_init_scale is not None and (isinstance(body_init_scale, bool) or not isinstance(body_init_scale, (int, float))
                                        or body_init_scale <= 0):
        raise ValueError(f'body_init_scale must be a positive number, got {body_init_scale!r}')
    for name, conv in convs.items():
        if init == 'he':
            nn.init.kaiming_normal_(conv.weight, mode='fan_in', nonlinearity='relu')
        if body_init_scale is not None and name in body:
            nn.init.normal_(conv.weight, std=body_init_scale / math.sqrt(conv.weight[0].numel()))
