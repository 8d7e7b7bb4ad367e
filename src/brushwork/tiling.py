"""Outputs larger than memory: optimise overlapping tiles that share global style statistics.

VGG's activations for a backward pass cost about 3.5 kB per output pixel, so a
4096 x 3072 image would need about 45 GB in one piece. Here the image is cut into
overlapping tiles and each tile is optimised in turn with the image around it fixed. The
style term of a tile is the Gram matrix of the *whole* image, measured at the start of
each sweep over the tiles and moved by the tile's own (live) change as if every tile made
it, so tiles cannot drift apart in style; results are written back through a feathered
window, so there are no seams.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from brushwork.losses import gram
from brushwork.optimise import OnStep, Problem, optimise_scale
from brushwork.runtime import autocast
from brushwork.vgg import LAYERS, Features, layer_shape_factor

# Saved activations, their gradients and convolution workspace, as a multiple of the
# activations alone. With it the estimate for VGG-19 up to relu5_1 is 3.6 kB per pixel;
# peak RSS of one float32 pass on CPU measured 3.3 kB (512 px) to 3.9 kB (256 px).
BACKWARD_OVERHEAD = 3.0
#: The smallest tile a user may ask for: relu5_1 sees a 64 px tile as 4 x 4 positions, the
#: fewest from which a tile's share of the Gram matrices means anything.
MIN_TILE = 64


@dataclass(frozen=True)
class Tile:
    """A tile's box in the image, and the part of it that it owns (no overlap)."""

    y0: int
    y1: int
    x0: int
    x1: int
    own: tuple[int, int, int, int]  # y0, y1, x0, x1 in image coordinates

    def crop(self, image: torch.Tensor) -> torch.Tensor:
        return image[..., self.y0:self.y1, self.x0:self.x1]

    def own_mask(self, device: torch.device | None = None) -> torch.Tensor:
        """1 on the owned pixels, 0 on the overlap borrowed from neighbours; (1, 1, h, w)."""
        mask = torch.zeros(1, 1, self.y1 - self.y0, self.x1 - self.x0, device=device)
        oy0, oy1, ox0, ox1 = self.own
        mask[..., oy0 - self.y0:oy1 - self.y0, ox0 - self.x0:ox1 - self.x0] = 1
        return mask

    def window(self, height: int, width: int, overlap: int,
               device: torch.device | None = None) -> torch.Tensor:
        """Blend weights: 1 inside, ramping linearly to 0 across the overlap on interior
        edges only."""
        return blend_window((self.y0, self.y1, self.x0, self.x1), height, width, overlap,
                            device=device)


def linear(centres: torch.Tensor, k: int) -> torch.Tensor:
    """The blend ramp of optimised tiles: straight from 0 to 1 over the ``k`` pixel centres."""
    return centres / k


def blend_window(box: tuple[int, int, int, int], height: int, width: int, overlap: int,
                 profile: Callable[[torch.Tensor, int], torch.Tensor] = linear,
                 device: torch.device | None = None) -> torch.Tensor:
    """(1, 1, h, w) weights for writing the tile ``box`` (y0, y1, x0, x1) of a ``height`` x
    ``width`` image back among its neighbours: 1 inside, rising from near 0 across
    ``overlap`` px on each side that meets another tile (``profile`` gives the rise at
    the pixel centres 0.5 .. k - 0.5 of a k px ramp), so that no seam shows. Optimised
    tiles and fast transfer's tiles share it."""
    y0, y1, x0, x1 = box

    def ramp(n: int, lo_inner: bool, hi_inner: bool) -> torch.Tensor:
        r = torch.ones(n, device=device)
        k = min(overlap, n // 2)
        if k > 0:
            edge = profile(torch.arange(k, device=device, dtype=torch.float32) + 0.5, k)
            if lo_inner:
                r[:k] = edge
            if hi_inner:
                r[n - k:] = torch.minimum(r[n - k:], edge.flip(0))
        return r

    wy = ramp(y1 - y0, y0 > 0, y1 < height)
    wx = ramp(x1 - x0, x0 > 0, x1 < width)
    return (wy[:, None] * wx[None, :]).view(1, 1, y1 - y0, x1 - x0)


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    step = (length - tile) / (count - 1)
    return [round(i * step) for i in range(count)]


def grid(height: int, width: int, tile: int, overlap: int) -> list[Tile]:
    """Tiles of at most ``tile`` px covering the image, neighbours overlapping ``overlap`` px."""
    tiles = []
    ys, xs = _starts(height, tile, overlap), _starts(width, tile, overlap)
    for iy, y0 in enumerate(ys):
        for ix, x0 in enumerate(xs):
            y1, x1 = min(height, y0 + tile), min(width, x0 + tile)
            # Owned region: split each overlap at its middle.
            oy0 = 0 if iy == 0 else (y0 + min(height, ys[iy - 1] + tile)) // 2
            oy1 = height if iy == len(ys) - 1 else (ys[iy + 1] + y1) // 2
            ox0 = 0 if ix == 0 else (x0 + min(width, xs[ix - 1] + tile)) // 2
            ox1 = width if ix == len(xs) - 1 else (xs[ix + 1] + x1) // 2
            tiles.append(Tile(y0, y1, x0, x1, (oy0, oy1, ox0, ox1)))
    return tiles


def bytes_per_pixel(layers: list[str], dtype: torch.dtype = torch.float32) -> float:
    """Estimated memory of one forward+backward pass per image pixel, for the deepest layer."""
    deepest = max(LAYERS.index(n) for n in layers)
    floats = 3.0
    for name in LAYERS[: deepest + 1]:
        if name.startswith(("conv", "pool")):
            channels, down = layer_shape_factor(name)
            floats += channels / (down * down if name.startswith("conv") else 4 * down * down)
    size = torch.finfo(dtype).bits / 8
    return floats * size * BACKWARD_OVERHEAD


def choose_tile(height: int, width: int, per_pixel: float, budget: int,
                fraction: float = 0.5) -> int | None:
    """The largest square tile whose pass fits ``fraction`` of ``budget``; None if all fits.

    Tiles are at least 256 px: smaller ones see too little context for the deep layers.
    """
    usable = budget * fraction
    if height * width * per_pixel <= usable:
        return None
    side = int(math.sqrt(usable / per_pixel))
    return max(256, side - side % 32)


class TiledStyle:
    """Global Gram statistics of an image, accumulated tile by tile over owned regions."""

    def __init__(self, net: Features, layers: list[str], tiles: list[Tile],
                 dtype: torch.dtype) -> None:
        self.net, self.layers, self.tiles, self.dtype = net, layers, tiles, dtype
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, float] = {}

    @torch.no_grad()
    def measure(self, image: torch.Tensor) -> TiledStyle:
        """(Re)compute the image-wide sums from every tile's owned Gram."""
        self.sums, self.counts = {}, {}
        for tile in self.tiles:
            for name, (g, n) in self.tile_grams(image, tile).items():
                self.sums[name] = self.sums.get(name, 0) + g * n
                self.counts[name] = self.counts.get(name, 0.0) + n
        return self

    def tile_grams(self, image: torch.Tensor,
                   tile: Tile) -> dict[str, tuple[torch.Tensor, float]]:
        """Owned-region Gram and owned position count of one tile, per layer."""
        with autocast(image.device, self.dtype):
            feats = self.net(tile.crop(image))
        mask = tile.own_mask(image.device)
        out = {}
        for name in self.layers:
            m = F.adaptive_avg_pool2d(mask, feats[name].shape[-2:])
            out[name] = (gram(feats[name], m), float(m.sum()))
        return out

    def grams(self) -> dict[str, torch.Tensor]:
        """The image-wide Gram matrices."""
        return {n: self.sums[n] / self.counts[n] for n in self.layers}

    @torch.no_grad()
    def context(self, image: torch.Tensor, index: int) -> dict[str, torch.Tensor]:
        """What tile ``index``'s style term adds to the Gram of its crop: the image-wide Gram
        measured at the sweep's start less the crop's Gram now.

        The tile's changes then move the image-wide Gram as if every tile made them, as all
        do in the sweep, and its style term weighs against content and tv as in an untiled
        run. Against the other tiles' frozen Grams instead, the first tiles of a sweep made
        the whole image's correction and came out 1.7-2x as textured as the last, whose
        borders with them stood out.
        """
        with autocast(image.device, self.dtype):
            feats = self.net(self.tiles[index].crop(image))
        whole = self.grams()
        return {n: whole[n] - gram(feats[n]) for n in self.layers}


def sweeps(iterations: int, steps_per_visit: int) -> Iterator[int]:
    """Steps per visit for each sweep over the tiles, adding up to ``iterations``."""
    done = 0
    while done < iterations:
        k = min(steps_per_visit, iterations - done)
        done += k
        yield k


@dataclass
class TiledProblem(Problem):
    """One pyramid scale optimised tile by tile: what ``optimise.run`` does for big scales."""

    tiles: list[Tile]
    overlap: int
    stats: TiledStyle
    tile_loss: Callable[[Tile, dict[str, torch.Tensor]], Callable]
    steps_per_visit: int = 10

    def describe(self) -> str:
        """How the scale is split, for the log: users should see why a step takes long."""
        side = max(max(t.y1 - t.y0, t.x1 - t.x0) for t in self.tiles)
        return f"{len(self.tiles)} tiles of up to {side} px, {self.overlap} px overlap"

    def optimise(self, image: torch.Tensor, iterations: int, optimizer: str, lr: float | None,
                 on_step: OnStep, start: int = 0) -> torch.Tensor:
        """Sweeps over the tiles, a few L-BFGS steps per visit, until ``iterations`` are done."""
        image = image.detach().clone()
        height, width = image.shape[-2:]
        done = start
        for k in sweeps(iterations - start, self.steps_per_visit):
            self.stats.measure(image)
            totals: dict[str, float] = {}
            for index, tile in enumerate(self.tiles):
                losses: dict[str, float] = {}
                crop = tile.crop(image)
                loss = self.tile_loss(tile, self.stats.context(image, index))
                new = optimise_scale(crop, loss, k, optimizer, lr,
                                     lambda _i, t, _x, out=losses: out.update(t))
                win = tile.window(height, width, self.overlap, image.device)
                image[..., tile.y0:tile.y1, tile.x0:tile.x1] = crop * (1 - win) + new * win
                for key, value in losses.items():
                    totals[key] = totals.get(key, 0.0) + value / len(self.tiles)
            done += k
            on_step(done, totals, image)
        return image
