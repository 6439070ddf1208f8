"""The documented torchvision alias that lets BasicSR 1.4.2 import, and BasicSR's registries without all of BasicSR."""
import subprocess
import sys

import pytest


def _run(code: str) -> str:
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.strip()


def test_basicsr_imports_through_restore_dhp():
    code = ('import restore_dhp, sys; restore_dhp.register(); import basicsr; '
            'from basicsr.data.degradations import rgb_to_grayscale; '
            'from basicsr.utils.registry import ARCH_REGISTRY, MODEL_REGISTRY; '
            'assert "SRResNet" in ARCH_REGISTRY._obj_map and "DnCNN" in ARCH_REGISTRY._obj_map; '
            'assert "DHPSearchModel" in MODEL_REGISTRY._obj_map and "SRModel" in MODEL_REGISTRY._obj_map; '
            'print(sys.modules["torchvision.transforms.functional_tensor"].__name__)')
    assert _run(code) == 'torchvision.transforms._functional_tensor'


def test_package_import_loads_neither_torch_nor_basicsr():
    code = ('import sys, restore_dhp; '
            'print(sorted(m for m in ("torch", "torchvision", "basicsr", "basicsr.archs") if m in sys.modules))')
    assert _run(code) == '[]'


def test_registry_loaded_early_is_the_one_basicsr_builds_from():
    """Our architectures register in the registry loaded without BasicSR's __init__; a later full
    import of BasicSR (what training does) builds them from that same registry."""
    code = ('import sys, restore_dhp.archs; assert "basicsr.archs" not in sys.modules; '
            'from basicsr.archs import build_network; '
            'net = build_network({"type": "DnCNN", "num_feat": 8}); '
            'print(type(net).__name__, "MSRResNet" in sys.modules["basicsr.utils.registry"].ARCH_REGISTRY._obj_map)')
    assert _run(code) == 'DnCNN True'


def test_only_self_contained_basicsr_files_load_alone():
    from restore_dhp._compat import basicsr_module
    with pytest.raises(ValueError, match='load on their own'):
        basicsr_module('basicsr.models.sr_model')


def test_alias_is_idempotent():
    from restore_dhp._compat import install_torchvision_alias
    assert install_torchvision_alias() is False  # already installed by the package import


def test_import_then_basicsr_build_finds_our_components():
    """As with any BasicSR extension: import the package, then BasicSR's builders know its names."""
    code = ('import restore_dhp; from basicsr.models import build_model; from basicsr.archs import build_network; '
            'from basicsr.utils.registry import MODEL_REGISTRY, DATASET_REGISTRY; '
            'print(type(build_network({"type": "DnCNN", "num_feat": 8})).__name__, '
            'MODEL_REGISTRY.get("DHPSearchModel").__name__, DATASET_REGISTRY.get("SRBicubicDataset").__name__)')
    assert _run(code) == 'DnCNN DHPSearchModel SRBicubicDataset'
