"""BasicSR's own SRModel loads the shipped compact .safetensors checkpoints (model_type: SRModel)."""
import pytest
import torch

import restore_dhp
from nets import compact, widths
from restore_dhp.checkpoint import CheckpointError, save_compact


def _srmodel(path, model_type='SRModel', **net):
    restore_dhp.register()
    from basicsr.models import build_model
    return build_model({'model_type': model_type, 'num_gpu': 0, 'is_train': False, 'dist': False,
                        'network_g': {'type': 'SRResNet', 'num_blocks': 2, 'num_feat': 16, **net},
                        'path': {'pretrain_network_g': str(path), 'strict_load_g': True, 'param_key_g': 'params'}})


def test_srmodel_loads_a_compact_checkpoint(tmp_path):
    torch.manual_seed(0)
    full = compact('srresnet', num_blocks=2, num_feat=16)
    save_compact(full, tmp_path / 'full.safetensors')
    loaded = _srmodel(tmp_path / 'full.safetensors').net_g.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in full.state_dict().items())


def test_srmodel_with_a_pruned_checkpoint_names_the_widths_and_restorationmodel(tmp_path):
    pruned = compact('srresnet', {'trunk': 8, 'block00': 4, 'block01': 12}, num_blocks=2, num_feat=16)
    save_compact(pruned, tmp_path / 'pruned.safetensors')
    with pytest.raises(CheckpointError, match='model_type: RestorationModel'):
        _srmodel(tmp_path / 'pruned.safetensors')   # SRModel builds network_g at full width
    net = _srmodel(tmp_path / 'pruned.safetensors', 'RestorationModel').net_g   # the widths come from the file
    assert widths(net) == widths(pruned)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in pruned.state_dict().items())


def test_eta_of_the_last_iteration_is_zero():
    from restore_dhp._compat import install_basicsr_cpu_fixes
    install_basicsr_cpu_fixes()
    from basicsr import train as bsr_train
    lines = []
    log = bsr_train.MessageLogger({'name': 'eta', 'logger': {'print_freq': 1, 'use_tb_logger': False},
                                   'train': {'total_iter': 10}}, start_iter=0)
    log.logger = type('Collect', (), {'info': staticmethod(lines.append)})()
    log.start_time -= 110  # about 10 s per iteration so far: BasicSR's own count gives -10 s at the end
    for it in (9, 10):
        log({'epoch': 0, 'iter': it, 'lrs': [1e-4], 'time': 0.1, 'data_time': 0.0})
    assert all('eta: 0:00:00' in line and '-1 day' not in line for line in lines), lines
    assert log.max_iters == 10
