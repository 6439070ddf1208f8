"""Small, documented fixes that let BasicSR 1.4.2 run on current torchvision.

BasicSR 1.4.2 (the latest release on PyPI) imports
``torchvision.transforms.functional_tensor``, a private module that
torchvision 0.17 renamed to ``torchvision.transforms._functional_tensor``; the
old name was removed in 0.19.  Importing BasicSR then fails.  We register the
old name as an alias of the new module *before* BasicSR is first imported (the
function is called at the top of :mod:`restore_dhp`).  Nothing of BasicSR is
copied or patched on disk; when a BasicSR release fixes the import, the alias
is simply unused.
"""
from __future__ import annotations

import importlib
import sys

_OLD = 'torchvision.transforms.functional_tensor'
_NEW = 'torchvision.transforms._functional_tensor'


def install_torchvision_alias() -> bool:
    """Make ``torchvision.transforms.functional_tensor`` importable. Returns True if an alias was added."""
    if _OLD in sys.modules:
        return False
    try:
        importlib.import_module(_OLD)
        return False
    except ImportError:
        pass
    sys.modules[_OLD] = importlib.import_module(_NEW)
    return True
