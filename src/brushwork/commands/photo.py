"""`brushwork photo` (photorealistic transfer) and `brushwork matte` (closed-form matting)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from brushwork import io
from brushwork.commands.common import (
    add_layer_args,
    add_optimisation_args,
    add_report_arg,
    add_weight_args,
    command,
    run_with_snapshots,
)
from brushwork.errors import BrushworkError
from brushwork.photo import (
    PhotoOptions,
    finish,
    load_inputs,
    matte,
    photo_tensor,
    read_background,
    replace_background,
)
from brushwork.quality import score
from brushwork.recording import recording_callbacks

DEFAULTS = PhotoOptions()


def _configure_photo(p: argparse.ArgumentParser) -> None:
    p.add_argument("content", help="content photo")
    p.add_argument("style", help="reference photo whose look is transferred")
    p.add_argument("-o", "--output", required=True, help="output image (.png keeps the settings)")
    m = p.add_argument_group("regions")
    m.add_argument("--content-mask", help="colour-coded label image of the content")
    m.add_argument("--style-mask", help="label image of the style: same colour, same region")
    m.add_argument("--regions", type=int, default=DEFAULTS.regions,
                   help="without masks: regions found automatically, 1 = none [%(default)s]")
    w = p.add_argument_group("losses")
    add_weight_args(w, DEFAULTS)
    add_layer_args(w, DEFAULTS)
    w.add_argument("--matting-weight", type=float, default=DEFAULTS.matting_weight,
                   help="weight of the matting-Laplacian (photorealism) term [%(default)s]")
    w.add_argument("--matting-iterations", type=int, default=DEFAULTS.matting_iterations,
                   help="steps of stage two, with the matting term; 0 skips it. "
                        "--iterations gives stage one's, without it (by default none: the "
                        "region colour start takes its place) [%(default)s]")
    w.add_argument("--smooth", type=float, default=DEFAULTS.smooth, metavar="STRENGTH",
                   help="finish with the image nearest the result that is locally affine in "
                        "the content's colours (a matting-Laplacian solve): damps painted "
                        "grain and ragged edges; 0 = off [%(default)s]")
    p.add_argument("--output-size", type=int, metavar="N",
                   help="write the result with longest side N, by default the content's own: "
                        "the transfer runs at --size, is enlarged with the content's detail "
                        "and smoothed there (--smooth), which keeps it photographic (a "
                        "512 px run for a 4000 px photo); N = --size keeps the run's size")
    add_optimisation_args(p, DEFAULTS, inits="regions (each region at its partner's "
                          "colours), content, noise, style")
    add_report_arg(p)


@command("photo", "photorealistic style transfer: CONTENT STYLE -o OUT", _configure_photo)
def photo(args: argparse.Namespace) -> int:
    fields = PhotoOptions.__dataclass_fields__
    options = PhotoOptions(**{k: v for k, v in vars(args).items() if k in fields}).check()
    inputs = load_inputs(args.content, args.style, args.content_mask, args.style_mask,
                         options.size)
    settings = {**options.settings(), "content": args.content, "style": args.style,
                "content_mask": args.content_mask, "style_mask": args.style_mask}
    return run_with_snapshots(
        args, Path(args.output), settings,
        lambda callbacks, resume: finish(photo_tensor(*inputs, options, callbacks, resume,
                                                      progress=not args.quiet),
                                         args.content, options),
        recording_callbacks(args.record, args.record_frames, args.plot),
        (lambda image: score(image, args.content, args.style, photo=True,
                             content_mask=args.content_mask, style_mask=args.style_mask))
        if args.report else None)


def _configure_matte(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", help="photo to cut out")
    marks = p.add_mutually_exclusive_group(required=True)
    marks.add_argument("--trimap", help="white = foreground, black = background, grey = unknown")
    marks.add_argument("--scribbles", help="white and black strokes on a grey canvas")
    p.add_argument("-o", "--output", required=True, help="alpha matte to write (greyscale)")
    p.add_argument("--composite", metavar="BACKGROUND",
                   help="image or colour (e.g. '#00ff00') to put the foreground onto")
    p.add_argument("-o2", "--composite-output", metavar="OUT",
                   help="where to write the composite")


@command("matte", "closed-form alpha matte: IMAGE (--trimap T | --scribbles S) -o ALPHA.png",
         _configure_matte)
def matte_command(args: argparse.Namespace) -> int:
    if bool(args.composite) != bool(args.composite_output):
        raise BrushworkError("--composite BACKGROUND and -o2/--composite-output OUT go together")
    io.output_format(args.output)
    background = None
    if args.composite_output:
        io.output_format(args.composite_output)
        background = read_background(args.composite)
    alpha = matte(args.image, trimap=args.trimap, scribbles=args.scribbles)
    grey = Image.fromarray((alpha * 255.0 + 0.5).astype(np.uint8), "L")
    io.atomic_write(args.output, grey.save)
    print(f"wrote {args.output}")
    if args.composite:
        io.save_image(replace_background(args.image, alpha, background),
                      args.composite_output)
        print(f"wrote {args.composite_output}")
    return 0
