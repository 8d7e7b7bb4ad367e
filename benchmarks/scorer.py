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

    python benchmarks/scorer.py OUT.png CONTENT STYLE [--eval-size 256]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from PIL import Image

from brushwork import io
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("output")
    p.add_argument("content")
    p.add_argument("style")
    p.add_argument("--eval-size", type=int, default=256)
    a = p.parse_args(argv)
    for k, v in score(a.output, a.content, a.style, a.eval_size).items():
        print(f"{k:16s} {v:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
