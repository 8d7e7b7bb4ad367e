"""brushwork: neural style transfer (artistic, photorealistic, fast) and tools to see inside.

The Python face: every job of the command line as a function that takes paths, Pillow
images or tensors and returns Pillow images (or a small result object). The examples use
the bundled images in ``brushwork.EXAMPLES``:

>>> import brushwork
>>> photo = brushwork.EXAMPLES / "tubingen.jpg"
>>> out = brushwork.stylize(photo, [brushwork.EXAMPLES / "starry_night.jpg"], size=256)
>>> brushwork.score(out, photo, brushwork.EXAMPLES / "starry_night.jpg")["style"]
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from brushwork.artistic import StyleOptions, stylize
from brushwork.artistic_video import VideoOptResult, stylize_video
from brushwork.errors import BrushworkError
from brushwork.fast.model import FastModel
from brushwork.fast.stylise import FastOptions, Model
from brushwork.fast.train import TrainOptions, TrainResult
from brushwork.fast.train import train as _train
from brushwork.inspect import ReconstructOptions, feature_grid, reconstruct
from brushwork.io import EXAMPLES, ImageLike
from brushwork.photo import PhotoOptions
from brushwork.photo import matte as _matte
from brushwork.photo import photo_transfer as photo
from brushwork.quality import Report, score
from brushwork.regions import MaskLike

__all__ = [
    "EXAMPLES", "BrushworkError", "FastOptions", "Model", "PhotoOptions", "ReconstructOptions",
    "Report", "StyleOptions", "TrainOptions", "TrainResult", "VideoOptResult", "fast",
    "feature_grid", "load_model", "matte", "photo", "reconstruct", "score", "stylize",
    "stylize_video", "train",
]


def matte(image: ImageLike, trimap: MaskLike | None = None,
          scribbles: MaskLike | None = None) -> Image.Image:
    """The closed-form alpha matte of ``image`` (greyscale, white = foreground) from a
    trimap or from scribbles (white and black strokes on grey).

    >>> alpha = brushwork.matte("portrait.png", trimap="trimap.png")  # doctest: +SKIP
    """
    alpha = _matte(image, trimap=trimap, scribbles=scribbles)
    return Image.fromarray((alpha * 255.0 + 0.5).astype(np.uint8), "L")


def load_model(model: FastModel | str | os.PathLike, **options: object) -> Model:
    """A fast model (a shipped name such as "starry_night", or a trained file) loaded once;
    call it on images. Options as in FastOptions (strength, preserve_colour, size, ...).

    >>> painter = brushwork.load_model("starry_night", size=256)
    >>> out = painter(brushwork.EXAMPLES / "tubingen.jpg")
    """
    return Model(model, **options)


def fast(model: FastModel | str | os.PathLike, image: ImageLike,
         **options: object) -> Image.Image:
    """One image through a fast model; for many, ``load_model`` once and call it.

    >>> out = brushwork.fast("wave", brushwork.EXAMPLES / "chelsea.jpg", size=256)
    """
    return Model(model, **options)(image)


def train(style: str | os.PathLike, data: str | os.PathLike, output: str | os.PathLike,
          resume: bool = False, **options: object) -> TrainResult:
    """Train a fast network for ``style`` on a folder of photos and save it to ``output``;
    options as in TrainOptions. The result holds the model and the losses per step.

    >>> result = brushwork.train(brushwork.EXAMPLES / "wave.jpg", brushwork.EXAMPLES,
    ...                          "wave.pt", steps=20, size=128, batch_size=2)
    >>> result.model.style, result.history[-1]["total"]
    """
    return _train(TrainOptions(str(style), str(data), str(output), **options),  # type: ignore[arg-type]
                  resume=resume)
