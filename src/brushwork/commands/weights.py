"""`brushwork weights [fetch]`: where the VGG-19 weights are, and provisioning them."""

from __future__ import annotations

import argparse

from brushwork import weights
from brushwork.commands.common import command
from brushwork.errors import BrushworkError


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", choices=("show", "fetch"), default="show",
                   help="show (default): report the weights in use; fetch: provision them")
    p.add_argument("--weights", default=None, help="an explicit weights file to check")


@command("weights", "show or fetch the VGG-19 weights", _configure)
def run(args: argparse.Namespace) -> int:
    if args.action == "fetch":
        path = weights.fetch()
        print(f"VGG-19 weights ready: {path}")
    text, problem = weights.report(args.weights)
    print(text)
    if problem:  # the status says whether runs would find usable weights
        raise BrushworkError(problem)
    return 0
