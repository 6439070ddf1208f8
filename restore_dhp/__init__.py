"""restore_dhp: Differentiable Meta Pruning via HyperNetworks (DHP) for image restoration, on BasicSR.

Library use (images are numpy arrays: ``uint8``/``uint16``, ``HxW`` gray or ``HxWx3`` RGB)::

    import restore_dhp
    out = restore_dhp.restore('photo.png', weights='weights/srresnet_x4_dhp40.safetensors')

Importing the package is cheap: it loads nothing of torch or BasicSR.  Its
architectures register in BasicSR's ``ARCH_REGISTRY`` when :mod:`restore_dhp.archs`
is imported (every loader does that); :func:`register` registers the
architectures, datasets and BasicSR models at once, as the ``train`` and
``test`` entries do before BasicSR reads an option file.
"""
from ._compat import BASICSR_LEAVES, basicsr_module, install_torchvision_alias

__version__ = '0.1.0'  # the one place: pyproject.toml reads it (dynamic version), ONNX metadata writes it

install_torchvision_alias()
basicsr_module(BASICSR_LEAVES[0])  # BasicSR's registries, without importing all of BasicSR

_LAZY = {'restore': 'restore_dhp.api', 'load_checkpoint': 'restore_dhp.checkpoint',
         'load_compact': 'restore_dhp.checkpoint'}


def register() -> None:
    """Register restore_dhp's architectures, datasets and models in BasicSR's registries (imports BasicSR)."""
    from . import archs, data, models  # noqa: F401


def __getattr__(name: str):
    """``restore_dhp.restore`` and the loaders, imported on first use (so ``import restore_dhp`` stays fast)."""
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = ['restore', 'load_checkpoint', 'load_compact', 'register', '__version__']
