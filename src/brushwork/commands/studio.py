"""`brushwork studio`: the local web app over the Python face (``brushwork.studio``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from brushwork.commands.common import command
from brushwork.errors import BrushworkError
from brushwork.io import check_writable


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; anything but this machine's own lets others "
                        "on the network use the studio [%(default)s]")
    p.add_argument("--port", type=int, default=8765, help="[%(default)s]")
    p.add_argument("--no-browser", action="store_true", help="do not open the page")
    p.add_argument("--folder", help="working folder for uploads and results "
                   "[a new temporary folder]")


@command("studio", "a local web app: drop a photo, pick styles, watch it paint "
                   "(needs pip install \"brushwork[studio]\")", _configure)
def studio(args: argparse.Namespace) -> int:
    try:
        from brushwork.studio.app import serve
    except ImportError as exc:
        raise BrushworkError(f"the studio needs {exc.name}: pip install "
                             "\"brushwork[studio]\"") from None
    if not 0 < args.port < 65536:
        raise BrushworkError(f"--port {args.port}: give a port from 1 to 65535")
    if args.folder and Path(args.folder).exists() and not Path(args.folder).is_dir():
        raise BrushworkError(f"--folder {args.folder}: that is a file; give a folder (new or "
                             "existing)")
    if args.folder:
        check_writable(Path(args.folder) / "results")
    return serve(Path(args.folder) if args.folder else None, args.host, args.port,
                 open_browser=not args.no_browser)
