"""BasicSR model classes, auto-imported so their ``@MODEL_REGISTRY.register()`` decorators run."""
import importlib
from pathlib import Path

_model_modules = [importlib.import_module(f'restore_dhp.models.{p.stem}')
                  for p in sorted(Path(__file__).parent.glob('*_model.py'))]
