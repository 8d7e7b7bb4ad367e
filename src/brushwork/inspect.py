"""See what VGG-19 sees: feature grids, the patches a channel likes, layer reconstructions.

These are the pictures that explain style transfer (Gatys, Ecker & Bethge 2016, fig. 1):
low layers answer to edges and colours, deep ones to larger structures; an image rebuilt
from deep features keeps the layout and loses the pixels; an image rebuilt from the Gram
matrices of more and more layers reproduces ever larger patterns of the texture.
Reconstructions go through ``optimise.run`` with the same loss terms as stylisation, so
what they show is what a stylisation run optimises. Every function returns Pillow images
or tensors, so a notebook shows the same figures as the CLI writes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from brushwork import io
from brushwork import weights as weights_mod
from brushwork.errors import BrushworkError
from brushwork.losses import content_loss, gram, style_loss
from brushwork.optimise import (
    Callback,
    Checkpoint,
    LossFn,
    Scale,
    pyramid,
    resize,
    run,
)
from brushwork.options import check_schedule
from brushwork.runtime import autocast, pick_device, resolve_precision
from brushwork.vgg import LAYERS, Features, check_layers, run_network

ImageLike = io.ImageLike
BLOCK_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CAPTION = 16  # pixels of caption strip above each tile
GAP = 2  # pixels between tiles and around the grid
# From white noise, L-BFGS (no line search) at its usual step of 1 overshoots: the loss
# jumps a hundredfold within 20 steps and takes 50 more to recover. Half the step does not.
LBFGS_LR_FROM_NOISE = 0.5
BACKGROUND = (255, 255, 255)


# --- grids of labelled tiles -------------------------------------------------------------


def tile_grid(rows: Sequence[Sequence[tuple[str, Image.Image]]],
              tile: tuple[int, int]) -> Image.Image:
    """Lay out captioned images, one list per row, each fitted into a ``tile`` (w, h) cell.

    Row ``r``, column ``c`` has its image's top-left corner at
    ``(GAP + c * (w + GAP), GAP + r * (h + CAPTION + GAP) + CAPTION)``; rows may be ragged.
    """
    w, h = tile
    cols = max(len(r) for r in rows)
    grid = Image.new("RGB", (GAP + cols * (w + GAP), GAP + len(rows) * (h + CAPTION + GAP)),
                     BACKGROUND)
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default(size=CAPTION - 4)
    for r, row in enumerate(rows):
        for c, (caption, img) in enumerate(row):
            x, y = GAP + c * (w + GAP), GAP + r * (h + CAPTION + GAP)
            draw.text((x + 2, y + 1), _fit(caption, font, w - 4), fill=(0, 0, 0), font=font)
            fit = _fit_image(img, w, h)
            grid.paste(fit, (x + (w - fit.width) // 2, y + CAPTION + (h - fit.height) // 2))
    return grid


def _fit(text: str, font: ImageFont.FreeTypeFont, width: float) -> str:
    """Shorten a caption with an ellipsis so it never runs into the next tile."""
    while len(text) > 1 and font.getlength(text) > width:
        text = text[:-2] + "…"
    return text


def _fit_image(img: Image.Image, w: int, h: int) -> Image.Image:
    """Scale to fit (w, h), keeping the aspect; blocky when enlarged, so pixels stay visible."""
    k = min(w / img.width, h / img.height)
    size = (max(1, round(img.width * k)), max(1, round(img.height * k)))
    if size == img.size:
        return img
    method = Image.Resampling.NEAREST if k > 1 else Image.Resampling.LANCZOS
    return img.resize(size, method)


def tile_size(image: torch.Tensor, longest: int) -> tuple[int, int]:
    """(w, h) of a tile with the image's aspect and the given longest side."""
    h, w = image.shape[-2:]
    k = longest / max(h, w)
    return max(1, round(w * k)), max(1, round(h * k))


# --- feature maps and the patches a channel answers to -----------------------------------


def features(image: torch.Tensor, layers: Sequence[str], pooling: str = "max",
             state: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The activations of ``layers`` for a (1, 3, H, W) image, one forward pass."""
    with torch.no_grad():
        return Features(layers, pooling, state)(image)


def strongest_channels(feature: torch.Tensor, count: int) -> list[int]:
    """Channels of a (1, C, h, w) activation, by mean activation, strongest first."""
    return feature[0].float().mean(dim=(1, 2)).argsort(descending=True)[:count].tolist()


def feature_map_image(fmap: torch.Tensor) -> Image.Image:
    """A (h, w) activation as a grey image, stretched to black..white."""
    lo, hi = fmap.min(), fmap.max()
    norm = (fmap - lo) / (hi - lo) if hi > lo else torch.zeros_like(fmap)
    return io.tensor_to_pil(norm.expand(3, -1, -1))


def receptive_field(layer: str) -> tuple[int, int, float]:
    """(size, stride, centre of position 0) in input pixels of one position of ``layer``.

    Pixel k spans [k, k+1); a 3x3 convolution with padding 1 widens the field by two steps
    and keeps the centre, a 2x2 pool widens it by one step, shifts the centre by half a
    step and doubles the step. This is the theoretical field: the effective one is smaller.
    """
    size, stride, centre = 1, 1, 0.5
    for name in LAYERS[: LAYERS.index(check_layers([layer])[0]) + 1]:
        if name.startswith("conv"):
            size += 2 * stride
        elif name.startswith("pool"):
            size += stride
            centre += stride / 2
            stride *= 2
    return size, stride, centre


@dataclass
class Patch:
    """A receptive-field crop: its box in the image (left, top, right, bottom) and response."""

    box: tuple[int, int, int, int]
    activation: float
    image: Image.Image


def top_patches(image: torch.Tensor, layer: str, channel: int, count: int = 8,
                pooling: str = "max",
                state: dict[str, torch.Tensor] | None = None) -> list[Patch]:
    """The image crops that excite ``layer``'s ``channel`` most, strongest first.

    Positions closer than half a receptive field to a stronger one are skipped, so the
    patches show different places rather than one place shifted by a pixel.
    """
    fmap = features(image, [layer], pooling, state)[layer][0]
    if not 0 <= channel < fmap.shape[0]:
        raise BrushworkError(f"channel {channel} of {layer}: it has {fmap.shape[0]} channels, "
                             f"0..{fmap.shape[0] - 1}")
    size, stride, centre = receptive_field(layer)
    radius = max(1, size // (2 * stride))
    response = fmap[channel].float().clone()
    # Grey outside the image, so crops at the border keep their size and position.
    padded = F.pad(image, (size, size, size, size), value=0.5)
    patches = []
    for _ in range(count):
        value, index = response.flatten().max(0)
        if not torch.isfinite(value):
            break
        y, x = divmod(int(index), response.shape[1])
        response[max(0, y - radius): y + radius + 1,
                 max(0, x - radius): x + radius + 1] = -torch.inf
        left, top = round(centre + x * stride - size / 2), round(centre + y * stride - size / 2)
        crop = padded[..., top + size: top + 2 * size, left + size: left + 2 * size]
        patches.append(Patch((left, top, left + size, top + size), float(value),
                             io.tensor_to_pil(crop)))
    return patches


def parse_channel(spec: str) -> tuple[str, int]:
    """'relu3_1:12' -> ('relu3_1', 12), with a one-line error for anything else."""
    layer, _, number = spec.partition(":")
    if not number.isdigit():
        raise BrushworkError(f"--channel {spec!r}: give LAYER:N, e.g. relu3_1:12")
    return check_layers([layer])[0], int(number)


def feature_grid(image: ImageLike, layers: Sequence[str] = BLOCK_LAYERS, count: int = 8,
                 size: int | None = 256, tile: int = 128, channel: tuple[str, int] | None = None,
                 pooling: str = "max", weights: str | None = None) -> Image.Image:
    """One row per layer of its ``count`` strongest feature maps, captioned ``layer #channel``.

    With ``channel`` = (layer, n), a last row shows the image with the receptive fields of
    that channel's strongest responses outlined, then those patches, strongest first.

    >>> grid = feature_grid(io.EXAMPLES / "tubingen.jpg", ("relu1_1", "relu3_1"), count=4)
    >>> grid.save("features.png")
    """
    if count < 1:
        raise BrushworkError(f"--count {count} must be at least 1")
    io.check_size(tile, "--tile")
    x = io.as_tensor(image, size)
    w, h = tile_size(x, tile)
    cols, rows = count + (channel is not None), len(layers) + (channel is not None)
    width, height = GAP + cols * (w + GAP), GAP + rows * (h + CAPTION + GAP)
    if max(width, height) > io.MAX_SIZE:  # checked before the pass: such a grid fills memory
        raise BrushworkError(f"--tile {tile}: the grid would be {width}x{height} px, over "
                             f"{io.MAX_SIZE}; use a smaller --tile or --count")
    state = weights_mod.load(weights)
    feats = features(x, check_layers(layers), pooling, state)
    rows = [[(f"{name} #{c}", feature_map_image(feats[name][0, c]))
             for c in strongest_channels(feats[name], count)] for name in layers]
    if channel is not None:
        rows.append(patch_row(x, *channel, count=count, pooling=pooling, state=state))
    return tile_grid(rows, tile_size(x, tile))


def patch_row(image: torch.Tensor, layer: str, channel: int, count: int = 8,
              pooling: str = "max", state: dict[str, torch.Tensor] | None = None,
              ) -> list[tuple[str, Image.Image]]:
    """Captioned tiles: the image with the top patches outlined, then the patches."""
    patches = top_patches(image, layer, channel, count, pooling, state)
    overview = io.tensor_to_pil(image)
    draw = ImageDraw.Draw(overview)
    for p in patches:
        draw.rectangle((p.box[0], p.box[1], p.box[2] - 1, p.box[3] - 1), outline=(255, 0, 0))
    return [(f"{layer} #{channel} top {len(patches)}", overview),
            *((f"{p.activation:.3g} at {p.box[0]},{p.box[1]}", p.image) for p in patches)]


# --- reconstructions from features and from Gram matrices --------------------------------


@dataclass
class ReconstructOptions:
    """Settings of a reconstruction; the flags of `brushwork reconstruct` have these names.

    As in Gatys et al., one scale from white noise by default: a coarse-to-fine pyramid
    would itself put large structures into the image (a shallow layer's texture would
    inherit patterns made at the coarse scale), which the figure must attribute to the
    layers alone.
    Average pooling, as they found it gives smoother gradients than max pooling; no
    total-variation term, since the point is what the features alone determine.
    """

    size: int = 256
    content_layers: tuple[str, ...] = ()
    style_layers: tuple[str, ...] = ()
    iterations: int | tuple[int, ...] = 60
    scales: int = 1
    optimizer: str = "lbfgs"
    lr: float | None = None
    init: str = "noise"
    seed: int = 0
    pooling: str = "avg"
    device: str = "auto"
    precision: str = "auto"
    weights: str | None = None

    def check(self) -> ReconstructOptions:
        """Validate before any heavy work, with one-line messages."""
        io.check_size(self.size)
        if not self.content_layers and not self.style_layers:
            raise BrushworkError("give --content-layer or --style-layers (or --figure)")
        if self.content_layers and self.style_layers:
            raise BrushworkError("a reconstruction is from content features or from style "
                                 "Gram matrices: give --content-layer or --style-layers, "
                                 "not both")
        check_layers(self.content_layers or self.style_layers)
        check_schedule(self.scales, self.iterations, self.lr)
        if self.init != "noise" and not os.path.isfile(self.init):
            raise BrushworkError(f"init {self.init!r}: a reconstruction starts from noise or "
                                 "an existing image file")
        return self

    def settings(self) -> dict:
        """The options as plain data, for metadata and checkpoints."""
        return {k: v for k, v in asdict(self).items() if v is not None}


class ReconstructionLoss(torch.nn.Module):
    """Distance of an image's features (content) or Gram matrices (style) to a target's.

    Each term is the mean over its layers of the relative errors defined in ``losses``, so
    one layer and five layers give losses of the same order.
    """

    def __init__(self, net: Features, target: torch.Tensor, content_layers: Sequence[str],
                 style_layers: Sequence[str], dtype: torch.dtype) -> None:
        super().__init__()
        self.net, self.dtype = net, dtype
        with torch.no_grad(), autocast(target.device, dtype):
            feats = net(target)
        self.content_targets = {n: feats[n].float() for n in content_layers}
        self.gram_targets = {n: gram(feats[n]) for n in style_layers}

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        with autocast(image.device, self.dtype):
            feats = self.net(image)
        terms = {}
        if self.content_targets:
            terms["content"] = sum(content_loss(feats[n], t) for n, t in
                                   self.content_targets.items()) / len(self.content_targets)
        if self.gram_targets:
            terms["style"] = sum(style_loss(gram(feats[n]), t) for n, t in
                                 self.gram_targets.items()) / len(self.gram_targets)
        terms["total"] = sum(terms.values())
        return terms


def reconstruct_tensor(target: torch.Tensor, options: ReconstructOptions,
                       callbacks: Sequence[Callback] = (), resume: Checkpoint | None = None,
                       progress: bool = True) -> torch.Tensor:
    """Optimise noise until its content features or Gram matrices match ``target``'s.

    ``target`` is already at the output size. Targets are recomputed at every scale of the
    pyramid from the target resized to it, as in stylisation.
    """
    options.check()
    scales = pyramid(*target.shape[-2:], options.scales, options.iterations)
    device = pick_device(options.device)
    dtype = resolve_precision(options.precision, device)
    target = target.to(device)
    net = run_network((*options.content_layers, *options.style_layers), options.pooling,
                      options.weights, device, dtype)

    def loss_for(scale: Scale) -> LossFn:
        return ReconstructionLoss(net, resize(target, scale.height, scale.width),
                                  options.content_layers, options.style_layers, dtype)

    if options.init == "noise":
        # Made at the first scale's size: full-size noise shrunk to it is averaged towards
        # grey, where feature maps and Gram matrices are nearly flat and L-BFGS stalls.
        gen = torch.Generator().manual_seed(options.seed)
        init = torch.rand((1, 3, scales[0].height, scales[0].width), generator=gen)
    else:
        init = io.load_image(options.init)
    lr = LBFGS_LR_FROM_NOISE if options.lr is None and options.optimizer == "lbfgs" \
        else options.lr
    return run(scales, init.to(device), loss_for, options.optimizer, lr, callbacks,
               resume=resume, settings=options.settings(), progress=progress)


def reconstruct(image: ImageLike, content_layer: str | None = None,
                style_layers: Sequence[str] = (), callbacks: Sequence[Callback] = (),
                **options) -> Image.Image:
    """Rebuild ``image`` from one layer's features or from the Gram matrices of layers.

    >>> content = reconstruct("photo.jpg", content_layer="relu4_2", size=256)
    >>> texture = reconstruct("painting.jpg", style_layers=BLOCK_LAYERS, size=256)
    """
    opts = ReconstructOptions(content_layers=(content_layer,) if content_layer else (),
                              style_layers=tuple(style_layers), **options).check()
    return io.tensor_to_pil(reconstruct_tensor(io.as_tensor(image, opts.size), opts, callbacks))


def figure_runs(content_layers: Sequence[str] = BLOCK_LAYERS,
                style_layers: Sequence[str] = BLOCK_LAYERS) -> list[tuple[str, tuple, tuple]]:
    """(caption, content layers, style layers) of each figure tile: one content run per
    layer, then style runs over the growing prefixes of ``style_layers``."""
    content = [(f"content {n}", (n,), ()) for n in check_layers(content_layers)]
    style = [(f"style {s[0]}" + (f"..{s[-1]}" if len(s) > 1 else ""), (), s)
             for s in (tuple(style_layers[: k + 1]) for k in range(len(style_layers)))]
    return content + style


def reconstruction_figure(image: ImageLike, options: ReconstructOptions | None = None,
                          content_layers: Sequence[str] = BLOCK_LAYERS,
                          style_layers: Sequence[str] = BLOCK_LAYERS,
                          progress: bool = True) -> Image.Image:
    """Gatys et al.'s figure 1 for one image: a row of content reconstructions, one per
    layer, and a row of style reconstructions from growing sets of layers, each row after
    the input itself. Tiles are ``options.size`` on the longest side."""
    options = options or ReconstructOptions()
    check_layers(style_layers)
    runs = figure_runs(content_layers, style_layers)
    target = io.as_tensor(image, options.size)
    tiles = []
    for k, (caption, content, style) in enumerate(runs, 1):
        if progress:
            tqdm.write(f"[{k}/{len(runs)}] {caption}", file=sys.stderr)
        run_options = replace(options, content_layers=content, style_layers=style).check()
        out = reconstruct_tensor(target, run_options, progress=progress)
        tiles.append((caption, io.tensor_to_pil(out)))
    source = ("input", io.tensor_to_pil(target))
    split = len(content_layers)
    return tile_grid([[source, *tiles[:split]], [source, *tiles[split:]]],
                     tile_size(target, options.size))
