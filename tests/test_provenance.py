"""A compact checkpoint carries its own training record: every validation and the wall time, across a resume."""
from __future__ import annotations

import os

from train_helpers import run_train, sr_options, write_options

from restore_dhp.checkpoint import read_metadata


def test_checkpoint_records_validation_history_and_wall_time_across_a_resume(tmp_path):
    # 30 iterations: enough to take a wall time the metadata's 0.1 s resolution shows (4 took under 0.05 s)
    opt = sr_options(str(tmp_path), name='prov', model='RestorationModel', total_iter=30, save_freq=15,
                     network={'type': 'SRResNet', 'num_feat': 8, 'num_blocks': 2})
    opt['val']['val_freq'] = 15
    path = write_options(str(tmp_path), opt)
    run_train(str(tmp_path), path)
    models = tmp_path / 'experiments' / 'prov' / 'models'
    first = read_metadata(models / 'net_g_latest.safetensors')['info']
    assert [v[0] for v in first['validation']] == [15, 30]
    assert first['validation'][0][1] == 'tinyval' and 'psnr' in first['validation'][0][2]
    assert first['wall_time_s'] > 0
    # a second segment: resume from the state at iteration 30 and train on to 45 (BasicSR saves a state before
    # that iteration's validation, so the state knows the validations up to iteration 15)
    opt['train']['total_iter'] = 45
    opt['path']['resume_state'] = os.path.join(str(tmp_path), 'experiments', 'prov', 'training_states', '30.state')
    run_train(str(tmp_path), write_options(str(tmp_path), opt))
    resumed = read_metadata(models / 'net_g_latest.safetensors')['info']
    assert [v[0] for v in resumed['validation']] == [15, 45]
    assert resumed['wall_time_s'] > first['wall_time_s'] * 0.5  # the first segment's time is carried over


def test_a_run_from_a_compact_checkpoint_resumes_with_its_widths_and_parent(tmp_path):
    from nets import compact
    from restore_dhp.checkpoint import save_compact
    start = tmp_path / 'start.safetensors'
    save_compact(compact('srresnet', {'trunk': 6, 'block00': 4, 'block01': 5}, num_feat=8, num_blocks=2),
                 start, info={'experiment': 'first_stage'})
    opt = sr_options(str(tmp_path), name='cont', model='RestorationModel', total_iter=4, save_freq=2,
                     network={'type': 'SRResNet'})
    opt['path']['pretrain_network_g'] = str(start)
    run_train(str(tmp_path), write_options(str(tmp_path), opt))
    opt['train']['total_iter'] = 6  # BasicSR now points pretrain_network_g at the run's own net_g_4.pth
    out = run_train(str(tmp_path), write_options(str(tmp_path), opt), '--auto_resume')
    assert 'Resuming training from epoch' in out.stdout + out.stderr
    meta = read_metadata(tmp_path / 'experiments' / 'cont' / 'models' / 'net_g_latest.safetensors')
    assert meta['widths'] == {'trunk': 6, 'block00': 4, 'block01': 5}
    assert meta['info']['iteration'] == 'latest' and meta['info']['parent']['file'] == str(start)
    assert meta['info']['parent']['experiment'] == 'first_stage'
