"""`brushwork stylize` (artistic transfer) and `brushwork demo` (the same on bundled images)."""

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
from brushwork.artistic import StyleOptions, stylize_tensor
from brushwork.cli import (
    EXAMPLES,
    _floats,
    add_layer_args,
    add_optimisation_args,
    add_weight_args,
    command,
)
from brushwork.colour import COLOUR_MODES
from brushwork.errors import BrushworkError
from brushwork.optimise import Callback, Checkpoint, Interrupted, Snapshots, changed_settings
from brushwork.recording import recording_callbacks
from brushwork.runtime import pick_device
from brushwork.signals import shielded, signum_of

DEFAULTS = StyleOptions()


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("content", nargs="?", help="content photo")
    p.add_argument("styles", nargs="*", help="one or more style images")
    p.add_argument("-o", "--output", help="output image (.png keeps the settings)")
    p.add_argument("--content", dest="content_flag", help="content photo (older spelling)")
    p.add_argument("--styles", "--style", dest="styles_flag", nargs="+",
                   help="style images (older spelling)")
    _configure_losses(p)


def _configure_losses(p: argparse.ArgumentParser) -> None:
    w = p.add_argument_group("losses")
    add_weight_args(w, DEFAULTS)
    add_layer_args(w, DEFAULTS)
    w.add_argument("--style-blend-weights", "--style-blend", type=_floats, default=None,
                   help="one weight per style image [equal]")
    w.add_argument("--style-scale", type=float, default=DEFAULTS.style_scale,
                   help="style image scale relative to the output [%(default)s]")
    w.add_argument("--preserve-colour", "--preserve-color", choices=COLOUR_MODES,
                   default=DEFAULTS.preserve_colour,
                   help="keep the content's colours: luminance-only transfer or "
                        "histogram matching of the style [%(default)s]")
    add_optimisation_args(p, DEFAULTS)
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
                       extra_callbacks: Sequence[Callback] = ()) -> int:
    """Run an optimisation with checkpoints and interruption handling, then save the output.

    Shared by every command that optimises pixels, so each gets --resume, --save-every
    and the keep-what-you-have behaviour on Ctrl-C or a termination signal: during the
    optimisation the image so far and a checkpoint are saved; after it (``work``'s later
    stages, the save) the finished optimisation is already in the checkpoint.
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
    saving = False
    try:
        image = work(callbacks, resume)
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
    return 0


def _run_stylize(args: argparse.Namespace, content: str, styles: list[str], output: str) -> int:
    options = options_from(args)
    if args.dry_run:
        from brushwork import planning

        width, height = io.resize_to(io.open_image(content), options.size).size
        rows = planning.plan(options, height, width)
        print(planning.describe(rows, str(pick_device(options.device))))
        return 0
    content_t = io.load_image(content, options.size)
    style_t = [io.load_image(s) for s in styles]
    settings = {**options.settings(), "content": str(content), "styles": [str(s) for s in styles]}
    return run_with_snapshots(
        args, Path(output), settings,
        lambda callbacks, resume: stylize_tensor(content_t, style_t, options, callbacks, resume,
                                                 progress=not args.quiet),
        recording_callbacks(args.record, args.record_frames, args.plot))


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
    return _run_stylize(args, content, styles, args.output)


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
