"""Architectures, auto-imported so their ``@ARCH_REGISTRY.register()`` decorators run."""
import importlib
from pathlib import Path

_arch_modules = [importlib.import_module(f'restore_dhp.archs.{p.stem}')
                 for p in sorted(Path(__file__).parent.glob('*_arch.py'))]
