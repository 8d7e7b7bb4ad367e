"""The `brushwork` command: the entry point that builds the parser from the commands' registry
(``commands.common.COMMANDS``), checks every command's numbers and outputs, and turns errors
and signals into exit statuses.

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
from collections.abc import Sequence
from typing import NoReturn

from brushwork import signals
from brushwork.errors import BrushworkError


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors, like brushwork's own: the usage is a -h away."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} -h)\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `brushwork` script."""
    import brushwork.commands  # noqa: F401  (registers the subcommands)
    from brushwork.commands.common import COMMANDS

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


#: The output flags that may name a folder (fast's and stylize's -o take one for a folder of
#: images or frames; stylize refuses it for a single image itself).
FOLDER_OUTPUTS = {("fast", "output"), ("stylize", "output"), ("train", "preview_dir")}


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
