"""Video by optimisation on this machine: seconds per frame, and flicker against independent
frames.

For each size a panning clip of the bundled Tübingen photo (one pixel per frame) is
stylised twice with the bundled Starry Night: with the temporal term and the warped start
(``brushwork.stylize_video`` as it comes), and frame by frame on its own (temporal weight
0, every frame from its content with the full schedule: the baseline). It prints, for
both, the wall and CPU seconds of the first frame and of the mean later frame (CPU time is
the figure to trust on a busy machine), the flicker figure (mean warping error of the
output; the input's for scale) and the quality report's style distance averaged over the
frames, and the CPU kind (AMX / AVX-512 bf16 flags; none listed: an AVX2-only CPU).

    python benchmarks/bench_video_opt.py --sizes 256,512 --frames 6
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from bench_speed import cpu_kind  # noqa: E402

from brushwork import EXAMPLES, stylize_video
from brushwork.artistic_video import FRAME_ITERATIONS, TEMPORAL_WEIGHT
from brushwork.quality import feature_distances
from brushwork.video import pan_clip, read_frames


def style_distance(video: Path, clip: Path, style: Path) -> float:
    painting = Image.open(style).convert("RGB")
    return float(np.mean([feature_distances(Image.fromarray(o), Image.fromarray(c),
                                            painting)["style"]
                          for o, c in zip(read_frames(video), read_frames(clip), strict=True)]))


def timed_run(clip: Path, style: Path, output: Path, **options) -> dict[str, float]:
    """One run with the wall and CPU seconds of each frame taken as it finishes."""
    marks = [(time.perf_counter(), time.process_time())]
    result = stylize_video(clip, style, output, progress=False,
                           on_frame=lambda _: marks.append((time.perf_counter(),
                                                            time.process_time())), **options)
    wall = np.diff([m[0] for m in marks])
    cpu = np.diff([m[1] for m in marks])
    return {"first_wall": wall[0], "first_cpu": cpu[0], "later_wall": wall[1:].mean(),
            "later_cpu": cpu[1:].mean(), "flicker": result.flicker["output"],
            "input": result.flicker["input"], "style": style_distance(output, clip, style)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="256,512", help="longest sides, comma-separated")
    p.add_argument("--frames", type=int, default=6, help="frames of the clip (at least 2)")
    p.add_argument("--iterations", type=int, default=100, help="the first frame's steps")
    p.add_argument("--frame-iterations", type=int, default=FRAME_ITERATIONS)
    p.add_argument("--temporal-weight", type=float, default=TEMPORAL_WEIGHT)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's own)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    style = EXAMPLES / "starry_night.jpg"
    print(f"CPU: {cpu_kind()}; torch threads {torch.get_num_threads()}; {args.frames} frames, "
          f"first {args.iterations} steps, later {args.frame_iterations}, temporal weight "
          f"{args.temporal_weight:g}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            clip = pan_clip(EXAMPLES / "tubingen.jpg", Path(tmp) / f"pan{size}.mp4", size,
                            round(size * 3 / 4), args.frames)
            runs = {
                "temporal": timed_run(clip, style, Path(tmp) / f"t{size}.mp4", size=size,
                                      iterations=args.iterations,
                                      frame_iterations=args.frame_iterations,
                                      temporal_weight=args.temporal_weight),
                "independent": timed_run(clip, style, Path(tmp) / f"i{size}.mp4", size=size,
                                         iterations=args.iterations, temporal_weight=0,
                                         independent=True),
            }
            for name, r in runs.items():
                print(f"{size} px {name:11s}: first frame {r['first_wall']:.1f} s wall "
                      f"({r['first_cpu']:.1f} s CPU), later frames {r['later_wall']:.1f} s "
                      f"wall ({r['later_cpu']:.1f} s CPU) each; flicker {r['flicker']:.6f} "
                      f"(input {r['input']:.6f}); style distance {r['style']:.4f}", flush=True)
            ratio = runs["independent"]["flicker"] / max(runs["temporal"]["flicker"], 1e-12)
            print(f"{size} px: the temporal term cuts the flicker {ratio:.1f}x", flush=True)


if __name__ == "__main__":
    main()
