"""Artistic style transfer (Gatys, Ecker & Bethge): the main job of brushwork.

``stylize`` reads the images, builds per scale a loss of content features, blended style
Gram matrices and total variation, and hands it to ``optimise.run``. Everything the CLI
can do goes through here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from brushwork import colour, io
from brushwork.errors import BrushworkError
from brushwork.losses import (
    content_loss,
    gram,
    mask_shares,
    masked_style_total,
    style_loss,
    tv_loss,
    weighted_total,
)
from brushwork.matting import other_proportions
from brushwork.optimise import (
    Callback,
    Checkpoint,
    Scale,
    pyramid,
    resize,
    run,
)
from brushwork.options import check_schedule, require
from brushwork.regions import (
    PALETTE,
    MaskLike,
    Regions,
    RegionStyleLoss,
    match_regions,
    read_label_pair,
)
from brushwork.runtime import autocast, available_memory, pick_device, resolve_precision
from brushwork.tiling import (
    MIN_TILE,
    TiledProblem,
    TiledStyle,
    bytes_per_pixel,
    choose_tile,
    grid,
)
from brushwork.vgg import Features, check_layers, layer_masks, run_network

ImageLike = io.ImageLike
#: Extra loss terms for one scale, by name: (weight, term of the image). A job adds its
#: own terms this way (video's temporal term) and they go into the one weighted sum.
ExtraTerms = dict[str, tuple[float, Callable[[torch.Tensor], torch.Tensor]]]
DEFAULT_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
INITS = ("content", "noise", "style")


@dataclass
class StyleOptions:
    """Every setting of an artistic run; the defaults are the recommended ones.

    Weights are relative: each loss term is already normalised to be of order one (see
    ``losses``), so ``style_weight`` / ``content_weight`` is the balance whatever the size.
    """

    inits: ClassVar[tuple[str, ...]] = INITS  # the named starting images --init accepts
    least_iterations: ClassVar[int] = 1

    size: int = 512
    content_layers: tuple[str, ...] = ("relu4_2",)
    content_layer_weights: tuple[float, ...] | None = None
    style_layers: tuple[str, ...] = DEFAULT_STYLE_LAYERS
    style_layer_weights: tuple[float, ...] | None = None
    content_weight: float = 1.0
    style_weight: float = 30.0
    tv_weight: float = 1.0
    style_blend: tuple[float, ...] | None = None
    style_scale: float = 1.0
    init: str = "content"
    seed: int = 0
    optimizer: str = "lbfgs"
    lr: float | None = None
    iterations: int | tuple[int, ...] = 100
    scales: int = 3
    pooling: str = "max"
    tile: int | None = None      # None: chosen from free memory; 0: never tile
    overlap: int = 64
    preserve_colour: str = "none"
    device: str = "auto"
    precision: str = "auto"
    weights: str | None = None
    extra: dict = field(default_factory=dict)

    def check(self) -> StyleOptions:
        """Validate everything before any heavy work, with one-line messages."""
        self._check_types()
        io.check_size(self.size)
        check_layers(self.content_layers)
        check_layers(self.style_layers)
        for name, layers, lw in (("content", self.content_layers, self.content_layer_weights),
                                 ("style", self.style_layers, self.style_layer_weights)):
            if lw is not None and len(lw) != len(layers):
                raise BrushworkError(f"{len(lw)} {name} layer weights for {len(layers)} "
                                     f"{name} layers; give one weight per layer")
            for w in lw or ():
                require(f"{name}_layer_weights", w, 0)
        for name in ("content_weight", "style_weight", "tv_weight"):
            require(name, getattr(self, name), 0)
        require("style_scale", self.style_scale, 0, above=True, hint=", e.g. 0.5 or 1")
        check_schedule(self.scales, self.iterations, self.lr, self.least_iterations)
        require("overlap", self.overlap, 0)
        least = max(MIN_TILE, 2 * self.overlap)
        if self.tile not in (None, 0) and self.tile < least:
            raise BrushworkError(f"--tile {self.tile}: use 0 (never tile) or at least {least} "
                                 f"px (at least {MIN_TILE}, and twice --overlap)")
        if self.preserve_colour not in colour.COLOUR_MODES:
            raise BrushworkError(f"preserve-colour {self.preserve_colour!r}: use one of "
                                 f"{', '.join(colour.COLOUR_MODES)}")
        if self.init not in self.inits and not os.path.isfile(self.init):
            raise BrushworkError(f"init {self.init!r}: use {', '.join(self.inits)} or an "
                                 "existing image file")
        return self

    def _check_types(self) -> None:
        """The Python API has no argparse in front of it: a string where a number or a list
        of layers belongs would otherwise fail deep in the run, or be read letter by letter."""
        optional = ("tile", "lr")
        for names, kind, what in ((("size", "seed", "scales", "overlap", "tile"), int,
                                   "an integer"),
                                  (("content_weight", "style_weight", "tv_weight",
                                    "style_scale", "lr"), int | float, "a number")):
            for name in names:
                v = getattr(self, name)
                if (v is not None or name not in optional) and (
                        isinstance(v, bool) or not isinstance(v, kind)):
                    raise BrushworkError(f"{name}={v!r}: give {what}")
        counts = self.iterations if isinstance(self.iterations, tuple | list) else [self.iterations]
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in counts):
            raise BrushworkError(f"iterations={self.iterations!r}: give an integer, or one "
                                 "per scale as a tuple")
        for name in ("content_layers", "style_layers"):
            if isinstance(getattr(self, name), str):
                raise BrushworkError(f"{name}={getattr(self, name)!r}: give a list of layer "
                                     "names, e.g. ['relu1_1', 'relu2_1']")

    def settings(self) -> dict:
        """The options as plain data, for metadata and checkpoints."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def layer_weights(layers: Sequence[str], given: Sequence[float] | None) -> dict[str, float]:
    """Per-layer weights, equal and summing to one unless given."""
    weights = list(given) if given is not None else [1.0] * len(layers)
    total = sum(weights) or 1.0
    return {name: w / total for name, w in zip(layers, weights, strict=True)}


def blend_weights(count: int, blend: Sequence[float] | None) -> list[float]:
    """Normalised blend weights for ``count`` style images."""
    if blend is None:
        return [1.0 / count] * count
    if len(blend) != count:
        raise BrushworkError(f"{len(blend)} blend weights for {count} style images; "
                             "give one per style")
    if any(b < 0 for b in blend) or sum(blend) <= 0:
        raise BrushworkError("style blend weights must be non-negative and not all zero")
    return [b / sum(blend) for b in blend]


class ArtisticLoss(torch.nn.Module):
    """content + style + tv for one scale (or one tile of it), with fixed targets.

    For a tile, ``context`` holds per layer what the tile's Gram is added to
    (``tiling.TiledStyle.context``), so the style term compares an *image-wide* Gram with
    the target.
    """

    def __init__(self, net: Features, options: StyleOptions, content: torch.Tensor,
                 style_grams: dict[str, torch.Tensor], dtype: torch.dtype,
                 context: dict[str, torch.Tensor] | None = None,
                 extra: ExtraTerms | None = None) -> None:
        super().__init__()
        self.net, self.options, self.dtype = net, options, dtype
        self.extra = extra or {}
        self.content_w = layer_weights(options.content_layers, options.content_layer_weights)
        self.style_w = layer_weights(options.style_layers, options.style_layer_weights)
        self.style_targets = style_grams
        self.context = context
        with torch.no_grad(), autocast(content.device, dtype):
            feats = net(content)
        self.content_targets = {n: feats[n].float() for n in options.content_layers}

    def _style(self, name: str, features: torch.Tensor) -> torch.Tensor:
        g = gram(features)
        if self.context is not None:
            g = g + self.context[name]
        return style_loss(g, self.style_targets[name])

    def style_term(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        """Layer-weighted Gram losses against the targets (photo.PhotoLoss masks them)."""
        return sum(w * self._style(n, feats[n]) for n, w in self.style_w.items())

    def terms(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """The unweighted terms of ``image``: content, style, tv."""
        with autocast(image.device, self.dtype):
            feats = self.net(image)
        c = sum(w * content_loss(feats[n], self.content_targets[n])
                for n, w in self.content_w.items())
        return {"content": c, "style": self.style_term(feats), "tv": tv_loss(image),
                **{name: term(image) for name, (_, term) in self.extra.items()}}

    def weights(self) -> dict[str, float]:
        """The weight of each term in the total."""
        o = self.options
        return {"content": o.content_weight, "style": o.style_weight, "tv": o.tv_weight,
                **{name: weight for name, (weight, _) in self.extra.items()}}

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return weighted_total(self.terms(image), self.weights())


class SpatialStyleLoss(ArtisticLoss):
    """Artistic loss with each style where its mask is (Gatys et al. 2017, spatial control):
    per layer, the Gram matrix of the output's features under style k's mask (resized to
    the layer as pooling does) against style k's whole Gram, weighted by the mask's share
    of the masked area, so a style on a sliver weighs as little as the sliver."""

    def __init__(self, net: Features, options: StyleOptions, content: torch.Tensor,
                 styles: Sequence[torch.Tensor], masks: torch.Tensor, dtype: torch.dtype) -> None:
        super().__init__(net, options, content, {}, dtype)
        layers = list(self.style_w)
        self.masks = layer_masks(masks.to(content.device), layers)
        self.targets: dict[str, list[torch.Tensor]] = {n: [] for n in layers}
        for style in styles:
            with torch.no_grad(), autocast(style.device, dtype):
                feats = net(style)
            for n in layers:
                self.targets[n].append(gram(feats[n]))
        self.shares = mask_shares(self.masks)

    def style_term(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        return masked_style_total(feats, self.style_w, self.masks, self.targets, self.shares)


class RegionLoss(ArtisticLoss):
    """Artistic loss with the style term per labelled region (``regions.RegionStyleLoss``):
    each region of the content against its partner region of the one style."""

    def __init__(self, net: Features, options: StyleOptions, content: torch.Tensor,
                 style: torch.Tensor, regions: Regions, dtype: torch.dtype) -> None:
        # The region loss owns the style targets, so the parent is given none.
        super().__init__(net, options, content, {}, dtype)
        self.regions = RegionStyleLoss(net, style, regions, *content.shape[-2:], self.style_w,
                                       dtype)

    def style_term(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.regions(feats)


MaskSource = str | os.PathLike | Image.Image


def read_style_masks(sources: Sequence[MaskSource], count: int,
                     content: torch.Tensor) -> torch.Tensor:
    """(1, K, H, W) weights in 0..1 at the content's size from greyscale images, one per style
    (white: that style; grey: a blend; black: not), refused if their count or their
    proportions do not match."""
    if len(sources) != count:
        raise BrushworkError(f"{len(sources)} style masks for {count} style images; give one "
                             "mask per style, in the same order")
    h, w = content.shape[-2:]
    planes = []
    for source in sources:
        img = source if isinstance(source, Image.Image) else io.open_image(source)
        mw, mh = img.size
        if other_proportions((mh, mw), (h, w)):
            raise BrushworkError(f"style mask {source} is {mw}x{mh}, of other proportions "
                                 f"than the content ({w}x{h}): give masks of the content's shape")
        grey = np.asarray(img.convert("L").resize((w, h), Image.Resampling.BILINEAR))
        planes.append(torch.from_numpy(grey.astype(np.float32) / 255.0))
    return torch.stack(planes)[None]


def style_grams(net: Features, styles: Sequence[torch.Tensor], blend: Sequence[float],
                layers: Sequence[str], dtype: torch.dtype,
                budget: int) -> dict[str, torch.Tensor]:
    """Blended target Grams: sum_i w_i G(style_i) (the minimiser of the weighted sum of
    per-style losses), computed in tiles when a style image is too large for one pass."""
    out: dict[str, torch.Tensor] = {}
    for style, weight in zip(styles, blend, strict=True):
        h, w = style.shape[-2:]
        # A forward pass alone needs about a third of what forward+backward does.
        tile = choose_tile(h, w, bytes_per_pixel(list(layers), dtype) / 3, budget)
        tiles = grid(h, w, tile, 64) if tile else grid(h, w, max(h, w), 0)
        stats = TiledStyle(net, list(layers), tiles, dtype)
        for name, g in stats.measure(style).grams().items():
            out[name] = out.get(name, 0) + weight * g
    return out


def tile_for(options: StyleOptions, height: int, width: int, per_pixel: float,
             budget: int) -> int | None:
    """The tile side for one scale, None when it runs whole; shared by the run and --dry-run,
    so that both decide alike from the same memory ``budget``."""
    tile = options.tile if options.tile is not None else choose_tile(
        height, width, per_pixel, budget)
    return tile if tile and tile < max(height, width) else None


def styles_at(styles: Sequence[torch.Tensor], scale: Scale, factor: float) -> list[torch.Tensor]:
    """Resize each style so its area is ``factor``^2 times the output's at this scale."""
    area = scale.height * scale.width * factor ** 2
    out = []
    for s in styles:
        h, w = s.shape[-2:]
        k = (area / (h * w)) ** 0.5
        out.append(resize(s, max(16, round(h * k)), max(16, round(w * k))))
    return out


#: Float copies of a style image alive while it is resized for a scale (the loaded image,
#: the resized one, the resampler's intermediate); its VGG pass is tiled to fit anyway.
STYLE_COPIES = 3


def style_bytes(pixels: float) -> float:
    """Memory of a style image of ``pixels`` pixels while it is brought to a scale."""
    return pixels * 3 * 4 * STYLE_COPIES


def check_styles_fit(styles: Sequence[torch.Tensor], scales: Sequence[Scale], factor: float,
                     budget: int) -> None:
    """Refuse, before any work, a --style-scale that makes a style image larger than
    brushwork handles or than free memory (the kernel would kill the run instead)."""
    area = max(s.height * s.width for s in scales) * factor ** 2
    for style in styles:
        h, w = style.shape[-2:]
        k = (area / (h * w)) ** 0.5
        side = round(max(h, w) * k)
        if side > io.MAX_SIZE or style_bytes(area) > budget:
            raise BrushworkError(
                f"--style-scale {factor:g} makes the style image {round(w * k)}x{round(h * k)} "
                f"px at the largest scale, {style_bytes(area) / 2**30:.1f} GB to prepare "
                f"({budget / 2**30:.1f} GB free, at most {io.MAX_SIZE} px a side); lower "
                "--style-scale or --size")


def initial_image(options: StyleOptions, content: torch.Tensor,
                  styles: Sequence[torch.Tensor]) -> torch.Tensor:
    """The starting image at full size (the pyramid resizes it down for the first scale)."""
    h, w = content.shape[-2:]
    if options.init == "content":
        return content.clone()
    if options.init == "noise":
        gen = torch.Generator().manual_seed(options.seed)
        return torch.rand(content.shape, generator=gen).to(content.device)
    if options.init == "style":
        source = styles[0]
    else:
        source = io.load_image(options.init).to(content.device)
    return resize(source, h, w)


def stylize_tensor(content: torch.Tensor, styles: Sequence[torch.Tensor],
                   options: StyleOptions, callbacks: Sequence[Callback] = (),
                   resume: Checkpoint | None = None, progress: bool = True,
                   style_masks: torch.Tensor | None = None, init: torch.Tensor | None = None,
                   extra_terms: Callable[[Scale], ExtraTerms] | None = None,
                   regions: Regions | None = None) -> torch.Tensor:
    """The whole artistic procedure on tensors already at the output size; returns a tensor.

    With ``style_masks`` (1, K, H, W), one per style, each style goes where its mask is
    (``SpatialStyleLoss``) and pixels no mask covers keep the content. With ``regions``
    (from label images of the content and of its one style) each content region takes the
    style of its partner region (``RegionLoss``). ``init``, at the content's size, replaces
    the starting image of ``options.init``; ``extra_terms`` gives each scale's further loss
    terms (images that fit whole only).
    """
    options.check()
    if not styles:
        raise BrushworkError("give at least one style image")
    if regions is not None and (len(styles) != 1 or style_masks is not None):
        raise BrushworkError("label images pair the regions of one style image with the "
                             "content's: give one style, and no style masks")
    if style_masks is not None:
        if style_masks.shape[1] != len(styles) or style_masks.shape[-2:] != content.shape[-2:]:
            raise BrushworkError(f"{style_masks.shape[1]} style masks of "
                                 f"{tuple(style_masks.shape[-2:])} for {len(styles)} styles on "
                                 f"a {tuple(content.shape[-2:])} content; give one per style, "
                                 "at the content's size")
        if options.style_blend is not None:
            raise BrushworkError("style masks say where each style goes; drop the style blend "
                                 "weights")
    h, w = content.shape[-2:]
    scales = pyramid(h, w, options.scales, options.iterations)  # a too narrow image fails here
    device = pick_device(options.device)
    dtype = resolve_precision(options.precision, device)
    torch.manual_seed(options.seed)
    blend = blend_weights(len(styles), options.style_blend)
    content = content.to(device)
    styles = [s.to(device) for s in styles]
    if options.preserve_colour == "histogram":
        styles = [colour.match_histogram(s, content) for s in styles]
    elif options.preserve_colour == "luminance":
        styles = [colour.match_luminance(s, content) for s in styles]
    target_content = colour.luminance(content) if options.preserve_colour == "luminance" \
        else content
    net = feature_network(options, device, dtype)

    per_pixel = bytes_per_pixel(list(net.layers), dtype)
    budget = available_memory(device)  # once: later scales would see our own freed buffers
    check_styles_fit(styles, scales, options.style_scale, budget)

    def targets(scale: Scale) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        grams = style_grams(net, styles_at(styles, scale, options.style_scale), blend,
                            options.style_layers, dtype, budget)
        return resize(target_content, scale.height, scale.width), grams

    def tiled_for(scale: Scale, tile: int) -> TiledProblem:
        content_s, grams = targets(scale)
        tiles = grid(scale.height, scale.width, tile, options.overlap)
        stats = TiledStyle(net, list(options.style_layers), tiles, dtype)
        return TiledProblem(tiles, options.overlap, stats, lambda t, context: ArtisticLoss(
            net, options, t.crop(content_s), grams, dtype, context))

    def loss_for(scale: Scale) -> Callable | TiledProblem:
        tile = tile_for(options, scale.height, scale.width, per_pixel, budget)
        if tile and (style_masks is not None or regions is not None or extra_terms is not None):
            what = "the temporal term works" if extra_terms is not None else \
                "style masks and label images work"
            raise BrushworkError(f"{what} only on images that fit in memory whole; "
                                 f"{scale.width}x{scale.height} needs tiles: lower --size")
        if tile:
            return tiled_for(scale, tile)
        if style_masks is not None:
            masks = F.interpolate(style_masks.to(device), size=(scale.height, scale.width),
                                  mode="bilinear", align_corners=False, antialias=True)
            return SpatialStyleLoss(net, options, resize(target_content, scale.height,
                                                         scale.width),
                                    styles_at(styles, scale, options.style_scale), masks, dtype)
        if regions is not None:
            return RegionLoss(net, options, resize(target_content, scale.height, scale.width),
                              styles_at(styles, scale, options.style_scale)[0], regions, dtype)
        content_s, grams = targets(scale)
        return ArtisticLoss(net, options, content_s, grams, dtype,
                            extra=extra_terms(scale) if extra_terms else None)

    start = initial_image(options, target_content, styles) if init is None else init
    out = run(scales, start.to(device), loss_for, options.optimizer, options.lr, callbacks,
              resume=resume, settings=options.settings(), progress=progress,
              tiled_for=tiled_for)
    if options.preserve_colour == "luminance":
        out = colour.restore_chrominance(out, content)
    if style_masks is not None:
        covered = style_masks.to(device).sum(1, keepdim=True).clamp(0, 1)
        out = covered * out + (1 - covered) * content
    return out


def feature_network(options: StyleOptions, device: torch.device,
                    dtype: torch.dtype) -> Features:
    """The run's VGG-19, cut after the deepest content or style layer."""
    return run_network((*options.content_layers, *options.style_layers), options.pooling,
                       options.weights, device, dtype)


def label_regions(content: ImageLike, style: torch.Tensor, content_labels: MaskLike | None,
                  style_labels: MaskLike | None) -> Regions | None:
    """The regions of two label images (the photo mode's colour code), read against the
    images as given (not resized), so that one of other proportions is refused; None when
    neither is given."""
    if content_labels is None and style_labels is None:
        return None
    labels = read_label_pair(content_labels, style_labels,
                             tuple(io.as_tensor(content).shape[-2:]), tuple(style.shape[-2:]))
    return match_regions(*labels, list(PALETTE))


def stylize(content: ImageLike, styles: ImageLike | Sequence[ImageLike],
            callback: Callback | None = None, style_masks: Sequence[MaskSource] | None = None,
            content_labels: MaskLike | None = None, style_labels: MaskLike | None = None,
            **options) -> Image.Image:
    """Stylise ``content`` with one or more ``styles``; keyword options as in ``StyleOptions``.
    ``style_masks``, one greyscale image per style, say where each style goes;
    ``content_labels`` and ``style_labels``, colour-coded label images of the content and of
    one style, give each content region the style of the same colour's region.

    >>> img = stylize("photo.jpg", ["starry_night.jpg"], size=384, iterations=200)
    >>> two = stylize("photo.jpg", ["wave.jpg", "udnie.jpg"], style_masks=["sky.png", "land.png"])
    >>> sky = stylize("photo.jpg", "painting.jpg", content_labels="photo_labels.png",
    ...               style_labels="painting_labels.png")
    """
    opts = StyleOptions(**options).check()
    if isinstance(styles, (str, os.PathLike, Image.Image, torch.Tensor)):
        styles = [styles]
    content_t = io.as_tensor(content, opts.size)
    style_t = [io.as_tensor(s) for s in styles]
    masks = None if style_masks is None else read_style_masks(style_masks, len(style_t),
                                                                content_t)
    regions = label_regions(content, style_t[0], content_labels, style_labels)
    out = stylize_tensor(content_t, style_t, opts, [callback] if callback else [],
                         style_masks=masks, regions=regions)
    return io.tensor_to_pil(out)
