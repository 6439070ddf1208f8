"""Architectures, auto-imported so their ``@ARCH_REGISTRY.register()`` decorators run.

Each is a plain torch module: the baseline at full width.  DHP derives its width groups by tracing it
(:mod:`restore_dhp.dhp.trace`), so any BasicSR-registered architecture works the same way; the short names
below are only shorthand for this project's own.
"""
import contextlib
import importlib
import io
from pathlib import Path

from basicsr.utils.registry import ARCH_REGISTRY

_arch_modules = [importlib.import_module(f'restore_dhp.archs.{p.stem}')
                 for p in sorted(Path(__file__).parent.glob('*_arch.py'))]

#: the names the checkpoints shipped before the traced DHP form were written with
LEGACY_NAMES = {'SRResNetCompact': 'SRResNet', 'DnCNNCompact': 'DnCNN'}


def aliases() -> dict[str, str]:
    """Short name -> registered class name of this project's architectures, e.g. ``{'srresnet': 'SRResNet'}``."""
    own = [cls for _, cls in ARCH_REGISTRY if isinstance(cls, type) and cls.__module__.startswith('restore_dhp.archs')]
    return {cls.__name__.lower(): cls.__name__ for cls in sorted(own, key=lambda c: c.__name__)}


def arch_class(arch: str) -> type:
    """The registered class of a short name, a registered name or a legacy name (``KeyError`` if none; BasicSR's
    own architectures and those of ``$RESTORE_DHP_ARCHS`` are registered first when the name is not yet known)."""
    name = aliases().get(arch, LEGACY_NAMES.get(arch, arch)) if isinstance(arch, str) else arch
    if name not in ARCH_REGISTRY:
        importlib.import_module('basicsr.archs')
    if name not in ARCH_REGISTRY:
        # a lookup of a name the registry does not hold registers restore_dhp's and $RESTORE_DHP_ARCHS's first
        # (restore_dhp._compat.register_on_lookup; importing the package from here would be an import cycle);
        # BasicSR prints a line on every miss
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(KeyError):
            ARCH_REGISTRY.get(name)
    if name not in ARCH_REGISTRY:
        raise KeyError(arch)
    return ARCH_REGISTRY.get(name)
