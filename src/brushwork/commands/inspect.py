"""`brushwork inspect` (feature grids, top patches) and `brushwork reconstruct` (images
rebuilt from one layer's features or from Gram matrices, and the figure of both)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from brushwork import io
from brushwork.commands.common import (
    add_optimisation_args,
    add_report_arg,
    command,
    name_list,
    run_with_snapshots,
)
from brushwork.errors import BrushworkError
from brushwork.inspect import (
    BLOCK_LAYERS,
    ReconstructOptions,
    feature_grid,
    parse_channel,
    reconstruct_tensor,
    reconstruction_figure,
)
from brushwork.optimise import Interrupted
from brushwork.quality import score
from brushwork.recording import recording_callbacks

DEFAULTS = ReconstructOptions()


def _layer_list(values: list[tuple[str, ...]]) -> tuple[str, ...]:
    """Flatten ``--layers a b,c`` (space- and comma-separated alike)."""
    return tuple(name for group in values for name in group)


def _configure_inspect(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", help="the image to look at")
    p.add_argument("-o", "--output", required=True, help="the grid image to write")
    p.add_argument("--layers", nargs="+", type=name_list, default=[BLOCK_LAYERS],
                   help="layers, one row each [relu1_1 relu2_1 relu3_1 relu4_1 relu5_1]")
    p.add_argument("--count", type=int, default=8,
                   help="feature maps per layer, and patches for --channel [%(default)s]")
    p.add_argument("--channel", metavar="LAYER:N",
                   help="add a row of the image patches that excite this channel most")
    p.add_argument("--size", type=int, default=256,
                   help="longest side the image is resized to first [%(default)s]")
    p.add_argument("--tile", type=int, default=128,
                   help="longest side of each tile in the grid [%(default)s]")
    p.add_argument("--pooling", choices=("max", "avg"), default="max")
    p.add_argument("--weights", default=None, help="VGG-19 weights file (.h5, .mat or .pt)")


@command("inspect", "the strongest feature maps of VGG-19 layers for an image, and the "
                    "patches one channel answers to", _configure_inspect)
def inspect(args: argparse.Namespace) -> int:
    io.output_format(args.output)
    channel = parse_channel(args.channel) if args.channel else None
    grid = feature_grid(args.image, _layer_list(args.layers), args.count, args.size,
                        args.tile, channel, args.pooling, args.weights)
    io.save_image(grid, args.output)
    print(f"wrote {args.output}")
    return 0


def _configure_reconstruct(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", help="the image to reconstruct")
    p.add_argument("-o", "--output", required=True, help="output image (.png keeps settings)")
    p.add_argument("--content-layer", "--content-layers", dest="content_layers", type=name_list,
                   default=(), help="rebuild from this layer's features, e.g. conv4_2 "
                                    "(with --figure: comma-separated, one tile each)")
    p.add_argument("--style-layers", type=name_list, default=(),
                   help="rebuild from these layers' Gram matrices, comma-separated, e.g. "
                        "relu1_1,relu2_1 (with --figure: one tile per growing prefix)")
    p.add_argument("--figure", action="store_true",
                   help="content reconstructions per layer over style reconstructions from "
                        "growing layer sets, labelled, in one image [layers relu1_1..relu5_1]")
    add_optimisation_args(p, DEFAULTS, inits="noise")
    add_report_arg(p)  # judged against the image itself: how much of it the layers keep


@command("reconstruct", "rebuild an image from noise, from one layer's features or from "
                        "layers' Gram matrices; --figure for the Gatys et al. figure",
         _configure_reconstruct)
def reconstruct(args: argparse.Namespace) -> int:
    fields = ReconstructOptions.__dataclass_fields__
    options = ReconstructOptions(**{k: v for k, v in vars(args).items() if k in fields})
    output = Path(args.output)
    if args.figure:
        return _figure(args, options, output)
    options.check()
    target = io.load_image(args.image, options.size)
    settings = {**options.settings(), "image": str(args.image)}
    return run_with_snapshots(
        args, output, settings,
        lambda callbacks, resume: reconstruct_tensor(target, options, callbacks, resume,
                                                     progress=not args.quiet),
        recording_callbacks(args.record, args.record_frames, args.plot),
        (lambda image: score(image, args.image, args.image)) if args.report else None)


def _figure(args: argparse.Namespace, options: ReconstructOptions, output: Path) -> int:
    if args.record or args.plot or args.resume or args.report:
        raise BrushworkError("--record, --plot, --resume and --report follow one run; use "
                             "them without --figure")
    io.output_format(output)
    start = time.perf_counter()
    try:
        fig = reconstruction_figure(args.image, options, options.content_layers or BLOCK_LAYERS,
                                    options.style_layers or BLOCK_LAYERS, not args.quiet)
    except Interrupted:
        raise KeyboardInterrupt from None
    if output.suffix.lower() == ".png":
        # An illustration of noisy tiles: 256 colours make it a third the size, unseen.
        io.atomic_write(output, lambda tmp: fig.quantize(256).save(tmp, format="PNG"))
    else:
        io.save_image(fig, output)
    print(f"wrote {output} in {time.perf_counter() - start:.0f} s")
    return 0
