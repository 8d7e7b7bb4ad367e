"""Speed of one-pass universal stylisation (``brushwork fast STYLE_IMAGE``) on this machine.

With ``--decoders DIR`` it times those decoder files; otherwise untrained decoders of
``--layers`` at ``--width`` (speed does not depend on the weights), so the figure for
decoders not trained yet can be had now. It prints the CPU kind first (as
compare_luan.py), each decoder's size, then:

* 512x512: the median over ``--runs`` of the wall and CPU time of taking the style (one
  encoder pass over the style image at ``--style-size``) and stylising the bundled
  Tübingen photo: every level, encode -> transform -> decode, and the colour step;
* 640x360: frames per second on frames of that size, the style taken once.

    nice -n 19 python benchmarks/bench_universal.py --threads 1 --layers relu1_1,relu2_1,relu3_1
    python benchmarks/bench_universal.py --decoders src/brushwork/models/decoders
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from compare_luan import cpu_kind  # noqa: E402

from brushwork import io  # noqa: E402
from brushwork.fast.stylise import FastOptions  # noqa: E402
from brushwork.fast.universal import (  # noqa: E402
    DECODER_LAYERS,
    Decoder,
    DecoderModel,
    UniversalStylist,
    find_decoders,
)

EXAMPLES = io.EXAMPLES


def decoders(args: argparse.Namespace) -> dict[str, DecoderModel]:
    """--decoders' files, else untrained decoders of --layers at --width."""
    if args.decoders:
        return find_decoders(args.decoders)
    return {layer: DecoderModel(Decoder(layer, args.width).eval())
            for layer in args.layers.split(",")}


def timed(fn) -> tuple[float, float]:
    """Wall and CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--decoders", metavar="DIR", help="folder of decoder files")
    p.add_argument("--layers", default=",".join(DECODER_LAYERS),
                   help="untrained decoders of these layers [%(default)s]")
    p.add_argument("--width", type=float, default=0.5, help="their width [%(default)s]")
    p.add_argument("--transform", choices=("wct", "adain"), default="wct")
    p.add_argument("--style", default=str(EXAMPLES / "starry_night.jpg"))
    p.add_argument("--style-size", type=int, default=512)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--frames", type=int, default=8, help="640x360 frames to time")
    p.add_argument("--threads", type=int, help="torch threads [torch's default]")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"CPU: {cpu_kind()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    found = decoders(a)
    for layer, d in found.items():
        n = sum(t.numel() for t in d.net.parameters())
        print(f"  decoder {layer}: width {d.net.width:g}, {n / 1e6:.3f} M parameters, "
              f"{2 * n / 1e6:.2f} MB as a float16 file" + (f" ({d.path})" if d.path else ""))
    stylist = UniversalStylist(a.style, found, FastOptions(device="cpu"), a.style_size,
                               a.transform)
    style = io.load_image(a.style, a.style_size)
    photo = io.load_image(EXAMPLES / "tubingen.jpg")
    square = torch.nn.functional.interpolate(photo, size=(512, 512), mode="bilinear",
                                             align_corners=False).clamp(0, 1)
    stylist(square)  # warm-up: first-call allocations and kernel choices
    runs = [timed(lambda: (stylist.use_style(style), stylist(square))) for _ in range(a.runs)]
    wall = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[1] for r in runs)
    print(f"512x512, {a.transform}, levels {','.join(stylist.levels)}: {wall:.2f} s wall, "
          f"{cpu:.2f} s CPU (median of {a.runs}; style features included)")
    frame = torch.nn.functional.interpolate(photo, size=(360, 640), mode="bilinear",
                                            align_corners=False).clamp(0, 1)
    wall, cpu = timed(lambda: [stylist(frame) for _ in range(a.frames)])
    print(f"640x360: {a.frames / wall:.2f} frames/s ({cpu / a.frames:.2f} s CPU per frame)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
