"""Stylising with a trained network: one forward pass per image, folder or video frame.

Any size fits: an image whose activations would not fit in memory is cut into overlapping
tiles, each run on the device while the whole image stays in host memory. Two things keep
the tiles from showing:

* instance normalisation would see different statistics in each tile (a dark tile would be
  brightened), so every normalisation layer is first measured once on the whole image,
  downscaled to fit, and the tiles are normalised with those shared statistics;
* tiles overlap by four times the network's receptive radius and are blended with
  raised-cosine ramps across the overlap, so the pixels near a tile's edge (which saw
  reflected padding, not the neighbour) get little weight and fade into the next tile's
  interior instead of meeting it at a seam. (Twice the radius left errors of 0.05 at
  the edges of a test network; four times, about 0.01.)
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from brushwork import colour, io
from brushwork.errors import BrushworkError, brief
from brushwork.fast.model import FastModel, load_model
from brushwork.fast.network import STRIDE, TransformerNet
from brushwork.optimise import resize
from brushwork.options import require
from brushwork.runtime import autocast, available_memory, pick_device, resolve_precision
from brushwork.tiling import blend_window
from brushwork.video import is_video

#: Share of free memory one forward pass may take (the rest is for the image, the output
#: accumulator and whatever else runs).
MEMORY_SHARE = 0.4
#: Rows and columns of reflected picture added below and right of an image for the network
#: and cut off after. The stride-2 convolutions see padding on the left and top edges only,
#: so trained networks paint a band of junk along the right and bottom edges (mean jump
#: between neighbouring columns 2-3x the interior's in the last 16 px); this margin takes
#: the band, for 6 % more pixels at 512x512. Measured on the_scream over 4 photos: 2.7x ->
#: 1.45x (16 px on all four sides: 1.38x).
EDGE_PAD = 16


def with_margin(run: Callable[[torch.Tensor], torch.Tensor],
                images: torch.Tensor) -> torch.Tensor:
    """``run`` (the network) on ``images`` with the EDGE_PAD margin reflected onto the right
    and bottom (less on images too small to reflect that far), cut back to the input size."""
    h, w = images.shape[-2:]
    padded = F.pad(images, (0, min(EDGE_PAD, w - 1), 0, min(EDGE_PAD, h - 1)), mode="reflect")
    return run(padded)[..., :h, :w]


class Served(nn.Module):
    """The network as ``brushwork fast`` runs it (margin added, then cut off): what ONNX
    export writes, so that other runtimes give the same pictures."""

    def __init__(self, net: TransformerNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return with_margin(self.net, images)


@dataclass
class FastOptions:
    """Settings of a fast stylisation; the defaults give the network's plain output."""

    strength: float = 1.0
    preserve_colour: str = "none"
    device: str = "auto"
    precision: str = "auto"
    batch_size: int = 4
    size: int | None = None
    max_tile: int | None = None

    def check(self) -> FastOptions:
        if not 0.0 <= self.strength <= 1.0:
            raise BrushworkError(f"--strength {self.strength}: give a value from 0 (the photo) "
                                 "to 1 (fully stylised)")
        if self.preserve_colour not in colour.COLOUR_MODES:
            raise BrushworkError(f"--preserve-colour {self.preserve_colour!r}: use one of "
                                 f"{', '.join(colour.COLOUR_MODES)}")
        require("batch_size", self.batch_size, 1)
        if self.size is not None:
            io.check_size(self.size)
        if self.max_tile is not None and self.max_tile < 64:
            raise BrushworkError(f"--max-tile {self.max_tile}: use at least 64 pixels")
        return self


def receptive_radius(net: TransformerNet) -> int:
    """How far (in pixels) an output pixel sees: 9x9 in and out, two 3x3 at 1/2 and 1/4
    resolution each way, and two 3x3 at 1/4 resolution per residual block."""
    return 4 + 1 + 2 + 8 * net.residual_blocks + 2 + 1 + 4


def bytes_per_pixel(net: TransformerNet, dtype: torch.dtype) -> int:
    """Peak activation memory of one forward pass per input pixel, with a margin of two.

    The peak is at the last upsampling: the 2c-channel upsampled map, its reflection-padded
    copy and the c-channel convolution and normalisation outputs live together at full
    resolution (about 6c values per pixel), plus the input and output. Measured on CPU in
    float32: 295 bytes per pixel at width 12 and 737 at width 32, 44-45% of this figure.
    """
    element = torch.finfo(dtype).bits // 8
    return 2 * element * (6 * net.channels + 12)


def _norms(net: nn.Module) -> list[nn.GroupNorm]:
    return [m for m in net.modules() if isinstance(m, nn.GroupNorm)]


@torch.no_grad()
def norm_statistics(net: TransformerNet, image: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
    """Per normalisation layer, the (mean, variance) of its input on ``image``, per channel."""
    stats: list[tuple[torch.Tensor, ...]] = []

    def record(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0].float()
        stats.append((x.mean(dim=(2, 3), keepdim=True), x.var(dim=(2, 3), keepdim=True,
                                                                unbiased=False)))

    hooks = [m.register_forward_pre_hook(record) for m in _norms(net)]
    try:
        net(image)
    finally:
        for h in hooks:
            h.remove()
    return stats


@contextmanager
def shared_statistics(net: TransformerNet,
                      stats: list[tuple[torch.Tensor, ...]]) -> Iterator[None]:
    """Make every normalisation layer use the given statistics instead of its input's."""
    norms = _norms(net)

    def fixed(module: nn.GroupNorm, mean: torch.Tensor, var: torch.Tensor):
        def forward(x: torch.Tensor) -> torch.Tensor:
            scale = module.weight.view(1, -1, 1, 1) * torch.rsqrt(var + module.eps)
            shift = module.bias.view(1, -1, 1, 1) - mean * scale
            return x * scale.to(x.dtype) + shift.to(x.dtype)
        return forward

    for module, (mean, var) in zip(norms, stats, strict=True):
        module.forward = fixed(module, mean, var)  # the instance attribute shadows the class's
    try:
        yield
    finally:
        for module in norms:
            del module.forward


def raised_cosine(centres: torch.Tensor, k: int) -> torch.Tensor:
    """The blend ramp of fast tiles over ``k`` pixel centres: flat at both ends, so a tile's
    edge pixels (which saw reflected padding, not the neighbour) get almost no weight."""
    return 0.5 - 0.5 * torch.cos(math.pi * centres / k)


def tile_starts(total: int, tile: int, overlap: int) -> list[int]:
    """Evenly spread tile starts, multiples of STRIDE, that cover 0..total with about
    ``overlap`` in common (``total`` and ``tile`` are multiples of STRIDE)."""
    if tile >= total:
        return [0]
    n = math.ceil((total - overlap) / (tile - overlap))
    return [STRIDE * round(i * (total - tile) / (n - 1) / STRIDE) for i in range(n)]


class Stylist:
    """A loaded model on a device, ready to stylise batches of images (tensors in 0..1)."""

    def __init__(self, model: FastModel | str | os.PathLike,
                 options: FastOptions | None = None) -> None:
        self.options = (options or FastOptions()).check()
        self.model = model if isinstance(model, FastModel) else load_model(model)
        self.device = pick_device(self.options.device)
        self.dtype = resolve_precision(self.options.precision, self.device)
        self.net = self.model.net.to(self.device, memory_format=torch.channels_last).eval()
        self.radius = receptive_radius(self.net)
        if self.options.max_tile is not None and self.options.max_tile < self.min_tile:
            raise BrushworkError(f"--max-tile {self.options.max_tile}: this network's tiles "
                                 f"overlap by {self.overlap} px, so use at least "
                                 f"{self.min_tile}")

    @property
    def name(self) -> str:
        """What outputs are named after by default: the model's name."""
        return self.model.name

    @property
    def overlap(self) -> int:
        """Pixels neighbouring tiles share: the blend ramp spans the receptive field twice."""
        return 4 * self.radius

    @property
    def min_tile(self) -> int:
        """The smallest tile that leaves room between two overlaps."""
        return 2 * self.overlap + STRIDE

    def max_pixels(self) -> int:
        """Pixels one forward pass may take: from --max-tile, else from free memory."""
        if self.options.max_tile:
            return self.options.max_tile ** 2
        budget = MEMORY_SHARE * available_memory(self.device)
        return max(256 * 256, int(budget // bytes_per_pixel(self.net, self.dtype)))

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, memory_format=torch.channels_last)
        with autocast(self.device, self.dtype):
            return self.net(x).float()

    @torch.no_grad()
    def network(self, images: torch.Tensor, stats_pixels: int | None = None) -> torch.Tensor:
        """The raw network output on the CPU, tiled when the batch does not fit in one pass.

        ``stats_pixels`` caps the size of the downscaled whole image that the normalisation
        statistics of a tiled run come from (the memory limit unless given).
        """
        n, _, h, w = images.shape
        limit = self.max_pixels()
        if n * h * w <= limit:
            return self._forward(images).cpu()
        if n > 1:
            return torch.cat([self.network(images[i:i + 1], stats_pixels) for i in range(n)])
        return self._tiled(images, limit, stats_pixels or limit)

    def _tiled(self, image: torch.Tensor, limit: int, stats_pixels: int) -> torch.Tensor:
        h, w = image.shape[-2:]
        k = min(1.0, math.sqrt(stats_pixels / (h * w)))
        whole = resize(image, max(16, round(h * k)), max(16, round(w * k)))
        stats = norm_statistics(self.net, whole.to(self.device,
                                                   memory_format=torch.channels_last))
        # Pad once as the network would, then cut tiles on its stride grid: a tile shifted
        # by a pixel against that grid would sample the stride-2 layers in another phase.
        ph, pw = -h % STRIDE, -w % STRIDE
        top, left = ph // 2, pw // 2
        padded = F.pad(image, (left, pw - left, top, ph - top), mode="reflect") \
            if ph or pw else image
        ht, wt = padded.shape[-2:]
        overlap = self.overlap
        side = max(self.min_tile, math.isqrt(limit) // STRIDE * STRIDE)
        out = torch.zeros(1, 3, ht, wt)
        weight = torch.zeros(1, 1, ht, wt)
        with shared_statistics(self.net, stats):
            for y in tile_starts(ht, side, overlap):
                for x in tile_starts(wt, side, overlap):
                    y1, x1 = min(ht, y + side), min(wt, x + side)
                    tile = self._forward(padded[..., y:y1, x:x1]).cpu()
                    win = blend_window((y, y1, x, x1), ht, wt, overlap, raised_cosine)
                    out[..., y:y1, x:x1] += tile * win
                    weight[..., y:y1, x:x1] += win
        return (out / weight)[..., top:top + h, left:left + w]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Stylise a batch (N, 3, H, W) in 0..1: network, colour step, strength; on the CPU."""
        images = images.float().cpu()
        return finish(with_margin(self.network, images), images, self.options)


class Model:
    """A fast model loaded once, for repeated use from Python: ``model(image)`` is the
    stylised image as a Pillow image (paths, Pillow images and tensors are taken)."""

    def __init__(self, model: FastModel | str | os.PathLike, **options: object) -> None:
        self.stylist = Stylist(model, FastOptions(**options))  # type: ignore[arg-type]

    @property
    def name(self) -> str:
        return self.stylist.model.name

    def __call__(self, image: io.ImageLike, size: int | None = None) -> Image.Image:
        x = io.as_tensor(image, size if size is not None else self.stylist.options.size)
        return io.tensor_to_pil(self.stylist(x))


def finish(output: torch.Tensor, content: torch.Tensor, options: FastOptions) -> torch.Tensor:
    """Colour preservation as in the artistic mode, then blend with the photo by strength.

    ``luminance`` keeps the output's luminance with the photo's chrominance; ``histogram``
    recolours the output to the photo's colour mean and covariance.
    """
    if options.preserve_colour == "luminance":
        output = colour.restore_chrominance(output, content)
    elif options.preserve_colour == "histogram":
        output = torch.cat([colour.match_histogram(o[None], c[None])
                            for o, c in zip(output, content, strict=True)])
    return torch.lerp(content, output, options.strength).clamp(0, 1)


def stylise_image(stylist: Stylist, source: str | os.PathLike, output: str | os.PathLike) -> Path:
    """One image file to one image file."""
    io.output_format(output)
    image = io.load_image(source, stylist.options.size)
    return io.save_image(stylist(image), output)


def _batches(files: list[Path], size: int | None,
             batch: int) -> Iterator[tuple[list[Path], torch.Tensor]]:
    """Consecutive images of equal size grouped into batches of at most ``batch``."""
    group: list[tuple[Path, torch.Tensor]] = []
    for path in files:
        try:
            image = io.load_image(path, size)
        except BrushworkError as exc:
            warnings.warn(f"skipped: {exc}", stacklevel=2)
            continue
        if group and (len(group) == batch or group[0][1].shape != image.shape):
            yield [p for p, _ in group], torch.cat([t for _, t in group])
            group = []
        group.append((path, image))
    if group:
        yield [p for p, _ in group], torch.cat([t for _, t in group])


def stylise_folder(stylist: Stylist, folder: str | os.PathLike,
                   output: str | os.PathLike, progress: bool = True) -> list[Path]:
    """Every image in ``folder`` (not recursive) into ``output``, same names, batched."""
    from tqdm import tqdm

    entries = sorted(Path(folder).iterdir())
    files = [p for p in entries if p.suffix.lower() in io.IMAGE_SUFFIXES]
    videos = [p.name for p in entries if is_video(p)]
    if videos:
        warnings.warn(f"{folder}: {len(videos)} videos left out ({brief(videos)}); a folder "
                      "run does images, give each video as the input", stacklevel=2)
    if not files:
        raise BrushworkError(f"{folder}: no image files ({', '.join(io.IMAGE_SUFFIXES)})")
    out_dir = Path(output)
    written = []
    with tqdm(total=len(files), unit="image", disable=not progress or None) as bar:
        for paths, batch in _batches(files, stylist.options.size, stylist.options.batch_size):
            for path, image in zip(paths, stylist(batch), strict=True):
                suffix = path.suffix if path.suffix.lower() in io.SAVE_FORMATS else ".png"
                written.append(io.save_image(image, out_dir / f"{path.stem}{suffix}"))
            bar.update(len(paths))
    if not written:
        raise BrushworkError(f"{folder}: none of its {len(files)} image files could be read "
                             "(see the warnings above); nothing written")
    return written
