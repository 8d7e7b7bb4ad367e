"""Loss formulas against hand computations, and the size independence the README promises."""

import pytest
import torch

from brushwork.losses import content_loss, gram, style_loss, tv_loss


def test_gram_matches_hand_computation():
    f = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, -1.0]]]])  # C=2, H=W=2
    # Channel vectors over the 4 positions: a=(1,2,3,4), b=(0,1,0,-1).
    expected = torch.tensor([[30.0, -2.0], [-2.0, 2.0]]) / 4
    assert torch.allclose(gram(f)[0], expected)


def test_masked_gram_with_full_mask_is_plain_gram_and_half_mask_averages_region():
    f = torch.randn(1, 5, 6, 7)
    assert torch.allclose(gram(f, torch.ones(1, 1, 6, 7)), gram(f), atol=1e-6)
    mask = torch.zeros(1, 1, 6, 7)
    mask[..., :3, :] = 1
    assert torch.allclose(gram(f, mask), gram(f[..., :3, :]), atol=1e-6)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("masked", [False, True])
def test_gram_gradient_is_the_derivative_of_the_gram_in_either_layout(layout, masked):
    """The Gram's own backward pass (one product, in the features' layout) against finite
    differences, and the gradient comes back in the layout the features came in."""
    torch.manual_seed(0)
    f = torch.randn(2, 3, 4, 5, dtype=torch.float64).contiguous(memory_format=layout)
    mask = torch.rand(2, 1, 4, 5, dtype=torch.float64) if masked else None
    assert torch.autograd.gradcheck(lambda x: gram(x, mask), (f.requires_grad_(),))
    gram(f, mask).pow(2).sum().backward()
    assert f.grad.is_contiguous(memory_format=layout)
    plain = f.detach().reshape(2, 3, 20).requires_grad_()
    m = torch.ones(2, 1, 20, dtype=torch.float64) if mask is None else mask.reshape(2, 1, 20)
    ((plain * m) @ plain.transpose(1, 2) / m.sum(2, keepdim=True)).pow(2).sum().backward()
    assert torch.allclose(f.grad.reshape(2, 3, 20), plain.grad)


def test_content_and_style_loss_zero_at_target_and_positive_elsewhere():
    f = torch.rand(1, 8, 5, 5)
    assert content_loss(f, f) == 0
    assert style_loss(gram(f), gram(f)) == 0
    assert content_loss(f * 1.5, f) > 0
    assert style_loss(gram(f * 1.5), gram(f)) > 0


def test_losses_do_not_grow_with_image_size():
    torch.manual_seed(0)
    small = torch.rand(1, 16, 32, 32)
    large = small.repeat(1, 1, 4, 4)  # the same texture over 16 times the area
    target = torch.rand(1, 16, 8, 8)
    assert torch.allclose(style_loss(gram(small), gram(target)),
                          style_loss(gram(large), gram(target)), rtol=1e-4)
    feats = torch.rand(1, 16, 32, 32)
    assert torch.allclose(content_loss(small, feats), content_loss(large, feats.repeat(1, 1, 4, 4)),
                          rtol=1e-4)


def test_tv_loss_of_constant_is_zero_and_of_noise_is_large():
    assert tv_loss(torch.full((1, 3, 8, 8), 0.3)) == 0
    assert tv_loss(torch.rand(1, 3, 8, 8)) > 0.1


def test_gram_stays_float32_under_autocast_so_half_precision_training_can_backpropagate():
    feats = torch.randn(2, 4, 6, 5, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        target = gram(feats.detach())
        g = gram(feats)
    assert g.dtype == target.dtype == torch.float32
    assert torch.allclose(g, gram(feats.detach()), atol=1e-5)
    style_loss(g, target.roll(1, 0)).backward()  # float32 against float32: no dtype error
    assert feats.grad is not None and feats.grad.abs().sum() > 0
