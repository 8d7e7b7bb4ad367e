"""An independent scorer for style-transfer outputs, used by every benchmark here.

It does not use brushwork's loss normalisation. Both images are scored at the same
evaluation size (longest side ``--eval-size``, style resized to the output's area):
- style distance: mean over relu1_1..relu5_1 of ||G(out) - G(style)||_F / ||G(style)||_F,
  with G = F F^T / (H W);
- content distance: ||F(out) - F(content)||_F / ||F(content)||_F at relu4_2;
- detail distance: the same at relu2_2, which sees small structures (windows, roof lines)
  that relu4_2 lets a painting lose: a network that paints sky over a town can match a
  careful optimisation at relu4_2 and still lose at relu2_2;
- ``gatys`` style figure: the paper's sum over layers of ||dG||^2 / (4 N^2 M^2) with
  unnormalised Gram matrices, reported so that a win does not hinge on one weighting.

For photorealistic transfer (``photo_score``, used by compare_luan.py) two more figures:
- matting energy: sum_c V_c^T L V_c / (H W) of the output V (RGB in 0..1) under the matting
  Laplacian L of the *content* at the evaluation size (3x3 windows, eps 1e-7; Levin et al.,
  Luan et al.), i.e. per pixel, so that it means the same at any size; lower is more
  photographic (the content itself scores about 1e-7, Luan et al.'s outputs 4e-5..2e-3 at
  384 px). The output is resized to exactly the content's evaluation shape first, with the
  same filter (Lanczos), so both sides see the same blur.
- region colour distance: for each labelled content region, the 2-Wasserstein distance
  between Gaussians fitted to the RGB colours (8-bit levels) of the output in that region
  and of the reference in its partner region (the whole reference where it has none),
  sqrt(|mu_o - mu_s|^2 + tr(S_o + S_s - 2 (S_s^1/2 S_o S_s^1/2)^1/2)); averaged over regions
  weighted by their share of the content. Scored on the input itself it is the baseline:
  how far each region's colours start from its partner's. ``colour_mean`` is the same
  average of |mu_o - mu_s| alone (the cast, without the spread).
Label images are read and snapped to the palette by brushwork.photo.read_labels, and the
Laplacian is brushwork.matting.matting_laplacian, but nothing of brushwork's loss
normalisation is used.

    python benchmarks/scorer.py OUT.png CONTENT STYLE [--eval-size 256]
    python benchmarks/scorer.py OUT.png CONTENT STYLE --masks IN_SEG TAR_SEG --eval-size 384
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from brushwork import io
from brushwork.matting import matting_energy, matting_laplacian
from brushwork.photo import PALETTE, match_regions, read_labels
from brushwork.vgg import Features

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"
DETAIL_LAYER = "relu2_2"
_NET: dict[str, Features] = {}


def _net() -> Features:
    if "net" not in _NET:
        _NET["net"] = Features((*STYLE_LAYERS, CONTENT_LAYER, DETAIL_LAYER))
    return _NET["net"]


def _load(image: str | Path | Image.Image, size: int | None = None,
          area: int | None = None) -> torch.Tensor:
    img = io.open_image(image) if not isinstance(image, Image.Image) else image.convert("RGB")
    if area is not None:
        w, h = img.size
        k = (area / (w * h)) ** 0.5
        img = img.resize((max(16, round(w * k)), max(16, round(h * k))), Image.Resampling.LANCZOS)
    return io.pil_to_tensor(io.resize_to(img, size))


def _gram(f: torch.Tensor) -> torch.Tensor:
    c = f.shape[1]
    flat = f.double().reshape(c, -1)
    return flat @ flat.T


@torch.no_grad()
def score(output: str | Path | Image.Image, content: str | Path | Image.Image,
          style: str | Path | Image.Image, eval_size: int = 256) -> dict[str, float]:
    """Style and content distances of ``output`` (lower is closer)."""
    out = _load(output, eval_size)
    h, w = out.shape[-2:]
    cont = torch.nn.functional.interpolate(_load(content, eval_size), size=(h, w),
                                           mode="bilinear", antialias=True)
    sty = _load(style, area=h * w)
    net = _net()
    fo, fc, fs = net(out), net(cont), net(sty)
    per_layer, gatys = {}, 0.0
    for name in STYLE_LAYERS:
        go, gs = _gram(fo[name]), _gram(fs[name])
        n_o, n_s = fo[name][0, 0].numel(), fs[name][0, 0].numel()
        rel = torch.linalg.norm(go / n_o - gs / n_s) / torch.linalg.norm(gs / n_s)
        per_layer[name] = float(rel)
        c = fo[name].shape[1]
        gatys += float(((go / n_o - gs / n_s) * n_o).pow(2).sum()) / (4 * c**2 * n_o**2) / 5
    content_d, detail_d = (float(torch.linalg.norm(fo[k].double() - fc[k].double())
                                 / torch.linalg.norm(fc[k].double()))
                           for k in (CONTENT_LAYER, DETAIL_LAYER))
    return {"style": sum(per_layer.values()) / len(per_layer), "content": content_d,
            "detail": detail_d,
            "gatys_style": gatys, **{f"style_{k}": v for k, v in per_layer.items()}}


# ---------------------------------------------------------------- photorealism figures

MATTING_EPS = 1e-7


def _image(image: str | Path | Image.Image) -> Image.Image:
    return io.open_image(image) if not isinstance(image, Image.Image) else image.convert("RGB")


def _rgb(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.float64) / 255.0


def at_eval_size(output: str | Path | Image.Image, content: str | Path | Image.Image,
                 eval_size: int) -> tuple[Image.Image, Image.Image]:
    """Content at longest side ``eval_size`` and the output resized to exactly its shape."""
    cont = io.resize_to(_image(content), eval_size)
    out = _image(output)
    if out.size != cont.size:
        out = out.resize(cont.size, Image.Resampling.LANCZOS)
    return out, cont


def matting_energy_per_pixel(output: Image.Image, content: Image.Image,
                             eps: float = MATTING_EPS) -> float:
    """sum_c V_c^T L V_c / (H W): the output's energy under the content's matting Laplacian
    (both the same size, RGB in 0..1); lower is more photographic."""
    c = _rgb(content)
    laplacian = matting_laplacian(c, eps)
    return matting_energy(_rgb(output), laplacian) / (c.shape[0] * c.shape[1])


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
    the partner region of the style (see the module docstring): ``colour`` (W2, mean and
    covariance) and ``colour_mean`` (means only); per region (by palette name) the same two
    and its ``share`` of the image."""
    pixels = np.asarray(image, dtype=np.float64).reshape(-1, 3)
    ref = np.asarray(style, dtype=np.float64).reshape(-1, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a figure: unmatched regions are expected
        regions = match_regions(image_labels, style_labels, list(PALETTE))
    flat_i, flat_s = image_labels.reshape(-1), style_labels.reshape(-1)
    w2 = mean = 0.0
    per_region = {}
    names = list(PALETTE)
    for k, partner in zip(regions.content_ids, regions.partners, strict=True):
        inside = flat_i == k
        target = ref if partner is None else ref[flat_s == regions.style_ids[partner]]
        d, m = gaussian_w2(pixels[inside], target)
        share = float(inside.mean())
        w2, mean = w2 + share * d, mean + share * m
        per_region |= {f"colour_{names[k]}": d, f"colour_mean_{names[k]}": m,
                       f"share_{names[k]}": share}
    return {"colour": w2, "colour_mean": mean, **per_region}


def labels_for(mask: str | Path | None, image: Image.Image, what: str) -> np.ndarray:
    """Palette labels of ``mask`` at ``image``'s size (one region without a mask)."""
    if mask is None:
        return np.zeros((image.size[1], image.size[0]), dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # resizing a label image to the evaluation size
        return read_labels(mask, (image.size[1], image.size[0]), what)


def photo_score(output: str | Path | Image.Image, content: str | Path | Image.Image,
                style: str | Path | Image.Image, content_mask: str | Path | None = None,
                style_mask: str | Path | None = None, eval_size: int = 384
                ) -> dict[str, float]:
    """``score``'s figures plus the matting energy per pixel and the region colour distance
    (module docstring), all at ``eval_size``; the colours of the style are taken at its own
    size, with its labels."""
    out, cont = at_eval_size(output, content, eval_size)
    sty = _image(style)
    figures = score(out, cont, sty, eval_size)
    figures["matting"] = matting_energy_per_pixel(out, cont)
    figures.update(region_colour_distance(out, sty, labels_for(content_mask, cont, "content mask"),
                                          labels_for(style_mask, sty, "style mask")))
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("output")
    p.add_argument("content")
    p.add_argument("style")
    p.add_argument("--eval-size", type=int, default=256)
    p.add_argument("--masks", nargs=2, metavar=("CONTENT_MASK", "STYLE_MASK"),
                   help="label images: adds the photorealism figures (matting, colour)")
    p.add_argument("--photo", action="store_true",
                   help="the photorealism figures without masks (one region)")
    a = p.parse_args(argv)
    if a.masks or a.photo:
        figures = photo_score(a.output, a.content, a.style, *(a.masks or (None, None)),
                              eval_size=a.eval_size)
    else:
        figures = score(a.output, a.content, a.style, a.eval_size)
    for k, v in figures.items():
        print(f"{k:16s} {v:.6g}" if k == "matting" else f"{k:16s} {v:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
