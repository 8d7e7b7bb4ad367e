"""Fast models against brushwork's optimisation on held-out photos, by brushwork's quality report.

For each model and each of the first ``--count`` photos of ``--photos`` (photos the model
never saw in training), both methods stylise the photo at ``--size`` with the model's style
image: the network in one pass, `brushwork stylize` with its default settings. ``brushwork.quality``
then scores both at the same evaluation size. The goal: the fast style distance within a
factor 2 of the optimisation's, and the fast content distance no larger.

    python benchmarks/compare_fast.py --models starry_night,the_scream,wave \\
        --photos /tmp/photos_val --count 4 --size 512 [--sheets DIR] [--cache DIR]

``--cache DIR`` keeps each optimised result there (as a lossless PNG) and reuses it, so that
several candidate networks for one style are measured against the same optimisation run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from brushwork import io
from brushwork.artistic import StyleOptions, stylize_tensor
from brushwork.fast.model import load_model
from brushwork.fast.stylise import FastOptions, Stylist
from brushwork.fast.train import readable_images, style_path
from brushwork.quality import STYLE_LAYERS, score

#: The report's figures compared: style and content are the goals, detail is for information;
#: the style distance per layer shows where a network falls short.
MEASURES = ("style", "content", "detail", *(f"style_{layer}" for layer in STYLE_LAYERS))


def optimise(content: torch.Tensor, style: torch.Tensor, style_name: str, photo_name: str,
             args: argparse.Namespace) -> torch.Tensor:
    """`brushwork stylize`'s result with its defaults, from ``--cache`` when it is there."""
    cached = Path(args.cache) / f"{style_name}_{photo_name}_{args.size}.png" if args.cache \
        else None
    if cached is not None and cached.exists():
        return io.load_image(cached)
    out = stylize_tensor(content, [style], StyleOptions(size=args.size, device=args.device),
                         progress=False).cpu()
    if cached is not None:
        io.save_image(out, cached)
    return out


def compare(model_name: str, photos: list[Path], args: argparse.Namespace) -> dict[str, float]:
    """Score both methods on each photo; print one line per photo and return the means."""
    model = load_model(model_name)
    style_file = style_path(model.style)
    style = io.load_image(style_file)
    stylist = Stylist(model, FastOptions(device=args.device))
    rows = []
    for photo in photos:
        content = io.load_image(photo, args.size)
        start = time.perf_counter()
        fast = stylist(content)
        fast_s = time.perf_counter() - start
        start = time.perf_counter()
        optimised = optimise(content, style, Path(style_file).stem, photo.stem, args)
        opt_s = time.perf_counter() - start
        f = score(io.tensor_to_pil(fast), photo, style_file, args.eval_size)
        o = score(io.tensor_to_pil(optimised), photo, style_file, args.eval_size)
        rows.append({f"{who}_{k}": r[k] for k in MEASURES for who, r in (("fast", f), ("opt", o))})
        print(f"{model.name:<14} {photo.name:<28} style {f['style']:.3f} vs {o['style']:.3f}"
              f"  content {f['content']:.3f} vs {o['content']:.3f}"
              f"  detail {f['detail']:.3f} vs {o['detail']:.3f}"
              f"  time {fast_s:.2f} s vs {opt_s:.1f} s", flush=True)
        if args.sheets:
            sheet = torch.cat([content, optimised, fast], dim=3)
            io.save_image(sheet, Path(args.sheets) / f"{model.name}_{photo.stem}.jpg")
    return {key: statistics.mean(row[key] for row in rows) for key in rows[0]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", required=True, help="comma-separated names or files")
    p.add_argument("--photos", required=True, help="folder of photos not used in training")
    p.add_argument("--count", type=int, default=4)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--eval-size", type=int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument("--sheets", help="write photo | optimised | fast side by side here")
    p.add_argument("--cache", help="keep and reuse the optimised results here")
    args = p.parse_args()
    if args.cache:
        Path(args.cache).mkdir(parents=True, exist_ok=True)
    photos = readable_images(args.photos)[: args.count]
    print("per photo: fast vs optimised (lower is closer)")
    summary = {name: compare(name, photos, args) for name in args.models.split(",")}
    print("\nmeans      style fast / opt (ratio, goal <= 2)   content fast / opt (goal <= 1)"
          "   detail fast / opt (relu2_2, for information)")
    for name, m in summary.items():
        print(f"{name:<14} " + "   ".join(
            f"{m['fast_' + k]:.3f} / {m['opt_' + k]:.3f} ({m['fast_' + k] / m['opt_' + k]:.2f})"
            for k in MEASURES[:3]))
        print(f"{'':<14} style per layer, fast / opt: " + "  ".join(
            f"{k[6:]} {m['fast_' + k]:.3f} / {m['opt_' + k]:.3f}" for k in MEASURES[3:]))


if __name__ == "__main__":
    main()
