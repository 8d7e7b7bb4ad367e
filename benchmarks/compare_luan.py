"""brushwork photo against Luan et al.'s own results (Deep Photo Style Transfer), pair by pair.

For each pair N of the paper's examples (``--photos``: input/inN.png, style/tarN.png,
segmentation/inN.png and tarN.png, luan/outN.png) it runs ``brushwork photo`` the way a user
would, as a fresh process with its defaults and the two label images (``--size`` given only
when asked, flags after ``--`` passed through), times it, and scores the paper's result, the
brushwork output and the input itself with ``brushwork.quality.score`` (label images given)
at ``--eval-size``:
- style: the report's mean relative Gram distance relu1_1..relu5_1 to the reference, global
  (no masks); lower is closer;
- matting: energy of the output under the content's matting Laplacian at the evaluation
  size, per pixel (sum_c V_c^T L V_c / HW, RGB in 0..1, eps 1e-7); lower is more
  photographic; the input itself is the floor (about 1e-7);
- colour / mean: per labelled region, the 2-Wasserstein distance (8-bit levels) between
  Gaussians fitted to the region's colours and to its partner region's in the reference,
  area-weighted; ``mean`` the same for the colour means alone. The input's own figure is
  the baseline: a good transfer moves each region's colours toward its partner's;
- time: wall and CPU seconds of the whole ``brushwork photo`` process (start-up, weights,
  both stages), with the load average before it (other jobs on the machine inflate wall);
  a run continued from a checkpoint (``--resume``, marked ``r``) counts only its own part;
- brushwork dominates a pair when it is no worse than the paper on both style and matting.
The CPU kind is printed first (``lscpu`` flags amx_bf16 / avx512_bf16; none = AVX2 only,
where ``--precision auto`` means float32).

``--cache DIR`` keeps each pair's output and its run record in DIR/<settings>/ so that an
interrupted benchmark resumes where it stopped (a pair cut short continues from the
checkpoint ``brushwork photo`` writes every 25 steps) and a rerun only scores (a few seconds
a pair; ``--score-only`` skips the pairs not yet run). ``--sheets DIR`` writes
input | reference | paper | brushwork per pair with the figures under each; the paper's
images must not ship, so give a folder outside the repository.

    python benchmarks/compare_luan.py --pairs 1,9,42 --size 256 --eval-size 256 --cache /tmp/luan
    nice -n 19 python benchmarks/compare_luan.py --pairs 1,4,8 --size 512 --cache /tmp/luan \\
        --sheets /tmp/luan_sheets
    python benchmarks/compare_luan.py --pairs 1 --cache /tmp/luan -- --matting-weight 1000
    python benchmarks/compare_luan.py --pairs 1,9 -- --init /tmp/starts/start{pair}.png

In the flags after ``--``, ``{pair}`` stands for the pair's number (a start per pair, made
made by another program, for instance); each setting gets its own folder in the cache.

The photos are read from ../shared/images/photo beside the repository (or --photos). A pair
with a file Pillow cannot read is skipped with a line saying so. In the shared copy,
style/tar23.png is a link stored as a 23-byte text, "examples/input/in23.png": pair 23's
reference is its own input with the labels exchanged (the apples swap colours), and the
benchmark follows the link to input/in23.png.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).parent))
from bench_speed import cpu_kind, measure  # noqa: E402

from brushwork.quality import score  # noqa: E402

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "images" / "photo"
PAIRS = (1, 2, 4, 5, 7, 8, 9, 10, 11, 14, 16, 18, 20, 23, 25, 28, 30, 36, 39, 42, 44, 50, 55)
SYSTEMS = ("input", "paper", "brushwork")
# The pairs the photo defaults were tuned on (the steps on 1, 2, 4, 5 and 8; the finishing
# on 7, 11, 14, 20, 25 and 55, and again on 2, 5, 8, 11, 14, 18, 20, 36 and 55; the style
# weight and smoothing strength on 2, 5, 8, 9, 14, 18 and 36); the others are kept aside to
# check them.
TUNED = (1, 2, 4, 5, 7, 8, 9, 11, 14, 18, 20, 25, 36, 55)


def followed(path: Path, root: Path) -> Path:
    """``path``, or the photo it names when it is a symbolic link stored as a short text
    file (git without symlinks): the shared style/tar23.png holds "examples/input/in23.png",
    the paper's pair 23 recolouring the apples of one photo among themselves."""
    try:
        if path.stat().st_size > 200:
            return path
        words = path.read_text(encoding="ascii").strip().split("/")
    except (OSError, UnicodeDecodeError):
        return path
    target = root.joinpath(*words[-2:])
    return target if len(words) >= 2 and target.is_file() and target != path else path


def pair_paths(root: Path, n: int) -> dict[str, Path]:
    return {"content": root / "input" / f"in{n}.png",
            "style": followed(root / "style" / f"tar{n}.png", root),
            "content_mask": root / "segmentation" / f"in{n}.png",
            "style_mask": root / "segmentation" / f"tar{n}.png",
            "paper": root / "luan" / f"out{n}.png"}


def unreadable(paths: dict[str, Path]) -> list[str]:
    """The files of a pair that Pillow cannot read (missing, or not an image)."""
    bad = []
    for path in paths.values():
        try:
            with Image.open(path) as img:
                img.verify()
        except (OSError, SyntaxError):
            bad.append(str(path))
    return bad


def settings_tag(size: int | None, precision: str | None, extra: list[str]) -> str:
    """A folder name for one setting of the run: readable, with a hash when long."""
    words = [f"size{size}" if size else "sizedefault"]
    if precision:
        words.append(precision)
    words += [re.sub(r"[^A-Za-z0-9.=-]+", "", w.lstrip("-")) for w in extra]
    tag = "_".join(w for w in words if w)
    if len(tag) > 80:
        tag = tag[:60] + "_" + hashlib.sha1(" ".join(extra).encode()).hexdigest()[:10]
    return tag


def run_photo(paths: dict[str, Path], out: Path, size: int | None, precision: str | None,
              extra: list[str], masks: bool = True) -> dict:
    """Run ``brushwork photo`` as a child process; its wall and CPU time and peak RSS."""
    args = ["brushwork", "photo", str(paths["content"]), str(paths["style"]), "-o", str(out),
            "--quiet"]
    if masks:
        args += ["--content-mask", str(paths["content_mask"]), "--style-mask",
                 str(paths["style_mask"])]
    resumed = Path(f"{out}.ckpt").exists()  # left by an interrupted run: continue it
    if resumed:
        args.append("--resume")
    if size:
        args += ["--size", str(size)]
    if precision:
        args += ["--precision", precision]
    args += [word.replace("{pair}", paths["content"].stem[2:]) for word in extra]
    load = os.getloadavg()[0]
    run = measure(args[0], args[1:])
    return {"wall": run.wall, "cpu": run.cpu, "rss_gb": run.rss, "load_before": load,
            "load_after": os.getloadavg()[0], "command": ["python", "-m", *args],
            "resumed": resumed,
            "cpu_kind": cpu_kind(), "date": time.strftime("%Y-%m-%d %H:%M:%S UTC",
                                                          time.gmtime())}


def brushwork_output(n: int, paths: dict[str, Path], folder: Path, a: argparse.Namespace
                     ) -> tuple[Path, dict]:
    """The cached output and run record of pair ``n``, running the transfer if missing."""
    out, record = folder / f"out{n}.png", folder / f"run{n}.json"
    if record.exists() and out.exists():
        return out, json.loads(record.read_text())
    print(f"  running pair {n} ...", flush=True)
    info = run_photo(paths, out, a.size, a.precision, a.photo_args, not a.no_masks)
    record.write_text(json.dumps(info, indent=1))
    return out, info


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def sheet(n: int, paths: dict[str, Path], brushwork: Path, figures: dict[str, dict],
          info: dict, eval_size: int, target: Path, height: int = 300) -> None:
    """input | reference | paper | brushwork at one height, the figures under each."""
    panels = [("input", paths["content"]), ("reference", paths["style"]),
              ("paper (Luan et al.)", paths["paper"]), ("brushwork", brushwork)]
    images = []
    for _, path in panels:
        img = Image.open(path).convert("RGB")
        images.append(img.resize((round(img.size[0] * height / img.size[1]), height),
                                 Image.Resampling.LANCZOS))
    font, pad, lines = _font(14), 6, 3
    width = sum(i.size[0] for i in images) + pad * (len(images) + 1)
    canvas = Image.new("RGB", (width, height + 2 * pad + 18 * (lines + 1)), "white")
    draw = ImageDraw.Draw(canvas)
    x = pad
    for (label, _), img, key in zip(panels, images, ("input", None, "paper", "brushwork"),
                                    strict=True):
        canvas.paste(img, (x, pad))
        text = [label]
        if key:
            f = figures[key]
            text += [f"style {f['style']:.3f}  matting {f['matting']:.2e}",
                     f"colour {f['colour']:.1f} (mean {f['colour_mean']:.1f})"]
        if key == "brushwork":
            text.append(f"{info['wall']:.0f} s wall, {info['cpu']:.0f} s CPU")
        for i, t in enumerate(text):
            draw.text((x, height + pad + 4 + 18 * i), t, fill="black", font=font)
        x += img.size[0] + pad
    draw.text((pad, canvas.size[1] - 18), f"pair {n}, scored at {eval_size} px",
              fill="grey", font=font)
    canvas.save(target)


def summary(rows: list[dict], what: str, skipped: list[int]) -> None:
    """Mean figures per system over ``rows`` and how many of them brushwork dominates."""
    print(f"\nmean over {what}:")
    for k in SYSTEMS:
        mean = {m: sum(r["figures"][k][m] for r in rows) / len(rows)
                for m in ("style", "matting", "colour", "colour_mean")}
        times = ""
        if k == "brushwork":
            times = (f"{sum(r['run']['wall'] for r in rows) / len(rows):7.1f} "
                     f"{sum(r['run']['cpu'] for r in rows) / len(rows):7.1f}")
        print(f"{'all':>4s} {k:10s} {mean['style']:7.3f} {mean['matting']:9.2e} "
              f"{mean['colour']:7.1f} {mean['colour_mean']:6.1f} {times}")
    print(f"brushwork dominates the paper (no worse on style and matting) on "
          f"{sum(r['dominates'] for r in rows)}/{len(rows)} of {what}"
          f"{'; skipped (unreadable files): ' + ', '.join(map(str, skipped)) if skipped else ''}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", default=",".join(map(str, PAIRS)),
                   help="comma-separated pair numbers [all 23]")
    p.add_argument("--size", type=int, default=None,
                   help="run size, passed as --size [brushwork photo's default]")
    p.add_argument("--eval-size", type=int, default=384)
    p.add_argument("--precision", default=None, help="passed as --precision [its default]")
    p.add_argument("--photos", type=Path, default=PHOTOS)
    p.add_argument("--cache", type=Path, default=None,
                   help="keep outputs and run records here (resume, rescore) [a temp folder]")
    p.add_argument("--sheets", type=Path, default=None,
                   help="write side-by-side sheets here (outside the repository)")
    p.add_argument("--json", type=Path, default=None, help="also write every figure here")
    p.add_argument("--no-masks", action="store_true",
                   help="run without the label images (automatic regions); the colour "
                        "figure still uses them")
    p.add_argument("--tuned", default=",".join(map(str, TUNED)),
                   help="the pairs the defaults were tuned on: the others are also summed "
                        "up apart, as pairs kept aside [%(default)s]")
    p.add_argument("--score-only", action="store_true",
                   help="score the pairs already in --cache; run nothing")
    p.add_argument("photo_args", nargs="*", help="extra flags for brushwork photo (after --)")
    a = p.parse_args()
    pairs = [int(x) for x in a.pairs.split(",") if x.strip()]
    unknown = [n for n in pairs if n not in PAIRS]
    if unknown:
        p.error(f"no such pairs {unknown}; the pairs are {', '.join(map(str, PAIRS))}")
    tag = settings_tag(a.size, a.precision, ["--no-masks"] * a.no_masks + a.photo_args)
    tuned = {int(x) for x in a.tuned.split(",") if x.strip()}
    if a.score_only and not a.cache:
        p.error("--score-only needs --cache")
    folder = (a.cache or Path(tempfile.mkdtemp(prefix="bw-luan-"))) / tag
    folder.mkdir(parents=True, exist_ok=True)
    if a.sheets:
        a.sheets.mkdir(parents=True, exist_ok=True)
    print(f"CPU: {cpu_kind()}")
    print(f"brushwork photo, size {a.size or 'default'}, precision {a.precision or 'default'}"
          f"{', extra: ' + ' '.join(a.photo_args) if a.photo_args else ''}; "
          f"scored at {a.eval_size} px; outputs in {folder}")
    head = (f"{'pair':>4s} {'system':10s} {'style':>7s} {'matting':>9s} {'colour':>7s} "
            f"{'mean':>6s} {'wall s':>7s} {'cpu s':>7s} {'load':>5s}")
    print(head, flush=True)
    rows, skipped = [], []
    for n in pairs:
        paths = pair_paths(a.photos, n)
        bad = unreadable(paths)
        if bad:
            print(f"{n:4d} skipped: not an image: {', '.join(bad)}", flush=True)
            skipped.append(n)
            continue
        if a.score_only and not (folder / f"run{n}.json").exists():
            continue
        out, info = brushwork_output(n, paths, folder, a)
        images = {"input": paths["content"], "paper": paths["paper"], "brushwork": out}
        figures = {k: score(v, paths["content"], paths["style"], a.eval_size,
                            content_mask=paths["content_mask"],
                            style_mask=paths["style_mask"]).figures for k, v in images.items()}
        for k in SYSTEMS:
            f = figures[k]
            times = (f"{info['wall']:7.1f} {info['cpu']:7.1f} {info['load_before']:5.2f}"
                     f"{' r' if info.get('resumed') else ''}" if k == "brushwork" else "")
            print(f"{n:4d} {k:10s} {f['style']:7.3f} {f['matting']:9.2e} {f['colour']:7.1f} "
                  f"{f['colour_mean']:6.1f} {times}")
        b, q = figures["brushwork"], figures["paper"]
        won = b["style"] <= q["style"] and b["matting"] <= q["matting"]
        print(f"{'':4s} {'verdict':10s} brushwork "
              f"{'dominates (no worse on style and matting)' if won else 'does NOT dominate'}"
              f": style {b['style'] / q['style']:.2f}x, matting {b['matting'] / q['matting']:.2f}x"
              f" the paper's", flush=True)
        rows.append({"pair": n, "figures": figures, "run": info, "dominates": won})
        if a.sheets:
            sheet(n, paths, out, figures, info, a.eval_size, a.sheets / f"pair{n}.png")
    if not rows:
        return 0
    summary(rows, f"{len(rows)} pairs", skipped)
    aside = [r for r in rows if r["pair"] not in tuned]
    if aside and len(aside) < len(rows):
        summary(aside, f"the {len(aside)} pairs kept aside from tuning (not {a.tuned})", [])
    if a.json:
        a.json.write_text(json.dumps({"settings": vars(a) | {"cache": str(a.cache),
                                                              "photos": str(a.photos),
                                                              "sheets": str(a.sheets),
                                                              "json": str(a.json)},
                                      "cpu": cpu_kind(), "pairs": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
