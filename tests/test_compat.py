"""The documented torchvision alias that lets BasicSR 1.4.2 import."""
import subprocess
import sys


def test_basicsr_imports_through_restore_dhp():
    code = ('import restore_dhp, sys; import basicsr; '
            'from basicsr.data.degradations import rgb_to_grayscale; '
            'from basicsr.utils.registry import ARCH_REGISTRY, MODEL_REGISTRY; '
            'assert "SRResNetDHP" in ARCH_REGISTRY._obj_map and "DnCNNCompact" in ARCH_REGISTRY._obj_map; '
            'print(sys.modules["torchvision.transforms.functional_tensor"].__name__)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == 'torchvision.transforms._functional_tensor'


def test_alias_is_idempotent():
    from restore_dhp._compat import install_torchvision_alias
    assert install_torchvision_alias() is False  # already installed by the package import
