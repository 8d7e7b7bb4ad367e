"""Artistic transfer of a video by optimisation (Ruder, Dosovitskiy & Brox 2016).

Stylising each frame on its own flickers: the optimiser lands in another local minimum for
every frame. Here each frame after the first starts from the previous stylised frame
warped along the optical flow of the input frames (``video.TemporalFilter.flow_and_mask``)
where the forward-backward check says the pixel was visible, and from the content frame
elsewhere; a temporal term, weight * mean(mask * (x - warped)^2), keeps it near that warp
in the one weighted sum of the loss. The first frame gets the full schedule; later frames,
which start close to their answer, fewer steps at full size only.

Finished frames are kept as PNGs in ``OUTPUT.frames/`` (each written atomically), so a run
ended by Ctrl-C, a signal or a crash resumes at the first unfinished frame; the folder is
removed once the video (with the source's sound) is encoded.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from brushwork import io
from brushwork.artistic import ExtraTerms, StyleOptions, stylize_tensor
from brushwork.errors import BrushworkError
from brushwork.optimise import Scale, Step, changed_settings, pyramid, resize
from brushwork.options import require
from brushwork.video import (
    VIDEO_SUFFIXES,
    TemporalFilter,
    _cv2,
    frame_writer,
    is_video,
    probe,
    read_frames,
)

#: Default weight of the temporal term: strong enough to hold visible pixels to the warp
#: (the term is a mean of squared 0..1 differences, so it is small) without freezing them.
TEMPORAL_WEIGHT = 1000.0
#: Default steps for each frame after the first, which starts near its answer.
FRAME_ITERATIONS = 30


@dataclass
class VideoOptResult:
    """What a run did: the frames of the clip, those stylised by this run (a resumed run
    skips the finished ones), its seconds, and the flicker figures (mean warping error of
    the input and of the output, as ``video.TemporalFilter.figures`` gives them)."""

    frames: int
    computed: list[int]
    seconds: float
    flicker: dict[str, float]
    audio: bool

    @property
    def seconds_per_frame(self) -> float:
        return self.seconds / len(self.computed) if self.computed else 0.0


def frames_folder(output: str | os.PathLike) -> Path:
    """Where the finished frames of a run on ``output`` are kept until it is encoded."""
    return Path(f"{output}.frames")


def frame_path(folder: Path, index: int) -> Path:
    return folder / f"{index:05d}.png"


def finished_frames(folder: Path) -> int:
    """How many frames, from the first on without a gap, a run has finished."""
    done = 0
    while frame_path(folder, done).is_file():
        done += 1
    return done


def _open_folder(folder: Path, settings: dict, resume: bool) -> int:
    """Make the side folder or, resuming, check that it is this run's; the frames done."""
    record = folder / "settings.json"
    if folder.exists() and not folder.is_dir():
        raise BrushworkError(f"{folder}: a file is where the frames of the run go; move it or "
                             "choose another -o")
    if not resume:
        if folder.exists():
            raise BrushworkError(f"{folder}: an interrupted run left its frames here; continue "
                                 "it with the same command and --resume, or delete the folder "
                                 "to start again")
        folder.mkdir(parents=True)
        io.atomic_write(record, lambda tmp: Path(tmp).write_text(json.dumps(settings)))
        return 0
    if not record.is_file():
        raise BrushworkError(f"{folder}: no frames of an interrupted run to resume; run "
                             "without --resume")
    changed = changed_settings(json.loads(record.read_text()), settings)
    if changed:
        raise BrushworkError(f"{folder}: the frames of another run (differing: "
                             f"{', '.join(changed)}); resume with the same input and settings, "
                             "or delete the folder to start again")
    return finished_frames(folder)


def temporal_terms(warped: torch.Tensor, mask: torch.Tensor,
                   weight: float) -> Callable[[Scale], ExtraTerms]:
    """The temporal term of each scale: weight * mean(mask * (x - warped)^2)."""
    def for_scale(scale: Scale) -> ExtraTerms:
        w = resize(warped, scale.height, scale.width)
        m = mask if mask.shape[-2:] == (scale.height, scale.width) else F.interpolate(
            mask, size=(scale.height, scale.width), mode="bilinear", align_corners=False)
        return {"temporal": (weight, lambda x: (m * (x - w).pow(2)).mean())}
    return for_scale


def _tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, C) float array -> (1, C, H, W) tensor."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().contiguous()


def stylize_video(content: str | os.PathLike, styles: io.ImageLike | Sequence[io.ImageLike],
                  output: str | os.PathLike, temporal_weight: float = TEMPORAL_WEIGHT,
                  frame_iterations: int = FRAME_ITERATIONS, independent: bool = False,
                  resume: bool = False, progress: bool = True,
                  on_frame: Callable[[int], None] | None = None,
                  **options: object) -> VideoOptResult:
    """Stylise every frame of the video ``content`` into the video ``output`` (written
    atomically, with the source's sound); options as in ``StyleOptions``.

    ``independent`` stylises every frame from its content with the full schedule and no
    temporal term (the flickering baseline); ``resume`` continues an interrupted run from
    its ``OUTPUT.frames/`` folder; ``on_frame`` is told each frame index this run finishes.
    A clip of one image (``brushwork.video.pan_clip``) is a quick test:

    >>> import brushwork
    >>> from brushwork.video import pan_clip
    >>> clip = pan_clip(brushwork.EXAMPLES / "tubingen.jpg", "clip.mp4", 128, 96, 8)
    >>> result = brushwork.stylize_video(clip, brushwork.EXAMPLES / "starry_night.jpg",
    ...                                  "out.mp4", size=128, iterations=60)
    >>> result.flicker["output"], result.seconds_per_frame  # doctest: +SKIP
    """
    opts = StyleOptions(**options).check()  # type: ignore[arg-type]
    require("temporal_weight", temporal_weight, 0)
    if isinstance(frame_iterations, bool) or not isinstance(frame_iterations, int) \
            or frame_iterations < 1:
        raise BrushworkError(f"--frame-iterations {frame_iterations}: give a whole number of "
                             "steps of at least 1, e.g. 30")
    output = Path(output)
    if not is_video(output):
        raise BrushworkError(f"{output}: a video is written as a video; give -o a "
                             f"{', '.join(VIDEO_SUFFIXES)} file")
    if isinstance(styles, str | os.PathLike | Image.Image | torch.Tensor):
        styles = [styles]
    style_t = [io.as_tensor(s) for s in styles]
    info = probe(content)  # a one-line error for what is not a video
    frames = read_frames(content, opts.size)
    first = next(frames)  # a video without frames fails here, before anything is written
    cv2 = _cv2()  # the one place that says how to install OpenCV

    source = Path(content)
    settings = {**opts.settings(), "temporal_weight": temporal_weight,
                "frame_iterations": frame_iterations, "independent": independent,
                "content": str(source.resolve()), "content_bytes": source.stat().st_size,
                "styles": [str(s) if isinstance(s, str | os.PathLike) else "in memory"
                           for s in styles]}
    folder = frames_folder(output)
    done = _open_folder(folder, settings, resume)
    later = replace(opts, scales=1, iterations=frame_iterations)
    h, w = first.shape[:2]
    first_steps = sum(s.iterations for s in pyramid(h, w, opts.scales, opts.iterations))
    per_frame = first_steps if independent else frame_iterations
    steps = [first_steps] + [per_frame] * max(0, info.frames - 1)
    bar = tqdm(total=sum(steps) if info.frames else None, initial=sum(steps[:done]),
               unit="it", desc="clip", disable=not progress or None, dynamic_ncols=True)
    flow = TemporalFilter()
    errors: dict[str, list[float]] = {"input": [], "output": []}
    computed: list[int] = []
    previous: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    start = time.perf_counter()

    def step(_: Step) -> None:
        bar.update(1)

    count = 0
    with bar:
        for index, frame in enumerate(itertools.chain([first], frames)):
            count = index + 1
            grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
            image = frame.astype(np.float32) / 255.0
            carried = None  # the previous result warped onto this frame, and where valid
            if previous is not None:
                p_grey, p_image, p_output = previous
                map_x, map_y, mask = flow.flow_and_mask(grey, p_grey)
                carried = TemporalFilter.warp(p_output, map_x, map_y), mask
                errors["input"].append(TemporalFilter.warping_error(
                    image, TemporalFilter.warp(p_image, map_x, map_y), mask))
            path = frame_path(folder, index)
            if index < done:
                result = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
            else:
                bar.set_description(f"frame {index + 1}/{info.frames or '?'}")
                if carried is None or independent:
                    out = stylize_tensor(_tensor(image), style_t, opts, [step],
                                         progress=progress)
                else:
                    warped, m = _tensor(carried[0]), torch.from_numpy(carried[1])[None, None]
                    out = stylize_tensor(_tensor(image), style_t, later, [step],
                                         progress=progress,
                                         init=m * warped + (1 - m) * _tensor(image),
                                         extra_terms=temporal_terms(warped, m, temporal_weight))
                picture = io.tensor_to_pil(out.cpu())
                io.save_image(picture, path)
                result = np.asarray(picture, dtype=np.float32) / 255.0
                computed.append(index)
                if on_frame is not None:
                    on_frame(index)
            if carried is not None:
                errors["output"].append(TemporalFilter.warping_error(result, *carried))
            previous = (grey, image, result)
    audio = _encode(folder, count, output, info.fps, content)
    shutil.rmtree(folder)
    return VideoOptResult(count, computed, time.perf_counter() - start,
                          {k: float(np.mean(v)) for k, v in errors.items() if v}, audio)


def _encode(folder: Path, count: int, output: Path, fps: float,
            sound: str | os.PathLike) -> bool:
    """The finished frames into ``output``, atomically, with the sound of ``sound``; whether
    the sound was kept."""
    kept = {"audio": False}

    def write(tmp: str) -> None:
        height, width = np.asarray(Image.open(frame_path(folder, 0))).shape[:2]
        with frame_writer(tmp, fps, width, height, audio_from=sound) as writer:
            kept["audio"] = writer.keeps_audio
            for index in range(count):
                writer.write(np.asarray(Image.open(frame_path(folder, index)).convert("RGB")))

    io.atomic_write(output, write)
    return kept["audio"]
