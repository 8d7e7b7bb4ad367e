"""VGG-19 as a feature extractor: named layers, a choice of pooling, and truncation.

Layer names follow the papers: conv{b}_{i}, relu{b}_{i}, pool{b}. The network is cut after
the deepest layer a run asks for, so a content/style run that stops at relu5_1 never
pays for conv5_2..conv5_4.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from brushwork import weights as weights_mod
from brushwork.errors import BrushworkError
from brushwork.weights import VGG19_BLOCKS

# Caffe's VGG was trained on BGR images in 0..255 with this per-channel mean removed.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def layer_names() -> list[str]:
    """Every layer name in network order: conv1_1, relu1_1, conv1_2, ..., pool5."""
    names: list[str] = []
    for b, n in VGG19_BLOCKS:
        for i in range(1, n + 1):
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        names.append(f"pool{b}")
    return names


LAYERS = layer_names()


def check_layers(names: Iterable[str]) -> list[str]:
    """Validate layer names, with the valid ones in the message."""
    names = list(names)
    unknown = [n for n in names if n not in LAYERS]
    if unknown:
        raise BrushworkError(f"unknown VGG-19 layer {', '.join(unknown)}; valid names are "
                             "conv1_1..conv5_4, relu1_1..relu5_4, pool1..pool5")
    if not names:
        raise BrushworkError("no layers given; name at least one, e.g. relu4_2")
    return names


def layer_shape_factor(name: str) -> tuple[int, int]:
    """(channels, downsampling) of a layer, for memory estimates and mask resizing."""
    block = int(name[4] if name.startswith("pool") else name.split("_")[0][-1])
    channels = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}[block]
    down = 2 ** (block if name.startswith("pool") else block - 1)
    return channels, down


class Features(nn.Module):
    """Caffe VGG-19 up to the deepest requested layer; ``forward`` returns those layers.

    Input: RGB in 0..1, shape (N, 3, H, W). The Caffe preprocessing (BGR, 0..255, mean
    removed) happens inside, so callers never see it.
    """

    def __init__(self, layers: Iterable[str], pooling: str = "max",
                 state: dict[str, torch.Tensor] | None = None) -> None:
        super().__init__()
        self.layers = check_layers(layers)
        if pooling not in ("max", "avg"):
            raise BrushworkError(f"pooling {pooling!r} is not 'max' or 'avg'")
        state = weights_mod.load() if state is None else state
        deepest = max(LAYERS.index(n) for n in self.layers)
        keep = set(self.layers)
        self.names = LAYERS[: deepest + 1]
        modules: list[nn.Module] = []
        for idx, name in enumerate(self.names):
            if name.startswith("conv"):
                conv = nn.Conv2d(state[f"{name}.weight"].shape[1], state[f"{name}.weight"].shape[0],
                                 3, padding=1)
                conv.weight.data.copy_(state[f"{name}.weight"])
                conv.bias.data.copy_(state[f"{name}.bias"])
                modules.append(conv)
            elif name.startswith("relu"):
                # In place saves a copy per layer, unless the conv before it is itself wanted.
                modules.append(nn.ReLU(inplace=self.names[idx - 1] not in keep))
            else:
                pool = nn.MaxPool2d(2, ceil_mode=True) if pooling == "max" else \
                    nn.AvgPool2d(2, ceil_mode=True)
                modules.append(pool)
        self.body = nn.ModuleList(modules)
        self.register_buffer("mean", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        """RGB 0..1 -> Caffe's BGR 0..255 minus mean."""
        return image.flip(1) * 255.0 - self.mean.to(image.dtype)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.preprocess(image)
        out: dict[str, torch.Tensor] = {}
        for name, module in zip(self.names, self.body, strict=True):
            x = module(x)
            if name in self.layers:
                out[name] = x
        return out


def run_network(layers: Iterable[str], pooling: str, weights: str | os.PathLike | None,
                device: torch.device, dtype: torch.dtype = torch.float32,
                channels_last: bool | None = None) -> Features:
    """The VGG-19 of a run: cut after the deepest of ``layers``, from the weights file the run
    names (else the default provisioning), on ``device``, laid out channels-last where that
    is faster (on the CPU, and in half precision) unless ``channels_last`` says otherwise.
    Every job builds its network here, so that they agree on weights and layout."""
    if channels_last is None:
        channels_last = device.type == "cpu" or dtype != torch.float32
    net = Features(layers, pooling, weights_mod.load(weights)).to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net


def layer_masks(masks: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Masks at each VGG layer's resolution: averaged over 2x2 in step with every pooling.

    ``ceil_mode`` matches the network's pooling, so sizes agree even for odd sides.
    """
    pooled = {1: masks}
    out = {}
    for name in layers:
        down = layer_shape_factor(name)[1]
        while down not in pooled:
            level = max(pooled)
            pooled[level * 2] = F.avg_pool2d(pooled[level], 2, ceil_mode=True)
        out[name] = pooled[down]
    return out
