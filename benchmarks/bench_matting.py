"""Time the matting Laplacian build and the closed-form matte solve on a real photo.

Run from the repository root (needs the shared test photos next to the repository):

    PYTHONPATH=src python benchmarks/bench_matting.py
    PYTHONPATH=src python benchmarks/bench_matting.py --sizes 256 512 --solve-size 512

The solve is timed twice: with a trimap (unknown band of +-6 px around the foreground region of
the photo's segmentation) and with sparse scribbles (every 16th row of the clearly inside and
outside parts), the worst case, where the whole image is unknown.

``--solve-memory`` measures the solve's peak memory per unknown pixel (random image, all
unknown between two marked edges, each size in a fresh process: peak RSS less the process's
after its imports) beside ``matting.solve_bytes``, the estimate `matte` refuses by.

``--upsample-to`` times ``affine_upsample`` (what ``brushwork photo --output-size`` adds to a
run) carrying a 512 px result to each given size, with its peak of traced memory.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import binary_dilation, binary_erosion

from brushwork.matting import affine_upsample, closed_form_matte, matting_laplacian, solve_bytes

PHOTO = Path(__file__).resolve().parents[2] / "shared" / "images" / "photo"


def load(relative: str, size: int, resample: Image.Resampling) -> np.ndarray:
    """Load a shared photo as RGB, resized to size x size."""
    with Image.open(PHOTO / relative) as image:
        return np.asarray(image.convert("RGB").resize((size, size), resample))


def best_of(repeats: int, work: Callable[[], object]) -> float:
    """Fastest of ``repeats`` runs: the least disturbed by other load on the machine."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def solve_peak(size: int) -> tuple[int, int]:
    """Unknown pixels and the peak-RSS growth in bytes of one all-unknown solve."""
    rng = np.random.default_rng(0)
    image = rng.random((size, size, 3))
    alpha, known = np.zeros((size, size)), np.zeros((size, size), dtype=bool)
    known[:, :4] = known[:, -4:] = True
    alpha[:, -4:] = 1.0
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    closed_form_matte(image, alpha, known)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int((~known).sum()), (after - before) * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[256, 512])
    parser.add_argument("--solve-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--solve-memory", type=int, nargs="*", default=[],
                        metavar="SIZE", help="e.g. 200 400 640")
    parser.add_argument("--upsample-to", type=int, nargs="*", default=[2048, 4096])
    args = parser.parse_args()

    for size in args.solve_memory:
        with multiprocessing.get_context("spawn").Pool(1) as pool:  # a fresh peak per size
            unknown, grown = pool.apply(solve_peak, (size,))
        print(f"closed_form_matte memory {size}x{size}: {unknown} unknown, peak "
              f"+{grown / 2**20:.0f} MB = {grown / unknown / 1e3:.1f} KB per unknown pixel; "
              "solve_bytes "
              f"{solve_bytes(unknown) / unknown / 1e3:.1f} KB")
    for size in args.sizes:
        image = load("input/in1.png", size, Image.Resampling.BILINEAR) / 255.0
        seconds = best_of(args.repeats, lambda image=image: matting_laplacian(image))
        print(f"matting_laplacian {size}x{size}: {seconds:.2f} s")

    size = args.solve_size
    image = load("input/in1.png", size, Image.Resampling.BILINEAR) / 255.0
    labels = load("segmentation/in1.png", size, Image.Resampling.NEAREST)
    foreground = np.all(labels == 255, axis=2)  # the white region
    band = binary_dilation(foreground, iterations=6) & ~binary_erosion(foreground, iterations=6)
    inside = binary_erosion(foreground, iterations=10)
    outside = binary_erosion(~foreground, iterations=10)
    strokes = np.zeros_like(foreground)
    strokes[::16] = True
    cases = {
        "trimap": ~band,
        "scribbles": (inside | outside) & strokes,
    }
    for name, known in cases.items():
        seconds = best_of(
            1, lambda known=known: closed_form_matte(image, foreground.astype(float), known)
        )
        unknown = 100.0 * (1.0 - known.mean())
        print(f"closed_form_matte {size}x{size} {name} ({unknown:.0f}% unknown): {seconds:.2f} s")

    small = load("input/in1.png", 512, Image.Resampling.BILINEAR) / 255.0
    for size in args.upsample_to:
        guide = load("input/in1.png", size, Image.Resampling.BILINEAR) / 255.0
        tracemalloc.start()
        seconds = best_of(1, lambda guide=guide: affine_upsample(small, guide))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"affine_upsample 512x512 -> {size}x{size}: {seconds:.2f} s, "
              f"peak {peak / 2**30:.2f} GB")


if __name__ == "__main__":
    main()
