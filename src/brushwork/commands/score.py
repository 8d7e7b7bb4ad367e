"""`brushwork score`: the quality report of a result against its content and style."""

from __future__ import annotations

import argparse

from brushwork import io
from brushwork.commands.common import command
from brushwork.quality import EVAL_SIZE, score


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("result", help="the stylised image to judge")
    p.add_argument("--content", required=True, help="the content photo it was made from")
    p.add_argument("--style", required=True, help="the style image (or reference photo)")
    p.add_argument("--content-mask", help="label image of the content: colours region to region")
    p.add_argument("--style-mask", help="label image of the style (with --content-mask)")
    p.add_argument("--photo", action="store_true",
                   help="add the matting energy, the photorealism figure (implied by masks)")
    p.add_argument("--eval-size", type=int, default=EVAL_SIZE,
                   help="longest side both images are judged at [%(default)s]")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    p.add_argument("--sheet", metavar="FILE",
                   help="write content | style | result with a bar per figure")


@command("score", "quality report: RESULT --content C --style S [--json] [--sheet FILE]",
         _configure)
def score_command(args: argparse.Namespace) -> int:
    if args.sheet:
        io.output_format(args.sheet)
    report = score(args.result, args.content, args.style, args.eval_size, args.photo,
                   args.content_mask, args.style_mask)
    print(report.json() if args.json else report.text())
    if args.sheet:
        io.save_image(report.sheet(), args.sheet)
        print(f"wrote {args.sheet}")
    return 0
