"""Rules of the DHP method: hypernetwork, proximal step, group masks, exact compaction."""
import copy

import pytest
import torch

import restore_dhp  # noqa: F401
from restore_dhp import network
from restore_dhp.dhp import (ArchSpec, ConvSpec, DHPNet, DHPPruner, GroupLayout, HyperConvBank, KeepRule, LayerSpec,
                             Segment, fill_to_target, grouped_proximal_step, padded_widths, proximal_step)


def dhp(arch, **kwargs):
    """The DHP form of a project architecture."""
    plain = network.build(arch, kwargs)
    return DHPNet(plain, network.structure(plain).spec)


def _reference_kernel(bank, i, z_in, z_out):
    """The per-conv formula of the paper, written out for conv ``i`` of a bank (no batching)."""
    z_out = z_out.repeat_interleave(bank.out_per_latent)
    latent = torch.outer(z_out, z_in) + bank.bias0[i]
    embedding = latent.unsqueeze(-1) * bank.weight1[i] + bank.bias1[i]
    kernel = torch.matmul(bank.weight2[i], embedding.unsqueeze(-1)).squeeze(-1) + bank.bias2[i]
    return kernel.view(bank.out_channels, bank.in_channels, *bank.kernel_size)


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
    net = dhp('srresnet', num_blocks=3, num_feat=8)
    members = {tuple(names) for names in net.bank_members.values()}
    body = tuple(f'convs.{n}' for n in ('block00_conv1', 'block00_conv2', 'block01_conv1', 'block01_conv2',
                                        'block02_conv1', 'block02_conv2', 'body'))
    assert members == {('convs.head',), body, ('convs.up0', 'convs.up1'), ('convs.tail',)}
    _trained_like(net.banks['k3_in8_out8x4'])
    kernels = net.generate_kernels()
    latents = net.group_latents()
    ones = torch.ones(3)
    for name, i, z_in, z_out in (('convs.up1', 1, latents['trunk'], latents['trunk']),
                                 ('convs.block01_conv1', 2, latents['trunk'], latents['block01']),
                                 ('convs.tail', 0, latents['trunk'], ones), ('convs.head', 0, ones, latents['trunk'])):
        key = next(k for k, names in net.bank_members.items() if name in names)
        assert net.bank_members[key][i] == name
        assert torch.allclose(kernels[name][0], _reference_kernel(net.banks[key], i, z_in, z_out), atol=1e-6)
    # an upsampler output channel 4c+k follows trunk latent c (input channel 1 reads it too: left out)
    other_inputs = [c for c in range(8) if c != 1]
    before = kernels['convs.up0'][0].detach()[:, other_inputs]
    with torch.no_grad():
        net.group_latents()['trunk'][1] = 5.0
    changed = (net.generate_kernels()['convs.up0'][0][:, other_inputs] - before).flatten(1).abs().sum(1) > 0
    assert changed.tolist() == [False] * 4 + [True] * 4 + [False] * 24


def test_generated_convs_lose_their_own_weights_and_masks_reach_every_reader():
    net = dhp('dncnn', num_layers=4, num_feat=6)
    names = {n for n, _ in net.named_parameters()}
    assert not any(n.startswith('net.convs.') for n in names)  # every conv touches a prunable group
    assert 'net.norms.bn01.weight' in names and 'latents' in names
    with torch.no_grad():
        net.masks[:2] = 0  # feat00's channels 0 and 1
    kernels = net.generate_kernels()
    assert kernels['convs.conv01'][0][:, :2].abs().sum() == 0 and kernels['convs.conv01'][0][:, 2:].abs().sum() > 0
    assert kernels['convs.head'][0][:2].abs().sum() > 0  # a removed channel is still written: nobody reads it


def test_hyper_fan_in_init_gives_he_scale():
    torch.manual_seed(0)
    bank = HyperConvBank(8, 64, 64, 3)
    variance = bank.generate(torch.randn(8, 64), torch.randn(8, 64)).var().item()
    assert abs(variance / (2.0 / (64 * 9)) - 1) < 0.15  # He init for the fan-in of a 64-channel 3x3 conv


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


def test_spec_rejects_layers_on_undefined_groups():
    with pytest.raises(ValueError, match="norm 'bn' uses width group 'nope'"):
        ArchSpec({'a': 4}, frozenset(), {'c': ConvSpec((Segment('a'),), 'a', 3)}, {'bn': LayerSpec((Segment('nope'),))})


def _randomise(net, keep_fraction=0.5, seed=0):
    """Train-like state: non-zero hypernetwork biases and BN statistics, random latents and masks."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name != 'latents':
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
        for bn in net.net.norms.values():
            bn.running_mean.normal_(0, 0.1, generator=gen)
            bn.running_var.uniform_(0.5, 1.5, generator=gen)
        latents = list(net.group_latents().values())
        for z in latents:
            z[torch.rand(z.shape, generator=gen) > keep_fraction] = 0.0
        latents[1].zero_()
        latents[1][:4] = 1.0  # one layer pruned to the minimum width
        latents[0][0] = 1.0
    DHPPruner(net, 1.0, ratio_tolerance=1.0).check()


@pytest.mark.parametrize('make,channels,size', [
    (lambda: dhp('srresnet', num_blocks=3, num_feat=16), 3, 10),
    (lambda: dhp('dncnn', num_layers=6, num_feat=16), 1, 14),
])
@pytest.mark.parametrize('seed', [0, 1])
def test_compaction_is_exact(make, channels, size, seed):
    torch.manual_seed(seed)
    net = make().eval()
    _randomise(net, seed=seed)
    x = torch.rand(2, channels, size, size)
    with torch.no_grad():
        masked = net(x)
        compact, widths = net.compact()
        out = compact.eval()(x)
    assert min(widths.values()) == 4 and max(widths.values()) < 16
    assert widths == net.kept_widths()
    assert type(compact) is type(net.net)  # the user's own class, narrower
    assert torch.allclose(out, masked, rtol=1e-4, atol=1e-4 * masked.abs().max().item())
    # the masks matter: without them the same latents give another output
    with torch.no_grad():
        net.masks.fill_(1.0)
        assert not torch.allclose(net(x), masked, atol=1e-3)


@pytest.mark.parametrize('make,channels', [(lambda: dhp('srresnet', num_blocks=3, num_feat=16), 3),
                                           (lambda: dhp('dncnn', num_layers=6, num_feat=16), 1)])
def test_padding_widths_with_zero_channels_keeps_the_output(make, channels):
    torch.manual_seed(0)
    net = make().eval()
    _randomise(net)
    compact, widths = net.compact()
    compact.eval()
    x = torch.rand(2, channels, 11, 9)
    for multiple in (3, 8, 16):
        padded = copy.deepcopy(compact)
        padded_w = padded_widths(padded, net.spec, widths, multiple)
        assert all(w % multiple == 0 or w == 16 for w in padded_w.values())
        assert all(widths[g] <= w <= 16 for g, w in padded_w.items())
        with torch.no_grad():
            assert torch.allclose(padded(x), compact(x), rtol=1e-5, atol=1e-5)
    assert padded_widths(copy.deepcopy(compact), net.spec, widths, 1) == widths
    with pytest.raises(ValueError, match='positive integer'):
        padded_widths(copy.deepcopy(compact), net.spec, widths, 0)


def test_masks_only_shrink_and_can_round_widths():
    torch.manual_seed(0)
    net = dhp('dncnn', num_layers=4, num_feat=16)
    latents = net.group_latents()
    with torch.no_grad():
        latents['feat00'][:11] = 0.0
    assert DHPPruner(net, 1.0, ratio_tolerance=1.0).check().widths['feat00'] == 5
    with torch.no_grad():
        latents['feat00'][:] = 1.0  # a pruned channel does not come back
    assert DHPPruner(net, 1.0, ratio_tolerance=1.0).check().widths['feat00'] == 5
    with torch.no_grad():
        latents['feat01'][:9] = 0.0
        latents['feat01'][9:] = torch.arange(1.0, 8.0)
    widths = DHPPruner(net, 1.0, ratio_tolerance=1.0, rule=KeepRule(round_to=4)).check().widths
    assert widths['feat01'] == 8
    kept = net.group_masks()['feat01'] > 0
    assert kept[9:].all() and kept[:9].sum() == 1  # the 7 alive plus the largest pruned one
    assert widths['feat02'] == 16


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


def test_refill_restores_masks_and_latents():
    """A check that prunes past the target adds back the best channels pruned since the last check, with their
    latents as they were then."""
    net = dhp('dncnn', num_layers=4, num_feat=8)
    pruner = DHPPruner(net, 0.9, ratio_tolerance=0.0)
    assert pruner.check().widths['feat00'] == 8
    saved = net.latents.detach().clone()
    with torch.no_grad():
        net.group_latents()['feat00'][:6] = 0.0
    check = pruner.check()
    assert check.refilled_from is not None and check.refilled_from < 0.9 and check.ratio <= 0.9
    revived = (net.group_masks()['feat00'] > 0).nonzero().flatten().tolist()
    assert len(revived) > 2
    for c in revived:
        assert net.group_latents()['feat00'][c].item() == saved[c].item()


def test_the_last_check_lands_on_the_target_by_the_latents():
    """At max_iter above the target, each group keeps its largest latents (at least min_width) while the cost
    stays at or below the target; the rest are pruned, masks and latents."""
    from restore_dhp.dhp import Schedule
    torch.manual_seed(0)   # random latents: one under the keep threshold would be pruned before the landing
    net = dhp('dncnn', num_layers=4, num_feat=8)
    pruner = DHPPruner(net, 0.5, regularization=0.0, ratio_tolerance=0.0, rule=KeepRule(min_width=2),
                       schedule=Schedule(100, max_iter=3))
    latents = net.latents.detach().clone()
    assert pruner.step(2, 1e-3) is None
    step = pruner.step(3, 1e-3)
    assert step.stop == 'max_search_iter' and step.check.landed_from == 1.0
    assert step.check.target_reached and 0.4 < step.check.ratio <= 0.5
    for group, mask in net.group_masks().items():
        kept = (mask > 0).nonzero().flatten()
        z = net.layout.split(latents.abs())[group]
        assert len(kept) >= 2 and set(kept.tolist()) == set(z.argsort(descending=True)[:len(kept)].tolist())
        assert (net.group_latents()[group][mask == 0] == 0).all()


def test_a_refill_that_cannot_reach_the_target_lands_from_the_last_check():
    """A warm-started SRResNet search on a table stepping by 16 pruned its trunk from 48 to 32 in one check: latency
    0.50 -> 0.29 for a target of 0.4, and the trunk's 16 channels could only come back together (0.50), so the
    search stopped at 0.29; landing from the last check by the latents alone kept the trunk at 32 (its last
    chunk ranks low) and reached only 0.32.  Now the check goes back to the last check's masks and lands from there
    with the group that could not come back held at its width: the costly trunk stays, the blocks give way."""
    net = dhp('srresnet', num_feat=16, num_blocks=4, scale=4)
    pruner = DHPPruner(net, 0.85, ratio_tolerance=0.02, rule=KeepRule(round_to=8, min_width=4))
    blocks = net.layout.names[1:]
    with torch.no_grad():
        net.latents.uniform_(0.5, 1.0)
        net.group_latents()['trunk'].fill_(0.55)   # ranked below most block channels, as in the lockstep shrink
        for group in blocks:
            net.group_latents()[group][:8] = 0.0
    first = pruner.check()
    assert first.widths == {'trunk': 16, **{g: 8 for g in blocks}} and not first.target_reached  # 0.88
    with torch.no_grad():
        net.group_latents()['trunk'][:8] = 0.0   # trunk 16 -> 8: 0.29, and its chunk of 8 back would be 0.88
    check = pruner.check()
    assert check.refilled_from == pytest.approx(pruner.cost_ratio({'trunk': 8, **{g: 8 for g in blocks}}))
    assert check.landed_from == pytest.approx(first.ratio)
    assert check.target_reached and 0.83 <= check.ratio <= 0.85 and check.widths['trunk'] == 16
    assert check.ratio == pytest.approx(pruner.cost_ratio()) and all(check.widths[g] in (4, 8) for g in blocks)
    assert (net.group_latents()['trunk'] == 0.55).all()   # the trunk's latents as they were at the last check


def test_normalized_latents_make_a_groupwide_shrink_change_nothing():
    torch.manual_seed(0)
    plain = network.build('dncnn', dict(num_layers=4, num_feat=8))
    net = DHPNet(plain, network.structure(plain).spec, normalize_latents=True).eval()
    x = torch.rand(1, 1, 9, 9)
    with torch.no_grad():
        before = net(x)
        net.group_latents()['feat01'].mul_(0.01)          # the proximal step shrinking a whole layer
        assert torch.allclose(net(x), before, atol=1e-5)
        net.group_latents()['feat01'][:4].mul_(0.5)       # relative sizes still matter
        assert not torch.allclose(net(x), before, atol=1e-4)
    plain_net = DHPNet(network.build('dncnn', dict(num_layers=4, num_feat=8)), network.structure(plain).spec)
    with torch.no_grad():
        reference = plain_net(x)
        plain_net.group_latents()['feat01'].mul_(0.01)
        assert not torch.allclose(plain_net(x), reference, atol=1e-4)  # without it a shrink changes the output
