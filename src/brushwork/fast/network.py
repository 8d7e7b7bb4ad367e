"""The image transformation network of Johnson et al. (2016), with the fixes later work found.

Changes from the paper, each for a visible artefact:

* reflection padding instead of zero padding, so borders are not darkened;
* instance normalisation (Ulyanov et al.) instead of batch normalisation, so contrast is
  normalised per image and the style does not depend on the rest of the batch;
* nearest-neighbour upsampling followed by a convolution instead of a transposed convolution
  (Odena et al., "Deconvolution and checkerboard artifacts"), so no checkerboard pattern.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from brushwork.errors import BrushworkError

#: The two stride-2 convolutions divide each side by this; inputs are padded to a multiple.
STRIDE = 4
#: The smallest side the reflection pads accept (the 9x9 convolution pads 4 on each side).
MIN_SIDE = 5


class ConvLayer(nn.Sequential):
    """Reflection-pad then convolve, so the output keeps the input size divided by the stride.

    ``bias=False`` before a normalisation, which subtracts any constant per channel: such a
    bias would get only rounding noise as gradient, which Adam turns into steps of full size.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1,
                 bias: bool = True) -> None:
        super().__init__(nn.ReflectionPad2d(kernel // 2),
                         nn.Conv2d(c_in, c_out, kernel, stride, bias=bias))


def instance_norm(channels: int) -> nn.GroupNorm:
    """Affine instance normalisation, as one group per channel.

    Identical to ``nn.InstanceNorm2d(channels, affine=True)``, but PyTorch's CPU group-norm
    kernel is 2-4x faster and keeps channels-last tensors channels-last.
    """
    return nn.GroupNorm(channels, channels)


class ConvNormReLU(nn.Sequential):
    """A convolution with affine instance normalisation and ReLU: the network's workhorse."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__(
            ConvLayer(c_in, c_out, kernel, stride, bias=False),
            instance_norm(c_out),
            nn.ReLU(inplace=True),
        )


class UpsampleConvNormReLU(nn.Sequential):
    """Double the size by nearest-neighbour upsampling, then convolve: no checkerboard."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(nn.Upsample(scale_factor=2, mode="nearest"), ConvNormReLU(c_in, c_out, 3))


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions added to the input, so each block only learns a correction."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvNormReLU(channels, channels, 3),
            ConvLayer(channels, channels, 3, bias=False),
            instance_norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class TransformerNet(nn.Module):
    """Map an RGB image (N, 3, H, W) in 0..1 to a stylised image of the same size in 0..1.

    ``channels`` is the width of the first and last layers; the middle runs at four times that
    on a quarter of the resolution. At the paper's size (32 channels, 5 residual blocks) the
    network has 1.68 M parameters (6.7 MB in float32); at 16 channels 0.42 M (1.7 MB).

    On CPU, channels-last tensors (``.to(memory_format=torch.channels_last)`` on the network
    and the input) run 20-25% faster. bfloat16 autocast only pays on CPUs with native bf16
    (AVX-512 BF16 or AMX); elsewhere PyTorch falls back to slow kernels, 10-60x slower.
    """

    def __init__(self, channels: int = 32, residual_blocks: int = 5) -> None:
        super().__init__()
        if channels < 1 or residual_blocks < 0:
            raise BrushworkError(
                f"TransformerNet needs channels >= 1 and residual_blocks >= 0, "
                f"got {channels} and {residual_blocks}"
            )
        self.channels = channels
        self.residual_blocks = residual_blocks
        c = channels
        self.down = nn.Sequential(
            ConvNormReLU(3, c, 9),
            ConvNormReLU(c, 2 * c, 3, stride=2),
            ConvNormReLU(2 * c, 4 * c, 3, stride=2),
        )
        self.residual = nn.Sequential(*(ResidualBlock(4 * c) for _ in range(residual_blocks)))
        self.up = nn.Sequential(
            UpsampleConvNormReLU(4 * c, 2 * c),
            UpsampleConvNormReLU(2 * c, c),
            ConvLayer(c, 3, 9),
        )

    def config(self) -> dict[str, int]:
        """The constructor arguments, stored in checkpoints: ``TransformerNet(**config)``."""
        return {"channels": self.channels, "residual_blocks": self.residual_blocks}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if min(h, w) < MIN_SIDE:
            raise BrushworkError(
                f"image is {w}x{h} pixels; the fast network needs both sides >= {MIN_SIDE}"
            )
        # Pad to a multiple of STRIDE so the two halvings and two doublings give back the
        # padded size exactly; reflect (not zeros) so the pad looks like more picture.
        ph, pw = -h % STRIDE, -w % STRIDE
        top, left = ph // 2, pw // 2
        if ph or pw:
            x = F.pad(x, (left, pw - left, top, ph - top), mode="reflect")
        y = self.up(self.residual(self.down(x)))
        # tanh keeps the output in 0..1 in training and inference alike, and unlike clamping
        # it never zeroes the gradient of a pixel that overshoots.
        y = 0.5 * (torch.tanh(y) + 1.0)
        return y[..., top : top + h, left : left + w]
