"""Self-describing compact checkpoints, their errors, and the registry/option-file route."""
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import restore_dhp  # noqa: F401  (first: it lets BasicSR import on current torchvision)
from basicsr.archs import build_network  # noqa: E402
from nets import compact, compacted, dhp, update_masks, widths
from restore_dhp import network
from restore_dhp.archs.srresnet_arch import SRResNet
from restore_dhp.checkpoint import (CheckpointError, convert_training_state, load_checkpoint, load_compact,
                                    read_metadata, save_compact)

WIDTHS = {'trunk': 6, 'block00': 4, 'block01': 9}


@pytest.fixture()
def sr_ckpt(tmp_path):
    torch.manual_seed(0)
    model = compact('srresnet', WIDTHS, num_blocks=2, num_feat=12).eval()
    path = tmp_path / 'sr.safetensors'
    save_compact(model, path, info={'note': 'test'})
    return model, path


def test_round_trip(sr_ckpt):
    model, path = sr_ckpt
    meta = read_metadata(path)
    assert meta['arch'] == 'SRResNet' and meta['widths'] == WIDTHS and meta['info'] == {'note': 'test'}
    assert meta['arch_kwargs']['num_blocks'] == 2 and meta['task'] == 'sr' and meta['scale'] == 4
    loaded = load_compact(path)
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert not loaded.training and network.structure(loaded).scale == 4


def test_load_checkpoint_gives_model_and_metadata(sr_ckpt):
    model, path = sr_ckpt
    loaded = load_checkpoint(path)
    assert loaded.meta['widths'] == WIDTHS and loaded.meta['info'] == {'note': 'test'}
    assert not loaded.model.training and widths(loaded.model) == WIDTHS
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model(x))


def test_build_network_from_option_dict():
    listed = build_network({'type': 'SRResNet', 'num_blocks': 2, 'num_feat': 12})
    assert type(listed) is SRResNet and listed.convs['head'].out_channels == 12 and listed.num_blocks == 2
    for name in ('SRResNet', 'DnCNN', 'UNetDenoiser'):
        assert build_network({'type': name, 'num_feat': 8}).__class__.__name__ == name
    with pytest.raises(TypeError):  # constructors read no files
        build_network({'type': 'SRResNet', 'checkpoint': 'x.safetensors'})
    with pytest.raises(TypeError):  # nor take widths: a network at other widths is network.build's
        build_network({'type': 'SRResNet', 'widths': WIDTHS})


def test_pth_file_names_what_is_accepted(tmp_path):
    path = tmp_path / 'net_g_100.pth'
    torch.save({'params': SRResNet(num_blocks=1, num_feat=8).state_dict()}, path)
    with pytest.raises(CheckpointError, match=r'PyTorch pickle.*accepted: a compact \.safetensors.*convert') as err:
        load_compact(path)
    assert '\n' not in str(err.value)


@pytest.mark.parametrize('search', [False, True])
def test_convert_training_state(tmp_path, search):
    torch.manual_seed(0)
    if search:  # a DHP search state: compacted with its masks
        net = dhp('srresnet', num_blocks=2, num_feat=8).eval()
        with torch.no_grad():
            net.group_latents()['trunk'][:3] = 0
        kept = update_masks(net)
        assert kept == net.kept_widths() and kept['trunk'] == 5
    else:       # a plain network state (widths from the tensor shapes)
        net = compact('srresnet', {'trunk': 5, 'block01': 3}, num_blocks=2, num_feat=8).eval()
        kept = widths(net)
    state = tmp_path / 'net_g_6.pth'
    torch.save({'params': net.state_dict()}, state)
    out = tmp_path / 'c.safetensors'
    convert_training_state(state, out, 'srresnet', num_blocks=2, num_feat=8)
    loaded = load_checkpoint(out)
    assert loaded.meta['widths'] == kept and loaded.meta['info']['converted_from'] == 'net_g_6.pth'
    x = torch.rand(1, 3, 6, 6)
    with torch.no_grad():
        reference = net(x)
        assert torch.allclose(loaded.model(x), reference, atol=1e-5 * reference.abs().max().item())


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(CheckpointError, match='no such file'):
        load_compact(tmp_path / 'nope.safetensors')
    junk = tmp_path / 'junk.safetensors'
    junk.write_bytes(b'\x00' * 64)
    with pytest.raises(CheckpointError, match='junk.safetensors'):
        load_compact(junk)


def test_plain_safetensors_without_metadata(tmp_path):
    path = tmp_path / 'plain.safetensors'
    save_file({'a': torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match='no restore_dhp compact-model metadata'):
        load_compact(path)


def _raw(path):
    """The file's raw metadata strings and tensors, to write altered copies."""
    from safetensors import safe_open
    with safe_open(str(path), 'pt') as f:
        meta = f.metadata()
    return meta, load_file(str(path))


def test_shape_mismatch_names_tensor(sr_ckpt, tmp_path):
    _, path = sr_ckpt
    meta, tensors = _raw(path)
    tensors['convs.head.weight'] = torch.zeros(7, 3, 9, 9)
    bad = tmp_path / 'bad.safetensors'
    save_file(tensors, str(bad), metadata=meta)
    with pytest.raises(CheckpointError, match=r'convs\.head\.weight has shape \(7, 3, 9, 9\)'):
        load_compact(bad)


def test_corrupt_metadata_and_missing_tensor(sr_ckpt, tmp_path):
    _, path = sr_ckpt
    meta, tensors = _raw(path)
    broken = dict(meta, widths='{not json')
    p1 = tmp_path / 'm.safetensors'
    save_file(tensors, str(p1), metadata=broken)
    with pytest.raises(CheckpointError, match='corrupt metadata'):
        load_compact(p1)
    tensors.pop('convs.tail.bias')
    p2 = tmp_path / 't.safetensors'
    save_file(tensors, str(p2), metadata=meta)
    with pytest.raises(CheckpointError, match='missing'):
        load_compact(p2)


@pytest.mark.parametrize('name, value, message', [
    ('convs.head.weight', lambda t: t.to(torch.int32), r'tensor convs\.head\.weight is int32, not floating point'),
    ('norms.body_bn.running_var', lambda t: t - 2.0, r'tensor norms\.body_bn\.running_var holds a negative variance'),
    ('convs.tail.bias', lambda t: t * float('nan'), r'tensor convs\.tail\.bias holds NaN or infinite values'),
])
def test_values_no_network_can_run_with_are_refused(sr_ckpt, tmp_path, name, value, message):
    """Tensors of the right names and shapes but values no training writes: integers, a negative BatchNorm
    variance, NaN; one line naming the file and the tensor."""
    _, path = sr_ckpt
    meta, tensors = _raw(path)
    tensors[name] = value(tensors[name])
    bad = tmp_path / 'values.safetensors'
    save_file(tensors, str(bad), metadata=meta)
    with pytest.raises(CheckpointError, match=message) as err:
        load_compact(bad)
    assert '\n' not in str(err.value) and 'values.safetensors' in str(err.value)


@pytest.mark.parametrize('legacy, arch', [('SRResNetCompact', 'SRResNet'), ('DnCNNCompact', 'DnCNN')])
def test_files_naming_the_old_compact_classes_still_load(tmp_path, legacy, arch):
    """Checkpoints shipped before the traced DHP form name SRResNetCompact / DnCNNCompact: the same tensors."""
    torch.manual_seed(0)
    kwargs = dict(num_blocks=1, num_feat=8) if arch == 'SRResNet' else dict(num_layers=4, num_feat=8)
    model = compact(arch, None, **kwargs).eval()
    path = tmp_path / 'new.safetensors'
    save_compact(model, path)
    meta, tensors = _raw(path)
    old = tmp_path / 'old.safetensors'
    save_file(tensors, str(old), metadata=dict(meta, arch=legacy))
    loaded = load_checkpoint(old)
    assert loaded.meta['arch'] == legacy and type(loaded.model).__name__ == arch
    x = torch.rand(1, network.structure(model).in_channels, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model(x))


def test_truncated_file(sr_ckpt, tmp_path):
    _, path = sr_ckpt
    data = path.read_bytes()
    cut = tmp_path / 'cut.safetensors'
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match='cut.safetensors'):
        load_compact(cut)


def test_saving_dhp_form_is_refused(tmp_path):
    with pytest.raises(TypeError, match='compact'):
        save_compact(dhp('srresnet', num_blocks=1, num_feat=8), tmp_path / 'x.safetensors')


def test_bad_widths_are_rejected():
    with pytest.raises(ValueError, match="width group 'nope'"):
        compact('dncnn', {'nope': 3}, num_layers=4, num_feat=8)
    with pytest.raises(ValueError, match=r'\[1, 8\]'):
        compact('dncnn', {'feat00': 9}, num_layers=4, num_feat=8)


def test_compacted_search_model_saves_and_reloads(tmp_path):
    torch.manual_seed(0)
    net = dhp('srresnet', num_blocks=2, num_feat=8).eval()
    with torch.no_grad():
        net.group_latents()['trunk'][:3] = 0
    update_masks(net)
    path = tmp_path / 'c.safetensors'
    save_compact(compacted(net), path)
    assert json.loads(json.dumps(read_metadata(path)['widths']))['trunk'] == 5
    x = torch.rand(1, 3, 6, 6)
    with torch.no_grad():
        reference = net(x)
        assert torch.allclose(load_compact(path)(x), reference, atol=1e-5 * reference.abs().max().item())


def test_aliases_and_classes_come_from_the_registry():
    from restore_dhp import archs
    from restore_dhp.archs.dncnn_arch import DnCNN
    assert archs.aliases() == {'dncnn': 'DnCNN', 'srresnet': 'SRResNet', 'unetdenoiser': 'UNetDenoiser'}
    assert archs.arch_class('srresnet') is archs.arch_class('SRResNet') is SRResNet
    assert archs.arch_class('dncnn') is DnCNN and archs.arch_class('EDSR').__name__ == 'EDSR'  # BasicSR's own
    # the names the checkpoints shipped before the traced DHP form were written with
    assert archs.arch_class('SRResNetCompact') is SRResNet and archs.arch_class('DnCNNCompact') is DnCNN
    with pytest.raises(KeyError):
        archs.arch_class('edsr')  # short names are this project's architectures only


@pytest.mark.parametrize('change, message', [
    ({'arch_kwargs': {'num_blocks': 2, 'num_feat': 20000}}, r'arch_kwargs\.num_feat=20000 is not an integer in \[-4096, 4096\]'),
    ({'arch_kwargs': {'num_blocks': 100000, 'num_feat': 12}}, r'arch_kwargs\.num_blocks=100000 is not an integer'),
    ({'widths': {'trunk': 6, 'block00': -4, 'block01': 9}}, r'widths\.block00=-4'),
    ({'arch_kwargs': {'num_blocks': 2, 'num_feat': 'many'}}, r"SRResNet cannot be built with .*'num_feat': 'many'"),
    ({'arch_kwargs': {'num_blocks': 40, 'num_feat': 12}}, r'tensors do not match SRResNet: missing'),
    ({'arch_kwargs': {'num_blocks': 2, 'num_feat': 1000},
      'widths': {'trunk': 1000, 'block00': 1000, 'block01': 1000}}, r'tensor convs\.\w+\.(weight|bias) has shape'),
    ({'arch_kwargs': {'num_blocks': 2, 'num_feat': 4000},
      'widths': {'trunk': 4000, 'block00': 4000, 'block01': 4000}}, r'1873176007 parameters, above the bounds'),
])
def test_crafted_metadata_is_refused_before_anything_is_built(sr_ckpt, tmp_path, monkeypatch, change, message):
    """Widths, channels and block counts are bounded and must agree with the tensor shapes before a module is
    built: a crafted file gets one line (and no real-device constructor ever runs)."""
    _, path = sr_ckpt
    meta, tensors = _raw(path)
    meta = dict(meta, **{k: json.dumps(v) for k, v in change.items()})
    bad = tmp_path / 'crafted.safetensors'
    save_file(tensors, str(bad), metadata=meta)
    built = []
    original = SRResNet.__init__

    def spy(self, *a, **kw):
        built.append(torch.empty(0).device.type)   # the default device the module is built on
        original(self, *a, **kw)
    monkeypatch.setattr(SRResNet, '__init__', spy)
    with pytest.raises(CheckpointError, match=message) as err:
        load_compact(bad)
    assert '\n' not in str(err.value) and 'crafted.safetensors' in str(err.value)
    assert all(device == 'meta' for device in built), built


def test_a_crafted_file_allocates_no_more_than_its_tensors(sr_ckpt, tmp_path):
    """In a fresh process, loading a file that claims 1000-channel convs (470 MB if built) over tiny tensors
    peaks no higher than loading the genuine file does (within 64 MB)."""
    import os
    import subprocess
    import sys
    _, path = sr_ckpt
    meta, tensors = _raw(path)
    bad = tmp_path / 'crafted.safetensors'
    save_file(tensors, str(bad), metadata=dict(meta, arch_kwargs=json.dumps({'num_blocks': 2, 'num_feat': 1000}),
                                             widths=json.dumps({'trunk': 1000, 'block00': 1000, 'block01': 1000})))
    code = ('import sys, restore_dhp\nfrom restore_dhp.checkpoint import CheckpointError, load_compact\n'
            'try:\n    load_compact(sys.argv[1])\nexcept CheckpointError as e:\n    print(e)\n')

    def peak(file):
        proc = subprocess.Popen([sys.executable, '-c', code, str(file)], stdout=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        out = proc.stdout.read().decode()
        proc.stdout.close()
        assert os.waitstatus_to_exitcode(status) == 0
        return usage.ru_maxrss * 1024, out
    genuine, _ = peak(path)
    crafted, message = peak(bad)
    assert 'has shape' in message
    assert crafted < genuine + 64 * 2**20, (genuine / 2**20, crafted / 2**20)


def test_convert_refuses_huge_arguments_and_an_unwritable_folder_in_one_line(tmp_path, capsys):
    """Issue 32: --arch-kwargs '{"num_layers": 99999999}' ran for minutes; a folder that cannot be written gave a
    traceback.  Both are one line now, before anything is built or written."""
    import time

    from restore_dhp.checkpoint import main as checkpoint_main
    state = tmp_path / 'net_g_1.pth'
    torch.save({'params': network.build('dncnn', dict(num_layers=4, num_feat=8)).state_dict()}, state)
    start = time.monotonic()
    code = checkpoint_main(['convert', str(state), str(tmp_path / 'a.safetensors'), '--arch', 'dncnn',
                            '--arch-kwargs', '{"num_layers": 99999999}'])
    err = capsys.readouterr().err
    assert code == 2 and time.monotonic() - start < 5 and err.count('\n') == 1
    assert 'num_layers=99999999 is not an integer in [-4096, 4096]' in err
    assert checkpoint_main(['convert', str(state), str(tmp_path / 'b.safetensors'), '--arch', 'dncnn',
                            '--arch-kwargs', '{"num_feat": 4096, "num_layers": 4000}']) == 2
    assert 'above the bounds' in capsys.readouterr().err
    not_a_folder = tmp_path / 'plain_file'  # (tests run as root here, which writes through permissions)
    not_a_folder.write_text('x')
    code = checkpoint_main(['convert', str(state), str(not_a_folder / 'c.safetensors'), '--arch', 'dncnn',
                            '--arch-kwargs', '{"num_layers": 4, "num_feat": 8}'])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith('error: ') and err.count('\n') == 1, err
    assert not_a_folder.read_text() == 'x'
