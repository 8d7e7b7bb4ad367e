"""What every command shares: the registry, the argument groups and types, and the run
wrapper that gives each pixel-optimising command checkpoints, --resume, --save-every and
the keep-what-you-have behaviour on Ctrl-C.

A floor below the command modules (``brushwork.floors``): they import it, never each other,
and ``cli`` reads the registry.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import torch

from brushwork import io
from brushwork.errors import BrushworkError
from brushwork.optimise import Callback, Checkpoint, Interrupted, Snapshots, changed_settings
from brushwork.quality import Report
from brushwork.signals import shielded, signum_of

Handler = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Handler]] = {}


def command(name: str, help_text: str, configure: Callable[[argparse.ArgumentParser], None]):
    """Register a subcommand: its parser setup and the function that runs it."""
    def register(fn: Handler) -> Handler:
        COMMANDS[name] = (help_text, configure, fn)
        return fn
    return register


def float_list(text: str) -> tuple[float, ...]:
    """Numbers separated by commas or spaces: a flag with one value per layer or style."""
    try:
        return tuple(float(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of numbers") from None


def name_list(text: str) -> tuple[str, ...]:
    """Names separated by commas or spaces: a flag naming VGG layers."""
    return tuple(v for v in text.replace(",", " ").split() if v)


def iteration_counts(text: str) -> int | tuple[int, ...]:
    """One total of steps, or one count per scale (coarse first)."""
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
        g.add_argument(f"--{term}-layers", type=name_list, default=layers,
                       help=f"comma-separated [{','.join(layers)}]")
        if weights:
            given = getattr(defaults, f"{term}_layer_weights")
            g.add_argument(f"--{term}-layer-weights", type=float_list, default=given,
                           help=f"one per {term} layer "
                                f"[{','.join(map('{:g}'.format, given)) if given else 'equal'}]")


def add_report_arg(p: argparse.ArgumentParser) -> None:
    """--report: the quality report (``brushwork score``) printed at the end and kept in the
    PNG's metadata beside the settings."""
    p.add_argument("--report", action="store_true",
                   help="print the quality report of the result at the end (as `brushwork "
                        "score` gives it) and keep it in the PNG's metadata")


def add_optimisation_args(p: argparse.ArgumentParser, defaults,
                          inits: str = "content, noise, style") -> None:
    """Flags shared by every pixel-optimising command (stylize, photo, reconstruct);
    ``inits`` names the starting images the command's --init accepts besides a file."""
    g = p.add_argument_group("optimisation")
    g.add_argument("--size", type=int, default=defaults.size,
                   help="longest side of the output in pixels [%(default)s]")
    g.add_argument("--iterations", "--num-iterations", type=iteration_counts,
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


#: Settings that say what a run computes (its inputs and its schedule's sizes): a
#: checkpoint that differs in one of them belongs to another run.
RUN_IDENTITY = ("content", "styles", "style", "content_mask", "style_mask", "image", "size",
                "scales")
#: The settings that name input files: a checkpoint compares what the files hold, so that
#: another spelling of a path (./a.jpg, /abs/a.jpg) is the same run and a file replaced at
#: the same path is not.
INPUT_FILES = ("content", "styles", "style", "content_mask", "style_mask", "image")


def fingerprints(settings: dict) -> dict[str, list[str]]:
    """A digest of every input file a run's settings name, keyed by setting."""
    found: dict[str, list[str]] = {}
    for key in INPUT_FILES:
        value = settings.get(key)
        paths = value if isinstance(value, list | tuple) else [value]
        digests = [hashlib.sha256(Path(v).read_bytes()).hexdigest()[:16]
                   for v in paths if isinstance(v, str) and Path(v).is_file()]
        if digests:
            found[key] = digests
    return found


def _check_resume(path: Path, saved: dict, now: dict) -> None:
    """Refuse another run's checkpoint; name the settings that changed (weights, say)."""
    if "fingerprints" in saved:
        other = [k for k in sorted(set(saved["fingerprints"]) | set(now["fingerprints"]))
                 if saved["fingerprints"].get(k) != now["fingerprints"].get(k)]
        changed = changed_settings(saved, now, free=(*INPUT_FILES, "fingerprints"))
    else:  # written before files were fingerprinted: compared by name
        changed = changed_settings(saved, now, free=("fingerprints",))
        other = [k for k in changed if k in INPUT_FILES]
    # Keys a checkpoint lacks (written before they were recorded) cannot be held against it.
    other += [k for k in changed if k in RUN_IDENTITY and k in saved and k not in other]
    if other:
        raise BrushworkError(f"{path}: a checkpoint of another run (differing: "
                             f"{', '.join(other)}); resume with the same input files, --size "
                             "and --scales, or delete it to start again")
    changed = [k for k in changed if k not in other]
    if changed:
        warnings.warn(f"resuming with changed settings: {', '.join(changed)}", stacklevel=2)


def _partial_path(output: Path) -> Path:
    """Where an interrupted run's image goes: the output, unless a finished result (any file
    but an earlier partial image) is there, which a partial image must not replace."""
    if not output.exists():
        return output
    try:
        if io.read_metadata(output).get("partial"):
            return output
    except Exception:  # not an image Pillow reads: it is the user's, keep it
        pass
    return output.with_name(f"{output.stem}.partial{output.suffix}")


def _check_side_files(args: argparse.Namespace, output: Path, ckpt_path: Path) -> None:
    """Files of the user's that this run would write over, refused before any work."""
    if ckpt_path.is_dir():
        raise BrushworkError(f"{ckpt_path}: the checkpoint path is a folder; move it or "
                             "choose another -o")
    if not args.resume and ckpt_path.exists():
        raise BrushworkError(f"{ckpt_path}: an interrupted run left this checkpoint; continue "
                             "it with the same command and --resume, or delete it to start "
                             "again")
    if args.save_every and not args.resume:
        taken = sorted(output.parent.glob(f"{glob.escape(output.stem)}_[0-9][0-9][0-9][0-9]"
                                          f"[0-9]{glob.escape(output.suffix)}"))
        if taken:
            raise BrushworkError(f"{taken[0]}: --save-every would write over this and "
                                 f"{len(taken) - 1} more images of an earlier run; move them "
                                 "or choose another -o")


def run_with_snapshots(args: argparse.Namespace, output: Path, settings: dict,
                       work: Callable[[Sequence[Callback], Checkpoint | None], torch.Tensor],
                       extra_callbacks: Sequence[Callback] = (),
                       report: Callable[[torch.Tensor], Report] | None = None) -> int:
    """Run an optimisation with checkpoints and interruption handling, then save the output.

    Shared by every command that optimises pixels, so each gets --resume, --save-every
    and the keep-what-you-have behaviour on Ctrl-C or a termination signal: during the
    optimisation the image so far and a checkpoint are saved; after it (``work``'s later
    stages, the save) the finished optimisation is already in the checkpoint. ``report``,
    when given, judges the result before the save, so that its figures go into the file.
    """
    io.output_format(output)  # fail on a bad output name before any work
    ckpt_path = Snapshots.checkpoint_path(output)
    _check_side_files(args, output, ckpt_path)
    settings_kept = {**settings, "fingerprints": fingerprints(settings)}
    resume = None
    if args.resume:
        resume = Checkpoint.load(ckpt_path)
        _check_resume(ckpt_path, resume.settings, settings_kept)
    snapshots = Snapshots(output, settings_kept, args.save_every, args.checkpoint_every,
                          args.checkpoint_minutes)
    callbacks: list[Callback] = [snapshots, *extra_callbacks]
    saving, judged = False, None
    try:
        image = work(callbacks, resume)
        if report is not None:
            judged = report(image)
            settings = {**settings, "report": judged.figures}
        saving = True
        io.save_image(image, output, settings)
    except Interrupted as stop:
        with shielded():  # a second signal waits until the work so far is on disk
            partial = _partial_path(output)
            io.save_image(stop.image, partial, {**settings, "partial": True})
            replace(stop.checkpoint, settings=settings_kept).save(ckpt_path)
        kept = "" if partial == output else f" (beside {output}, which is kept)"
        print(f"brushwork: interrupted ({stop.reason}); image so far saved to {partial}{kept}; "
              "continue with the same command and --resume", file=sys.stderr)
        return 128 + stop.signum
    except KeyboardInterrupt as stop:
        if not ckpt_path.exists():
            raise
        print(f"brushwork: interrupted; the optimisation so far is kept in {ckpt_path}: the "
              "same command with --resume goes on from there", file=sys.stderr)
        return 128 + signum_of(stop)
    except BrushworkError as exc:
        if saving and ckpt_path.exists():  # the result could not be written (a full disk)
            raise BrushworkError(f"{exc}; the run's work is kept in {ckpt_path}: run the same "
                                 "command with --resume once that is mended") from None
        raise
    ckpt_path.unlink(missing_ok=True)
    print(f"wrote {output}")
    if judged is not None:
        print(judged.text())
    return 0
