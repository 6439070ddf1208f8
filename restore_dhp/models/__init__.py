"""BasicSR model classes, auto-imported so their ``@MODEL_REGISTRY.register()`` decorators run."""
import importlib
from pathlib import Path

from .._compat import install_safetensors_loading

_model_modules = [importlib.import_module(f'restore_dhp.models.{p.stem}')
                  for p in sorted(Path(__file__).parent.glob('*_model.py'))]
install_safetensors_loading()  # BasicSR's own models read .safetensors paths with our loader (see _compat)
