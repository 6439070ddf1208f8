"""restore_dhp: Differentiable Meta Pruning via HyperNetworks (DHP) for image restoration, on BasicSR.

Importing the package registers its architectures, models and datasets in
BasicSR's registries (after installing the torchvision alias BasicSR needs).
"""
from ._compat import install_torchvision_alias

install_torchvision_alias()

from . import archs, data, models  # noqa: E402,F401  (registers into BasicSR's registries)

__version__ = '0.1.0'
