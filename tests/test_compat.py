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


def test_a_users_architecture_named_in_the_environment_is_found_by_name(tmp_path):
    """``$RESTORE_DHP_ARCHS`` names a user's module: a lookup by name imports it (here through the checkpoint
    loader, in a fresh process that imported nothing of it), and a name nobody registers is a KeyError."""
    import os
    (tmp_path / 'my_archs.py').write_text(
        'from basicsr.utils.registry import ARCH_REGISTRY\nfrom torch import nn\n\n\n'
        '@ARCH_REGISTRY.register()\nclass MyTinyNet(nn.Module):\n'
        '    def __init__(self, num_feat=4):\n        super().__init__()\n'
        '        self.a, self.b = nn.Conv2d(1, num_feat, 3, padding=1), nn.Conv2d(num_feat, 1, 3, padding=1)\n\n'
        '    def forward(self, x):\n        return x + self.b(self.a(x).relu())\n')
    code = ('import sys, restore_dhp; from restore_dhp import network; '
            'from restore_dhp.checkpoint import load_compact, save_compact; '
            'assert "my_archs" not in sys.modules; '
            'save_compact(network.build("MyTinyNet", {"num_feat": 6}, {"a": 3}), sys.argv[1]); '
            'model = load_compact(sys.argv[1]); '
            'missing = None\ntry:\n    network.arch_class("NoSuchNet")\nexcept KeyError as e:\n    missing = e\n'
            'print(type(model).__name__, network.structure(model).widths, repr(missing))')
    env = dict(os.environ, RESTORE_DHP_ARCHS='my_archs',
               PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get('PYTHONPATH', '')]))
    out = subprocess.run([sys.executable, '-c', code, str(tmp_path / 'm.safetensors')], capture_output=True,
                         text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "MyTinyNet {'a': 3} KeyError('NoSuchNet')"   # and nothing else printed
