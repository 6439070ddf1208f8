"""Datasets, auto-imported so their ``@DATASET_REGISTRY.register()`` decorators run."""
import importlib
from pathlib import Path

_dataset_modules = [importlib.import_module(f'restore_dhp.data.{p.stem}')
                    for p in sorted(Path(__file__).parent.glob('*_dataset.py'))]
