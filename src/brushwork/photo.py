"""Photorealistic style transfer (Luan et al. 2017): semantic masks, region matching, matting.

A photo takes the look of a reference photo when each region takes the look of its partner
region: the style term becomes a sum over labelled regions of Gram losses on masked
features, and a second stage adds the matting-Laplacian term of the content, which keeps
the output locally an affine function of the content's colours, so the style changes
colours and light but cannot paint new edges. Regions come from colour-coded label images
(same colour = corresponding region) or, without them, from a joint clustering of both
images' VGG features. ``matte`` and ``replace_background`` give closed-form matting from
files, for the ``brushwork matte`` command.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageColor

from brushwork import colour, io
from brushwork.artistic import (
    DEFAULT_STYLE_LAYERS,
    INITS,
    ImageLike,
    RegionLoss,
    StyleOptions,
    check_styles_fit,
    feature_network,
    initial_image,
    layer_weights,
    styles_at,
)
from brushwork.errors import BrushworkError
from brushwork.matting import (
    MattingLoss,
    affine_upsample,
    closed_form_matte,
    composite,
    detail_upsample,
    estimate_foreground,
    matting_laplacian,
    matting_smooth,
    scribble_constraints,
    trimap_constraints,
)
from brushwork.optimise import Callback, Checkpoint, Scale, pyramid, resize, run
from brushwork.options import require_finite
from brushwork.regions import (
    PALETTE,
    MaskLike,
    Regions,
    RegionStyleLoss,
    check_pair,
    match_regions,
    read_label_pair,
    region_masks,
    single_region,
)
from brushwork.runtime import available_memory, pick_device, resolve_precision
from brushwork.vgg import Features, run_network

# Automatic masks cluster relu4_1 features of both images at most at this longest side:
# enough positions (48 x 32) for a few regions, cheap next to the transfer itself.
AUTO_SIZE = 384
AUTO_LAYER = "relu4_1"


def _kmeans(points: torch.Tensor, k: int, seed: int, steps: int = 50) -> torch.Tensor:
    """Centres of ``k`` clusters of (N, D) points: k-means++ seeding, then Lloyd steps."""
    gen = torch.Generator().manual_seed(seed)
    centres = points[torch.randint(len(points), (1,), generator=gen)]
    for _ in range(1, k):
        spread = torch.cdist(points, centres).min(dim=1).values.pow(2) + 1e-12
        centres = torch.cat([centres, points[torch.multinomial(spread, 1, generator=gen)]])
    for _ in range(steps):
        assign = torch.cdist(points, centres).argmin(dim=1)
        moved = torch.stack([points[assign == j].mean(0) if (assign == j).any() else centres[j]
                             for j in range(k)])
        if torch.equal(moved, centres):
            break
        centres = moved
    return centres


#: More automatic regions than this find nothing new (regions under about 1/20 of the image
#: are absorbed, see auto_labels) and cost time: k-means over every feature position.
MAX_REGIONS = 20


def auto_labels(content: torch.Tensor, style: torch.Tensor, regions: int, net: Features,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Corresponding label maps for two images by clustering their VGG features jointly.

    Each image's relu4_1 features are standardised per channel over that image first, so
    a global difference of look (a red dusk, a blue noon) does not split the clusters by
    image; both images' positions then go into one k-means, so equal labels mean similar
    content. Distances to the centres are upsampled (bilinear) before the arg-min, which
    gives boundaries smoother than the 8-pixel feature grid.

    Where it fails: clusters follow texture and edges as much as meaning. On the shared
    pairs with 3 regions, 80% (in1/tar1) and 77% (in42/tar42) of pixels agree with the
    hand-made masks; calm water joins the clear sky of in1, edges of objects form a region
    of their own in in42, and a close-up with one subject (in9, a flower) is cut into
    regions by petal direction. A region seen in only one image (snow in one, grass in the
    other) is matched to nothing and falls back to the whole style; objects under about
    1/20 of the image are absorbed by their surroundings. Give label images for such pairs.
    """
    feats = []
    for image in (content, style):
        h, w = image.shape[-2:]
        k = min(1.0, AUTO_SIZE / max(h, w))
        small = resize(image, max(16, round(h * k)), max(16, round(w * k)))
        with torch.no_grad():
            f = net(small)[AUTO_LAYER].float()[0]
        f = (f - f.mean(dim=(1, 2), keepdim=True)) / f.std(dim=(1, 2), keepdim=True).clamp_min(1e-6)
        feats.append(f)
    points = torch.cat([f.flatten(1).T for f in feats]).cpu()
    centres = _kmeans(points, regions, seed)
    out = []
    for f, image in zip(feats, (content, style), strict=True):
        _, fh, fw = f.shape
        distance = torch.cdist(f.flatten(1).T.cpu(), centres).T.reshape(1, regions, fh, fw)
        distance = F.interpolate(distance, size=image.shape[-2:], mode="bilinear",
                                 align_corners=False)
        out.append(distance[0].argmin(dim=0).numpy())
    return out[0], out[1]


def region_colour_start(content: torch.Tensor, style: torch.Tensor,
                        regions: Regions) -> torch.Tensor:
    """The content with each region's colour mean and covariance moved to its partner's.

    The Gram loss can carry a region's colours only slowly from the content's to the
    reference's, and what it has not carried when the steps run out shows as a cast; this
    start puts every region at its partner's colours before the first step (the whole
    style's for a region without one), by one affine colour map per region
    (``colour.affine_match``), blended across borders by the soft masks. Away from the
    borders the start is then exactly an affine function of the content: photographic
    from the first step, which the matting term only has to keep.
    """
    h, w = content.shape[-2:]
    inside = region_masks(regions.content, regions.content_ids, h, w)[0].to(content)
    partner_masks = region_masks(regions.style, regions.style_ids, *style.shape[-2:])[0]
    pixels, reference = content[0].reshape(3, -1), style[0].reshape(3, -1)
    whole = colour.colour_stats(reference)
    out = torch.zeros_like(pixels, dtype=torch.float64)
    for k, partner in enumerate(regions.partners):
        weight = inside[k].reshape(-1)
        target = whole if partner is None else \
            colour.colour_stats(reference, partner_masks[partner].to(style))
        out += weight * colour.affine_match(pixels, colour.colour_stats(pixels, weight), target)
    out = out / inside.sum(0).reshape(-1).clamp_min(1e-8)
    return out.reshape_as(content).to(content.dtype).clamp(0, 1)


# ---------------------------------------------------------------- the losses

class PhotoLoss(RegionLoss):
    """Artistic loss with the style term per region and, where given, the matting term.

    The matting energy is a sum over pixels; it is divided by their number so that, like
    every other term (see ``losses``), the weight means the same at any size.
    """

    def __init__(self, net: Features, options: PhotoOptions, content: torch.Tensor,
                 style: torch.Tensor, regions: Regions, matting: MattingLoss | None,
                 dtype: torch.dtype) -> None:
        super().__init__(net, options, content, style, regions, dtype)
        self.matting = matting

    def terms(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = super().terms(image)
        if self.matting is not None:
            terms["matting"] = self.matting(image) / (image.shape[-2] * image.shape[-1])
        return terms

    def weights(self) -> dict[str, float]:
        return {**super().weights(), "matting": self.options.matting_weight}


# ---------------------------------------------------------------- the procedure

# Shallow layers carry a photo's colour and tone, which its look is mostly made of; at equal
# weights the deep layers' larger relative errors took most of the steps. For the default
# style layers; other layers are weighted equally unless weights are given.
LAYER_WEIGHTS = (4.0, 4.0, 2.0, 1.0, 1.0)


@dataclass
class PhotoOptions(StyleOptions):
    """Settings of a photorealistic run; inherited ones mean what they mean in StyleOptions.

    Luan et al.'s two stages, each a coarse-to-fine pyramid: stage one (``iterations``
    steps) with the region style loss, stage two (``matting_iterations`` steps) from its
    result with the matting term added. Both build on the start ``init="regions"`` (see
    ``region_colour_start``): with the colours already in place the steps go to light and
    texture, which is why a short schedule suffices. The defaults were chosen with
    benchmarks/compare_luan.py against the paper's own results (figures in the README).
    The result is then carried to ``output_size`` (the content's own size unless given)
    and smoothed there with strength ``smooth`` (see ``finish``): a run at 512 px is cheap,
    and what it painted that the photo's colours do not explain is damped at the size the
    result is seen at.
    """

    inits: ClassVar[tuple[str, ...]] = (*INITS, "regions")
    least_iterations: ClassVar[int] = 0  # stage one may be left out

    style_weight: float = 45.0
    style_layer_weights: tuple[float, ...] | None = LAYER_WEIGHTS
    tv_weight: float = 0.0
    init: str = "regions"
    iterations: int | tuple[int, ...] = 0
    matting_weight: float = 1e4
    matting_iterations: int = 120
    matting_eps: float = 1e-7
    regions: int = 3
    smooth: float = 50.0
    output_size: int | None = None  # the result's longest side; None: the content's own

    def check(self) -> PhotoOptions:
        if self.style_layer_weights == LAYER_WEIGHTS and \
                tuple(self.style_layers) != DEFAULT_STYLE_LAYERS:
            self.style_layer_weights = None
        super().check()
        for name in ("matting_weight", "matting_eps", "smooth"):
            require_finite(name, getattr(self, name))
        if self.matting_weight < 0 or self.matting_iterations < 0:
            raise BrushworkError("matting-weight and matting-iterations must not be negative")
        if not self.matting_iterations and not _total(self.iterations):
            raise BrushworkError("--iterations and --matting-iterations are both 0: give "
                                 "steps to at least one of the two stages")
        if not 1 <= self.regions <= MAX_REGIONS:
            raise BrushworkError(f"--regions {self.regions}: use 1 (no automatic segmentation) "
                                 f"to {MAX_REGIONS}; for finer regions give label images")
        if self.smooth < 0:
            raise BrushworkError("--smooth must not be negative (0 leaves the result as the "
                                 "steps made it)")
        if self.output_size is not None and io.check_size(self.output_size, "--output-size") \
                < self.size:
            raise BrushworkError(f"--output-size {self.output_size} is below --size "
                                 f"{self.size}: the transfer runs at --size, then is enlarged; "
                                 "lower --size instead")
        if self.preserve_colour != "none" or self.style_blend is not None:
            raise BrushworkError("photo transfer takes one style and its colours; drop "
                                 "preserve-colour and style-blend")
        return self


@dataclass
class PhotoScale(Scale):
    """A pyramid level that also says whether the matting term is on (stage two)."""

    matting: bool = False


def schedule(height: int, width: int, options: PhotoOptions) -> list[PhotoScale]:
    """Stage one: the pyramid without matting; stage two: the pyramid again, with it. A
    stage of no steps is left out."""
    stages = [(options.iterations, False), (options.matting_iterations, True)]
    return [PhotoScale(s.height, s.width, s.iterations, matting)
            for steps, matting in stages if _total(steps)
            for s in pyramid(height, width, options.scales, steps)]


def _total(steps: int | Sequence[int]) -> int:
    return steps if isinstance(steps, int) else sum(steps)


def photo_tensor(content: torch.Tensor, style: torch.Tensor, content_labels: np.ndarray | None,
                 style_labels: np.ndarray | None, options: PhotoOptions,
                 callbacks: Sequence[Callback] = (), resume: Checkpoint | None = None,
                 progress: bool = True) -> torch.Tensor:
    """The photorealistic procedure on tensors (content at the output size); returns a tensor.

    Without label maps, ``options.regions`` automatic regions are found (1 = one global
    region).
    """
    options.check()
    h, w = content.shape[-2:]
    stages = schedule(h, w, options)  # a too narrow image fails here, before any work
    device = pick_device(options.device)
    dtype = resolve_precision(options.precision, device)
    torch.manual_seed(options.seed)
    check_pair(content_labels, style_labels)
    content, style = content.to(device), style.to(device)
    net = feature_network(options, device, dtype)
    names = list(PALETTE)
    if content_labels is None:
        names = [f"automatic region {i + 1}" for i in range(options.regions)]
        if options.regions == 1:
            content_labels, style_labels = single_region(content), single_region(style)
        else:
            auto_net = run_network((AUTO_LAYER,), options.pooling, options.weights, device,
                                   channels_last=False)
            content_labels, style_labels = auto_labels(content, style, options.regions,
                                                       auto_net, options.seed)
    regions = match_regions(content_labels, style_labels, names)
    check_styles_fit([style], stages, options.style_scale, available_memory(device))
    laplacians: dict[tuple[int, int], MattingLoss] = {}

    def loss_for(scale: PhotoScale) -> Callable:
        target = resize(content, scale.height, scale.width)
        style_at = styles_at([style], scale, options.style_scale)[0]
        matting = None
        if scale.matting:
            key = (scale.height, scale.width)
            if key not in laplacians:  # built once per size: it depends only on the content
                laplacians[key] = MattingLoss(matting_laplacian(_array(target),
                                                                options.matting_eps)).to(device)
            matting = laplacians[key]
        return PhotoLoss(net, options, target, style_at, regions, matting, dtype)

    init = region_colour_start(content, style, regions) if options.init == "regions" \
        else initial_image(options, content, [style]).to(device)
    out = run(stages, init, loss_for, options.optimizer, options.lr,
              callbacks, resume=resume, settings=options.settings(), progress=progress)
    return out


#: Above this many output pixels the smoothing runs at this size and guided upsampling
#: carries it the rest of the way (the Laplacian costs about 0.3 KB a pixel).
SMOOTH_PIXELS = 2_000_000


def finish(image: torch.Tensor, content: ImageLike, options: PhotoOptions) -> torch.Tensor:
    """The run's output at ``options.output_size``, by default the content's own size (a
    photo edit keeps the photo's resolution), and smoothed (``options.smooth``).

    The output's colours are enlarged with the content's own detail added
    (``detail_upsample``); then the image nearest that is locally affine in the content at
    that size (``matting_smooth``), so that it is photographic at the size it is seen at.
    Beyond ``SMOOTH_PIXELS`` both happen at that many pixels and local affine upsampling
    guided by the content carries the result to full size. A content no larger than the run
    leaves the run's size.
    """
    out, run_content = _array(image), _array(io.as_tensor(content, max(image.shape[-2:])))
    full = io.as_tensor(content, options.output_size)
    height, width = full.shape[-2:]
    working = full
    if height * width > SMOOTH_PIXELS:
        working = io.as_tensor(content, int(max(height, width)
                                            * math.sqrt(SMOOTH_PIXELS / (height * width))))
    guide = _array(working)
    if max(working.shape[-2:]) > max(image.shape[-2:]):
        out = detail_upsample(out, run_content, guide)
    else:
        guide = run_content
    if options.smooth:
        out = matting_smooth(out, matting_laplacian(guide, options.matting_eps), options.smooth)
    if max(full.shape[-2:]) > max(guide.shape[:2]):
        out = affine_upsample(out, _array(full))
    return torch.from_numpy(out).float().permute(2, 0, 1)[None]


def _array(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) tensor -> (H, W, 3) float64 array, the layout of ``matting``."""
    return image[0].detach().permute(1, 2, 0).cpu().double().numpy()


def load_inputs(content: ImageLike, style: ImageLike, content_mask: MaskLike | None,
                style_mask: MaskLike | None, size: int
                ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray | None, np.ndarray | None]:
    """Content at ``size``, style at full size, and their label maps (checked against the
    images as given, so a mask of another size is reported before any resizing)."""
    check_pair(content_mask, style_mask)
    content_full, style_t = io.as_tensor(content), io.as_tensor(style)
    labels = read_label_pair(content_mask, style_mask, tuple(content_full.shape[-2:]),
                             tuple(style_t.shape[-2:]))
    return io.as_tensor(content_full, size), style_t, *labels


def photo_transfer(content: ImageLike, style: ImageLike, content_mask: MaskLike | None = None,
                   style_mask: MaskLike | None = None, callback: Callback | None = None,
                   **options) -> Image.Image:
    """Give ``content`` the look of the photo ``style``; keyword options as in PhotoOptions.

    Masks are colour-coded label images (same colour = corresponding region); without
    them, regions are found automatically (see ``auto_labels``).

    >>> img = photo_transfer("in.png", "tar.png", "in_seg.png", "tar_seg.png", size=384)
    >>> big = photo_transfer("in.jpg", "tar.jpg", size=512, output_size=4000)  # see finish
    """
    opts = PhotoOptions(**options).check()
    inputs = load_inputs(content, style, content_mask, style_mask, opts.size)
    out = photo_tensor(*inputs, opts, [callback] if callback else [])
    return io.tensor_to_pil(finish(out, content, opts))


def style_distance(image: torch.Tensor, style: torch.Tensor, net: Features,
                   image_labels: np.ndarray | None = None,
                   style_labels: np.ndarray | None = None) -> float:
    """Region-weighted relative Gram distance of ``image`` to ``style`` over ``net``'s layers
    (global without labels): the style term of the loss, as a figure to compare runs. The
    style is first resized to the image's area, as in a run."""
    style = styles_at([style], Scale(*image.shape[-2:], 0), 1.0)[0]
    if image_labels is None or style_labels is None:
        image_labels, style_labels = single_region(image), single_region(style)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a figure, not a run: unmatched regions are expected
        regions = match_regions(image_labels, style_labels, list(PALETTE))
    loss = RegionStyleLoss(net, style, regions, *image.shape[-2:],
                           layer_weights(net.layers, None), torch.float32)
    with torch.no_grad():
        return float(loss(net(image)))


# ---------------------------------------------------------------- matting from files

def _marks(source: MaskLike) -> np.ndarray:
    """A trimap or scribble image as a uint8 array (files and Pillow images go through io)."""
    if isinstance(source, np.ndarray):
        return source
    img = source if isinstance(source, Image.Image) else io.open_image(source)
    return np.asarray(io.to_rgb(img))


def matte(image: ImageLike, trimap: MaskLike | None = None,
          scribbles: MaskLike | None = None) -> np.ndarray:
    """Closed-form alpha matte (H, W) in 0..1 of ``image`` from a trimap or from scribbles.

    White (>= 240) marks foreground, black (<= 15) background, anything else is unknown, so
    grey or anti-aliased strokes leave their pixels to the solve instead of pinning them.
    """
    if (trimap is None) == (scribbles is None):
        raise BrushworkError("give exactly one of a trimap and scribbles")
    rgb = _array(io.as_tensor(image))
    if trimap is not None:
        known = trimap_constraints(_marks(trimap), rgb.shape[:2])
    else:
        known = scribble_constraints(_marks(scribbles), rgb)
    return closed_form_matte(rgb, *known)


def read_background(background: ImageLike | str) -> np.ndarray:
    """A background colour (3,) or image (H, W, 3) in 0..1, read before any solve so that a
    typo costs a second, not a matte."""
    if isinstance(background, str) and not os.path.exists(background):
        try:
            return np.asarray(ImageColor.getrgb(background)[:3], dtype=np.float64) / 255.0
        except ValueError:
            raise BrushworkError(f"{background}: neither an image file nor a colour like "
                                 "'#00ff00' or 'green'") from None
    return _array(io.as_tensor(background))


def replace_background(image: ImageLike, alpha: np.ndarray,
                       background: ImageLike | str | np.ndarray) -> Image.Image:
    """Composite the foreground of ``image`` (colours re-estimated, so the old background
    does not bleed through soft edges) onto an image or a colour such as '#00ff00'."""
    rgb = _array(io.as_tensor(image))
    new = background if isinstance(background, np.ndarray) else read_background(background)
    foreground, _ = estimate_foreground(rgb, alpha)
    out = composite(foreground, alpha, new)
    return Image.fromarray((out * 255.0 + 0.5).astype(np.uint8), "RGB")
