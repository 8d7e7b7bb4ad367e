"""`brushwork stylize` (artistic transfer) and `brushwork demo` (the same on bundled images)."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from brushwork import io
from brushwork.artistic import StyleOptions, label_regions, read_style_masks, stylize_tensor
from brushwork.artistic_video import FRAME_ITERATIONS, TEMPORAL_WEIGHT, frame_store, stylize_video
from brushwork.colour import COLOUR_MODES
from brushwork.commands.common import (
    add_layer_args,
    add_optimisation_args,
    add_report_arg,
    add_weight_args,
    command,
    float_list,
    run_with_snapshots,
)
from brushwork.errors import BrushworkError
from brushwork.io import EXAMPLES
from brushwork.optimise import Interrupted
from brushwork.quality import score
from brushwork.recording import recording_callbacks
from brushwork.runtime import pick_device
from brushwork.signals import signum_of
from brushwork.video import is_video

DEFAULTS = StyleOptions()


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("content", nargs="?", help="content photo, video, or folder of frames")
    p.add_argument("styles", nargs="*", help="one or more style images")
    p.add_argument("-o", "--output", help="output image (.png keeps the settings); for a "
                   "video content, a video; for a folder of frames, a folder")
    p.add_argument("--content", dest="content_flag", help="content photo (older spelling)")
    p.add_argument("--styles", "--style", dest="styles_flag", nargs="+",
                   help="style images (older spelling)")
    _configure_losses(p)
    v = p.add_argument_group("video (a video content: each frame starts from the previous "
                             "result warped along the flow)")
    v.add_argument("--temporal-weight", type=float, default=TEMPORAL_WEIGHT,
                   help="weight of the term keeping visible pixels near the warped previous "
                        "frame; 0 = off [%(default)s]")
    v.add_argument("--frame-iterations", type=int, default=FRAME_ITERATIONS,
                   help="steps for each frame after the first, at full size only (the first "
                        "gets --iterations) [%(default)s]")
    v.add_argument("--independent-frames", action="store_true",
                   help="stylise every frame from its content with the full schedule (the "
                        "flickering baseline)")


def _configure_losses(p: argparse.ArgumentParser) -> None:
    w = p.add_argument_group("losses")
    add_weight_args(w, DEFAULTS)
    add_layer_args(w, DEFAULTS)
    w.add_argument("--style-blend-weights", "--style-blend", type=float_list, default=None,
                   help="one weight per style image [equal]")
    w.add_argument("--style-masks", nargs="+", metavar="MASK",
                   help="one greyscale image per style, of the content's proportions: each "
                        "style goes where its mask is white (grey blends); pixels no mask "
                        "covers keep the content")
    w.add_argument("--content-labels", metavar="LABELS",
                   help="colour-coded label image of the content (the photo command's "
                        "--content-mask format); with --style-labels, each region takes the "
                        "style of the same colour's region of the one style image")
    w.add_argument("--style-labels", metavar="LABELS",
                   help="label image of the style: same colour, same region")
    w.add_argument("--style-scale", type=float, default=DEFAULTS.style_scale,
                   help="style image scale relative to the output [%(default)s]")
    w.add_argument("--preserve-colour", "--preserve-color", choices=COLOUR_MODES,
                   default=DEFAULTS.preserve_colour,
                   help="keep the content's colours: luminance-only transfer or "
                        "histogram matching of the style [%(default)s]")
    add_optimisation_args(p, DEFAULTS)
    add_report_arg(p)
    big = p.add_argument_group("large outputs")
    big.add_argument("--tile", type=int, default=None,
                     help="optimise scales larger than this in overlapping tiles of this "
                          "size (0: never; default: chosen from free memory)")
    big.add_argument("--overlap", type=int, default=DEFAULTS.overlap,
                     help="tile overlap in pixels [%(default)s]")
    big.add_argument("--dry-run", action="store_true",
                     help="print the schedule, estimated peak memory and time, then stop")


def options_from(args: argparse.Namespace) -> StyleOptions:
    """StyleOptions from parsed flags (the fields have the flags' names)."""
    fields = StyleOptions.__dataclass_fields__
    values = {k: v for k, v in vars(args).items() if k in fields}
    values["style_blend"] = args.style_blend_weights
    return StyleOptions(**values).check()


def _run_stylize(args: argparse.Namespace, content: str, styles: list[str], output: str) -> int:
    options = options_from(args)
    if args.dry_run:
        from brushwork import planning

        width, height = io.resize_to(io.open_image(content), options.size).size
        rows = planning.plan(options, height, width)
        print(planning.describe(rows, str(pick_device(options.device))))
        return 0
    content_t = io.load_image(content, options.size)
    masks = args.style_masks and read_style_masks(args.style_masks, len(styles), content_t)
    style_t = [io.load_image(s) for s in styles]
    regions = label_regions(content, style_t[0], args.content_labels, args.style_labels)
    settings = {**options.settings(), "content": str(content), "styles": [str(s) for s in styles],
                "style_masks": args.style_masks, "content_labels": args.content_labels,
                "style_labels": args.style_labels}
    return run_with_snapshots(
        args, Path(output), settings,
        lambda callbacks, resume: stylize_tensor(content_t, style_t, options, callbacks, resume,
                                                 progress=not args.quiet, style_masks=masks,
                                                 regions=regions),
        recording_callbacks(args.record, args.record_frames, args.plot),
        (lambda image: score(image, content, styles[0])) if args.report else None)


@command("stylize", "artistic style transfer: CONTENT STYLE [STYLE ...] -o OUT", _configure)
def stylize(args: argparse.Namespace) -> int:
    content = args.content_flag or args.content
    styles = (args.styles_flag or []) + list(args.styles)
    if args.content_flag and args.content:
        styles = [args.content, *styles]  # with --content, positionals are styles
    if not content or not styles:
        raise BrushworkError("give a content image and at least one style image, e.g. "
                             "brushwork stylize photo.jpg painting.jpg -o out.png")
    if not args.output:
        raise BrushworkError("give an output file with -o OUT.png")
    if is_video(content) or Path(content).is_dir():
        return _run_video(args, content, styles, args.output)
    if Path(args.output).is_dir():
        raise BrushworkError(f"-o {args.output}: that is a folder; name the file to write (a "
                             "folder is written only from a folder of frames)")
    return _run_stylize(args, content, styles, args.output)


def _run_video(args: argparse.Namespace, content: str, styles: list[str], output: str) -> int:
    """A video or a folder of frames: frame by frame through ``stylize_video``; on Ctrl-C or
    a signal the finished frames stay (in OUTPUT.frames/, or the output folder) for
    --resume."""
    single = [flag for flag, given in (("--style-masks", args.style_masks),
                                       ("--content-labels", args.content_labels),
                                       ("--style-labels", args.style_labels),
                                       ("--record", args.record), ("--plot", args.plot),
                                       ("--save-every", args.save_every),
                                       ("--report", args.report), ("--dry-run", args.dry_run))
              if given]
    if single:
        raise BrushworkError(f"{', '.join(single)}: for a single image; drop it to stylise "
                             f"the frames of {content}")
    options = options_from(args)
    try:
        result = stylize_video(content, styles, output, args.temporal_weight,
                               args.frame_iterations, args.independent_frames,
                               resume=args.resume, progress=not args.quiet,
                               **options.settings())
    except (Interrupted, KeyboardInterrupt) as stop:
        store = frame_store(content, output)
        if not store.folder.is_dir():
            raise
        signum = stop.signum if isinstance(stop, Interrupted) else signum_of(stop)
        print(f"brushwork: interrupted ({signal.Signals(signum).name}); "
              f"{store.finished()} finished frames kept in {store.folder}; continue with the "
              "same command and --resume", file=sys.stderr)
        return 128 + signum
    f = result.flicker
    print(f"wrote {output}: {result.frames} frames, {len(result.computed)} stylised in "
          f"{result.seconds:.0f} s ({result.seconds_per_frame:.1f} s/frame)"
          + ("" if result.audio or not is_video(output) else " (no ffmpeg: sound not copied)"))
    if "output" in f:
        print(f"flicker (mean warping error): input {f['input']:.5f}, stylised "
              f"{f['output']:.5f}")
    return 0


def _configure_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", default="brushwork-demo.png",
                   help="where to write the result [%(default)s]")
    p.add_argument("--style", default="starry_night",
                   help="bundled style: " + ", ".join(sorted(
                       f.stem for f in EXAMPLES.glob("*.jpg") if f.stem not in
                       ("tubingen", "chelsea"))) + " [%(default)s]")
    _configure_losses(p)
    p.set_defaults(size=384)


@command("demo", "stylise the bundled Tübingen photo with a bundled painting", _configure_demo)
def demo(args: argparse.Namespace) -> int:
    style = EXAMPLES / f"{args.style}.jpg"
    if not style.is_file():
        raise BrushworkError(f"no bundled style {args.style!r}; see `brushwork demo -h`")
    content = EXAMPLES / "tubingen.jpg"
    print(f"brushwork demo: {content.name} in the style of {style.stem}, {args.size} px",
          file=sys.stderr)
    return _run_stylize(args, str(content), [str(style)], args.output)
