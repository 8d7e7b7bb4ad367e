"""The quality report of a result: how near it is to its style and to its content, and how
photographic, in figures that mean the same at any size.

One definition for ``brushwork score``, ``--report`` and every benchmark. It does not use
the losses' own normalisation, so a run cannot score well merely by minimising its loss
(both images are taken to one evaluation size; the style to the output's area):
- ``style``: mean over relu1_1..relu5_1 of ||G(out) - G(style)||_F / ||G(style)||_F with
  G = F F^T / (H W); per layer as ``style_relu1_1`` ...; lower is nearer the style;
- ``content``: ||F(out) - F(content)||_F / ||F(content)||_F at relu4_2; lower keeps more of
  the content's layout;
- ``detail``: the same at relu2_2, which sees small structures (windows, roof lines) that
  relu4_2 lets a painting lose;
- ``ssim``: structural similarity of the luminance to the content's (1 = the same);
- ``colour`` and ``colour_mean``: the 2-Wasserstein distance (8-bit levels) between
  Gaussians fitted to the output's colours and the style's, and between their means alone;
  with label images, per region against its partner region, weighted by area;
- ``matting`` (photo outputs): sum_c V_c^T L V_c / (H W) of the output V under the matting
  Laplacian of the content (3x3 windows, eps 1e-7); lower is more photographic, the content
  itself scores about 1e-7;
- ``gatys_style``: the paper's sum over layers of ||dG||^2 / (4 N^2 M^2), so that a
  comparison does not hinge on one weighting.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from brushwork import io
from brushwork.inspect import tile_grid
from brushwork.matting import matting_energy, matting_laplacian
from brushwork.regions import PALETTE, check_pair, match_regions, read_labels
from brushwork.vgg import Features

ImageLike = io.ImageLike
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"
DETAIL_LAYER = "relu2_2"
EVAL_SIZE = 384
MATTING_EPS = 1e-7
# What each figure says and which way is better, for the printed report.
MEANING = {
    "style": "style distance, lower is nearer the style",
    "content": "content distance (relu4_2), lower keeps more layout",
    "detail": "detail distance (relu2_2), lower keeps more small structure",
    "ssim": "structural similarity to the content, 1 = the same",
    "colour": "colour distance to the style (mean and covariance), lower is nearer",
    "colour_mean": "colour-mean distance to the style, lower is nearer",
    "matting": "matting energy, lower is more photographic (the content ~1e-7)",
}
_NET: dict[str, Features] = {}


def _net() -> Features:
    if "net" not in _NET:
        _NET["net"] = Features((*STYLE_LAYERS, CONTENT_LAYER, DETAIL_LAYER))
    return _NET["net"]


def _pil(image: ImageLike) -> Image.Image:
    if isinstance(image, torch.Tensor):
        return io.tensor_to_pil(image)
    return image.convert("RGB") if isinstance(image, Image.Image) else io.open_image(image)


def _rgb(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.float64) / 255.0


def _gram(f: torch.Tensor) -> torch.Tensor:
    flat = f.double().reshape(f.shape[1], -1)
    return flat @ flat.T / flat.shape[1]


def at_eval_size(output: Image.Image, content: Image.Image,
                 eval_size: int) -> tuple[Image.Image, Image.Image]:
    """Content at longest side ``eval_size`` and the output resized to exactly its shape
    (the same filter on both, so neither sees a blur the other does not)."""
    cont = io.resize_to(content, eval_size)
    out = output if output.size == cont.size else output.resize(cont.size,
                                                                Image.Resampling.LANCZOS)
    return out, cont


def _at_area(img: Image.Image, area: int) -> Image.Image:
    k = (area / (img.width * img.height)) ** 0.5
    return img.resize((max(16, round(img.width * k)), max(16, round(img.height * k))),
                      Image.Resampling.LANCZOS)


@torch.no_grad()
def feature_distances(output: Image.Image, content: Image.Image,
                      style: Image.Image) -> dict[str, float]:
    """Style (overall and per layer), content, detail and the paper's style figure of an
    output and content of one size; the style is taken to the output's area."""
    out, cont = io.pil_to_tensor(output), io.pil_to_tensor(content)
    sty = io.pil_to_tensor(_at_area(style, output.width * output.height))
    net = _net()
    fo, fc, fs = net(out), net(cont), net(sty)
    per_layer, gatys = {}, 0.0
    for name in STYLE_LAYERS:
        go, gs = _gram(fo[name]), _gram(fs[name])
        per_layer[f"style_{name}"] = float(torch.linalg.norm(go - gs) / torch.linalg.norm(gs))
        channels, positions = fo[name].shape[1], fo[name][0, 0].numel()
        gatys += float(((go - gs) * positions).pow(2).sum()) / (
            4 * channels**2 * positions**2) / len(STYLE_LAYERS)
    content_d, detail_d = (float(torch.linalg.norm(fo[k].double() - fc[k].double())
                                 / torch.linalg.norm(fc[k].double()))
                           for k in (CONTENT_LAYER, DETAIL_LAYER))
    return {"style": sum(per_layer.values()) / len(per_layer), "content": content_d,
            "detail": detail_d, "gatys_style": gatys, **per_layer}


def ssim(a: Image.Image, b: Image.Image) -> float:
    """Mean structural similarity (Wang et al. 2004: 11-tap Gaussian window, sigma 1.5) of
    the luminance of two images of one size."""
    grey = [torch.from_numpy(np.asarray(i.convert("L"), dtype=np.float64) / 255.0)[None, None]
            for i in (a, b)]
    taps = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-taps**2 / (2 * 1.5**2))
    g = g / g.sum()

    def blur(x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, g.view(1, 1, 1, -1))
        return F.conv2d(x, g.view(1, 1, -1, 1))

    x, y = grey
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(s.mean())


def matting_energy_per_pixel(output: Image.Image, content: Image.Image,
                             eps: float = MATTING_EPS) -> float:
    """sum_c V_c^T L V_c / (H W): the output's energy under the content's matting Laplacian
    (both of one size, RGB in 0..1); lower is more photographic."""
    c = _rgb(content)
    return matting_energy(_rgb(output), matting_laplacian(c, eps)) / (c.shape[0] * c.shape[1])


def _sqrtm_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def gaussian_w2(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """2-Wasserstein distance between Gaussians fitted to colour sets (N, 3) and (M, 3), and
    the distance between their means alone."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a = np.cov(a.T) if len(a) > 1 else np.zeros((3, 3))
    cov_b = np.cov(b.T) if len(b) > 1 else np.zeros((3, 3))
    root_b = _sqrtm_psd(cov_b)
    cross = _sqrtm_psd(root_b @ cov_a @ root_b)
    mean2 = float(((mu_a - mu_b) ** 2).sum())
    w2 = mean2 + float(np.trace(cov_a + cov_b - 2 * cross))
    return max(w2, 0.0) ** 0.5, mean2 ** 0.5


def region_colour_distance(image: Image.Image, style: Image.Image, image_labels: np.ndarray,
                           style_labels: np.ndarray) -> dict[str, float]:
    """Area-weighted mean over the image's regions of the colour distance (8-bit levels) to
    the partner region of the style (the whole style where it has none): ``colour`` (mean
    and covariance) and ``colour_mean``; per region (by palette name) the same two and its
    ``share`` of the image. One region each: the global colour distance."""
    pixels = np.asarray(image, dtype=np.float64).reshape(-1, 3)
    ref = np.asarray(style, dtype=np.float64).reshape(-1, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a figure: unmatched regions are expected
        regions = match_regions(image_labels, style_labels, list(PALETTE))
    flat_i, flat_s = image_labels.reshape(-1), style_labels.reshape(-1)
    w2 = mean = 0.0
    per_region: dict[str, float] = {}
    names = list(PALETTE)
    for k, partner in zip(regions.content_ids, regions.partners, strict=True):
        inside = flat_i == k
        target = ref if partner is None else ref[flat_s == regions.style_ids[partner]]
        d, m = gaussian_w2(pixels[inside], target)
        share = float(inside.mean())
        w2, mean = w2 + share * d, mean + share * m
        if len(regions.content_ids) > 1:
            per_region |= {f"colour_{names[k]}": d, f"colour_mean_{names[k]}": m,
                           f"share_{names[k]}": share}
    return {"colour": w2, "colour_mean": mean, **per_region}


def labels_for(mask: ImageLike | None, image: Image.Image, what: str) -> np.ndarray:
    """Palette labels of ``mask`` at ``image``'s size (one region without a mask)."""
    if mask is None:
        return np.zeros((image.size[1], image.size[0]), dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # resizing a label image to the evaluation size
        return read_labels(_pil(mask), (image.size[1], image.size[0]), what)


@dataclass
class Report:
    """The figures of one result (see the module docstring) and the evaluation size."""

    figures: dict[str, float]
    eval_size: int = EVAL_SIZE
    images: dict[str, Image.Image] = field(default_factory=dict, repr=False, compare=False)

    def __getitem__(self, key: str) -> float:
        return self.figures[key]

    def json(self) -> str:
        return json.dumps({"eval_size": self.eval_size, **self.figures})

    def text(self) -> str:
        """The report as lines a person reads: each figure, its value, what it means."""
        lines = [f"quality at {self.eval_size} px (brushwork score):"]
        for key, meaning in MEANING.items():
            if key in self.figures:
                v = self.figures[key]
                lines.append(f"  {key:12s} {v:10.3g}  {meaning}")
        per_layer = "  ".join(f"{k[6:]} {self.figures[f'style_{k[6:]}']:.3f}"
                              for k in self.figures if k.startswith("style_relu"))
        lines.append(f"  style by layer: {per_layer}")
        return "\n".join(lines)

    def sheet(self, height: int = 256) -> Image.Image:
        """content | style | output, and under them a bar per style layer and figure."""
        row = [(name, img) for name, img in self.images.items()]
        w = max(round(img.width * height / img.height) for _, img in row)
        top = tile_grid([row], (w, height))
        bars = [(k[6:], self.figures[k]) for k in self.figures if k.startswith("style_relu")]
        bars += [(k, self.figures[k]) for k in ("style", "content", "detail")]
        bars.append(("1 - ssim", 1.0 - self.figures["ssim"]))
        line, width = 18, top.width
        canvas = Image.new("RGB", (width, top.height + line * (len(bars) + 1) + 8), "white")
        canvas.paste(top, (0, 0))
        draw = ImageDraw.Draw(canvas)
        font = ImageFont.load_default(size=12)
        longest = max(1.0, max(v for _, v in bars))
        left, room = 90, width - 90 - 70
        y = top.height + 4
        draw.text((4, y), f"distances at {self.eval_size} px (lower is nearer)", fill="black",
                  font=font)
        for name, v in bars:
            y += line
            draw.text((4, y), name, fill="black", font=font)
            draw.rectangle((left, y + 3, left + max(1, round(room * v / longest)), y + line - 3),
                           fill=(70, 110, 170))
            draw.text((left + room + 6, y), f"{v:.3f}", fill="black", font=font)
        return canvas


def score(output: ImageLike, content: ImageLike, style: ImageLike,
          eval_size: int = EVAL_SIZE, photo: bool = False,
          content_mask: ImageLike | None = None,
          style_mask: ImageLike | None = None) -> Report:
    """The quality report of ``output`` against the ``content`` photo and the ``style``.

    ``photo`` (or label images) adds the matting energy; label images make the colour
    distance region to region.

    >>> import brushwork
    >>> report = brushwork.score("out.png", "photo.jpg", "starry_night.jpg")  # doctest: +SKIP
    >>> report["style"], report["content"]  # doctest: +SKIP
    """
    check_pair(content_mask, style_mask)
    out, cont = at_eval_size(_pil(output), _pil(content), io.check_size(eval_size,
                                                                         "eval size"))
    sty = _pil(style)
    figures = feature_distances(out, cont, sty)
    figures["ssim"] = ssim(out, cont)
    figures |= region_colour_distance(out, sty, labels_for(content_mask, cont, "content mask"),
                                      labels_for(style_mask, sty, "style mask"))
    if photo or content_mask is not None:
        figures["matting"] = matting_energy_per_pixel(out, cont)
    return Report(figures, eval_size, {"content": cont, "style": sty, "output": out})
