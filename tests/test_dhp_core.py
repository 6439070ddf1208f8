"""Rules of the DHP method: hypernetwork, proximal step, group masks, exact compaction."""
import pytest
import torch

import restore_dhp  # noqa: F401
from restore_dhp.archs.dncnn_arch import DnCNNDHP
from restore_dhp.archs.srresnet_arch import SRResNetDHP
from restore_dhp.dhp import HyperConv2d, proximal_step


def test_hyperconv_shapes_and_latent_gradients():
    conv = HyperConv2d(5, 7, 3, embedding_dim=8)
    z_in = torch.randn(5, requires_grad=True)
    z_out = torch.randn(7, requires_grad=True)
    w = conv.generate_weight(z_in, z_out)
    assert w.shape == (7, 5, 3, 3)
    y = conv(torch.randn(2, 5, 6, 6), z_in, z_out)
    assert y.shape == (2, 7, 6, 6)
    y.square().mean().backward()
    assert z_in.grad is not None and z_in.grad.abs().sum() > 0
    assert z_out.grad is not None and z_out.grad.abs().sum() > 0


def test_hyperconv_upsampler_follows_latent_through_pixel_shuffle():
    conv = HyperConv2d(4, 3, 3, out_per_latent=4)
    for p in (conv.bias0, conv.bias1, conv.bias2):  # trained biases are non-zero
        torch.nn.init.normal_(p)
    z_in, z_out = torch.randn(4), torch.randn(3)
    w = conv.generate_weight(z_in, z_out)
    assert w.shape == (12, 4, 3, 3)
    z_out2 = z_out.clone()
    z_out2[1] = 5.0  # changing latent entry 1 changes exactly output channels 4..7
    changed = (conv.generate_weight(z_in, z_out2) - w).flatten(1).abs().sum(1) > 0
    assert changed.tolist() == [False] * 4 + [True] * 4 + [False] * 4


def test_hyper_fan_in_init_gives_he_scale():
    torch.manual_seed(0)
    variances = [HyperConv2d(64, 64, 3).generate_weight(torch.randn(64), torch.randn(64)).var().item()
                 for _ in range(8)]
    expected_var = 2.0 / (64 * 9)  # He init for the fan-in of a 64-channel 3x3 conv
    assert abs(sum(variances) / len(variances) / expected_var - 1) < 0.15


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


def _randomise(net, keep_fraction=0.5, seed=0):
    """Train-like state: non-zero hypernetwork biases and BN statistics, random latents and masks."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if 'latents' not in name:
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
        for bn in net.norms.values():
            bn.running_mean.normal_(0, 0.1, generator=gen)
            bn.running_var.uniform_(0.5, 1.5, generator=gen)
        for z in net.latents.values():
            z[torch.rand(z.shape, generator=gen) > keep_fraction] = 0.0
        first = next(iter(net.latents.values()))
        second = list(net.latents.values())[1]
        second.zero_()
        second[:4] = 1.0  # one layer pruned to the minimum width
        first[0] = 1.0
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
        for m in net.masks._buffers.values():
            m.fill_(1.0)
        assert not torch.allclose(net(x), masked, atol=1e-3)


def test_masks_only_shrink_and_can_round_widths():
    torch.manual_seed(0)
    net = DnCNNDHP(num_layers=4, num_feat=16)
    with torch.no_grad():
        net.latents['feat00'][:11] = 0.0
    assert net.update_masks()['feat00'] == 5
    with torch.no_grad():
        net.latents['feat00'][:] = 1.0  # a pruned channel does not come back
    assert net.update_masks()['feat00'] == 5
    with torch.no_grad():
        net.latents['feat01'][:9] = 0.0
    assert net.update_masks(round_to=4)['feat01'] == 8


def test_dhp_net_rejects_plain_only_calls():
    from restore_dhp.archs.srresnet_arch import SRResNetCompact
    with pytest.raises(RuntimeError, match='plain network'):
        SRResNetCompact(num_blocks=1, num_feat=8).compact()


def test_fill_to_target_adds_back_best_channels_up_to_target():
    from restore_dhp.dhp import fill_to_target
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


def test_revive_restores_masks_and_latents():
    net = DnCNNDHP(num_layers=4, num_feat=8)
    with torch.no_grad():
        saved = {g: z.clone() for g, z in net.latents.items()}
        net.latents['feat00'][:6] = 0.0
    net.update_masks()
    assert net.kept_widths()['feat00'] == 2
    keep = {g: m > 0 for g, m in net.masks.items()}
    keep['feat00'][1] = True
    net.revive(keep, saved)
    assert net.kept_widths()['feat00'] == 3
    assert net.latents['feat00'][1].item() == saved['feat00'][1].item()
    assert net.latents['feat00'][0].item() == 0.0
