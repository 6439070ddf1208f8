"""Architectures, auto-imported so their ``@ARCH_REGISTRY.register()`` decorators run.

The short names (``srresnet``, ``dncnn``) and the form lookups (plain class <-> DHP-searchable class)
are read from the registry, so a new ``*_arch.py`` needs no entry elsewhere.
"""
import importlib
from pathlib import Path

from basicsr.utils.registry import ARCH_REGISTRY

from .forms import compact_classes, dhp_class

_arch_modules = [importlib.import_module(f'restore_dhp.archs.{p.stem}')
                 for p in sorted(Path(__file__).parent.glob('*_arch.py'))]


def aliases() -> dict[str, str]:
    """Short architecture name -> registered plain class name, e.g. ``{'srresnet': 'SRResNetCompact'}``."""
    return {alias: cls.__name__ for alias, cls in sorted(compact_classes(ARCH_REGISTRY).items())}


def compact_class(arch: str) -> type:
    """The registered plain class of a short name or a class name (``KeyError`` if none)."""
    return ARCH_REGISTRY.get(aliases().get(arch, arch))


def dhp_class_of(arch: str) -> type:
    """The registered DHP-searchable class of a short name or a plain class name."""
    return dhp_class(ARCH_REGISTRY, compact_class(arch))
