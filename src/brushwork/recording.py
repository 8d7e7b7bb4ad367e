"""Watch a run: the image as it evolves (GIF or MP4) and the loss curves per term.

Both are optimise callbacks: they see every ``Step`` of a run (stylisation, photo,
reconstruction alike), keep what they need in memory, and write their file, atomically,
when the last step of the schedule arrives. A notebook can skip the file and use
``Recorder.frames`` or ``LossPlot.figure()`` directly.
"""

from __future__ import annotations

import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from brushwork.errors import BrushworkError
from brushwork.io import atomic_write, tensor_to_pil
from brushwork.optimise import Callback, Step

FPS = 15  # frames per second of the recording
HOLD_S = 1.0  # the final image stays this long before a GIF loops
RECORD_FORMATS = (".gif", ".mp4")


class _WrittenAtEnd(ABC):
    """A callback that collects from every step and writes its file after the last one."""

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.path = Path(path) if path is not None else None

    def __call__(self, step: Step) -> None:
        self.collect(step)
        if self.path is not None and step.done == step.total:
            try:
                self.save(self.path)
            except BrushworkError as exc:  # a side file must not cost the run its result
                warnings.warn(f"{exc}; the run goes on without it", stacklevel=2)

    @abstractmethod
    def collect(self, step: Step) -> None:
        """Keep what this callback needs from one step."""

    @abstractmethod
    def save(self, path: str | os.PathLike) -> Path:
        """Write what was collected."""


class Recorder(_WrittenAtEnd):
    """Keeps ``frames`` snapshots spread evenly over the run's steps, the last being the
    final image; frames from coarser scales are enlarged to the final size when written.

    A GIF needs only Pillow; an MP4 needs imageio-ffmpeg. Frame k of n is the image after
    step ceil(k * total / n), so a run shorter than n steps gives one frame per step.
    """

    def __init__(self, path: str | os.PathLike | None = None, frames: int = 60) -> None:
        super().__init__(path)
        if frames < 1:
            raise BrushworkError(f"--record-frames {frames}: record at least 1 frame")
        if self.path is not None:
            _check_record_path(self.path)
        self.count = frames
        self.frames: list[Image.Image] = []

    def collect(self, step: Step) -> None:
        k = step.done * self.count // step.total  # the latest frame due by this step
        if k and step.done == -(-k * step.total // self.count):
            self.frames.append(tensor_to_pil(step.image))

    def final_size_frames(self, even: bool = False) -> list[Image.Image]:
        """The frames so far, all at the size of the latest one (sides rounded up to even
        numbers with ``even``, as H.264 video needs)."""
        if not self.frames:
            raise BrushworkError("nothing recorded yet: the run took no step")
        w, h = self.frames[-1].size
        size = (w + w % 2, h + h % 2) if even else (w, h)
        return [f if f.size == size else f.resize(size, Image.Resampling.BICUBIC)
                for f in self.frames]

    def save(self, path: str | os.PathLike) -> Path:
        """Write the frames as a GIF (Pillow) or MP4 (imageio-ffmpeg) with a held last frame."""
        path = Path(path)
        _check_record_path(path)
        gif = path.suffix.lower() == ".gif"
        frames = self.final_size_frames(even=not gif)
        if gif:
            durations = [round(1000 / FPS)] * (len(frames) - 1) + [round(1000 * HOLD_S)]
            return atomic_write(path, lambda tmp: frames[0].save(
                tmp, format="GIF", save_all=True, append_images=frames[1:],
                duration=durations, loop=0))
        return atomic_write(path, lambda tmp: _write_mp4(
            tmp, frames + [frames[-1]] * round(FPS * HOLD_S)))


def _check_record_path(path: Path) -> None:
    """Fail before the run on a format we cannot write, or an MP4 without its encoder."""
    suffix = path.suffix.lower()
    if suffix not in RECORD_FORMATS:
        raise BrushworkError(f"{path}: record to a .gif, or an .mp4 with imageio-ffmpeg")
    if suffix == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise BrushworkError(f"{path}: MP4 needs imageio-ffmpeg: pip install "
                                 "brushwork[video], or record a .gif") from None


def _write_mp4(path: str, frames: Sequence[Image.Image]) -> None:
    import imageio_ffmpeg

    writer = imageio_ffmpeg.write_frames(path, frames[0].size, fps=FPS, macro_block_size=2,
                                         ffmpeg_log_level="error")
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(np.asarray(frame)))
    writer.close()


class LossPlot(_WrittenAtEnd):
    """Records every loss term at every step and plots them on a log scale, with the
    pyramid's scale changes marked. Needs matplotlib (``pip install brushwork[plot]``)."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        super().__init__(path)
        _require_matplotlib()
        if self.path is not None:
            _check_plot_path(self.path)
        self.steps: list[int] = []
        self.history: dict[str, list[float]] = {}
        self.scale_starts: list[tuple[int, str]] = []

    def collect(self, step: Step) -> None:
        if step.iteration == 1 or not self.steps:
            self.scale_starts.append((step.done, f"scale {step.scale + 1}/{step.scales}"))
        self.steps.append(step.done)
        for name, value in step.losses.items():
            self.history.setdefault(name, []).append(value)

    def figure(self):
        """A matplotlib Figure of the curves (no pyplot, so no global state or GUI)."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(7, 4), layout="constrained")
        ax = fig.add_subplot()
        terms = [n for n in self.history if n != "total"]
        # With one term the total is that term again; drawing both hides one of them.
        for name in terms if len(terms) == 1 else [*terms, "total"]:
            total = name == "total"
            ax.plot(self.steps, self.history[name], label="total (weighted)" if total else name,
                    linewidth=2 if total else 1)
        for done, label in self.scale_starts[1:]:
            ax.axvline(done - 0.5, color="grey", linestyle=":", linewidth=1)
            ax.annotate(label, (done, 1), xycoords=("data", "axes fraction"),
                        xytext=(3, -12), textcoords="offset points", fontsize=8, color="grey")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.legend()
        return fig

    def save(self, path: str | os.PathLike) -> Path:
        """Write the plot; the format follows the file name (.png, .svg, .pdf)."""
        if not self.steps:
            raise BrushworkError("nothing recorded yet: the run took no step")
        fig = self.figure()
        path = Path(path)
        return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120))


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise BrushworkError("--plot needs matplotlib: pip install brushwork[plot]") from None


def _check_plot_path(path: Path) -> None:
    """Fail before the run on a file type matplotlib cannot write."""
    from matplotlib.figure import Figure

    types = Figure().canvas.get_supported_filetypes()
    if path.suffix.lower().lstrip(".") not in types:
        raise BrushworkError(f"{path}: --plot writes {', '.join('.' + t for t in sorted(types))}"
                             "; give one of those")


def recording_callbacks(record: str | None, frames: int, plot: str | None) -> list[Callback]:
    """The callbacks for a command's --record, --record-frames and --plot flags."""
    callbacks: list[Callback] = []
    if record:
        callbacks.append(Recorder(record, frames))
    if plot:
        callbacks.append(LossPlot(plot))
    return callbacks
