"""Tests for brushwork.fast.network: shapes, range, gradients and size of TransformerNet."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from brushwork.errors import BrushworkError
from brushwork.fast.network import MIN_SIDE, TransformerNet, instance_norm


def tiny() -> TransformerNet:
    """The smallest useful network, so the tests stay fast on two CPU cores."""
    torch.manual_seed(0)
    return TransformerNet(channels=8, residual_blocks=1)


@pytest.mark.parametrize("size", [(37, 53), (64, 64), (MIN_SIDE, 6), (30, 17)])
def test_output_has_input_size_even_when_sides_are_not_multiples_of_four(
    size: tuple[int, int],
) -> None:
    x = torch.rand(2, 3, *size)
    assert tiny()(x).shape == x.shape


def test_output_stays_in_unit_range_even_for_out_of_range_input() -> None:
    net = tiny()
    with torch.no_grad():
        # Scale the last layer up so the pre-activation overshoots by far.
        net.up[-1][1].weight.mul_(100.0)
        y = net(torch.rand(1, 3, 37, 53) * 4 - 2)
    assert y.min() >= 0.0 and y.max() <= 1.0
    assert y.min() < 0.01 and y.max() > 0.99  # the test did push the output to both ends


def test_a_loss_on_the_output_reaches_every_parameter() -> None:
    net = tiny()
    net(torch.rand(2, 3, 37, 53)).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_config_rebuilds_the_same_network_from_a_checkpoint() -> None:
    net = tiny()
    copy = TransformerNet(**net.config())
    copy.load_state_dict(net.state_dict())
    x = torch.rand(1, 3, 21, 19)
    with torch.no_grad():
        torch.testing.assert_close(copy(x), net(x))


def test_default_network_is_a_few_megabytes() -> None:
    net = TransformerNet()
    assert net.config() == {"channels": 32, "residual_blocks": 5}
    n = sum(p.numel() for p in net.parameters())
    assert 1_500_000 < n < 2_000_000  # Johnson et al.'s size: 6.7 MB in float32, under 8 MB


def test_width_and_depth_change_the_size() -> None:
    counts = [
        sum(p.numel() for p in TransformerNet(c, b).parameters())
        for c, b in [(8, 1), (16, 1), (16, 3)]
    ]
    assert counts == sorted(counts) and len(set(counts)) == 3


def test_batch_items_are_stylised_independently() -> None:
    # Instance (not batch) normalisation: an image's result must not depend on its batch.
    net = tiny()
    a, b = torch.rand(1, 3, 24, 24), torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(net(torch.cat([a, b]))[:1], net(a))


def test_group_norm_stand_in_is_affine_instance_norm() -> None:
    torch.manual_seed(1)
    ours, reference = instance_norm(6), torch.nn.InstanceNorm2d(6, affine=True)
    for p in ours.parameters():
        torch.nn.init.normal_(p)
    reference.load_state_dict(ours.state_dict())
    x = torch.randn(2, 6, 11, 7) * 3 + 1
    torch.testing.assert_close(ours(x), reference(x))


def test_too_small_input_is_a_user_error() -> None:
    with pytest.raises(BrushworkError, match="4x9"):
        tiny()(torch.rand(1, 3, 9, 4))


def test_invalid_configuration_is_a_user_error() -> None:
    with pytest.raises(BrushworkError, match="channels"):
        TransformerNet(channels=0)


def test_fast_layers_compute_upsample_then_convolve_exactly() -> None:
    # The sub-pixel upsampling and the space-to-depth output layer are rewrites for speed:
    # they must give what the plain layers (upsample, reflect-pad, convolve) give with the
    # same weights, so that models trained either way are interchangeable.
    torch.manual_seed(2)
    net = TransformerNet(channels=8, residual_blocks=1).eval()
    for p in net.parameters():  # non-trivial norms and biases, not the initial 1 and 0
        p.data.add_(0.1 * torch.randn_like(p))
    x = torch.rand(2, 8 * 4, 9, 13)
    with torch.no_grad():
        expected = x
        for block in net.up[:2]:
            (pad, conv), norm, _ = block[1]
            expected = torch.relu(norm(conv(pad(F.interpolate(expected, scale_factor=2.0)))))
        pad, conv = net.up[2]
        expected = conv(pad(expected))
        torch.testing.assert_close(net.up(x), expected, atol=1e-4, rtol=1e-4)
        cl = x.contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(net.up(cl), expected, atol=1e-4, rtol=1e-4)
