"""The studio's HTTP side: a Starlette app that serves the page, takes uploads and jobs,
streams progress as server-sent events, and serves results from its working folder only.

Nothing a request names is a server path: uploads are stored under names the app makes
(``uploads/<random>.<suffix>``), and every file a request refers to is resolved and must
lie inside the working folder's ``uploads/`` or ``results/`` (so ``..``, absolute paths
and symlinks out are refused), or be one of the bundled examples or shipped models.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import sys
import tempfile
import threading
import warnings
import webbrowser
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from brushwork import io
from brushwork.errors import BrushworkError
from brushwork.fast.model import MODEL_SUFFIX, load_model, shipped
from brushwork.studio.jobs import Board, Job
from brushwork.studio.modes import MODES, Inputs

log = logging.getLogger("brushwork.studio")
STATIC = Path(__file__).parent / "static"
#: The largest upload taken, in bytes: an image or a trained model, never a video.
MAX_UPLOAD = 64 * 1024 * 1024
#: The bundled example images by stem, offered on the page as contents and styles.
EXAMPLES = {p.stem: p for p in sorted(io.EXAMPLES.glob("*.jpg"))}
#: Where the files a request may name live, inside the working folder.
REFERABLE = ("uploads", "results")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def error(message: str, status: int = 400) -> JSONResponse:
    """A one-line error for the page to show."""
    return JSONResponse({"error": message}, status_code=status)


def contained(folder: Path, relative: str, within: tuple[str, ...]) -> Path:
    """``relative`` resolved inside one of ``folder``'s subfolders ``within``, or a
    one-line error: no absolute path, no ``..``, no symlink that leads out."""
    parts = Path(relative).parts
    if not parts or Path(relative).is_absolute() or ".." in parts or parts[0] not in within:
        raise BrushworkError(f"{relative}: not a file of this studio")
    root = folder.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root / parts[0]) or not path.is_file():
        raise BrushworkError(f"{relative}: not a file of this studio")
    return path


class SameSite:
    """Refuse what other web sites make the user's browser send: any page may POST to
    127.0.0.1, so a request whose Origin is not the studio's own is refused; and while the
    studio listens only on this machine, so is one whose Host is not this machine (a
    name rebound to 127.0.0.1 would otherwise let a site read the results)."""

    def __init__(self, app: ASGIApp, local: bool) -> None:
        self.app, self.local = app, local

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            host = headers.get("host", "")
            origin = headers.get("origin")
            if self.local and host.rpartition(":")[0].strip("[]") not in LOCAL_HOSTS \
                    and host not in LOCAL_HOSTS:
                await error(f"Host {host}: the studio answers only at its own address; "
                            "open it as http://localhost:PORT/", 403)(scope, receive, send)
                return
            if origin is not None and urlsplit(origin).netloc != host:
                await error(f"a request from {origin} was refused: only the studio's own "
                            "page may use it", 403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class Studio:
    """The app's state: its working folder, the uploads' names and the job board."""

    def __init__(self, folder: Path, orphan_seconds: float, max_upload: int) -> None:
        self.folder = folder.resolve()
        (self.folder / "uploads").mkdir(parents=True, exist_ok=True)
        self.board = Board(self.folder, orphan_seconds)
        self.max_upload = max_upload
        self.names: dict[str, str] = {}  # stored path -> the name it was uploaded as

    def image(self, ref: str) -> Path:
        """An image a job names: ``example:STEM`` or a file of this studio."""
        if ref.startswith("example:") and ref[8:] in EXAMPLES:
            return EXAMPLES[ref[8:]]
        return contained(self.folder, ref, REFERABLE)

    def model(self, ref: str) -> str:
        """A fast model a job names: a shipped one's name or an uploaded model file."""
        return ref if ref in shipped() else str(contained(self.folder, ref, ("uploads",)))

    async def upload(self, request: Request) -> Response:
        """Store the request's body under a name of our own, then check it is what it
        claims (an image, or with ``?kind=model`` a model file) before any work."""
        name = Path(request.query_params.get("name", "upload")).name[:80] or "upload"
        kind = request.query_params.get("kind", "image")
        suffix = Path(name).suffix.lower()
        if kind == "model" and suffix != MODEL_SUFFIX:
            return error(f"{name}: a model file ends in {MODEL_SUFFIX}; give one that "
                         "`brushwork train` wrote")
        too_big = (f"{name}: larger than {self.max_upload // 2**20} MB; downscale it or "
                   "give a smaller file")
        if int(request.headers.get("content-length") or 0) > self.max_upload:
            return error(too_big, 413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_upload:
                return error(too_big, 413)
        keep = suffix if suffix in (*io.IMAGE_SUFFIXES, MODEL_SUFFIX) else ".img"
        ref = f"uploads/{secrets.token_hex(8)}{keep}"
        path = self.folder / ref
        path.write_bytes(body)
        try:  # in a thread: a large image takes a while to decode, and the streams go on
            if kind == "model":
                await asyncio.to_thread(load_model, path)
                size: tuple[int, int] = (0, 0)
            else:
                size = (await asyncio.to_thread(io.open_image, path)).size
        except BrushworkError as exc:
            path.unlink()
            return error(str(exc).replace(str(path), name))
        self.names[str(path)] = name
        return JSONResponse({"ref": ref, "name": name, "width": size[0], "height": size[1],
                             "url": f"/files/{ref}"})

    def job(self, spec: dict) -> Job:
        """A job from the page's request, every file and setting checked before it queues."""
        mode = MODES.get(str(spec.get("mode")))
        if mode is None:
            raise BrushworkError(f"mode {spec.get('mode')!r}: choose one of {', '.join(MODES)}")
        if not spec.get("content"):
            raise BrushworkError("choose or drop a content photo first")
        styles = [self.image(str(s)) for s in spec.get("styles") or []]
        masks = [spec.get(k) for k in ("content_mask", "style_mask")]
        if mode.name == "fast":
            inputs = Inputs(self.image(str(spec["content"])), model=self.model(
                str(spec.get("model") or "")))
        elif not styles:
            raise BrushworkError("choose or drop at least one style image")
        elif mode.name == "photo" and (len(styles) != 1 or bool(masks[0]) != bool(masks[1])):
            raise BrushworkError("photo transfer takes one reference photo, and label images "
                                 "for both photos or for neither")
        else:
            labels = [self.image(str(m)) if m and mode.name == "photo" else None
                      for m in masks]
            inputs = Inputs(self.image(str(spec["content"])), styles, None, *labels)
        settings = spec.get("settings") or {}
        if not isinstance(settings, dict):
            raise BrushworkError("settings: expected a mapping of names to values")
        options = mode.options(settings)
        device = str(options.get("device", "auto"))
        return Job(str(spec.get("session") or "anonymous"), mode, inputs, options,
                   dict(self.names), device)

    def config(self) -> dict:
        """What the page builds its form from: modes, fields with defaults, examples, models."""
        return {"modes": [{"name": m.name, "title": m.title, "defaults": m.defaults(),
                           "fields": [vars(f) | {"choices": list(f.choices)} for f in m.fields]}
                          for m in MODES.values()],
                "examples": list(EXAMPLES), "models": list(shipped()),
                "max_upload": self.max_upload}


def create_app(folder: str | os.PathLike, orphan_seconds: float = 30.0,
               max_upload: int = MAX_UPLOAD, local: bool = True) -> Starlette:
    """The studio's ASGI app over ``folder`` (uploads and results go there); ``local``:
    it listens on this machine only, and answers only requests addressed to it."""
    studio = Studio(Path(folder), orphan_seconds, max_upload)

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def config(request: Request) -> Response:
        return JSONResponse(studio.config())

    async def submit(request: Request) -> Response:
        try:
            spec = await request.json()
        except (ValueError, UnicodeDecodeError):
            return error("the request is not JSON; reload the page")
        if not isinstance(spec, dict):
            return error("the request is not a job; reload the page")
        job = studio.job(spec)
        studio.board.submit(job)
        return JSONResponse({"id": job.id})

    async def stop(request: Request) -> Response:
        studio.board.stop(request.path_params["id"])
        return JSONResponse({"stopped": request.path_params["id"]})

    async def jobs(request: Request) -> Response:
        return JSONResponse(studio.board.snapshot())

    async def events(request: Request) -> Response:
        session = request.query_params.get("session") or "anonymous"

        async def stream():
            studio.board.attach(session)
            try:
                seen, quiet = -1, 0
                while not studio.board.closing.is_set():  # the server is ending: so are we
                    if studio.board.version != seen:
                        seen, quiet = studio.board.version, 0
                        yield f"data: {json.dumps(studio.board.snapshot())}\n\n"
                    elif quiet >= 300:  # a comment every 15 s keeps proxies from closing it
                        quiet = 0
                        yield ": still here\n\n"
                    quiet += 1
                    await asyncio.sleep(0.05)
            finally:
                studio.board.detach(session)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    async def files(request: Request) -> Response:
        return FileResponse(contained(studio.folder, request.path_params["path"], REFERABLE))

    async def example(request: Request) -> Response:
        stem = request.path_params["name"]
        if stem not in EXAMPLES:
            return error(f"{stem}: no such example", 404)
        return FileResponse(EXAMPLES[stem])

    async def refused(request: Request, exc: Exception) -> Response:
        status = 404 if request.url.path.startswith("/files/") else 400
        return error(str(exc), status)

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error(f"unexpected error ({type(exc).__name__}); the studio's terminal has "
                     "the details", 500)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        studio.board.close()

    app = Starlette(routes=[
        Route("/", page), Route("/api/config", config), Route("/api/jobs", jobs),
        Route("/api/jobs", submit, methods=["POST"]),
        Route("/api/jobs/{id}/stop", stop, methods=["POST"]),
        Route("/api/uploads", studio.upload, methods=["POST"]),
        Route("/api/events", events), Route("/files/{path:path}", files),
        Route("/examples/{name}", example),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ], exception_handlers={BrushworkError: refused, Exception: unexpected},
        middleware=[Middleware(SameSite, local=local)], lifespan=lifespan)
    app.state.studio = studio
    return app


class Server(uvicorn.Server):
    """uvicorn's server, which first ends the studio's event streams when asked to stop,
    so that shutting down does not wait for the pages still open."""

    def __init__(self, app: Starlette, **config: Any) -> None:
        super().__init__(uvicorn.Config(app, log_level="warning", **config))
        self.board: Board = app.state.studio.board

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.board.closing.set()
        super().handle_exit(sig, frame)


@contextlib.contextmanager
def running(folder: str | os.PathLike, **app_options: Any) -> Iterator[str]:
    """The studio served from a thread of this process on a free local port, for as long
    as the block runs (tests, benchmarks); yields its address. ``app_options`` go to
    ``create_app``."""
    server = Server(create_app(folder, **app_options), host="127.0.0.1", port=0,
                    timeout_graceful_shutdown=1)
    thread = threading.Thread(target=server.run, name="studio-server", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise BrushworkError("the studio's server did not start; see the messages above")
        threading.Event().wait(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.handle_exit(signal.SIGTERM, None)
        thread.join(timeout=30)


def serve(folder: Path | None, host: str = "127.0.0.1", port: int = 8765,
          open_browser: bool = True) -> int:
    """Run the studio until Ctrl-C: check the port, warn off a public host, open the page.
    Without a ``folder``, a new temporary one (made once the port is known to be free)."""
    if host not in LOCAL_HOSTS:
        warnings.warn(f"--host {host}: anyone on the network who can reach port {port} can "
                      "use this studio and see its results", stacklevel=1)
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise BrushworkError(f"--host {host} --port {port}: cannot listen there "
                             f"({exc.strerror}); give another --port") from None
    folder = folder or Path(tempfile.mkdtemp(prefix="brushwork-studio-"))
    url = f"http://{'localhost' if host in LOCAL_HOSTS else host}:{port}/"
    server = Server(create_app(folder, local=host in LOCAL_HOSTS), host=host, port=port,
                    timeout_graceful_shutdown=2)

    def announce() -> None:
        while not server.started and not server.should_exit:
            threading.Event().wait(0.05)
        if server.started:
            print(f"brushwork studio: {url} (working folder {folder}); Ctrl-C ends it",
                  file=sys.stderr)
            if open_browser:
                webbrowser.open(url)

    threading.Thread(target=announce, daemon=True).start()
    server.run()
    return 0
