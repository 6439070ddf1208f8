"""restore_dhp: Differentiable Meta Pruning via HyperNetworks (DHP) for image restoration, on BasicSR.

Library use (images are numpy arrays: ``uint8``/``uint16``, ``HxW`` gray or ``HxWx3`` RGB)::

    import restore_dhp
    out = restore_dhp.restore('photo.png', weights='weights/srresnet_x4_dhp40.safetensors')

Importing the package is cheap: it loads nothing of torch or BasicSR.  Its
architectures, datasets and BasicSR models register in BasicSR's registries
when :func:`register` runs: the ``train`` and ``test`` entries call it, and so
does the first lookup of a name a registry does not hold (so ``import
restore_dhp`` then BasicSR's ``build_network``/``build_dataset``/``build_model``
works as with any BasicSR extension).  Importing :mod:`restore_dhp.archs`
registers the architectures alone (every checkpoint loader does that).
"""
from ._compat import install_torchvision_alias, register_on_lookup
from ._version import __version__


#: modules to import when registering (comma-separated), e.g. ``RESTORE_DHP_ARCHS=my_package.archs``: a user's own
#: registered architectures, for the command-line entries that load their checkpoints
ARCHS_VARIABLE = 'RESTORE_DHP_ARCHS'


def register() -> None:
    """Register restore_dhp's architectures, datasets and models in BasicSR's registries (imports BasicSR), and
    import the modules named in ``$RESTORE_DHP_ARCHS`` (a user's own architectures)."""
    import importlib
    import os
    from . import archs, data, models  # noqa: F401
    for module in filter(None, (m.strip() for m in os.environ.get(ARCHS_VARIABLE, '').split(','))):
        importlib.import_module(module)


install_torchvision_alias()
register_on_lookup(register)  # loads BasicSR's registries without importing all of BasicSR
_LAZY = {'restore': 'restore_dhp.api', 'load_checkpoint': 'restore_dhp.checkpoint',
         'load_compact': 'restore_dhp.checkpoint'}


def __getattr__(name: str):
    """``restore_dhp.restore`` and the loaders, imported on first use (so ``import restore_dhp`` stays fast)."""
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = ['restore', 'load_checkpoint', 'load_compact', 'register', '__version__']
