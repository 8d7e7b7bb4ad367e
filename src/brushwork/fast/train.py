"""Training a fast-style network (Johnson et al. 2016): the artistic loss drives its weights.

The loss is brushwork's own (``losses``: content, Gram/style, total variation, each
normalised so the weights mean the same at any size) on ``vgg.Features``, with the style
image's Gram matrices computed once. Each step takes a batch of random crops (with random
scale and horizontal flips) from a folder of photos.

Reproducibility is by position, not by process: sample ``p`` of the run (batch ``p // B``)
is always the same file with the same crop, whoever loads it. So a resumed run continues
the exact stream, and under ``torchrun`` rank ``r`` of ``W`` takes positions ``r, r + W,
...`` of each global batch: with per-image losses averaged, DistributedDataParallel then
computes the same update as one process on the whole batch.
"""

from __future__ import annotations

import math
import os
import random
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from brushwork import io
from brushwork.artistic import StyleOptions
from brushwork.errors import BrushworkError
from brushwork.fast.model import (
    CHECKPOINT_KIND,
    FastModel,
    check_model_path,
    load_model,
    save_model,
)
from brushwork.fast.network import TransformerNet
from brushwork.io import EXAMPLES, IMAGE_SUFFIXES, load_payload, save_payload
from brushwork.losses import content_loss, gram, style_loss, tv_loss, weighted_total
from brushwork.optimise import changed_settings
from brushwork.options import require
from brushwork.runtime import autocast, pick_device, resolve_precision
from brushwork.signals import shielded
from brushwork.vgg import Features, check_layers, run_network

#: Validation images shown in each preview (the first ones of --val, sorted by name).
PREVIEW_IMAGES = 4
_ARTISTIC = StyleOptions()


@dataclass
class TrainOptions:
    """Every setting of a training run. The loss defaults are the artistic mode's, so a
    trained network aims at what `brushwork stylize` gives with its defaults."""

    style: str
    data: str
    output: str
    steps: int = 4000
    batch_size: int = 8
    size: int = 256
    style_size: int = 512
    channels: int = 12
    residual_blocks: int = 5
    content_layers: tuple[str, ...] = _ARTISTIC.content_layers
    style_layers: tuple[str, ...] = _ARTISTIC.style_layers
    content_weight: float = _ARTISTIC.content_weight
    style_weight: float = _ARTISTIC.style_weight
    tv_weight: float = _ARTISTIC.tv_weight
    lr: float = 1e-3
    seed: int = 0
    pooling: str = "max"
    device: str = "auto"
    precision: str = "auto"
    workers: int = 2
    minutes: float | None = None
    val: str | None = None
    preview_every: int = 500
    checkpoint_every: int = 500
    checkpoint: str | None = None
    preview_dir: str | None = None
    name: str | None = None
    weights: str | None = None
    init: str | None = None
    progress: bool = True
    extra: dict = field(default_factory=dict)

    def check(self) -> TrainOptions:
        """Validate everything before any heavy work, with one-line messages."""
        io.check_size(self.size)
        io.check_size(self.style_size, "--style-size")
        check_layers(self.content_layers)
        check_layers(self.style_layers)
        for flag in ("steps", "batch_size", "channels"):
            require(flag, getattr(self, flag), 1)
        for flag in ("residual_blocks", "workers", "preview_every", "checkpoint_every",
                     "content_weight", "style_weight", "tv_weight"):
            require(flag, getattr(self, flag), 0)
        require("lr", self.lr, 0, above=True, hint=", e.g. 0.001")
        if self.minutes is not None:
            require("minutes", self.minutes, 0, above=True)
        if not Path(self.data).is_dir():
            raise BrushworkError(f"{self.data}: not a folder; give --data a folder of photos")
        check_model_path(self.output)
        return self

    @property
    def checkpoint_path(self) -> Path:
        return Path(self.checkpoint or f"{self.output}.ckpt")

    @property
    def preview_path(self) -> Path:
        out = Path(self.output)
        return Path(self.preview_dir) if self.preview_dir else out.with_name(f"{out.stem}_previews")

    def settings(self) -> dict:
        """What the result depends on, for checkpoints and the model file."""
        skip = {"output", "checkpoint", "preview_dir", "progress", "workers", "extra"}
        return {k: v for k, v in asdict(self).items() if k not in skip and v is not None}


def style_path(style: str) -> Path:
    """A style image file, or the bundled painting of that name (e.g. starry_night)."""
    path = Path(style).expanduser()
    if path.is_file():
        return path
    bundled = EXAMPLES / f"{style}.jpg"
    if bundled.is_file():
        return bundled
    names = ", ".join(sorted(p.stem for p in EXAMPLES.glob("*.jpg")))
    raise BrushworkError(f"{style}: no such style image file or bundled style ({names})")


def image_files(folder: str | os.PathLike) -> list[Path]:
    """Image files under ``folder`` (recursively, by suffix), sorted."""
    root = Path(folder)
    if not root.is_dir():
        raise BrushworkError(f"{root}: not a folder")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def readable_images(folder: str | os.PathLike) -> list[Path]:
    """The images in ``folder`` whose headers Pillow accepts; the others skipped, counted once.

    Only headers are checked (a full decode of a large set would take minutes); a file that
    still fails to decode later is replaced by the next one by ``Crops``.
    """
    files = image_files(folder)
    good, bad = [], []
    for path in files:
        try:
            with Image.open(path) as img:
                img.verify()
            good.append(path)
        except Exception:  # Pillow raises many types for a damaged file
            bad.append(path)
    if not good:
        found = f"{len(files)} unreadable" if files else "no"
        raise BrushworkError(f"{folder}: {found} image files ({', '.join(IMAGE_SUFFIXES)}); "
                             "give a folder of photos")
    if bad:
        warnings.warn(f"{folder}: skipped {len(bad)} unreadable of {len(files)} image files "
                      f"(e.g. {bad[0].name})", stacklevel=2)
    return good


def random_crop(img: Image.Image, size: int, rng: random.Random) -> torch.Tensor:
    """A ``size`` square crop after a random rescale (shorter side in size..2*size, never
    enlarging beyond need), flipped left-right half the time, as a (3, size, size) tensor."""
    w, h = img.size
    short = min(w, h)
    target = max(size, min(short, rng.randint(size, 2 * size)))
    if target != short:
        k = target / short
        img = img.resize((max(size, round(w * k)), max(size, round(h * k))),
                         Image.Resampling.BILINEAR)
        w, h = img.size
    x, y = rng.randint(0, w - size), rng.randint(0, h - size)
    img = img.crop((x, y, x + size, y + size))
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return io.pil_to_tensor(img)[0]


class Crops(Dataset):
    """Random crops keyed by (file index, stream position): the position seeds the crop."""

    def __init__(self, files: list[Path], size: int, seed: int) -> None:
        self.files, self.size, self.seed = files, size, seed

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: tuple[int, int]) -> torch.Tensor:
        index, position = key
        rng = random.Random(self.seed * 1_000_003 + position)
        for attempt in range(len(self.files)):
            path = self.files[(index + attempt) % len(self.files)]
            try:
                return random_crop(io.open_image(path), self.size, rng)
            except BrushworkError:
                warnings.warn(f"{path}: cannot be decoded; skipped", stacklevel=1)
        raise BrushworkError("no image of the data folder can be decoded")


class GlobalBatches(Sampler):
    """Batch ``k`` of the run is positions k*B .. k*B+B-1 of an endless stream of shuffled
    epochs; this rank yields every ``world``-th of them, starting at ``rank``."""

    def __init__(self, files: int, batch_size: int, seed: int, start: int, steps: int,
                 rank: int = 0, world: int = 1) -> None:
        self.files, self.batch_size, self.seed = files, batch_size, seed
        self.start, self.steps, self.rank, self.world = start, steps, rank, world
        self._epoch, self._order = -1, torch.empty(0, dtype=torch.long)

    def __len__(self) -> int:
        return max(0, self.steps - self.start)

    def _file(self, position: int) -> int:
        epoch, i = divmod(position, self.files)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 7919 + epoch)
            self._epoch, self._order = epoch, torch.randperm(self.files, generator=gen)
        return int(self._order[i])

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        b = self.batch_size
        for step in range(self.start, self.steps):
            yield [(self._file(p), p) for p in range(step * b + self.rank, (step + 1) * b,
                                                     self.world)]


class PerceptualLoss(torch.nn.Module):
    """content + style + tv of a batch of outputs against their inputs and one style.

    The content term is averaged per image (each image against its own magnitude), so the
    loss of a batch is the mean of its images' losses and splits exactly across processes.
    """

    def __init__(self, net: Features, style: torch.Tensor, options: TrainOptions,
                 dtype: torch.dtype) -> None:
        super().__init__()
        self.net, self.options, self.dtype = net, options, dtype
        with torch.no_grad(), autocast(style.device, dtype):
            feats = net(style)
            self.style_targets = {n: gram(feats[n]) for n in options.style_layers}

    def forward(self, output: torch.Tensor, content: torch.Tensor) -> dict[str, torch.Tensor]:
        o = self.options
        with autocast(output.device, self.dtype):
            with torch.no_grad():
                targets = self.net(content)
            feats = self.net(output)
        c = sum(torch.stack([content_loss(feats[n][i:i + 1], targets[n][i:i + 1])
                             for i in range(len(output))]).mean()
                for n in o.content_layers) / len(o.content_layers)
        s = 0.0
        for n in o.style_layers:
            g = gram(feats[n])
            s = s + style_loss(g, self.style_targets[n].expand_as(g)) / len(o.style_layers)
        return weighted_total({"content": c, "style": s, "tv": tv_loss(output)},
                              {"content": o.content_weight, "style": o.style_weight,
                               "tv": o.tv_weight})


@dataclass
class Ranks:
    """Where this process stands in a (possibly one-process) run."""

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


@contextmanager
def distributed(device_name: str) -> Iterator[Ranks]:
    """One process, or under torchrun (WORLD_SIZE > 1) a process group: NCCL on GPUs,
    gloo on CPUs, one GPU per local rank."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = pick_device(device_name)
    if world == 1:
        yield Ranks(0, 1, device)
        return
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield Ranks(dist.get_rank(), world, device)
    finally:
        dist.destroy_process_group()


@dataclass
class TrainResult:
    """What a run gives back: the model (``Trainer.trained``'s: a ``FastModel``, or a
    decoder for ``fast.universal``), and the losses seen by this process per step."""

    model: Any
    history: list[dict[str, float]]
    validation: list[tuple[int, float]]
    steps: int
    seconds: float


def load_checkpoint(path: Path) -> dict:
    """A training checkpoint, or a one-line error."""
    return load_payload(path, CHECKPOINT_KIND, "training checkpoint")


class Trainer:
    """One training run: built from options, then ``run()``; rank 0 alone writes files.

    What is trained is said by five methods (``run_name``, ``build_network``,
    ``build_loss``, ``outputs``, ``write_model`` with ``trained``), so that another network
    trained on the same photo crops (``fast.universal``'s decoders) reuses the data stream,
    DDP, checkpoints, resume, time budget and previews by overriding them.
    """

    #: The checkpoint's kind tag; a subclass training another network has its own, so that
    #: no run resumes from a checkpoint of the other kind.
    checkpoint_kind = CHECKPOINT_KIND

    def __init__(self, options: TrainOptions, ranks: Ranks, resume: bool = False) -> None:
        self.o = options.check()
        self.ranks = ranks
        device = ranks.device
        if options.batch_size % ranks.world:
            raise BrushworkError(f"--batch-size {options.batch_size} does not split over "
                                 f"{ranks.world} processes; use a multiple of {ranks.world}")
        if options.checkpoint_path.is_dir():
            raise BrushworkError(f"{options.checkpoint_path}: the checkpoint path is a folder; "
                                 "give --checkpoint a file name")
        if not resume and options.checkpoint_path.exists():
            raise BrushworkError(f"{options.checkpoint_path}: a checkpoint of an earlier "
                                 "training is there; continue it with --resume (raise --steps "
                                 "to extend a finished one), or delete it to start again")
        ckpt = load_payload(options.checkpoint_path, self.checkpoint_kind,
                            "training checkpoint") if resume else None
        if ckpt is not None and ckpt["step"] >= options.steps:
            raise BrushworkError(f"{options.checkpoint_path}: the checkpoint is already at step "
                                 f"{ckpt['step']}; give --steps above {ckpt['step']} to train on")
        self.dtype = resolve_precision(options.precision, device)
        self.style_name = self.run_name()
        self.files = readable_images(options.data)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed crop size: pick the fastest kernels
        torch.manual_seed(options.seed)
        self.net = self.build_network().to(device, memory_format=torch.channels_last)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=options.lr)
        # Loss scaling only for float16; bfloat16 and float32 have float32's range.
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)
        self.step, self.seconds_before = 0, 0.0
        if ckpt is not None:
            self._resume(ckpt)
        elif options.init:
            self._init_from(options.init)
        self.loss = self.build_loss()
        self.model = self.net
        if ranks.world > 1:
            ids = [device.index] if device.type == "cuda" else None
            self.model = torch.nn.parallel.DistributedDataParallel(self.net, device_ids=ids)
        self.previews = self._preview_images() if ranks.main else []

    def run_name(self) -> str:
        """The name the checkpoint and model carry: --name, else the style file's stem
        (the style named is checked here, before any heavy work)."""
        return self.o.name or style_path(self.o.style).stem

    def build_network(self) -> torch.nn.Module:
        """The network to train, on the CPU (``__init__`` moves it)."""
        return TransformerNet(self.o.channels, self.o.residual_blocks)

    def build_loss(self) -> torch.nn.Module:
        """The loss of ``outputs``: the perceptual loss against the style image."""
        o, device = self.o, self.ranks.device
        features = run_network((*o.content_layers, *o.style_layers), o.pooling, o.weights,
                               device, channels_last=True)
        style = io.load_image(style_path(o.style), o.style_size).to(device)
        return PerceptualLoss(features, style, o, self.dtype)

    def outputs(self, module: torch.nn.Module,
                batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The network's images for a batch of crops and their loss terms: one place for
        training steps (``module`` the DDP wrapper) and validation (the bare network)."""
        with autocast(self.ranks.device, self.dtype):
            output = module(batch.contiguous(memory_format=torch.channels_last))
        output = output.float()
        return output, self.loss(output, batch)

    def trained(self, settings: dict, path: Path | None) -> FastModel:
        """What ``run`` gives back: the network as a model."""
        return FastModel(self.net.eval(), self.style_name, settings, path)

    def write_model(self, settings: dict) -> Path:
        """Write the finished network to --output (rank 0 only)."""
        return save_model(self.net, self.o.output, self.style_name, settings)

    def _init_from(self, model: str) -> None:
        """Start from a trained network's weights (fine-tuning: a new weight balance or a
        related style costs a fraction of a full run)."""
        start = load_model(model)
        if start.net.config() != self.net.config():
            raise BrushworkError(f"--init {model}: a network {start.net.config()}, not "
                                 f"{self.net.config()}; use its --channels and "
                                 "--residual-blocks")
        self.net.load_state_dict(start.net.state_dict())

    def _resume(self, ckpt: dict) -> None:
        if ckpt["config"] != self.net.config():
            raise BrushworkError(f"{self.o.checkpoint_path}: checkpoint is of a network "
                                 f"{ckpt['config']}, not {self.net.config()}; use the same "
                                 "--channels and --residual-blocks, or start again")
        # The run's length may change (that is how a finished run is extended), and so may
        # what is written along the way; not the rest without a word.
        changed = changed_settings(ckpt["settings"], self.o.settings(), free=(
            "steps", "minutes", "checkpoint_every", "preview_every", "val"))
        if changed and self.ranks.main:
            warnings.warn(f"resuming with changed settings: {', '.join(changed)}", stacklevel=2)
        self.net.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.step, self.seconds_before = ckpt["step"], ckpt.get("seconds", 0.0)

    def _preview_images(self) -> list[torch.Tensor]:
        """The first --val images (or the bundled photos) at the training size."""
        if self.o.val:
            files = readable_images(self.o.val)[:PREVIEW_IMAGES]
        else:
            files = [EXAMPLES / "tubingen.jpg", EXAMPLES / "chelsea.jpg"]
        return [io.load_image(f, self.o.size).to(self.ranks.device) for f in files]

    def loader(self) -> DataLoader:
        sampler = GlobalBatches(len(self.files), self.o.batch_size, self.o.seed, self.step,
                                self.o.steps, self.ranks.rank, self.ranks.world)
        workers = self.o.workers
        return DataLoader(Crops(self.files, self.o.size, self.o.seed), batch_sampler=sampler,
                          num_workers=workers, pin_memory=self.ranks.device.type == "cuda",
                          prefetch_factor=4 if workers else None)

    def train_step(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """One Adam step on a batch of this rank's crops; returns the detached loss terms."""
        batch = batch.to(self.ranks.device, non_blocking=True)
        _, terms = self.outputs(self.model, batch)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(terms["total"]).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        self.step += 1
        return {k: v.detach() for k, v in terms.items()}

    @torch.no_grad()
    def validate(self) -> tuple[float, list[torch.Tensor]]:
        """Mean loss on the preview images and their stylised versions, in eval mode."""
        self.net.eval()
        outputs, total = [], 0.0
        for image in self.previews:
            out, terms = self.outputs(self.net, image)
            total += float(terms["total"])
            outputs.append(out)
        self.net.train()
        return total / max(1, len(self.previews)), outputs

    def write_preview(self, outputs: list[torch.Tensor]) -> Path:
        """Each preview photo above its stylised version, side by side, as one JPEG."""
        tiles = [torch.cat([image, out], dim=2) for image, out in zip(self.previews, outputs,
                                                                       strict=True)]
        height = max(t.shape[2] for t in tiles)
        row = torch.cat([torch.nn.functional.pad(t, (0, 4, 0, height - t.shape[2]), value=1.0)
                         for t in tiles], dim=3)
        return io.save_image(row, self.o.preview_path / f"step_{self.step:06d}.jpg")

    def save_checkpoint(self, seconds: float) -> Path:
        """Write everything needed to resume, atomically: a crash never leaves half a file."""
        payload = {"kind": self.checkpoint_kind, "model": self.net.state_dict(),
                   "optimizer": self.opt.state_dict(), "scaler": self.scaler.state_dict(),
                   "step": self.step, "config": self.net.config(), "style": self.style_name,
                   "settings": self.o.settings(), "seconds": self.seconds_before + seconds}
        payload["model"] = {k: v.detach().cpu() for k, v in payload["model"].items()}
        return save_payload(self.o.checkpoint_path, payload)

    def _out_of_time(self, start: float) -> bool:
        """Whether the --minutes budget is spent; rank 0's clock decides for every rank, every
        tenth step (a broadcast per step would stall the GPUs)."""
        if self.o.minutes is None:
            return False
        late = time.perf_counter() - start > 60 * self.o.minutes
        if self.ranks.world == 1:
            return late
        if self.step % 10:
            return False
        flag = torch.tensor(float(late), device=self.ranks.device)
        dist.broadcast(flag, 0)
        return bool(flag)

    def run(self) -> TrainResult:
        """Train to --steps (or until --minutes run out), then write the model and checkpoint."""
        o, main = self.o, self.ranks.main
        start, first = time.perf_counter(), self.step
        history: list[dict[str, torch.Tensor]] = []
        validation: list[tuple[int, float]] = []
        bar = tqdm(total=o.steps, initial=self.step, unit="step", dynamic_ncols=True,
                   desc=f"training {self.style_name}", disable=not (o.progress and main) or None)
        try:
            for batch in self.loader():
                history.append(self.train_step(batch))
                bar.update(1)
                if self.step % 10 == 0 or self.step == o.steps:
                    self._report(bar, history[-1])
                if main and o.checkpoint_every and self.step % o.checkpoint_every == 0:
                    self.save_checkpoint(time.perf_counter() - start)
                if main and o.preview_every and self.step % o.preview_every == 0:
                    validation.append(self._preview(bar))
                if self._out_of_time(start):
                    break
        except KeyboardInterrupt:  # Ctrl-C, SIGTERM, SIGHUP (see brushwork.signals)
            if main:
                with shielded():  # a second signal waits until the checkpoint is written
                    self.save_checkpoint(time.perf_counter() - start)
                bar.write(f"interrupted at step {self.step}; checkpoint {o.checkpoint_path}")
            raise
        finally:
            bar.close()
        seconds = time.perf_counter() - start
        settings = {**o.settings(), "steps": self.step, "device": _device_name(self.ranks),
                    "processes": self.ranks.world,
                    "seconds": round(self.seconds_before + seconds, 1)}
        path = None
        if main:
            self.save_checkpoint(time.perf_counter() - start)
            if o.preview_every and (not validation or validation[-1][0] != self.step):
                validation.append(self._preview(bar))
            path = self.write_model(settings)
            if self.step > first:
                print(f"trained {self.step - first} steps in {seconds:.0f} s "
                      f"({(self.step - first) / seconds:.2f} steps/s); wrote {o.output}")
        values = [{k: float(v) for k, v in h.items()} for h in history]
        return TrainResult(self.trained(settings, path), values, validation, self.step,
                           seconds)

    def _report(self, bar: tqdm, terms: dict[str, torch.Tensor]) -> None:
        values = {k: float(v) for k, v in terms.items()}
        if not math.isfinite(values["total"]):
            raise BrushworkError(f"the loss became NaN or infinite at step {self.step}; lower "
                                 "--lr or the weights, or use --precision float32")
        bar.set_postfix({k: f"{v:.3g}" for k, v in values.items()}, refresh=False)

    def _preview(self, bar: tqdm) -> tuple[int, float]:
        loss, outputs = self.validate()
        path = self.write_preview(outputs)
        bar.write(f"step {self.step}: validation loss {loss:.4g}; preview {path}")
        return self.step, loss


def _device_name(ranks: Ranks) -> str:
    if ranks.device.type == "cuda":
        return torch.cuda.get_device_name(ranks.device)
    return "cpu"


def train(options: TrainOptions, resume: bool = False) -> TrainResult:
    """Train a network as ``options`` say, in one process or as one rank under torchrun."""
    with distributed(options.device) as ranks:
        return Trainer(options, ranks, resume).run()
