"""A starting image for ``brushwork photo --init``: the content with each region's colours
moved affinely to its partner region's colour mean and covariance.

An experiment for compare_luan.py: the default run starts from the content itself, so a
region's colours must travel all the way to its partner's under the Gram loss in a few
dozen L-BFGS steps; this start puts every region at its partner's colour mean and covariance
before the first step (per region x -> A_k (x - mu_c,k) + mu_s,k with A_k = S_s^1/2 S_c^-1/2,
brushwork.colour's choice), blended across region borders by the soft masks of
brushwork.photo.region_masks, which is locally affine away from the borders. It prints the
region colour distance (scorer.py) of the content and of the start.

    python benchmarks/region_init.py IN.png TAR.png IN_SEG.png TAR_SEG.png -o init.png
    python benchmarks/region_init.py --pairs 1,9 --out-dir /tmp/luan/init   # the paper's pairs
then, e.g.:
    python benchmarks/compare_luan.py --pairs 1,9 -- --init /tmp/luan/init/init{pair}.png

Images made from the paper's pairs must not go into the repository: write them outside it.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from compare_luan import PHOTOS, pair_paths  # noqa: E402
from scorer import labels_for, region_colour_distance  # noqa: E402

from brushwork import io  # noqa: E402
from brushwork.photo import PALETTE, match_regions, region_masks  # noqa: E402


def _stats(pixels: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w = weights / max(weights.sum(), 1e-8)
    mean = (pixels * w[:, None]).sum(0)
    centred = pixels - mean
    cov = (centred * w[:, None]).T @ centred + 1e-5 * np.eye(3)
    return mean, cov


def _sqrtm(m: np.ndarray, inverse: bool = False) -> np.ndarray:
    values, vectors = np.linalg.eigh(m)
    values = np.clip(values, 1e-8, None) ** (-0.5 if inverse else 0.5)
    return (vectors * values) @ vectors.T


def region_colour_init(content: Image.Image, style: Image.Image, content_labels: np.ndarray,
                       style_labels: np.ndarray) -> Image.Image:
    """``content`` with each region's colour mean and covariance set to its partner's."""
    c = np.asarray(content, dtype=np.float64).reshape(-1, 3) / 255.0
    s = np.asarray(style, dtype=np.float64).reshape(-1, 3) / 255.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        regions = match_regions(content_labels, style_labels, list(PALETTE))
    h, w = content_labels.shape
    soft = region_masks(content_labels, regions.content_ids, h, w)[0].numpy().reshape(
        len(regions.content_ids), -1)
    flat_s = style_labels.reshape(-1)
    out = np.zeros_like(c)
    for k, (label, partner) in enumerate(zip(regions.content_ids, regions.partners,
                                             strict=True)):
        hard = (content_labels.reshape(-1) == label).astype(np.float64)
        mean_c, cov_c = _stats(c, hard)
        target = np.ones(len(s)) if partner is None else \
            (flat_s == regions.style_ids[partner]).astype(np.float64)
        mean_s, cov_s = _stats(s, target)
        transform = _sqrtm(cov_s) @ _sqrtm(cov_c, inverse=True)
        out += soft[k][:, None] * ((c - mean_c) @ transform.T + mean_s)
    out = np.clip(out / soft.sum(0).clip(1e-8)[:, None], 0, 1).reshape(h, w, 3)
    return Image.fromarray((out * 255 + 0.5).astype(np.uint8), "RGB")


def make(content: Path, style: Path, content_mask: Path, style_mask: Path, output: Path) -> None:
    cont, sty = io.open_image(content), io.open_image(style)
    cl = labels_for(content_mask, cont, "content mask")
    sl = labels_for(style_mask, sty, "style mask")
    init = region_colour_init(cont, sty, cl, sl)
    init.save(output)
    before = region_colour_distance(cont, sty, cl, sl)
    after = region_colour_distance(init, sty, cl, sl)
    print(f"{output}: region colour distance {before['colour']:.1f} -> {after['colour']:.1f} "
          f"(means {before['colour_mean']:.1f} -> {after['colour_mean']:.1f})")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("images", nargs="*", help="CONTENT STYLE CONTENT_MASK STYLE_MASK")
    p.add_argument("-o", "--output", type=Path)
    p.add_argument("--pairs", help="comma-separated pairs of --photos instead of images")
    p.add_argument("--photos", type=Path, default=PHOTOS)
    p.add_argument("--out-dir", type=Path, help="with --pairs: writes initN.png here")
    a = p.parse_args()
    torch.set_grad_enabled(False)
    if a.pairs:
        if not a.out_dir:
            p.error("--pairs needs --out-dir")
        a.out_dir.mkdir(parents=True, exist_ok=True)
        for n in (int(x) for x in a.pairs.split(",")):
            q = pair_paths(a.photos, n)
            make(q["content"], q["style"], q["content_mask"], q["style_mask"],
                 a.out_dir / f"init{n}.png")
        return 0
    if len(a.images) != 4 or not a.output:
        p.error("give CONTENT STYLE CONTENT_MASK STYLE_MASK -o OUT, or --pairs")
    make(*map(Path, a.images), a.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
