"""The image transformation network of Johnson et al. (2016), with the fixes later work found.

Changes from the paper, each for a visible artefact:

* reflection padding instead of zero padding, so borders are not darkened;
* instance normalisation (Ulyanov et al.) instead of batch normalisation, so contrast is
  normalised per image and the style does not depend on the rest of the batch;
* nearest-neighbour upsampling followed by a convolution instead of a transposed convolution
  (Odena et al., "Deconvolution and checkerboard artifacts"), so no checkerboard pattern.

Two layers are computed in a rearranged but equal form, for speed on a CPU: the upsampling
convolutions as sub-pixel convolutions on the small grid, and the last 9x9 convolution to
RGB on a 4x4 space-to-depth view (the bare network 1.1-1.2x faster at 512x512 on a 2-core
CPU; ``benchmarks/bench_fast.py --plain``). The weights and their meaning are unchanged.
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


def _space_to_depth(x: torch.Tensor, r: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, r*r*C, H/r, W/r), channels ordered (row phase, column phase, C).

    ``pixel_unshuffle`` orders them (C, phases), which on channels-last tensors takes a
    slow path (30x slower here); with the phases first it is one contiguous copy.
    """
    n, c, h, w = x.shape
    x = x.permute(0, 2, 3, 1).reshape(n, h // r, r, w // r, r, c).transpose(2, 3)
    return x.reshape(n, h // r, w // r, r * r * c).permute(0, 3, 1, 2)


def _depth_to_space(x: torch.Tensor, r: int) -> torch.Tensor:
    """The inverse of ``_space_to_depth``."""
    n, c, h, w = x.shape
    x = x.permute(0, 2, 3, 1).reshape(n, h, w, r, r, c // (r * r)).transpose(2, 3)
    return x.reshape(n, h * r, w * r, c // (r * r)).permute(0, 3, 1, 2)


class UpsampleConvNormReLU(nn.Sequential):
    """Double the size by nearest-neighbour upsampling, then convolve: no checkerboard.

    Computed as the same function on the small grid (a sub-pixel convolution): each of the
    four output phases sees a 2x2 block of small-grid pixels, so one 3x3 convolution with
    four times the outputs, then depth-to-space, gives the result without building the
    upsampled tensor; reflection padding of the upsampled image is replication padding of
    the small one. The modules keep the plain layout (upsample, pad, convolve, normalise)
    so that saved models keep their keys.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(nn.Upsample(scale_factor=2, mode="nearest"), ConvNormReLU(c_in, c_out, 3))
        # taps[phase, small-grid offset + 1, kernel tap]: which taps land on which neighbour
        taps = torch.zeros(2, 3, 3)
        for phase in range(2):
            for k in range(3):
                taps[phase, (phase + k - 1) // 2 + 1, k] = 1.0
        self.register_buffer("taps", taps, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (_, conv), norm, relu = self[1]
        kernel = torch.einsum("ayk,bxl,oikl->aboiyx", self.taps, self.taps, conv.weight)
        y = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"),
                     kernel.reshape(-1, conv.in_channels, 3, 3))
        return relu(norm(_depth_to_space(y, 2)))


class OutputConv(ConvLayer):
    """The last 9x9 convolution down to RGB, run on a 4x4 space-to-depth view of its input.

    Three output channels leave a CPU's vector units mostly idle; regrouping each 4x4
    block of pixels into channels turns the same arithmetic into a 3x3 convolution from
    16x the channels to 48, which keeps them busy. Inputs must have sides divisible by 4
    (inside ``TransformerNet`` they are).
    """

    FACTOR = 4

    def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__(c_in, c_out, kernel)
        r = self.FACTOR
        blocks = -(-(kernel + r - 1) // r)
        # taps[out phase, in phase, block offset, kernel tap]
        taps = torch.zeros(r, r, blocks, kernel)
        for a in range(r):
            for p in range(r):
                for m in range(blocks):
                    if 0 <= r * m + p - a < kernel:
                        taps[a, p, m, r * m + p - a] = 1.0
        self.register_buffer("taps", taps, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad, conv = self
        r = self.FACTOR
        kernel = torch.einsum("apyk,bqxl,oikl->abopqiyx", self.taps, self.taps, conv.weight)
        blocks = self.taps.shape[2]
        kernel = kernel.reshape(-1, r * r * conv.in_channels, blocks, blocks)
        y = F.conv2d(_space_to_depth(pad(x), r), kernel, conv.bias.repeat(r * r))
        return _depth_to_space(y, r)


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
            OutputConv(c, 3, 9),
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
