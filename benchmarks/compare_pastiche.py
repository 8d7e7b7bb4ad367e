"""brushwork against its peer pastiche 1.6.0, side by side in one run, same machine.

For each content/style pair both programs run as fresh processes (so start-up and weight
loading count for both), are timed by wall clock, and their outputs are scored by
``brushwork.quality`` at the same evaluation size. Install the peer first:

    pip install --no-deps pastiche==1.6.0
    python benchmarks/compare_pastiche.py --size 256 --pastiche-steps 100
    python benchmarks/compare_pastiche.py --size 512 --pastiche-steps 1000   # issue 3 figure

Extra flags after ``--`` go to `brushwork stylize` (e.g. ``-- --iterations 200``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_speed import measure  # noqa: E402

from brushwork.quality import score  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "images"
PAIRS = (("content/tubingen.jpg", "style/starry_night.jpg"),
         ("content/chelsea.png", "style/the_scream.jpg"),
         ("content/horses.jpg", "style/wave.jpg"),
         ("content/coffee.png", "style/woman-with-hat-matisse.jpg"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--pastiche-steps", type=int, default=100)
    p.add_argument("--eval-size", type=int, default=None, help="default: --size")
    p.add_argument("--pairs", type=int, default=len(PAIRS), help="how many pairs to run")
    p.add_argument("--out", default=None, help="keep the outputs in this folder")
    p.add_argument("--device", default="cpu", help="for both programs: cpu or cuda [cpu]")
    p.add_argument("--images", default=str(SHARED),
                   help="folder with content/ and style/ [../shared/images]")
    p.add_argument("brushwork_args", nargs="*", help="extra flags for brushwork (after --)")
    a = p.parse_args()
    out_dir = Path(a.out or tempfile.mkdtemp(prefix="bw-compare-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    eval_size = a.eval_size or a.size
    header = f"{'pair':34s} {'system':10s} {'wall s':>8s} {'cpu s':>8s} {'style':>7s} " \
             f"{'content':>8s} {'gatys':>10s}"
    print(f"device {a.device}, size {a.size}, pastiche {a.pastiche_steps} L-BFGS steps, "
          f"brushwork default {' '.join(a.brushwork_args)}, scored at {eval_size} px\n{header}")
    wins = 0
    rows = []
    for content_rel, style_rel in PAIRS[: a.pairs]:
        content, style = Path(a.images) / content_rel, Path(a.images) / style_rel
        name = f"{content.stem}+{style.stem}"
        p_out, b_out = out_dir / f"{name}.pastiche.png", out_dir / f"{name}.brushwork.png"
        t_p = measure("pastiche", ["--device", a.device, "--seed", "0",
                     "--size", str(a.size), "--num-steps", str(a.pastiche_steps), "--no-verbose",
                     "-c", str(content), "-s", str(style), "-o", str(p_out)])
        t_b = measure("brushwork", ["stylize", str(content), str(style),
                     "-o", str(b_out), "--size", str(a.size), "--device", a.device, "--quiet",
                     *a.brushwork_args])
        s_p = score(p_out, content, style, eval_size)
        s_b = score(b_out, content, style, eval_size)
        for system, (wall, cpu, _, _), s in (("pastiche", t_p, s_p), ("brushwork", t_b, s_b)):
            print(f"{name:34s} {system:10s} {wall:8.1f} {cpu:8.1f} {s['style']:7.3f} "
                  f"{s['content']:8.3f} {s['gatys_style']:10.4g}")
        won = s_b["style"] <= s_p["style"] and s_b["content"] <= s_p["content"]
        wins += won
        rows.append((t_p[0] / t_b[0], t_p[1] / t_b[1], s_b["style"] / s_p["style"],
                     s_b["content"] / s_p["content"]))
        print(f"{'':34s} {'ratio':10s} {rows[-1][0]:7.1f}x {rows[-1][1]:7.1f}x "
              f"{rows[-1][2]:7.3f} {rows[-1][3]:8.3f}   "
              f"{'brushwork at least as close on both' if won else 'NOT better on both'}")
    print(f"\nbrushwork at least as close to style and content on {wins}/{len(rows)} pairs; "
          f"mean speed-up {sum(r[0] for r in rows) / len(rows):.1f}x wall, "
          f"{sum(r[1] for r in rows) / len(rows):.1f}x CPU; outputs in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
