"""What each mode of the studio asks for and how it calls the Python face.

The page's settings are the keyword arguments of the options classes the command line
fills (``StyleOptions``, ``PhotoOptions``, ``FastOptions``), checked by the same
``check()``; a run is one call of ``brushwork.stylize``, ``brushwork.photo`` or a loaded
fast model, so the studio computes nothing the command line does not. Each result also
gets the command line that makes it again.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image

import brushwork
from brushwork.errors import BrushworkError
from brushwork.optimise import Callback

Options = brushwork.StyleOptions | brushwork.PhotoOptions | brushwork.FastOptions


@dataclass(frozen=True)
class Field:
    """One setting on the page: the options keyword it fills, its label and why one would
    change it; ``main`` settings show, the rest sit behind the page's "advanced" fold."""

    name: str
    label: str
    help: str
    kind: str = "float"          # int, float, floats (a comma list) or choice
    main: bool = False
    choices: tuple[str, ...] = ()


@dataclass
class Inputs:
    """The files of one job, already resolved inside the working folder or the examples."""

    content: Path
    styles: list[Path] = field(default_factory=list)  # artistic: one or more; photo: one
    model: str | None = None                          # fast: a shipped name or a model file
    content_mask: Path | None = None
    style_mask: Path | None = None


COLOUR = Field("preserve_colour", "colour preservation",
               "keep the photo's own colours: none, luminance (paint only the light) or "
               "histogram (the style recoloured to the photo first)", "choice", True,
               ("none", "luminance", "histogram"))
DEVICE = Field("device", "device", "auto takes a CUDA GPU when there is one", "choice",
               choices=("auto", "cpu", "cuda"))
PRECISION = Field("precision", "precision", "auto uses bfloat16/float16 only where the "
                  "hardware runs it natively", "choice",
                  choices=("auto", "float32", "bfloat16", "float16"))
SEED = Field("seed", "seed", "the random start of noise images and automatic regions", "int")
OPTIMISATION = (
    Field("scales", "scales", "levels of the coarse-to-fine pyramid, sqrt(2) apart", "int"),
    Field("content_weight", "content weight", "how much the photo's layout counts"),
    Field("optimizer", "optimizer", "L-BFGS converges in fewer steps; Adam uses less memory",
          "choice", choices=("lbfgs", "adam")),
    Field("pooling", "pooling", "max (the papers') or average pooling in VGG-19", "choice",
          choices=("max", "avg")),
    SEED, DEVICE, PRECISION,
)
ARTISTIC_FIELDS = (
    Field("size", "size", "longest side of the result in pixels; time grows with its square",
          "int", True),
    Field("style_weight", "style strength", "the style term's weight against the content's "
          "(1): higher paints more of the style over the photo", main=True),
    COLOUR,
    Field("iterations", "iterations", "optimiser steps over all scales: more refine detail",
          "int", True),
    Field("tv_weight", "smoothness", "total-variation weight: higher removes fine noise"),
    Field("style_scale", "style scale", "the style image's area relative to the result's: "
          "below 1 gives larger brush strokes"),
    Field("style_blend", "style blend", "one weight per style, comma-separated (equal if "
          "empty)", "floats"),
    Field("init", "start from", "the image the optimisation starts from", "choice",
          choices=("content", "noise", "style")),
    *OPTIMISATION,
)
PHOTO_FIELDS = (
    Field("size", "size", "longest side the transfer runs at, in pixels", "int", True),
    Field("style_weight", "style strength", "how strongly the reference's look is taken "
          "on", main=True),
    Field("matting_iterations", "iterations", "steps with the matting term, which keeps "
          "the result photographic", "int", True),
    Field("regions", "automatic regions", "regions matched between the photos when no "
          "label images are given (1: one global look)", "int", True),
    Field("smooth", "smoothing", "matting smoothing at the output size: damps painted grain "
          "(0 = off)"),
    Field("output_size", "output size", "longest side of the result (empty: the photo's "
          "own)", "int"),
    Field("iterations", "stage-one iterations", "steps without the matting term before it "
          "(0: the region colour start takes their place)", "int"),
    Field("matting_weight", "matting weight", "how strongly edges follow the photo's"),
    *OPTIMISATION,
)
FAST_FIELDS = (
    Field("size", "size", "longest side of the result (empty: the photo's own)", "int", True),
    Field("strength", "style strength", "0 gives the photo, 1 the network's full style",
          main=True),
    COLOUR, DEVICE, PRECISION,
    Field("max_tile", "largest tile", "longest tile side for large images (empty: from free "
          "memory)", "int"),
)


def _convert(spec: Field, value: object) -> object:
    """A value from the page (a JSON number or the text of an input) as the options
    class takes it, or a one-line error naming the setting."""
    try:
        if spec.kind == "int":
            number = float(value)  # type: ignore[arg-type]
            if not number.is_integer():
                raise ValueError
            return int(number)
        if spec.kind == "float":
            return float(value)  # type: ignore[arg-type]
        if spec.kind == "floats":
            return tuple(float(v) for v in str(value).replace(",", " ").split())
    except (TypeError, ValueError):
        whole = "a whole number" if spec.kind == "int" else "a number"
        raise BrushworkError(f"{spec.label}: {value!r} is not {whole}; give "
                             f"{'numbers separated by commas' if spec.kind == 'floats' else whole}"
                             ) from None
    return str(value)


def _flag_value(value: object) -> str:
    """A setting as the command line spells it (lists comma-separated)."""
    if isinstance(value, tuple | list):
        return ",".join(_flag_value(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass
class Mode:
    """One way of making an image: its settings, the call into the face, the metadata its
    PNG carries and the command that repeats it."""

    name: str
    title: str
    subcommand: str
    options_class: type
    fields: tuple[Field, ...]
    call: Callable[[Inputs, dict, Callback], Image.Image]
    inputs_settings: Callable[[Inputs], dict]
    positionals: Callable[[Inputs], list[str]]

    def defaults(self) -> dict[str, object]:
        """The options class's defaults for the page's fields (None: empty on the page)."""
        made = asdict(self.options_class())
        return {f.name: made[f.name] for f in self.fields}

    def options(self, values: dict) -> dict[str, object]:
        """The page's values as checked keyword arguments: unknown names refused, empty
        inputs and defaults left out (so the command line names only what was changed)."""
        specs = {f.name: f for f in self.fields}
        unknown = sorted(set(values) - set(specs))
        if unknown:
            raise BrushworkError(f"{self.title} has no setting {unknown[0]!r}; reload the page")
        defaults = self.defaults()
        kwargs = {}
        for name, value in values.items():
            if value is None or value == "":
                continue
            value = _convert(specs[name], value)
            if value != defaults[name] and not (isinstance(value, tuple)
                                                and list(value) == defaults[name]):
                kwargs[name] = value
        self.checked(kwargs)
        return kwargs

    def checked(self, kwargs: dict) -> Options:
        """The options object, checked as the command line checks its flags."""
        return self.options_class(**kwargs).check()

    def settings(self, inputs: Inputs, kwargs: dict) -> dict:
        """What the result's PNG records: every option and the inputs, as the command
        line records them."""
        options = self.checked(kwargs)
        recorded = options.settings() if isinstance(options, brushwork.StyleOptions) \
            else asdict(options)
        return {**recorded, **self.inputs_settings(inputs)}

    def command(self, inputs: Inputs, kwargs: dict, output: str) -> str:
        """The `brushwork` command line that makes the same image."""
        words = ["brushwork", self.subcommand, *self.positionals(inputs), "-o", output]
        for name, value in kwargs.items():
            words += [f"--{name.replace('_', '-')}", _flag_value(value)]
        return shlex.join(words)


def _stylize(inputs: Inputs, kwargs: dict, callback: Callback) -> Image.Image:
    return brushwork.stylize(inputs.content, inputs.styles, callback=callback, **kwargs)


def _photo(inputs: Inputs, kwargs: dict, callback: Callback) -> Image.Image:
    return brushwork.photo(inputs.content, inputs.styles[0], inputs.content_mask,
                           inputs.style_mask, callback=callback, **kwargs)


#: Loaded fast models by (model, options): loading is most of a fast job's second.
_loaded: dict[tuple, brushwork.Model] = {}


def _fast(inputs: Inputs, kwargs: dict, callback: Callback) -> Image.Image:
    key = (inputs.model, tuple(sorted(kwargs.items())))
    if key not in _loaded:
        if len(_loaded) >= 4:
            _loaded.pop(next(iter(_loaded)))
        _loaded[key] = brushwork.load_model(str(inputs.model), **kwargs)
    return _loaded[key](inputs.content)


def _photo_positionals(inputs: Inputs) -> list[str]:
    masks = ["--content-mask", str(inputs.content_mask), "--style-mask",
             str(inputs.style_mask)] if inputs.content_mask else []
    return [str(inputs.content), str(inputs.styles[0]), *masks]


def _none_if_empty(path: Path | None) -> str | None:
    return None if path is None else str(path)


MODES: dict[str, Mode] = {m.name: m for m in (
    Mode("artistic", "artistic transfer", "stylize", brushwork.StyleOptions, ARTISTIC_FIELDS,
         _stylize,
         lambda i: {"content": str(i.content), "styles": [str(s) for s in i.styles],
                    "style_masks": None},
         lambda i: [str(i.content), *map(str, i.styles)]),
    Mode("photo", "photorealistic transfer", "photo", brushwork.PhotoOptions, PHOTO_FIELDS,
         _photo,
         lambda i: {"content": str(i.content), "style": str(i.styles[0]),
                    "content_mask": _none_if_empty(i.content_mask),
                    "style_mask": _none_if_empty(i.style_mask)},
         _photo_positionals),
    Mode("fast", "fast transfer", "fast", brushwork.FastOptions, FAST_FIELDS, _fast,
         lambda i: {"model": i.model, "content": str(i.content)},
         lambda i: [str(i.model), str(i.content)]),
)}
