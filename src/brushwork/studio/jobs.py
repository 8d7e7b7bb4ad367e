"""The studio's jobs: one at a time per device, the rest queued; progress for the page.

A job runs in a worker thread of its device. Its callback records the step, the losses,
an ETA and (every few tenths of a second) a JPEG of the image as it evolves; Stop makes
the callback raise ``KeyboardInterrupt``, which the optimisation loop answers as it
answers Ctrl-C (``optimise.Interrupted`` with the image so far), and that image is saved
as the result, marked partial. A job whose page has gone (no event stream from its
session for ``orphan_seconds``) is stopped the same way, so a closed tab leaves nothing
running.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import torch
from PIL import Image

from brushwork import io
from brushwork.errors import BrushworkError
from brushwork.optimise import Interrupted, Scale, Step, resize
from brushwork.runtime import pick_device
from brushwork.studio.modes import Inputs, Mode

log = logging.getLogger("brushwork.studio")
#: The shortest time between two preview images of a running job.
PREVIEW_SECONDS = 0.25
ACTIVE = ("queued", "running")


@dataclass
class Job:
    """One run asked for by a page: what it makes, where it is, what came of it."""

    session: str
    mode: Mode
    inputs: Inputs
    options: dict
    names: dict[str, str]                   # input path -> the name the page knows it by
    device: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    status: str = "queued"                  # queued, running, done, stopped, failed, cancelled
    step: int = 0
    total: int = 0
    losses: dict[str, float] = field(default_factory=dict)
    eta: float | None = None
    preview: str | None = None              # the latest image as a data URL, while running
    previews: int = 0
    result: str | None = None               # relative to the working folder
    settings: dict = field(default_factory=dict)
    command: str | None = None
    error: str | None = None
    submitted: float = field(default_factory=time.monotonic)
    started: float | None = None
    first_image: float | None = None        # seconds from the start to the first preview
    seconds: float | None = None            # the run's own duration
    stop: threading.Event = field(default_factory=threading.Event)

    def summary(self) -> dict:
        """The job as the page sees it (JSON)."""
        return {"id": self.id, "session": self.session, "mode": self.mode.name,
                "title": self.mode.title, "status": self.status, "step": self.step,
                "total": self.total, "losses": self.losses, "eta": self.eta,
                "preview": self.preview if self.status == "running" else None,
                "previews": self.previews,
                "result": self.result and f"/files/{self.result}", "settings": self.settings,
                "command": self.command, "error": self.error, "device": self.device,
                "first_image": self.first_image, "seconds": self.seconds,
                "inputs": [self.names.get(str(p), p.name) for p in
                           (self.inputs.content, *self.inputs.styles)]}

    def tell(self, message: str) -> str:
        """A message with the server's paths replaced by the names the page knows."""
        for path, name in self.names.items():
            message = message.replace(path, name)
        return message


def _cost(schedule: list[Scale], done: int) -> int:
    """Pixel-steps of the first ``done`` steps: a step costs about its scale's area."""
    total = 0
    for scale in schedule:
        steps = min(done, scale.iterations)
        total += steps * scale.height * scale.width
        done -= steps
    return total


def data_url(image: Image.Image | torch.Tensor) -> str:
    """An image as a JPEG data URL, for the page to show as it arrives."""
    buffer = BytesIO()
    picture = image if isinstance(image, Image.Image) else io.tensor_to_pil(image)
    picture.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


class Progress:
    """The optimisation callback of one job: stop when asked, record the step and ETA,
    and a preview now and then."""

    def __init__(self, job: Job, board: Board) -> None:
        self.job, self.board = job, board
        self.first: float | None = None
        self.schedule: list[Scale] = []
        self.last_preview = 0.0

    def __call__(self, step: Step) -> None:
        if self.job.stop.is_set():
            raise KeyboardInterrupt
        now = time.monotonic()
        job = self.job
        schedule = self.schedule = list(step.schedule)
        if self.first is None:
            self.first = now
        elif schedule:
            spent = _cost(schedule, step.done) - _cost(schedule, 1)
            left = _cost(schedule, step.total) - _cost(schedule, step.done)
            job.eta = (now - self.first) / spent * left if spent else None
        job.step, job.total, job.losses = step.done, step.total, step.losses
        if now - self.last_preview >= PREVIEW_SECONDS or step.done == step.total:
            self.last_preview = now
            job.preview, job.previews = data_url(step.image), job.previews + 1
            if job.first_image is None and job.started is not None:
                job.first_image = now - job.started
        self.board.changed()


class Worker(threading.Thread):
    """The one thread of a device: takes its queued jobs in order, one at a time."""

    def __init__(self, board: Board, device: str) -> None:
        super().__init__(name=f"studio-{device}", daemon=True)
        self.board, self.device = board, device
        self.queue: deque[Job] = deque()
        self.ready = threading.Condition()
        self.closed = False

    def put(self, job: Job) -> None:
        with self.ready:
            self.queue.append(job)
            self.ready.notify()

    def run(self) -> None:
        while True:
            with self.ready:
                while not self.queue and not self.closed:
                    self.ready.wait()
                if self.closed:
                    return
                job = self.queue.popleft()
            self.board.execute(job)


class Board:
    """Every job since the studio started, the workers that run them, and the sessions
    (open pages) they belong to."""

    def __init__(self, folder: Path, orphan_seconds: float = 30.0) -> None:
        self.folder = folder
        (folder / "results").mkdir(parents=True, exist_ok=True)
        self.orphan_seconds = orphan_seconds
        self.jobs: dict[str, Job] = {}
        self.workers: dict[str, Worker] = {}
        self.streams: dict[str, int] = {}
        self.seen: dict[str, float] = {}
        self.version = 0
        self.lock = threading.Lock()
        self.closing = threading.Event()
        threading.Thread(target=self._reap, name="studio-reaper", daemon=True).start()

    def changed(self) -> None:
        """Something a page shows has changed: the event streams send a new snapshot."""
        with self.lock:
            self.version += 1

    def snapshot(self) -> list[dict]:
        with self.lock:
            jobs = list(self.jobs.values())
        return [j.summary() for j in jobs]

    def submit(self, job: Job) -> Job:
        """Queue a job on its device's worker (started on the device's first job)."""
        device = job.device = str(pick_device(job.device))
        with self.lock:
            self.jobs[job.id] = job
            self.seen[job.session] = time.monotonic()
            worker = self.workers.get(device)
            if worker is None:
                worker = self.workers[device] = Worker(self, device)
                worker.start()
        worker.put(job)
        self.changed()
        return job

    def stop(self, job_id: str) -> None:
        """Stop a running job (it keeps the image so far) or take a queued one off."""
        job = self.jobs.get(job_id)
        if job is None:
            raise BrushworkError("no such job; it may be from an earlier studio")
        job.stop.set()
        with self.lock:
            if job.status == "queued":
                job.status = "cancelled"
        self.changed()

    def execute(self, job: Job) -> None:
        """Run one job through its mode and save what it made, settings in the PNG (a job
        taken off the queue meanwhile is left alone)."""
        with self.lock:
            if job.status != "queued":
                return
            job.status, job.started = "running", time.monotonic()
        self.changed()
        name = f"results/{job.mode.name}-{job.id}.png"
        try:
            settings = job.mode.settings(job.inputs, job.options)
            try:
                progress = Progress(job, self)
                image, status = job.mode.call(job.inputs, job.options, progress), "done"
            except Interrupted as stop:  # at the size the run would have reached
                last = progress.schedule[-1] if progress.schedule else None
                kept = resize(stop.image, last.height, last.width) if last else stop.image
                image, status = io.tensor_to_pil(kept), "stopped"
                settings = {**settings, "partial": True}
            io.save_image(image, self.folder / name, settings)
            job.result, job.settings, job.status = name, settings, status
            job.command = job.mode.command(job.inputs, job.options, Path(name).name)
        except BrushworkError as exc:
            job.status, job.error = "failed", job.tell(str(exc))
        except Exception as exc:  # the studio outlives any job; the terminal gets the trace
            log.exception("job %s failed", job.id)
            job.status = "failed"
            job.error = job.tell(f"unexpected error ({type(exc).__name__}: {exc}); the "
                                 "studio's terminal has the details")
        job.seconds = time.monotonic() - job.started
        self.changed()

    def attach(self, session: str) -> None:
        """A page of ``session`` opened its event stream."""
        with self.lock:
            self.streams[session] = self.streams.get(session, 0) + 1
            self.seen[session] = time.monotonic()

    def detach(self, session: str) -> None:
        with self.lock:
            self.streams[session] -= 1
            self.seen[session] = time.monotonic()

    def orphans(self) -> Iterator[Job]:
        """Active jobs whose session has had no open page for ``orphan_seconds``."""
        now = time.monotonic()
        with self.lock:
            jobs = list(self.jobs.values())
            gone = {s for s, t in self.seen.items()
                    if not self.streams.get(s) and now - t > self.orphan_seconds}
        return (j for j in jobs if j.session in gone and j.status in ACTIVE
                and not j.stop.is_set())

    def _reap(self) -> None:
        while not self.closing.wait(0.5):
            # The queued first: a worker freed by a stopped job must not start one of them.
            for job in sorted(self.orphans(), key=lambda j: j.status != "queued"):
                log.warning("job %s: its page has gone; stopping it", job.id)
                self.stop(job.id)

    def close(self, wait: float = 10.0) -> None:
        """Stop everything (the studio is ending): running jobs keep their image so far,
        saved within ``wait`` seconds (a step's time) before the process goes."""
        self.closing.set()
        for job in list(self.jobs.values()):
            if job.status in ACTIVE:
                self.stop(job.id)
        for worker in self.workers.values():
            with worker.ready:
                worker.closed = True
                worker.ready.notify()
        for worker in self.workers.values():
            worker.join(timeout=wait)
