"""Rules of the DHP method: hypernetwork, proximal step, group masks, exact compaction."""
import pytest
import torch

import restore_dhp  # noqa: F401
from restore_dhp.archs.dncnn_arch import DnCNNDHP
from restore_dhp.archs.srresnet_arch import SRResNetCompact, SRResNetDHP
from restore_dhp.dhp import (ArchSpec, ConvSpec, GroupLayout, HyperConvBank, KeepRule, LayerSpec, fill_to_target,
                             grouped_proximal_step, proximal_step)


def _reference_kernel(bank, i, z_in, z_out):
    """The per-conv formula of the paper, written out for conv ``i`` of a bank (no batching)."""
    z_out = z_out.repeat_interleave(bank.out_per_latent)
    latent = torch.outer(z_out, z_in) + bank.bias0[i]
    embedding = latent.unsqueeze(-1) * bank.weight1[i] + bank.bias1[i]
    kernel = torch.matmul(bank.weight2[i], embedding.unsqueeze(-1)).squeeze(-1) + bank.bias2[i]
    return kernel.view(bank.out_channels, bank.in_channels, bank.kernel_size, bank.kernel_size)


def _trained_like(bank, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in (bank.bias0, bank.bias1, bank.bias2):  # trained biases are non-zero
            p.copy_(torch.randn(p.shape, generator=gen))


@pytest.mark.parametrize('per', [1, 4])
def test_bank_equals_per_conv_formula_with_latent_gradients(per):
    torch.manual_seed(0)
    bank = HyperConvBank(3, 5, 2, 3, out_per_latent=per)
    _trained_like(bank)
    z_in = torch.randn(3, 5, requires_grad=True)
    z_out = torch.randn(3, 2, requires_grad=True)
    kernels = bank.generate(z_in, z_out.repeat_interleave(per, dim=1))
    assert kernels.shape == (3, 2 * per, 5, 3, 3)
    z_in_ref = z_in.detach().clone().requires_grad_()
    z_out_ref = z_out.detach().clone().requires_grad_()
    reference = torch.stack([_reference_kernel(bank, i, z_in_ref[i], z_out_ref[i]) for i in range(3)])
    assert torch.allclose(kernels, reference, atol=1e-6)
    weights = torch.randn_like(kernels)
    (kernels * weights).sum().backward()
    (reference * weights).sum().backward()
    assert torch.allclose(z_in.grad, z_in_ref.grad, atol=1e-5) and z_in.grad.abs().sum() > 0
    assert torch.allclose(z_out.grad, z_out_ref.grad, atol=1e-5) and z_out.grad.abs().sum() > 0


def test_net_stacks_same_shaped_convs_and_reads_its_latents():
    net = SRResNetDHP(num_blocks=3, num_feat=8)
    members = {tuple(names) for names in net.bank_members.values()}
    body = ('block00_conv1', 'block00_conv2', 'block01_conv1', 'block01_conv2', 'block02_conv1', 'block02_conv2',
            'body')
    assert members == {('head',), body, ('up0', 'up1'), ('tail',)}
    _trained_like(net.banks['k3_in8_out8x4'])
    kernels = net.generate_kernels()
    latents = net.group_latents()
    ones = torch.ones(3)
    for name, i, z_in, z_out in (('up1', 1, latents['trunk'], latents['trunk']),
                                 ('block01_conv1', 2, latents['trunk'], latents['block01']),
                                 ('tail', 0, latents['trunk'], ones), ('head', 0, ones, latents['trunk'])):
        key = next(k for k, names in net.bank_members.items() if name in names)
        assert net.bank_members[key][i] == name
        assert torch.allclose(kernels[name][0], _reference_kernel(net.banks[key], i, z_in, z_out), atol=1e-6)
    # an upsampler output channel 4c+k follows trunk latent c (input channel 1 reads it too: left out)
    other_inputs = [c for c in range(8) if c != 1]
    before = kernels['up0'][0].detach()[:, other_inputs]
    with torch.no_grad():
        net.group_latents()['trunk'][1] = 5.0
    changed = (net.generate_kernels()['up0'][0][:, other_inputs] - before).flatten(1).abs().sum(1) > 0
    assert changed.tolist() == [False] * 4 + [True] * 4 + [False] * 24


def test_hyper_fan_in_init_gives_he_scale():
    torch.manual_seed(0)
    bank = HyperConvBank(8, 64, 64, 3)
    variance = bank.generate(torch.randn(8, 64), torch.randn(8, 64)).var().item()
    assert abs(variance / (2.0 / (64 * 9)) - 1) < 0.15  # He init for the fan-in of a 64-channel 3x3 conv


def test_old_per_conv_search_state_loads():
    """A search state written before the hypernetworks were stacked (convs.<name>.weight1, latents.<group>)."""
    torch.manual_seed(0)
    net = DnCNNDHP(num_layers=5, num_feat=6)
    with torch.no_grad():
        net.masks[:3] = 0
    old = {}
    for key, value in net.state_dict().items():
        if key.startswith('banks.'):
            _, bank, param = key.split('.')
            for name, tensor in zip(net.bank_members[bank], value):
                old[f'convs.{name}.{param}'] = tensor
        elif key in ('latents', 'masks'):
            for group, part in net.layout.split(value).items():
                old[f'{key}.{group}'] = part
        else:
            old[key] = value
    fresh = DnCNNDHP(num_layers=5, num_feat=6)
    fresh.load_state_dict(old)
    for key, value in net.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


def test_l1_prox_exact_values():
    z = torch.tensor([0.5, -0.3, 0.05, -0.02, 0.0, 1.0])
    out = proximal_step(z, 0.1, prox='l1', min_width=1)
    assert torch.allclose(out, torch.tensor([0.4, -0.2, 0.0, 0.0, 0.0, 0.9]))


def test_l2_prox_exact_values():
    z = torch.tensor([3.0, 4.0])  # norm 5
    out = proximal_step(z, 1.0, prox='l2', min_width=1)
    assert torch.allclose(out, torch.tensor([2.4, 3.2]))


def test_prox_respects_min_width():
    z = torch.tensor([0.05, -0.08, 0.01, 0.02, -0.03, 0.09])
    out = proximal_step(z, 1.0, prox='l1', min_width=4, threshold=5e-3)
    kept = (out.abs() >= 5e-3).nonzero().flatten().tolist()
    assert kept == [0, 1, 4, 5]  # the four largest |z| survive, with their values
    assert torch.equal(out[kept], z[kept])
    assert torch.equal(out[[2, 3]], torch.zeros(2))


def test_grouped_prox_treats_each_group_alone():
    layout = GroupLayout({'a': 3, 'b': 5, 'c': 2})
    z = torch.tensor([0.5, -0.3, 0.05,  0.05, -0.08, 0.01, 0.02, 0.09,  3.0, 4.0])
    out = grouped_proximal_step(z, layout, torch.tensor(0.1), prox='l1', min_width=2)
    # a: plain soft threshold (two survive); b: only 0.09 would survive -> its two largest keep their values;
    # c: plain soft threshold
    expected = torch.tensor([0.4, -0.2, 0.0,  0.0, -0.08, 0.0, 0.0, 0.09,  2.9, 3.9])
    assert torch.allclose(out, expected)
    l2 = grouped_proximal_step(z, layout, 1.0, prox='l2', min_width=1)
    assert torch.allclose(l2[8:], torch.tensor([2.4, 3.2]))  # group c alone: norm 5
    assert torch.equal(l2[3:8], torch.tensor([0.0, 0.0, 0.0, 0.0, 0.09]))  # b: norm < 1, only its largest kept
    assert torch.equal(l2[:3], torch.tensor([0.5, 0.0, 0.0]))  # so is a (norm 0.585)


def test_unknown_prox_is_rejected():
    with pytest.raises(ValueError, match='unknown proximal operator'):
        proximal_step(torch.ones(3), 0.1, prox='l0')


def test_srresnet_groups_follow_residual_coupling():
    spec = SRResNetDHP(num_blocks=3, num_feat=8).spec
    trunk_writers = {n for n, c in spec.convs.items() if c.out_group == 'trunk'}
    assert trunk_writers == {'head', 'block00_conv2', 'block01_conv2', 'block02_conv2', 'body', 'up0', 'up1'}
    assert spec.convs['block01_conv1'].out_group == 'block01'
    assert spec.convs['up0'].out_per_channel == 4
    assert set(spec.prunable_groups) == {'trunk', 'block00', 'block01', 'block02'}
    assert spec.convs['head'].in_group in spec.fixed_groups and spec.convs['tail'].out_group in spec.fixed_groups


def test_spec_rejects_layers_on_undefined_groups():
    with pytest.raises(ValueError, match="norm 'bn' uses width group 'nope'"):
        ArchSpec({'a': 4}, frozenset(), {'c': ConvSpec('a', 'a', 3)}, {'bn': LayerSpec('nope')})


@pytest.mark.parametrize('make', [lambda: SRResNetDHP(num_blocks=2, num_feat=8),
                                  lambda: DnCNNDHP(num_layers=5, num_feat=8)])
def test_forward_uses_exactly_the_spec(make, monkeypatch):
    """Every conv, norm and masked group named in an architecture's forward is in its spec, and vice versa."""
    net = make()
    used = {'conv': [], 'norm': [], 'mask': []}
    for hook in used:
        original = getattr(net, hook)
        monkeypatch.setattr(net, hook, lambda name, x, _o=original, _h=hook: used[_h].append(name) or _o(name, x))
    net(torch.rand(1, net.in_channels, 6, 6))
    assert sorted(used['conv']) == sorted(net.spec.convs)
    assert sorted(used['norm']) == sorted(net.spec.norms)
    assert set(used['mask']) == set(net.spec.prunable_groups)


def _randomise(net, keep_fraction=0.5, seed=0):
    """Train-like state: non-zero hypernetwork biases and BN statistics, random latents and masks."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name != 'latents':
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
        for bn in net.norms.values():
            bn.running_mean.normal_(0, 0.1, generator=gen)
            bn.running_var.uniform_(0.5, 1.5, generator=gen)
        latents = list(net.group_latents().values())
        for z in latents:
            z[torch.rand(z.shape, generator=gen) > keep_fraction] = 0.0
        latents[1].zero_()
        latents[1][:4] = 1.0  # one layer pruned to the minimum width
        latents[0][0] = 1.0
    net.update_masks()


@pytest.mark.parametrize('make,channels,size', [
    (lambda: SRResNetDHP(num_blocks=3, num_feat=16), 3, 10),
    (lambda: DnCNNDHP(num_layers=6, num_feat=16), 1, 14),
])
@pytest.mark.parametrize('seed', [0, 1])
def test_compaction_is_exact(make, channels, size, seed):
    torch.manual_seed(seed)
    net = make().eval()
    _randomise(net, seed=seed)
    x = torch.rand(2, channels, size, size)
    with torch.no_grad():
        masked = net(x)
        compact = net.compact().eval()
        out = compact(x)
    widths = compact.kept_widths()
    assert min(widths.values()) == 4 and max(widths.values()) < 16
    assert widths == net.kept_widths()
    assert type(compact).__name__.endswith('Compact')
    assert torch.allclose(out, masked, rtol=1e-4, atol=1e-4 * masked.abs().max().item())
    # the masks matter: without them the same latents give another output
    with torch.no_grad():
        net.masks.fill_(1.0)
        assert not torch.allclose(net(x), masked, atol=1e-3)


@pytest.mark.parametrize('make,channels', [(lambda: SRResNetDHP(num_blocks=3, num_feat=16), 3),
                                           (lambda: DnCNNDHP(num_layers=6, num_feat=16), 1)])
def test_padding_widths_with_zero_channels_keeps_the_output(make, channels):
    torch.manual_seed(0)
    net = make().eval()
    _randomise(net)
    compact = net.compact().eval()
    x = torch.rand(2, channels, 11, 9)
    for multiple in (3, 8, 16):
        padded = compact.padded_to(multiple).eval()
        widths = padded.kept_widths()
        assert all(w % multiple == 0 or w == 16 for w in widths.values())
        assert all(compact.kept_widths()[g] <= w <= 16 for g, w in widths.items())
        with torch.no_grad():
            assert torch.allclose(padded(x), compact(x), rtol=1e-5, atol=1e-5)
    assert compact.padded_to(1).kept_widths() == compact.kept_widths()
    with pytest.raises(ValueError, match='positive integer'):
        compact.padded_to(0)
    with pytest.raises(RuntimeError, match='plain network'):
        net.padded_to(8)


def test_masks_only_shrink_and_can_round_widths():
    torch.manual_seed(0)
    net = DnCNNDHP(num_layers=4, num_feat=16)
    latents = net.group_latents()
    with torch.no_grad():
        latents['feat00'][:11] = 0.0
    assert net.update_masks()['feat00'] == 5
    with torch.no_grad():
        latents['feat00'][:] = 1.0  # a pruned channel does not come back
    assert net.update_masks()['feat00'] == 5
    with torch.no_grad():
        latents['feat01'][:9] = 0.0
        latents['feat01'][9:] = torch.arange(1.0, 8.0)
    assert net.update_masks(KeepRule(round_to=4))['feat01'] == 8
    kept = net.group_masks()['feat01'] > 0
    assert kept[9:].all() and kept[:9].sum() == 1  # the 7 alive plus the largest pruned one
    assert net.update_masks(KeepRule(round_to=4))['feat02'] == 16


def test_dhp_net_rejects_plain_only_calls():
    with pytest.raises(RuntimeError, match='plain network'):
        SRResNetCompact(num_blocks=1, num_feat=8).compact()


def test_fill_to_target_adds_back_best_channels_up_to_target():
    kept = {'a': torch.tensor([True, False, False, False]), 'b': torch.tensor([True, True, False, False])}
    candidates = {'a': torch.tensor([False, True, True, False]), 'b': torch.tensor([False, False, True, True])}
    scores = {'a': torch.tensor([9.0, 0.5, 0.9, 0.1]), 'b': torch.tensor([9.0, 9.0, 0.7, 0.2])}

    def ratio_of(widths):  # cost grows with the square of a's width, like the SRResNet trunk
        return (widths['a'] ** 2 + widths['b']) / (16 + 4)

    masks = fill_to_target(kept, candidates, scores, ratio_of, target=0.5)
    # ranking a2 (0.9), b2 (0.7), a1 (0.5), b3 (0.2): a2 -> 0.30, +b2 -> 0.35, +a1 -> 0.60 > 0.5: skipped,
    # +b3 -> 0.40 (a cheaper channel still fits)
    assert masks['a'].tolist() == [True, False, True, False]
    assert masks['b'].tolist() == [True, True, True, True]
    assert ratio_of({g: int(m.sum()) for g, m in masks.items()}) == pytest.approx(0.4)
    nothing = fill_to_target(kept, candidates, scores, ratio_of, target=0.1)
    assert all(torch.equal(nothing[g], kept[g]) for g in kept)


def test_fill_to_target_keeps_widths_multiples_of_round_to():
    """Issue 11: with round_to 8 a refill left widths 35, 36, 43, 44."""
    gen = torch.Generator().manual_seed(0)
    full = {'a': 64, 'b': 64, 'c': 12}
    kept = {g: torch.zeros(w, dtype=torch.bool) for g, w in full.items()}
    kept['a'][:16] = kept['b'][:8] = kept['c'][:8] = True
    candidates = {g: ~m for g, m in kept.items()}
    scores = {g: torch.rand(w, generator=gen) for g, w in full.items()}

    def ratio_of(w):
        return (w['a'] * w['b'] + 3 * w['c']) / (64 * 64 + 3 * 12)

    for target in (0.2, 0.33, 0.5, 0.77, 1.0):
        masks = fill_to_target(kept, candidates, scores, ratio_of, target, round_to=8)
        widths = {g: int(m.sum()) for g, m in masks.items()}
        assert all(w % 8 == 0 or w == full[g] for g, w in widths.items()), widths
        assert ratio_of(widths) <= target
        # each group took its best candidates: no added channel scores below one left out
        for g, m in masks.items():
            added, left = scores[g][m & candidates[g]], scores[g][~m]
            if len(added) and len(left):
                assert added.min() >= left.max()
    assert {g: int(m.sum()) for g, m in fill_to_target(kept, candidates, scores, ratio_of, 1.0, 8).items()} == full


def test_revive_restores_masks_and_latents():
    net = DnCNNDHP(num_layers=4, num_feat=8)
    with torch.no_grad():
        saved = net.latents.detach().clone()
        net.group_latents()['feat00'][:6] = 0.0
    net.update_masks()
    assert net.kept_widths()['feat00'] == 2
    keep = net.masks > 0
    keep[1] = True  # feat00 is the first group: flat index 1 is its channel 1
    net.revive(keep, saved)
    assert net.kept_widths()['feat00'] == 3
    assert net.latents[1].item() == saved[1].item()
    assert net.latents[0].item() == 0.0
