"""The pixel optimisation loop shared by artistic, photorealistic and reconstruction runs.

A run is a schedule of scales, coarse to fine: each scale starts from the previous result
upsampled, builds its loss once (targets are computed per scale, not per step), and takes
a number of L-BFGS or Adam steps, through one interface (``Problem``) whether the scale is
optimised whole (``Whole``) or in tiles (``tiling.TiledProblem``). Most iterations happen
at low resolution, where a step costs a fraction of a full-size one, so the fine scales
only refine detail.

Each step reports a ``Step`` to callbacks (progress bar, recording, checkpoints). Ctrl-C
raises ``Interrupted`` carrying the best image so far and a checkpoint to resume from.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from brushwork.errors import BrushworkError
from brushwork.io import load_payload, save_payload
from brushwork.options import require
from brushwork.signals import signum_of

OPTIMIZERS = ("lbfgs", "adam")
#: The shortest side VGG-19 can take up to its block-5 layers (relu5_1, the deepest a loss
#: uses by default): four 2x2 poolings leave a side below 16 px with no position at all,
#: and an empty feature map makes the loss NaN.
MIN_INPUT_SIDE = 16
LossFn = Callable[[torch.Tensor], dict[str, torch.Tensor]]
#: What a step reports to the loop: the step's number in its scale, the loss terms, the image.
OnStep = Callable[[int, dict[str, float], torch.Tensor], None]


@dataclass
class Scale:
    """One level of the pyramid: output height and width, and the steps taken there."""

    height: int
    width: int
    iterations: int


@dataclass
class Step:
    """What a callback learns after each optimiser step."""

    scale: int
    scales: int
    iteration: int          # within this scale, 1-based
    done: int               # over the whole schedule
    total: int
    losses: dict[str, float]
    image: torch.Tensor
    schedule: Sequence[Scale] = ()


Callback = Callable[[Step], None]


def schedule_of(scales: Sequence[Scale]) -> list[list]:
    """The schedule as a checkpoint stores it: every field of every scale (height, width,
    steps, and whatever a procedure's own kind of scale adds, such as photo's stage)."""
    return [list(astuple(s)) for s in scales]


@dataclass
class Checkpoint:
    """Enough to resume a run: the image, where in the schedule it was, the schedule and
    the settings. ``scale == len(schedule)`` marks a finished optimisation, whose later
    stages (smoothing, enlargement, the save) are all that a resume still does."""

    image: torch.Tensor
    scale: int
    iteration: int
    settings: dict = field(default_factory=dict)
    schedule: list[list] = field(default_factory=list)

    def save(self, path: str | os.PathLike) -> Path:
        payload = {"kind": "brushwork-checkpoint", "image": self.image.detach().cpu(),
                   "scale": self.scale, "iteration": self.iteration, "settings": self.settings,
                   "schedule": self.schedule}
        return save_payload(path, payload)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Checkpoint:
        payload = load_payload(path, "brushwork-checkpoint", "checkpoint")
        image, scale, iteration = (payload.get(k) for k in ("image", "scale", "iteration"))
        settings, schedule = payload.get("settings", {}), payload.get("schedule", [])
        sound = (isinstance(image, torch.Tensor) and image.dim() == 4
                 and tuple(image.shape[:2]) == (1, 3) and image.is_floating_point()
                 and isinstance(scale, int) and isinstance(iteration, int)
                 and scale >= 0 and iteration >= 0 and isinstance(settings, dict)
                 and isinstance(schedule, list))
        if sound:
            sound = bool(torch.isfinite(image).all()) and -0.01 <= float(image.min()) \
                and float(image.max()) <= 1.01
        if not sound:
            raise BrushworkError(f"{path}: the checkpoint is damaged (its image or position "
                                 "is not what a run writes); delete it and run without "
                                 "--resume")
        return cls(image.float().clamp(0, 1), scale, iteration, settings, schedule)

    def check_against(self, scales: Sequence[Scale]) -> None:
        """Refuse a checkpoint of another schedule (a changed --matting-iterations, say)
        or whose image is not the size of the scale it claims: resuming it would write a
        wrong result with a success status."""
        now = schedule_of(scales)
        if self.schedule and self.schedule != now:
            raise BrushworkError("the checkpoint was made for another schedule (scales and "
                                 f"steps {self.schedule}, now {now}); resume with the same "
                                 "--iterations, --scales and --size, or run without --resume")
        if self.scale > len(scales) or (self.scale < len(scales)
                                        and self.iteration > scales[self.scale].iterations):
            raise BrushworkError(f"the checkpoint is at scale {self.scale + 1}, step "
                                 f"{self.iteration}, past this run's schedule; run without "
                                 "--resume")
        at = scales[min(self.scale, len(scales) - 1)]
        # Within a scale the image has that scale's size; at its step 0 (a checkpoint made
        # between scales) it may still have the previous one's.
        sizes = {(at.height, at.width)}
        if self.iteration == 0 and 0 < self.scale < len(scales):
            sizes.add((scales[self.scale - 1].height, scales[self.scale - 1].width))
        if tuple(self.image.shape[-2:]) not in sizes:
            raise BrushworkError(f"the checkpoint's image is {self.image.shape[-1]}x"
                                 f"{self.image.shape[-2]} px, not the {at.width}x{at.height} "
                                 "of its place in the schedule; delete it and run without "
                                 "--resume")


def changed_settings(saved: dict, now: dict, free: Sequence[str] = ()) -> list[str]:
    """The settings, other than ``free`` ones, that differ between a checkpoint and the run
    resuming it (compared as JSON, so a tuple and the list it was stored as agree)."""
    saved, now = (json.loads(json.dumps(d, default=str)) for d in (saved, now))
    return sorted(k for k in set(saved) | set(now)
                  if k not in free and saved.get(k) != now.get(k))


class Interrupted(Exception):
    """Ctrl-C (or a termination signal made into one) during a run: carries the best image
    so far, a checkpoint to resume, and the signal's number and name."""

    def __init__(self, image: torch.Tensor, checkpoint: Checkpoint,
                 signum: int = signal.SIGINT) -> None:
        super().__init__("interrupted")
        self.image = image
        self.checkpoint = checkpoint
        self.signum = signum

    @property
    def reason(self) -> str:
        return signal.Signals(self.signum).name


def pyramid(height: int, width: int, scales: int, iterations: Sequence[int] | int,
            min_side: int = 32) -> list[Scale]:
    """Sizes halving in area per level (factor sqrt 2 per side) down from the output size.

    ``iterations`` is one count per level (coarse first) or a total to split so that
    coarse levels, which are cheap, get more steps. Coarse levels whose longest side is
    under ``min_side`` or whose shortest is under ``MIN_INPUT_SIDE`` are left out; an
    output too narrow for VGG-19 is a one-line error.
    """
    if min(height, width) < MIN_INPUT_SIDE:
        raise BrushworkError(f"the working image is {width}x{height} px; VGG-19 needs at "
                             f"least {MIN_INPUT_SIDE} px on each side: raise --size or crop "
                             "the image nearer to square")
    levels = []
    for k in range(scales - 1, -1, -1):
        f = 1 / math.sqrt(2) ** k
        h, w = round(height * f), round(width * f)
        if k > 0 and (max(h, w) < min_side or min(h, w) < MIN_INPUT_SIDE):
            continue
        levels.append((h, w))
    if isinstance(iterations, int):
        # Cost per step grows with area, so give level i a share proportional to 1/area^0.5.
        shares = [1.0 / math.sqrt(h * w) for h, w in levels]
        counts = [max(1, round(iterations * s / sum(shares))) for s in shares]
    else:
        counts = list(iterations)[-len(levels):]
        if len(counts) != len(levels):
            raise BrushworkError(f"{len(iterations)} iteration counts for {len(levels)} scales")
    return [Scale(h, w, n) for (h, w), n in zip(levels, counts, strict=True)]


def resize(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bicubic resize that leaves a same-size image alone and keeps values in 0..1."""
    if image.shape[-2:] == (height, width):
        return image
    return F.interpolate(image, size=(height, width), mode="bicubic",
                         align_corners=False, antialias=True).clamp(0, 1)


def make_optimizer(name: str, params: list[torch.Tensor], lr: float | None,
                   pixels: int) -> torch.optim.Optimizer:
    """L-BFGS with one evaluation per step (history shortened for huge images), or Adam."""
    if name == "lbfgs":
        # Each history pair costs two image-sized vectors: cap the total near 1.5 GB.
        history = int(max(5, min(50, 1.5e9 / (8 * 3 * pixels))))
        return torch.optim.LBFGS(params, lr=lr or 1.0, max_iter=1, history_size=history,
                                 tolerance_grad=0.0, tolerance_change=0.0)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr or 0.02)
    raise BrushworkError(f"optimizer {name!r}: use one of {', '.join(OPTIMIZERS)}")


def optimise_scale(image: torch.Tensor, loss_fn: LossFn, iterations: int, optimizer: str,
                   lr: float | None, on_step: OnStep, start: int = 0) -> torch.Tensor:
    """Minimise ``loss_fn(image)['total']`` over the pixels, from step ``start + 1``.

    L-BFGS takes its steps without a line search, and now and then one blows the loss up; a
    scale that ends worse than the best image it saw returns that image, so that a blown-up
    one never reaches the next scale or the output.
    """
    x = image.detach().clone().requires_grad_(True)
    opt = make_optimizer(optimizer, [x], lr, x.numel() // 3)
    last: dict[str, torch.Tensor] = {}
    best: dict = {"loss": math.inf, "image": None}

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        terms = loss_fn(x)
        terms["total"].backward()
        last.clear()
        last.update(terms)
        total = float(terms["total"].detach())
        if total < best["loss"]:  # the loss of x as it was, before this step moves it
            best.update(loss=total, image=x.detach().clone())
        return terms["total"]

    for it in range(start + 1, iterations + 1):
        opt.step(closure)
        with torch.no_grad():
            x.clamp_(0, 1)
        losses = {k: float(v.detach()) for k, v in last.items()}
        if not math.isfinite(losses["total"]):
            raise BrushworkError("the loss became NaN or infinite; lower the weights or the "
                                 "learning rate, or use --precision float32")
        on_step(it, losses, x.detach())
    if last and float(last["total"].detach()) > best["loss"]:
        return best["image"]
    return x.detach()


class Problem(ABC):
    """One scale of a run as the loop sees it, whether the image is optimised in one piece
    (``Whole``) or tile by tile (``tiling.TiledProblem``): the loop asks only this."""

    @abstractmethod
    def optimise(self, image: torch.Tensor, iterations: int, optimizer: str, lr: float | None,
                 on_step: OnStep, start: int = 0) -> torch.Tensor:
        """The image after steps ``start + 1`` to ``iterations``, each reported to ``on_step``."""

    def describe(self) -> str | None:
        """How the scale is split, for the log (a tiled step takes long); None if whole."""
        return None


@dataclass
class Whole(Problem):
    """A scale optimised in one piece: the loss of the whole image, one optimiser."""

    loss: LossFn

    def optimise(self, image: torch.Tensor, iterations: int, optimizer: str, lr: float | None,
                 on_step: OnStep, start: int = 0) -> torch.Tensor:
        return optimise_scale(image, self.loss, iterations, optimizer, lr, on_step, start)


def run(scales: list[Scale], init: torch.Tensor,
        loss_for: Callable[[Scale], LossFn | Problem],
        optimizer: str = "lbfgs", lr: float | None = None,
        callbacks: Sequence[Callback] = (), resume: Checkpoint | None = None,
        settings: dict | None = None, progress: bool = True,
        tiled_for: Callable[[Scale, int], Problem] | None = None) -> torch.Tensor:
    """Run the schedule from ``init`` (or a checkpoint) and return the final image.

    ``loss_for`` gives each scale's loss, or a ``Problem`` of its own (a ``TiledProblem``
    for scales too large for memory); with
    ``tiled_for``, a scale that runs out of GPU memory is retried in ever smaller tiles.
    """
    total = sum(s.iterations for s in scales)
    if resume is not None:
        resume.check_against(scales)
    first_scale, first_iter = (resume.scale, resume.iteration) if resume else (0, 0)
    image = resume.image.to(init.device) if resume else init
    bar = tqdm(total=total, unit="it", disable=not progress or None, dynamic_ncols=True,
               desc="stylising")
    state = {"scale": first_scale, "iteration": first_iter, "image": image}
    try:
        for index in range(first_scale, len(scales)):
            scale = scales[index]
            base = sum(s.iterations for s in scales[:index])
            image = resize(image, scale.height, scale.width)
            start = first_iter if index == first_scale else 0
            state.update(scale=index, iteration=start, image=image)
            bar.n = base + start
            bar.set_description(f"scale {index + 1}/{len(scales)} {scale.width}x{scale.height}")

            def on_step(it: int, losses: dict[str, float], x: torch.Tensor, index=index,
                        base=base) -> None:
                state.update(iteration=it, image=x)
                bar.update(base + it - bar.n)
                bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items()}, refresh=False)
                step = Step(index, len(scales), it, base + it, total, losses, x, scales)
                for cb in callbacks:
                    cb(step)

            problem = loss_for(scale)
            if not isinstance(problem, Problem):
                problem = Whole(problem)
            split = problem.describe()
            if split and progress:
                bar.write(f"scale {index + 1}: {scale.width}x{scale.height} in {split}")
            tile = max(scale.height, scale.width)
            while True:
                try:
                    image = problem.optimise(image, scale.iterations, optimizer, lr, on_step,
                                             state["iteration"])
                    break
                except torch.cuda.OutOfMemoryError:
                    if tiled_for is None or tile <= 256:
                        raise BrushworkError(
                            f"out of GPU memory at {scale.width}x{scale.height} even in 256 px "
                            "tiles; use a smaller --size or --device cpu") from None
                    torch.cuda.empty_cache()
                    tile = max(256, tile // 2)
                    warnings.warn(f"out of GPU memory at {scale.width}x{scale.height}; "
                                  f"continuing in tiles of {tile} px", stacklevel=2)
                    problem = tiled_for(scale, tile)
                    image = state["image"]
    except KeyboardInterrupt as stop:
        bar.close()
        ckpt = Checkpoint(state["image"].detach().cpu(), state["scale"], state["iteration"],
                          settings or {}, schedule_of(scales))
        raise Interrupted(state["image"].detach().cpu(), ckpt, signum_of(stop)) from None
    bar.close()
    return image.detach()


class Snapshots:
    """Callback that writes the image every ``save_every`` steps and a checkpoint every
    ``checkpoint_every`` steps, both atomically, so a crash loses at most a few steps.

    Steps of a large tiled scale take minutes, so a checkpoint is also written once
    ``checkpoint_minutes`` have passed since the last one: a killed 4096 px run would
    otherwise lose every scale after the last multiple of ``checkpoint_every``. After the
    last step the finished image is checkpointed too, before any later stage (smoothing,
    enlargement, the save) can be interrupted. A snapshot that cannot be written (a full
    disk) is a warning, not the end of the run: the image is still in memory.
    """

    def __init__(self, output: str | os.PathLike, settings: dict, save_every: int = 0,
                 checkpoint_every: int = 0, checkpoint_minutes: float = 0.0) -> None:
        require("save_every", save_every, 0)
        require("checkpoint_every", checkpoint_every, 0)
        require("checkpoint_minutes", checkpoint_minutes, 0)
        self.output = Path(output)
        self.settings = settings
        self.save_every = save_every
        self.checkpoint_every = checkpoint_every
        self.checkpoint_minutes = checkpoint_minutes
        self.last_checkpoint = time.monotonic()
        self.failed: set[str] = set()

    @staticmethod
    def checkpoint_path(output: str | os.PathLike) -> Path:
        return Path(f"{output}.ckpt")

    @staticmethod
    def snapshot_path(output: str | os.PathLike, done: int) -> Path:
        output = Path(output)
        return output.with_name(f"{output.stem}_{done:05d}{output.suffix}")

    def __call__(self, step: Step) -> None:
        from brushwork.io import save_image

        if self.save_every and step.done % self.save_every == 0:
            self._try("image", lambda: save_image(step.image,
                                                  self.snapshot_path(self.output, step.done)))
        due = self.checkpoint_every and step.done % self.checkpoint_every == 0
        late = (self.checkpoint_minutes
                and time.monotonic() - self.last_checkpoint >= 60 * self.checkpoint_minutes)
        if step.done == step.total:
            ckpt = Checkpoint(step.image.cpu(), step.scales, 0, self.settings,
                              schedule_of(step.schedule))
        elif due or late:
            ckpt = Checkpoint(step.image.cpu(), step.scale, step.iteration, self.settings,
                              schedule_of(step.schedule))
        else:
            return
        self.last_checkpoint = time.monotonic()
        self._try("checkpoint", lambda: ckpt.save(self.checkpoint_path(self.output)))

    def _try(self, what: str, write: Callable[[], object]) -> None:
        try:
            write()
        except BrushworkError as exc:
            if what not in self.failed:  # said once, not at every step
                self.failed.add(what)
                warnings.warn(f"{exc}; the run goes on without this {what}", stacklevel=2)
