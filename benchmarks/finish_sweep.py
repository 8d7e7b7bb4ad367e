"""Photo transfer's finishing (``photo.finish``: enlargement to the photo's size with its
detail, then the matting smoothing) at several strengths, on 512 px results already made.

The steps take minutes a pair and the finishing seconds, so the finishing is tuned on saved
steps: run ``compare_luan.py`` once with ``-- --smooth 0 --output-size 512`` (the defaults'
steps, left at the run's size and unsmoothed), then score each strength here against the
paper's result with the same figures as compare_luan (``brushwork.quality.score``, 384 px).

    python benchmarks/finish_sweep.py /tmp/luan/sizedefault_smooth_0_output-size_512 \\
        --pairs 11,18,20 --smooth 0,12,30 --sheets /tmp/sweep
"""

from __future__ import annotations

import argparse
import importlib
import time
import warnings
from pathlib import Path

from compare_luan import PHOTOS, pair_paths

from brushwork import io
from brushwork.quality import score

photo = importlib.import_module("brushwork.photo")  # the package's name is the function


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("steps", type=Path, help="folder of outN.png, 512 px results unfinished")
    p.add_argument("--pairs", required=True, help="comma-separated pair numbers")
    p.add_argument("--smooth", default="12", help="comma-separated strengths [12]")
    p.add_argument("--photos", type=Path, default=PHOTOS)
    p.add_argument("--sheets", type=Path, default=None, help="write each finished image here")
    args = p.parse_args()
    warnings.simplefilter("ignore")
    for n in (int(x) for x in args.pairs.split(",")):
        paths = pair_paths(args.photos, n)
        content, style = paths["content"], paths["style"]
        masks = {k: paths[k] for k in ("content_mask", "style_mask")}
        steps = io.as_tensor(str(args.steps / f"out{n}.png"))
        paper = score(paths["paper"], content, style, photo=True, **masks)
        line = f"{n:3d} paper {paper['style']:.3f} / {paper['matting']:.2e}"
        for strength in (float(s) for s in args.smooth.split(",")):
            start = time.perf_counter()
            out = io.tensor_to_pil(photo.finish(steps, str(content),
                                                photo.PhotoOptions(smooth=strength)))
            seconds = time.perf_counter() - start
            if args.sheets:
                args.sheets.mkdir(parents=True, exist_ok=True)
                out.save(args.sheets / f"out{n}_smooth{strength:g}.png")
            f = score(out, content, style, photo=True, **masks)
            wins = f["style"] <= paper["style"] and f["matting"] <= paper["matting"]
            line += (f" | smooth {strength:g}: {f['style']:.3f} / {f['matting']:.2e}"
                     f"{' dominates' if wins else ''} ({seconds:.0f} s)")
        print(line, flush=True)


if __name__ == "__main__":
    main()
