"""Option files are checked completely before anything is written: one line naming the key, no experiments folder."""
from __future__ import annotations

import os

import pytest

import restore_dhp  # noqa: F401
from restore_dhp.options import validate_file
from restore_dhp.train import main as train_main
from train_helpers import dncnn_options, make_images, sr_options, write_options


def _fails_before_training(root, opt_path, capsys, *expected):
    """``python -m restore_dhp.train`` refuses the file in one line naming ``expected``, writing nothing."""
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert train_main(['-opt', str(opt_path)]) == 2
    finally:
        os.chdir(cwd)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    for text in expected:
        assert text in err[0], err[0]
    assert not (root / 'experiments').exists()
    return err[0]


def test_valid_options_pass(tmp_path):
    validate_file(write_options(tmp_path, sr_options(tmp_path)))
    validate_file(write_options(tmp_path, dncnn_options(tmp_path), 'dn.yml'))


def test_dataset_key_typo_names_the_nearest_key(tmp_path, capsys):
    opt = dncnn_options(tmp_path)
    opt['datasets']['train']['sigm'] = 25            # would silently train at the default sigma=70
    _fails_before_training(tmp_path, write_options(tmp_path, opt), capsys,
                           'unknown option datasets.train.sigm', 'did you mean sigma?')
    opt = sr_options(tmp_path)
    opt['datasets']['val']['dataroot_q'] = str(tmp_path / 'hr')
    _fails_before_training(tmp_path, write_options(tmp_path, opt), capsys,
                           'datasets.val.dataroot_q', 'did you mean dataroot_lq?')


def test_section_key_typo_names_the_nearest_key(tmp_path, capsys):
    opt = sr_options(tmp_path)
    opt['train']['total_iters'] = 5
    _fails_before_training(tmp_path, write_options(tmp_path, opt), capsys,
                           'unknown option train.total_iters', 'did you mean total_iter?')


@pytest.mark.parametrize('text', ['2e-4', '1E-3', '5e+2'])
def test_number_yaml_reads_as_text_is_rejected_naming_the_key(tmp_path, capsys, text):
    path = write_options(tmp_path, sr_options(tmp_path))
    with open(path) as f:
        body = f.read()
    assert 'lr: 0.001' in body
    with open(path, 'w') as f:
        f.write(body.replace('lr: 0.001', f'lr: {text}'))
    _fails_before_training(tmp_path, path, capsys, 'option train.optim_g.lr', f'reads {text} as text', 'e')


def test_empty_dataset_folder_fails_in_one_line(tmp_path, capsys):
    opt = sr_options(tmp_path)
    empty = tmp_path / 'empty'
    empty.mkdir()
    (empty / 'notes.txt').write_text('no images here')
    opt['datasets']['train']['dataroot_gt'] = str(empty)
    _fails_before_training(tmp_path, write_options(tmp_path, opt), capsys,
                           'datasets.train.dataroot_gt', 'holds no images')


def test_missing_dataset_folder_fails_in_one_line(tmp_path, capsys):
    opt = dncnn_options(tmp_path)
    opt['datasets']['val']['dataroot_gt'] = str(tmp_path / 'nowhere')
    _fails_before_training(tmp_path, write_options(tmp_path, opt), capsys,
                           'datasets.val.dataroot_gt', 'does not exist')


@pytest.mark.parametrize('key', ['pretrain_network_g', 'resume_state'])
def test_missing_path_file_fails_in_one_line(tmp_path, capsys, key):
    opt = sr_options(tmp_path)
    opt['path'][key] = str(tmp_path / 'weights' / 'missing.safetensors')
    _fails_before_training(tmp_path, write_options(tmp_path, opt), capsys, f'option path.{key}', 'does not exist')


def test_a_list_of_folders_is_checked_folder_by_folder(tmp_path, capsys):
    opt = sr_options(tmp_path)
    (tmp_path / 'second').mkdir()
    opt['datasets']['train']['dataroot_gt'] = [str(make_images(tmp_path / 'first')), str(tmp_path / 'second')]
    _fails_before_training(tmp_path, write_options(tmp_path, opt), capsys, str(tmp_path / 'second'), 'no images')


def _set(path, value):
    """An edit of the options: ``path`` as 'a.b.c' set to ``value``."""
    def edit(opt):
        *parents, last = path.split('.')
        node = opt
        for key in parents:
            node = node[key]
        node[last] = value
    return edit


def _garbage_pretrain(opt, root):
    (root / 'garbage.pth').write_bytes(b'this is not a checkpoint' * 10)
    opt['path']['pretrain_network_g'] = str(root / 'garbage.pth')


# the table: each impossible value is refused in one line naming the key, before anything is created
IMPOSSIBLE = [
    ('sr', _set('datasets.train.batch_size_per_gpu', 0), 'option datasets.train.batch_size_per_gpu must be a positive integer, got 0'),
    ('sr', _set('datasets.train.gt_size', 0), 'option datasets.train.gt_size must be a positive integer, got 0'),
    ('sr', _set('datasets.train.gt_size', 400), 'option datasets.train.gt_size=400 is larger than every training image'),
    ('sr', _set('datasets.train.gt_size', 18), 'option datasets.train.gt_size=18 must be a multiple of scale=4'),
    ('dn', _set('datasets.train.sigma', 'abc'), "option datasets.train.sigma must be a number >= 0 and <= 255, got 'abc'"),
    ('dn', _set('datasets.train.sigma', -70), 'option datasets.train.sigma must be a number >= 0 and <= 255, got -70'),
    ('sr', _set('train.optim_g.lr', 'fast'), "option train.optim_g.lr must be a number > 0, got 'fast'"),
    ('sr', _garbage_pretrain, 'option path.pretrain_network_g: '),
    ('sr', _set('train.scheduler.type', 'StepLR'), "option train.scheduler.type must be one of MultiStepLR, "
                                                   "MultiStepRestartLR, CosineAnnealingRestartLR, got 'StepLR'"),
    ('sr', _set('train.optim_g.type', 'Adamm'), "option train.optim_g.type must be one of Adam, AdamW, got 'Adamm'"),
    ('sr', _set('train.pixel_opt.type', 'L1Los'), "option train.pixel_opt.type must be a registered loss (did you "
                                                  "mean L1Loss?), got 'L1Los'"),
    # network_g's arguments are bounded as any architecture's (checkpoint.check_arch_kwargs), then built on the meta
    # device and traced: the architecture's own refusal, or the trace's, with the arguments given
    ('sr', _set('network_g.num_feat', 0), "option network_g: SRResNet cannot be traced by torch.export: "),
    ('sr', _set('network_g.num_feat', 0), "(built with {'num_feat': 0, 'num_blocks': 2})"),
    ('sr', _set('network_g.num_feat', 100000), 'option network_g: arch_kwargs.num_feat=100000 is not an integer in '
                                               '[-4096, 4096]'),
    ('dn', _set('network_g.num_layers', -3), "option network_g: DnCNN cannot be built with {'num_feat': 8, "
                                             "'num_layers': -3} (DnCNN needs at least 3 layers, got -3)"),
    ('sr', _set('datasets.train.cache', 'yes please'), "option datasets.train.cache must be one of true, false, gpu, "
                                                       "got 'yes please'"),
    ('sr', _set('name', '../../x'), "option name must be a plain folder name"),
    ('sr', _set('name', '/tmp/x'), "option name must be a plain folder name"),
    ('sr', _set('datasets.train.use_rot', 'yes'), "option datasets.train.use_rot must be true or false, got 'yes'"),
    ('sr', _set('network_g.type', 'SRResNetDH'), 'option network_g.type must be a registered architecture (did you '
                                                 'mean SRResNet?)'),
    ('sr', _set('datasets.val.type', 'Nope'), 'option datasets.val.type must be a registered dataset'),
    ('sr', _set('logger.print_freq', 0), 'option logger.print_freq must be a positive integer, got 0'),
]


@pytest.mark.parametrize('kind, edit, message', IMPOSSIBLE, ids=[m.split(' must')[0].split(':')[0].split('=')[0]
                                                                 + f'-{i}' for i, (_, _, m) in enumerate(IMPOSSIBLE)])
def test_impossible_values_are_refused_naming_the_key(tmp_path, capsys, kind, edit, message):
    opt = sr_options(tmp_path) if kind == 'sr' else dncnn_options(tmp_path)
    if edit is _garbage_pretrain:
        edit(opt, tmp_path)
    else:
        edit(opt)
    _fails_before_training(tmp_path, write_options(tmp_path, opt), capsys, message)


def test_more_gpus_than_the_machine_has_are_refused(tmp_path, capsys):
    import torch
    opt = sr_options(tmp_path)
    opt['num_gpu'] = torch.cuda.device_count() + 3
    _fails_before_training(tmp_path, write_options(tmp_path, opt), capsys, 'option num_gpu must be auto or an integer in '
                           f'[0, {torch.cuda.device_count()}]', f'got {opt["num_gpu"]}')


def test_wandb_without_the_package_is_refused(tmp_path, capsys, monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: None if name == 'wandb' else real(name, *a))
    opt = sr_options(tmp_path)
    opt['logger']['wandb'] = {'project': 'dhp', 'resume_id': None}
    _fails_before_training(tmp_path, write_options(tmp_path, opt), capsys,
                           'option logger.wandb: wandb is not installed; pip install wandb, or remove logger.wandb')


def _train_with(root, opt_path, capsys, *extra):
    cwd = os.getcwd()
    os.chdir(root)
    try:
        code = train_main(['-opt', str(opt_path), *extra])
    finally:
        os.chdir(cwd)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return code, err


@pytest.mark.parametrize('force, message', [
    (['datasets:train:batch_size_per_gpu=0'], 'option datasets.train.batch_size_per_gpu must be a positive integer'),
    (['name=../escaped'], 'option name must be a plain folder name'),
    (['train:optim_g:lr=fast'], "option train.optim_g.lr must be a number > 0, got 'fast'"),
    (['train:optim_g:lr=5.0e-4'], 'BasicSR reads 5.0e-4 as text, not a number; write train:optim_g:lr=!!float5.0e-4'),
    (['train:scheduler:milestones=[__import__("os").getpid()]'], 'a list must be a literal'),
    (['name"]=1;import os;x=opt["name'], 'write key:subkey=value (one =)'),
    (['name"][0:0]+__import__("os").getcwd()+opt["name=x'], 'the key must be plain names'),
    (['nosuch:key=1'], 'option nosuch is not a section'),
])
def test_force_yml_values_are_checked_and_nothing_is_renamed(tmp_path, capsys, force, message):
    """--force_yml overrides are checked like the file, before BasicSR archives the previous run's folder."""
    previous = tmp_path / 'experiments' / 'tiny_sr'
    previous.mkdir(parents=True)
    (previous / 'train.log').write_text('the previous run')
    code, err = _train_with(tmp_path, write_options(tmp_path, sr_options(tmp_path)), capsys, '--force_yml', *force)
    assert code == 2 and len(err) == 1 and message in err[0] and 'with --force_yml' in err[0], err
    assert sorted(p.name for p in (tmp_path / 'experiments').iterdir()) == ['tiny_sr']   # not *_archived_*
    assert (previous / 'train.log').read_text() == 'the previous run'


def test_force_yml_applies_values_as_basicsr_does(tmp_path):
    from restore_dhp.options import apply_force_yml
    opt = sr_options(tmp_path)
    forced = apply_force_yml(opt, ['train:ema_decay=0.999', 'train:scheduler:milestones=[10, 20]', 'val:save_img=true',
                                   'path:resume_state=~', 'train:total_iter=7', 'train:optim_g:lr=!!float2e-4'])
    assert forced['train']['ema_decay'] == 0.999 and forced['train']['scheduler']['milestones'] == [10, 20]
    assert forced['val']['save_img'] is True and forced['path']['resume_state'] is None
    assert forced['train']['optim_g']['lr'] == 2e-4
    assert forced['train']['total_iter'] == 7 and opt['train']['total_iter'] == 12   # the original is unchanged
    path = write_options(tmp_path, opt)
    assert validate_file(path, force_yml=['train:total_iter=3'])['train']['total_iter'] == 3


def test_a_yaml_alias_bomb_is_refused_fast_in_one_line(tmp_path, capsys):
    """Issue 32: 10 levels of 10 aliases (10^10 nodes once expanded) hung the check for over a minute."""
    import time
    lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]']
    lines += [f'a{i}: &a{i} [' + ', '.join([f'*a{i - 1}'] * 10) + ']' for i in range(1, 10)]
    (tmp_path / 'bomb.yml').write_text('\n'.join(lines + ['name: bomb']) + '\n')
    start = time.monotonic()
    line = _fails_before_training(tmp_path, tmp_path / 'bomb.yml', capsys, 'bomb.yml', 'more than 100,000 nodes')
    assert time.monotonic() - start < 10, line
    (tmp_path / 'loop.yml').write_text('a: &a [1, *a]\n')
    _fails_before_training(tmp_path, tmp_path / 'loop.yml', capsys, 'an alias refers to the node that holds it')
    (tmp_path / 'big.yml').write_text('name: x\n' + '#' * (1 << 20) + '\n')
    _fails_before_training(tmp_path, tmp_path / 'big.yml', capsys, 'big.yml is 1,048,585 bytes, over the 1,048,576')
    (tmp_path / 'deep.yml').write_text('a: ' + '[' * 5000 + ']' * 5000 + '\n')
    _fails_before_training(tmp_path, tmp_path / 'deep.yml', capsys, 'nested too deeply')


def test_a_compact_pretrain_completes_network_g_before_it_is_checked(tmp_path):
    """EDSR has required arguments: ``network_g: {type: EDSR}`` with a compact checkpoint as pretrain (the warm-start
    control) was refused as 'EDSR cannot be built with {}' although the run takes them from the file."""
    from restore_dhp import network
    from restore_dhp.checkpoint import save_compact
    from restore_dhp.errors import OptionError
    kwargs = dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=2, upscale=2)
    save_compact(network.build('EDSR', kwargs), tmp_path / 'edsr.safetensors')
    opt = sr_options(tmp_path)
    opt['scale'] = opt['datasets']['train']['scale'] = opt['datasets']['val']['scale'] = 2
    opt['network_g'] = {'type': 'EDSR'}
    opt['path']['pretrain_network_g'] = str(tmp_path / 'edsr.safetensors')
    validate_file(write_options(tmp_path, opt))
    opt['network_g'] = {'type': 'EDSR', 'num_feat': 16}
    with pytest.raises(OptionError, match='num_feat=16 differs'):
        validate_file(write_options(tmp_path, opt, 'differs.yml'))
