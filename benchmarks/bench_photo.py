"""Photorealistic transfer on the three shared photo pairs: time, style distance, photorealism.

For each pair (in1/tar1, in9/tar9, in42/tar42 with their segmentation masks) it runs
``photo_tensor`` with the default options at ``--size`` and prints:
- wall time of the run;
- style distance to the style photo, twice: brushwork's region-masked relative Gram distance
  (the loss's own style term) and the independent scorer's global figure
  (brushwork.quality, at 256 px);
- photorealism: the matting energy sum_c V_c^T L V_c of the output with respect to the
  content (L its matting Laplacian at the run size, eps 1e-7; lower is better), next to the
  energy of the content itself (the floor) and of a plain artistic run, without masks or the
  matting term, with the same number of steps (what no regulariser gives).

We have no copy of Luan et al.'s published outputs for these pairs, so their figures cannot
be printed here; score their images with the same two functions to compare.

    PYTHONPATH=src python benchmarks/bench_photo.py               # 512 px on a GPU, else 128
    PYTHONPATH=src python benchmarks/bench_photo.py --size 512    # the issue's size

Without --size it runs at 512 px where CUDA is present (about a minute in all) and at 128 px
on a CPU (a few minutes); at 512 px a CPU needs about half an hour per run.

The shared photos are read from ../shared/images/photo beside the repository (or --photos).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from brushwork import io
from brushwork.artistic import StyleOptions, stylize_tensor
from brushwork.matting import matting_energy, matting_laplacian
from brushwork.photo import PhotoOptions, _array, load_inputs, photo_tensor, style_distance
from brushwork.quality import score
from brushwork.vgg import Features

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "images" / "photo"
PAIRS = ("1", "9", "42")


def pair_paths(root: Path, name: str) -> tuple[Path, Path, Path, Path]:
    """Content, style, content mask and style mask of pair ``name``."""
    return (root / "input" / f"in{name}.png", root / "style" / f"tar{name}.png",
            root / "segmentation" / f"in{name}.png", root / "segmentation" / f"tar{name}.png")


def timed(work, *args, **kwargs) -> tuple[torch.Tensor, float]:
    """The image ``work`` returns, on the CPU, and the seconds it took (GPU work included)."""
    start = time.perf_counter()
    image = work(*args, **kwargs).cpu()
    return image, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, help="longest side [512 with CUDA, else 128]")
    parser.add_argument("--pairs", nargs="+", default=list(PAIRS))
    parser.add_argument("--photos", type=Path, default=PHOTOS)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--save", type=Path, help="folder to write the outputs into")
    args = parser.parse_args()
    size = args.size or (512 if torch.cuda.is_available() else 128)

    photo = PhotoOptions(size=size, device=args.device)
    stage_one = photo.iterations if isinstance(photo.iterations, int) else sum(photo.iterations)
    steps = stage_one + photo.matting_iterations
    artistic = StyleOptions(size=size, device=args.device, iterations=steps,
                            style_weight=photo.style_weight, tv_weight=photo.tv_weight)
    net = Features(artistic.style_layers)
    print(f"{size} px, photo: {photo.iterations} + {photo.matting_iterations} steps, "
          f"matting weight {photo.matting_weight:g}; artistic: {steps} steps")
    print(f"{'pair':>5} {'run':>9} {'time s':>7} {'style masked':>13} {'style scorer':>13} "
          f"{'matting energy':>15}")
    for name in args.pairs:
        paths = pair_paths(args.photos, name)
        content, style, content_labels, style_labels = load_inputs(*paths, size)
        laplacian = matting_laplacian(_array(content))
        runs = {"content": (content, 0.0)}
        runs["artistic"] = timed(stylize_tensor, content, [style], artistic, progress=False)
        runs["photo"] = timed(photo_tensor, content, style, content_labels, style_labels, photo,
                              progress=False)
        for run, (image, seconds) in runs.items():
            masked = style_distance(image, style, net, content_labels, style_labels)
            scorer = score(io.tensor_to_pil(image), paths[0], paths[1], 256)["style"]
            energy = matting_energy(_array(image), laplacian)
            print(f"{name:>5} {run:>9} {seconds:7.1f} {masked:13.4f} {scorer:13.4f} "
                  f"{energy:15.4g}", flush=True)
            if args.save:
                io.save_image(image, args.save / f"{run}{name}_{size}.png")


if __name__ == "__main__":
    main()
