"""Video in and out, and temporal consistency for frame-by-frame fast stylisation.

Frames are read with OpenCV and written through ffmpeg (the system's, else the binary that
the ``imageio-ffmpeg`` package ships), which also copies the source's sound track; without
any ffmpeg, OpenCV's own MPEG-4 writer is used and the sound is lost, with a warning. Both
come with ``pip install 'brushwork[video]'``.

A network stylises each frame on its own, so small changes between frames can flip brush
strokes: the video flickers. The optional smoothing blends each output with the previous
output warped along the optical flow of the input frames (OpenCV's DIS flow), except where
the forward-backward check says a pixel was hidden in the previous frame (Ruder et al.,
"Artistic style transfer for videos", 2016). The flicker figure is the mean warping error
of Lai et al. (2018): the mean squared difference, over visible pixels, between each frame
and the previous one warped onto it, with values in 0..1.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from brushwork.errors import BrushworkError
from brushwork.io import atomic_write

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


def _cv2():
    try:
        import cv2
    except ImportError:
        raise BrushworkError("video needs OpenCV: pip install 'brushwork[video]'") from None
    return cv2


def is_video(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def ffmpeg_exe() -> str | None:
    """An ffmpeg binary: the system's, else imageio-ffmpeg's; None if neither is there."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:
        return None


@dataclass
class VideoInfo:
    fps: float
    width: int
    height: int
    frames: int  # as the container claims; may be 0 or wrong


def probe(path: str | os.PathLike) -> VideoInfo:
    """Frame rate, size and claimed frame count, or a one-line error for a non-video."""
    cv2 = _cv2()
    path = Path(path)
    if not path.is_file():
        raise BrushworkError(f"{path}: no such video file")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise BrushworkError(f"{path}: no frames can be read: not a video OpenCV "
                                 "decodes, or one without frames")
        fps = cap.get(cv2.CAP_PROP_FPS)
        return VideoInfo(fps if 0 < fps < 1000 else 25.0, int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                         int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                         max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))))
    finally:
        cap.release()


def read_frames(path: str | os.PathLike, size: int | None = None) -> Iterator[np.ndarray]:
    """RGB uint8 frames (H, W, 3), longest side resized to ``size`` if given.

    Raises a one-line error when the file yields no frame at all.
    """
    cv2 = _cv2()
    probe(path)
    cap = cv2.VideoCapture(str(path))
    count = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if size is not None:
                h, w = frame.shape[:2]
                k = size / max(h, w)
                frame = cv2.resize(frame, (max(1, round(w * k)), max(1, round(h * k))),
                                   interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC)
            count += 1
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()
    if count == 0:
        raise BrushworkError(f"{path}: the video has no frames")


class FrameWriter:
    """Frames into a video file: through ffmpeg (H.264 or VP9, sound copied from
    ``audio_from``) when there is one, else OpenCV's MPEG-4 writer without sound."""

    def __init__(self, path: str | os.PathLike, fps: float, width: int, height: int,
                 audio_from: str | os.PathLike | None = None) -> None:
        self.path, self.size = Path(path), (width, height)
        self.ffmpeg = ffmpeg_exe()
        self.process: subprocess.Popen | None = None
        self.writer = None
        if self.ffmpeg:
            webm = self.path.suffix.lower() == ".webm"
            cmd = [self.ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt",
                   "rgb24", "-s", f"{width}x{height}", "-r", f"{fps:.6g}", "-i", "-"]
            if audio_from is not None:
                cmd += ["-i", str(audio_from), "-map", "0:v:0", "-map", "1:a:0?",
                        "-c:a", "libopus" if webm else "aac", "-shortest"]
            # yuv420p (what players expect) needs even sides: pad by one pixel if odd.
            cmd += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-pix_fmt", "yuv420p",
                    "-c:v", "libvpx-vp9" if webm else "libx264", "-crf", "18", str(self.path)]
            self.process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                                            preexec_fn=_die_with_parent)
        else:
            cv2 = _cv2()
            if audio_from is not None:
                warnings.warn("no ffmpeg found (pip install imageio-ffmpeg): the video is "
                              "written without sound", stacklevel=2)
            self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                          (width, height))

    @property
    def keeps_audio(self) -> bool:
        return self.process is not None

    def write(self, frame: np.ndarray) -> None:
        """One RGB uint8 frame of the writer's size."""
        if self.process is not None:
            try:
                self.process.stdin.write(np.ascontiguousarray(frame).tobytes())
            except BrokenPipeError:  # ffmpeg has stopped: close() says why
                self.close()
        else:
            self.writer.write(_cv2().cvtColor(frame, _cv2().COLOR_RGB2BGR))

    def close(self) -> None:
        """Finish the file; an error from ffmpeg (a full disk, say) is a one-line error."""
        if self.process is None:
            self.writer.release()
            return
        if self.process.returncode is not None:  # closed already
            return
        try:
            self.process.stdin.close()
        except BrokenPipeError:
            pass
        with self.process.stderr:
            error = self.process.stderr.read().decode(errors="replace").strip()
        if self.process.wait() != 0:
            last = error.splitlines()[-1] if error else f"exit status {self.process.returncode}"
            raise BrushworkError(f"{self.path}: ffmpeg could not write the video ({last}); free "
                                 "some space or choose another output path")

    def abort(self) -> None:
        """Stop at once, for a write that is being given up (an error, Ctrl-C, a signal):
        ffmpeg is killed rather than left to finish a file nobody will keep."""
        if self.process is None:
            self.writer.release()
        elif self.process.returncode is None:
            self.process.kill()
            self.process.wait()
            for pipe in (self.process.stdin, self.process.stderr):
                try:
                    pipe.close()
                except OSError:
                    pass


def _prctl() -> Callable[[int, int], int] | None:
    """Linux's prctl, looked up in the parent: the child between fork and exec should do
    as little as it can."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None).prctl
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_int, ctypes.c_ulong], ctypes.c_int
    return fn


_PRCTL = _prctl()
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the ffmpeg child, before exec: Linux ends it when brushwork dies, even by SIGKILL,
    so no orphan goes on writing (elsewhere the closed pipe ends it once it notices)."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)


@contextlib.contextmanager
def frame_writer(path: str | os.PathLike, fps: float, width: int, height: int,
                 audio_from: str | os.PathLike | None = None) -> Iterator[FrameWriter]:
    """A FrameWriter that is closed when the block ends, or aborted if it ends by an
    exception (KeyboardInterrupt and termination signals included)."""
    writer = FrameWriter(path, fps, width, height, audio_from)
    try:
        yield writer
    except BaseException:
        writer.abort()
        raise
    writer.close()


def _to_frame(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) float in 0..1 -> uint8."""
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


@dataclass
class TemporalFilter:
    """Flow between consecutive input frames, the visibility mask, optional smoothing, and
    the running warping errors of the input, the raw output and the delivered output.

    ``alpha`` is the weight of the warped previous output where it is visible (0 = off).
    """

    alpha: float = 0.0
    errors: dict[str, list[float]] = field(default_factory=lambda: {
        "input": [], "output": [], "smoothed": []})

    def __post_init__(self) -> None:
        cv2 = _cv2()
        if not 0.0 <= self.alpha < 1.0:
            raise BrushworkError(f"--smooth {self.alpha}: give a weight from 0 to below 1, "
                                 "e.g. 0.5")
        self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self.previous: tuple[np.ndarray, ...] | None = None

    def flow_and_mask(self, grey: np.ndarray, previous: np.ndarray) -> tuple[np.ndarray, ...]:
        """Sampling positions into the previous frame for each pixel, and where they are valid.

        Valid: the backward flow lands inside the frame and the forward flow leads back
        (|b + f(x + b)|^2 <= 0.01 (|b|^2 + |f(x + b)|^2) + 0.5, Sundaram et al. 2010).
        """
        cv2 = _cv2()
        back = self.dis.calc(grey, previous, None)
        fwd = self.dis.calc(previous, grey, None)
        h, w = grey.shape
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        map_x, map_y = xs + back[..., 0], ys + back[..., 1]
        fwd_at = cv2.remap(fwd, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        gap = ((back + fwd_at) ** 2).sum(-1)
        bound = 0.01 * ((back ** 2).sum(-1) + (fwd_at ** 2).sum(-1)) + 0.5
        inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
        return map_x, map_y, ((gap <= bound) & inside).astype(np.float32)

    @staticmethod
    def warp(image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
        """``image`` of the previous frame carried onto the current one along the flow."""
        cv2 = _cv2()
        return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    @staticmethod
    def warping_error(current: np.ndarray, warped: np.ndarray, mask: np.ndarray) -> float:
        """Mean squared difference over the visible pixels: one frame's flicker figure."""
        squared = ((current - warped) ** 2).mean(-1)
        return float((squared * mask).sum() / max(mask.sum(), 1.0))

    def __call__(self, frame: np.ndarray, output: np.ndarray) -> np.ndarray:
        """The output to deliver for this input frame (uint8 RGB) and raw output (float)."""
        cv2 = _cv2()
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        image = frame.astype(np.float32) / 255.0
        delivered = output
        if self.previous is not None:
            p_grey, p_image, p_output, p_delivered = self.previous
            map_x, map_y, mask = self.flow_and_mask(grey, p_grey)

            def error(current: np.ndarray, previous: np.ndarray) -> float:
                return self.warping_error(current, self.warp(previous, map_x, map_y), mask)

            self.errors["input"].append(error(image, p_image))
            self.errors["output"].append(error(output, p_output))
            if self.alpha:
                warped = self.warp(p_delivered, map_x, map_y)
                weight = (self.alpha * mask)[..., None]
                delivered = (1.0 - weight) * output + weight * warped
                self.errors["smoothed"].append(self.warping_error(delivered, warped, mask))
        self.previous = (grey, image, output, delivered)
        return delivered

    def figures(self) -> dict[str, float]:
        """Mean warping error per stream (input, output, and smoothed when on)."""
        return {k: float(np.mean(v)) for k, v in self.errors.items() if v}


@dataclass
class VideoResult:
    frames: int
    seconds: float
    flicker: dict[str, float]
    audio: bool

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def stylise_video(stylist, source: str | os.PathLike, output: str | os.PathLike,
                  smooth: float = 0.0, progress: bool = True) -> VideoResult:
    """Stylise every frame of ``source`` into ``output`` (atomically), keeping the sound.

    ``stylist`` is a ``fast.stylise.Stylist``; frames go through it in batches of its
    ``batch_size``; ``smooth`` is the temporal smoothing weight (0 = off).
    """
    if not is_video(output):
        raise BrushworkError(f"{output}: a video is written as a video; give -o a "
                             f"{', '.join(VIDEO_SUFFIXES)} file")
    info = probe(source)
    filt = TemporalFilter(smooth)
    size = stylist.options.size
    state = {"frames": 0, "audio": False}
    start = time.perf_counter()

    def encode(tmp: str) -> None:
        frames = _batched(read_frames(source, size), stylist.options.batch_size)
        first = next(frames)  # the writer needs the frame size
        h, w = first[0].shape[:2]
        with tqdm(total=info.frames or None, unit="frame", disable=not progress or None) as bar, \
                frame_writer(tmp, info.fps, w, h, audio_from=source) as writer:
            state["audio"] = writer.keeps_audio
            for batch in itertools.chain([first], frames):
                tensor = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).float() / 255.0
                outputs = stylist(tensor).permute(0, 2, 3, 1).numpy()
                for frame, out in zip(batch, outputs, strict=True):
                    writer.write(_to_frame(filt(frame, np.ascontiguousarray(out))))
                    state["frames"] += 1
                bar.update(len(batch))

    atomic_write(output, encode)
    return VideoResult(state["frames"], time.perf_counter() - start, filt.figures(),
                       state["audio"])


def _batched(frames: Iterator[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    batch: list[np.ndarray] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def pan_clip(image: str | os.PathLike, output: str | os.PathLike, width: int, height: int,
             frames: int, fps: float = 25.0, tone: bool = False) -> Path:
    """A clip panning slowly across a still (one pixel per frame at the output's scale),
    with a 440 Hz tone as its sound if ``tone``: a test video made from any image."""
    from PIL import Image

    from brushwork.io import open_image

    still = open_image(image)
    k = max(height / still.height, (width + frames) / still.width)
    still = still.resize((max(width + frames, round(still.width * k)),
                          max(height, round(still.height * k))), Image.Resampling.LANCZOS)
    pixels = np.asarray(still)
    top = (pixels.shape[0] - height) // 2

    def encode(tmp: str) -> None:
        with frame_writer(tmp, fps, width, height) as writer:
            for i in range(frames):
                writer.write(pixels[top:top + height, i:i + width])

    output = atomic_write(output, encode)
    if tone:
        ffmpeg = ffmpeg_exe()
        if ffmpeg is None:
            raise BrushworkError("a clip with sound needs ffmpeg: pip install imageio-ffmpeg")

        def mux(tmp: str) -> None:
            subprocess.run([ffmpeg, "-y", "-loglevel", "error", "-i", str(output), "-f", "lavfi",
                            "-i", f"sine=frequency=440:duration={frames / fps:.3f}", "-c:v",
                            "copy", "-c:a", "aac", "-shortest", tmp], check=True)

        atomic_write(output, mux)
    return Path(output)
