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
import re
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from brushwork import io
from brushwork.artistic import ExtraTerms, StyleOptions, stylize_tensor
from brushwork.errors import BrushworkError, brief
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


#: The settings of a run, kept beside its finished frames and checked by --resume.
RECORD = ".brushwork-run.json"


@dataclass
class Frames:
    """Where a run's finished frames go: for a video, numbered PNGs in ``OUTPUT.frames/``
    (removed once the video is encoded); for a folder of frames, the output folder itself,
    each frame a PNG under its input's name."""

    folder: Path
    names: list[str] | None = None  # None: numbered

    def path(self, index: int) -> Path:
        return self.folder / (self.names[index] if self.names else f"{index:05d}.png")

    def finished(self) -> int:
        """How many frames, from the first on without a gap, a run has finished."""
        done = 0
        while (self.names is None or done < len(self.names)) and self.path(done).is_file():
            done += 1
        return done


def frame_files(folder: str | os.PathLike) -> list[Path]:
    """The image files of a folder of frames in their order (numbers in names compared as
    numbers, so frame_9 comes before frame_10), refused if none or of unequal sizes."""
    folder = Path(folder)
    files = sorted((f for f in folder.iterdir()
                    if f.is_file() and f.suffix.lower() in io.IMAGE_SUFFIXES),
                   key=lambda f: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", f.name)])
    if not files:
        raise BrushworkError(f"{folder}: no frames (image files {', '.join(io.IMAGE_SUFFIXES)}) "
                             "to stylise")
    stems = [f.stem for f in files]
    twins = sorted({s for s in stems if stems.count(s) > 1})
    if twins:
        raise BrushworkError(f"{folder}: frames {brief(twins)} are there twice, with other "
                             "suffixes; keep one of each")
    sizes = {}
    for f in files:
        try:
            with Image.open(f) as img:
                sizes.setdefault(img.size, f.name)
        except (OSError, SyntaxError, ValueError):
            raise BrushworkError(f"{f}: not an image Pillow can read; remove it from the "
                                 "frames") from None
    if len(sizes) > 1:
        (a, first), (b, other) = list(sizes.items())[:2]
        raise BrushworkError(f"{folder}: frames of different sizes ({first} is {a[0]}x{a[1]}, "
                             f"{other} is {b[0]}x{b[1]}); give frames of one size")
    return files


def frame_store(content: str | os.PathLike, output: str | os.PathLike) -> Frames:
    """Where the finished frames of a run from ``content`` to ``output`` are kept."""
    if Path(content).is_dir():
        return Frames(Path(output), [f"{f.stem}.png" for f in frame_files(content)])
    return Frames(Path(f"{output}.frames"))


def _open_store(store: Frames, settings: dict, resume: bool) -> int:
    """Make the frames' folder or, resuming, check that it is this run's; the frames done.
    Nothing there is replaced without --resume."""
    folder, record = store.folder, store.folder / RECORD
    if folder.exists() and not folder.is_dir():
        raise BrushworkError(f"{folder}: a file is where the frames of the run go; move it or "
                             "choose another -o")
    if not resume:
        if record.is_file() or (store.names is None and folder.exists()):
            raise BrushworkError(f"{folder}: an interrupted run left its frames here; continue "
                                 "it with the same command and --resume, or delete the folder "
                                 "to start again")
        taken = [n for i, n in enumerate(store.names or ()) if store.path(i).exists()]
        if taken:
            raise BrushworkError(f"{folder}: {brief(taken)} would be replaced; give -o a new "
                                 "or empty folder")
        folder.mkdir(parents=True, exist_ok=True)
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
    return store.finished()


def _folder_frames(files: Sequence[Path], size: int) -> Iterator[np.ndarray]:
    for f in files:
        yield np.asarray(io.resize_to(io.open_image(f), size))


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
    atomically, with the source's sound), or of a folder of frames into the folder
    ``output`` (each frame a PNG of its input's name, written atomically as it is
    finished); options as in ``StyleOptions``.

    ``independent`` stylises every frame from its content with the full schedule and no
    temporal term (the flickering baseline); ``resume`` continues an interrupted run from
    its finished frames (see ``frame_store``); ``on_frame`` is told each frame index this
    run finishes. A clip of one image (``brushwork.video.pan_clip``) is a quick test:

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
    output, source = Path(output), Path(content)
    in_folder = source.is_dir()
    _check_output(source, output, in_folder)
    if isinstance(styles, str | os.PathLike | Image.Image | torch.Tensor):
        styles = [styles]
    style_t = [io.as_tensor(s) for s in styles]
    if in_folder:
        files = frame_files(source)
        frames, count, fps = _folder_frames(files, opts.size), len(files), None
        identity = [[f.name, f.stat().st_size] for f in files]
    else:
        info = probe(content)  # a one-line error for what is not a video
        frames, count, fps = read_frames(content, opts.size), info.frames, info.fps
        identity = source.stat().st_size
    first = next(frames)  # a video without frames fails here, before anything is written
    cv2 = _cv2()  # the one place that says how to install OpenCV

    settings = {**opts.settings(), "temporal_weight": temporal_weight,
                "frame_iterations": frame_iterations, "independent": independent,
                "content": str(source.resolve()), "content_bytes": identity,
                "styles": [str(s) if isinstance(s, str | os.PathLike) else "in memory"
                           for s in styles]}
    store = frame_store(source, output)
    done = _open_store(store, settings, resume)
    later = replace(opts, scales=1, iterations=frame_iterations)
    h, w = first.shape[:2]
    first_steps = sum(s.iterations for s in pyramid(h, w, opts.scales, opts.iterations))
    per_frame = first_steps if independent else frame_iterations
    steps = [first_steps] + [per_frame] * max(0, count - 1)
    bar = tqdm(total=sum(steps) if count else None, initial=sum(steps[:done]),
               unit="it", desc="clip", disable=not progress or None, dynamic_ncols=True)
    flow = TemporalFilter()
    errors: dict[str, list[float]] = {"input": [], "output": []}
    computed: list[int] = []
    previous: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    start = time.perf_counter()

    def step(_: Step) -> None:
        bar.update(1)

    seen = 0
    with bar:
        for index, frame in enumerate(itertools.chain([first], frames)):
            seen = index + 1
            grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
            image = frame.astype(np.float32) / 255.0
            carried = None  # the previous result warped onto this frame, and where valid
            if previous is not None:
                p_grey, p_image, p_output = previous
                map_x, map_y, mask = flow.flow_and_mask(grey, p_grey)
                carried = TemporalFilter.warp(p_output, map_x, map_y), mask
                errors["input"].append(TemporalFilter.warping_error(
                    image, TemporalFilter.warp(p_image, map_x, map_y), mask))
            path = store.path(index)
            if index < done:
                result = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
            else:
                bar.set_description(f"frame {index + 1}/{count or '?'}")
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
    audio = False
    if fps is None:
        (store.folder / RECORD).unlink()
    else:
        audio = _encode(store, seen, output, fps, content)
        shutil.rmtree(store.folder)
    return VideoOptResult(seen, computed, time.perf_counter() - start,
                          {k: float(np.mean(v)) for k, v in errors.items() if v}, audio)


def _check_output(source: Path, output: Path, in_folder: bool) -> None:
    """A video is written as a video, a folder of frames as a folder: refused otherwise."""
    if not in_folder and not is_video(output):
        raise BrushworkError(f"{output}: a video is written as a video; give -o a "
                             f"{', '.join(VIDEO_SUFFIXES)} file")
    if in_folder and (output.is_file() or is_video(output)
                      or output.suffix.lower() in io.IMAGE_SUFFIXES):
        raise BrushworkError(f"{output}: a folder of frames ({source}) is written as a folder "
                             "of frames; give -o a folder")


def _encode(store: Frames, count: int, output: Path, fps: float,
            sound: str | os.PathLike) -> bool:
    """The finished frames into ``output``, atomically, with the sound of ``sound``; whether
    the sound was kept."""
    kept = {"audio": False}

    def write(tmp: str) -> None:
        height, width = np.asarray(Image.open(store.path(0))).shape[:2]
        with frame_writer(tmp, fps, width, height, audio_from=sound) as writer:
            kept["audio"] = writer.keeps_audio
            for index in range(count):
                writer.write(np.asarray(Image.open(store.path(index)).convert("RGB")))

    io.atomic_write(output, write)
    return kept["audio"]
