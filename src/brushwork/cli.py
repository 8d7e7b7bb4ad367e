"""The `brushwork` command: argument parsing only; every command calls into the modules.

Errors the user can fix arrive as ``BrushworkError`` and are printed as one line
(``brushwork: ...``) with exit status 2, as are argparse's own (``Parser``); Ctrl-C, SIGTERM
or SIGHUP during a run saves the image so far and a checkpoint, and exits with status 128
plus the signal's number (130 for Ctrl-C); output into a pipe whose reader has gone
(``| head``) ends quietly with status 141.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from brushwork import signals
from brushwork.errors import BrushworkError

EXAMPLES = Path(__file__).parent / "examples"
Handler = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Handler]] = {}


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors, like brushwork's own: the usage is a -h away."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} -h)\n")


def command(name: str, help_text: str, configure: Callable[[argparse.ArgumentParser], None]):
    """Register a subcommand: its parser setup and the function that runs it."""
    def register(fn: Handler) -> Handler:
        COMMANDS[name] = (help_text, configure, fn)
        return fn
    return register


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of numbers") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(v for v in text.replace(",", " ").split() if v)


def _iterations(text: str) -> int | tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number, or one per scale") from None
    return values[0] if len(values) == 1 else values


def add_weight_args(g: argparse._ArgumentGroup, defaults) -> None:
    """--content-weight, --style-weight, --tv-weight: the balance every loss shares."""
    g.add_argument("--content-weight", type=float, default=defaults.content_weight)
    g.add_argument("--style-weight", type=float, default=defaults.style_weight)
    g.add_argument("--tv-weight", type=float, default=defaults.tv_weight)


def add_layer_args(g: argparse._ArgumentGroup, defaults, weights: bool = True) -> None:
    """The VGG layers of the content and style terms and (``weights``) their weights."""
    for term in ("content", "style"):
        layers = getattr(defaults, f"{term}_layers")
        g.add_argument(f"--{term}-layers", type=_names, default=layers,
                       help=f"comma-separated [{','.join(layers)}]")
        if weights:
            given = getattr(defaults, f"{term}_layer_weights")
            g.add_argument(f"--{term}-layer-weights", type=_floats, default=given,
                           help=f"one per {term} layer "
                                f"[{','.join(map('{:g}'.format, given)) if given else 'equal'}]")


def add_optimisation_args(p: argparse.ArgumentParser, defaults,
                          inits: str = "content, noise, style") -> None:
    """Flags shared by every pixel-optimising command (stylize, photo, reconstruct);
    ``inits`` names the starting images the command's --init accepts besides a file."""
    g = p.add_argument_group("optimisation")
    g.add_argument("--size", type=int, default=defaults.size,
                   help="longest side of the output in pixels [%(default)s]")
    g.add_argument("--iterations", "--num-iterations", type=_iterations,
                   default=defaults.iterations,
                   help="total steps, split over the scales, or one count per scale "
                        "(coarse first, comma-separated) [%(default)s]")
    g.add_argument("--scales", type=int, default=defaults.scales,
                   help="levels of the coarse-to-fine pyramid, sqrt(2) apart [%(default)s]")
    g.add_argument("--optimizer", choices=("lbfgs", "adam"), default=defaults.optimizer)
    g.add_argument("--lr", type=float, default=None,
                   help="step size (L-BFGS 1.0, Adam 0.02 unless given)")
    g.add_argument("--init", default=defaults.init,
                   help=f"{inits}, or an image file [%(default)s]")
    g.add_argument("--seed", type=int, default=defaults.seed)
    g.add_argument("--pooling", choices=("max", "avg"), default=defaults.pooling)
    g.add_argument("--device", default=defaults.device, help="auto, cpu, cuda, cuda:N")
    g.add_argument("--precision", default=defaults.precision,
                   choices=("auto", "float32", "bfloat16", "float16"),
                   help="network precision; auto uses bf16/fp16 only where the hardware "
                        "has it [%(default)s]")
    g.add_argument("--weights", default=None, help="VGG-19 weights file (.h5, .mat or .pt)")
    g.add_argument("--save-every", type=int, default=0, metavar="N",
                   help="write the image every N steps next to the output")
    g.add_argument("--checkpoint-every", type=int, default=25, metavar="N",
                   help="write OUTPUT.ckpt every N steps for --resume; 0 = only by time "
                        "(--checkpoint-minutes) [%(default)s]")
    g.add_argument("--checkpoint-minutes", type=float, default=5.0, metavar="M",
                   help="also write it when M minutes have passed since the last one, for "
                        "large sizes where a step takes minutes; 0 = off [%(default)s]")
    g.add_argument("--resume", action="store_true",
                   help="continue from OUTPUT.ckpt left by an interrupted run")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.add_argument("--record", metavar="FILE", help="save the image as it evolves: a .gif, "
                   "or an .mp4 with imageio-ffmpeg")
    g.add_argument("--record-frames", type=int, default=60, metavar="N",
                   help="frames in the recording, spread evenly over the run [%(default)s]")
    g.add_argument("--plot", metavar="FILE", help="save the loss curves per term as an image "
                   "(needs matplotlib)")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `brushwork` script."""
    import brushwork.commands  # noqa: F401  (registers the subcommands)

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].startswith("--") and argv[0] not in ("-h", "--help", "--version"):
        argv = ["stylize", *argv]  # neural_style.py spelling: brushwork --content ... --styles
    parser = Parser(prog="brushwork", description="Neural style transfer: artistic (Gatys), "
                    "photorealistic (Luan), fast (Johnson), and a look inside VGG-19. "
                    "`brushwork COMMAND -h` for each command.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parsers = {}
    for name, (help_text, configure, _) in COMMANDS.items():
        parsers[name] = sub.add_parser(name, help=help_text, description=help_text)
        configure(parsers[name])
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the subcommand, whose -h lists what it does accept
        parsers[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    if not args.command:
        parser.print_help()
        return 2
    warnings.filterwarnings("default")
    warnings.formatwarning = lambda msg, *a, **k: f"brushwork: warning: {msg}\n"
    try:
        with signals.ending_as_interrupt():
            _check_numbers(args)
            _check_outputs(args)
            code = COMMANDS[args.command][2](args)
        sys.stdout.flush()  # inside the try: a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:  # the reader went away (`brushwork models | head -1`): fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a shell reports a process ended by SIGPIPE
    except BrushworkError as exc:
        print(f"brushwork: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print("brushwork: interrupted", file=sys.stderr)
        return 128 + signals.signum_of(exc)


#: Every flag, in any command, that names a file or folder the command will write.
OUTPUT_FLAGS = ("output", "composite_output", "onnx", "record", "plot", "checkpoint",
                "preview_dir", "sheet")


#: The output flags that may name a folder (fast's -o takes one for a folder of images).
FOLDER_OUTPUTS = {("fast", "output"), ("train", "preview_dir")}


def _values(value: object) -> list:
    """A flag's value as a list: the items of a list-valued flag, else the value alone."""
    return list(value) if isinstance(value, list | tuple) else [value]


def _check_numbers(args: argparse.Namespace) -> None:
    """NaN passes every range check (``nan < 0`` is false) and inf overflows later, deep in
    the run: no flag of any command means either, so both are refused here, once."""
    for name, value in vars(args).items():
        for v in _values(value):
            bad = (isinstance(v, float) and not math.isfinite(v)) or (
                isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 2**63)
            if bad:
                raise BrushworkError(f"--{name.replace('_', '-')} {v}: give a finite number"
                                     + (" below 2**63" if isinstance(v, int) else ""))


def _check_outputs(args: argparse.Namespace) -> None:
    """An output that cannot be written, that is a folder where a file is meant, or that is
    one of the command's own inputs fails in the first second, not after (or by) the run."""
    from brushwork.io import check_replaceable, check_writable

    inputs = {os.path.realpath(v): name for name, value in vars(args).items()
              if name not in OUTPUT_FLAGS for v in _values(value)
              if isinstance(v, str) and os.path.isfile(v)}
    written: dict[str, str] = {}
    for flag in OUTPUT_FLAGS:
        path = getattr(args, flag, None)
        if not path:
            continue
        real, spelled = os.path.realpath(path), "-o" if flag == "output" else \
            "--" + flag.replace("_", "-")
        if os.path.isdir(path) and (args.command, flag) not in FOLDER_OUTPUTS:
            raise BrushworkError(f"{spelled} {path}: that is a folder; name the file to write "
                                 "(a path inside it, or another name)")
        if real in inputs:
            raise BrushworkError(f"{spelled} {path}: that is also an input "
                                 f"({inputs[real].replace('_', '-')}); give another output "
                                 "name so that the input is kept")
        if real in written:
            raise BrushworkError(f"{spelled} {path}: {written[real]} writes there too; give "
                                 "each output its own name")
        written[real] = spelled
        check_writable(path)
        check_replaceable(path, spelled)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("brushwork")
    except PackageNotFoundError:
        return "unknown"
