"""The floors of brushwork, top to bottom: a module imports only from its own floor and
the floors below, so that the library never needs its command line and each layer can be
read, tested and changed without the ones above it.

``tests/test_floors.py`` holds the code to this table (lazy imports inside functions count
too), and ``docs/DESIGN.md`` draws it. A new module gets a row here before it gets a test.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

#: (floor, module patterns), highest floor first. Patterns are fnmatch-style on dotted
#: module names; a package's ``__init__`` is the package's own name.
FLOORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("faces", ("brushwork", "brushwork.__main__", "brushwork.cli", "brushwork.commands",
               "brushwork.commands.fast", "brushwork.commands.inspect",
               "brushwork.commands.photo", "brushwork.commands.score",
               "brushwork.commands.studio", "brushwork.commands.stylize",
               "brushwork.commands.weights",
               # The studio is a face too: a web page over the Python face (app on jobs
               # on modes, each calling ``brushwork``), which only its command imports.
               "brushwork.studio", "brushwork.studio.app", "brushwork.studio.jobs",
               "brushwork.studio.modes")),
    # The helpers every command shares (argument groups, the registry, the run wrapper
    # with checkpoints): below the commands, so that they import it and never each other.
    ("command helpers", ("brushwork.commands.common",)),
    # artistic_video stands on artistic and video, on its own floor; neither imports it.
    ("jobs", ("brushwork.artistic", "brushwork.artistic_video", "brushwork.photo",
              "brushwork.regions", "brushwork.matting", "brushwork.inspect",
              "brushwork.recording", "brushwork.video",
              "brushwork.planning", "brushwork.quality", "brushwork.fast",
              "brushwork.fast.*")),
    ("engine", ("brushwork.optimise", "brushwork.tiling")),
    ("ground", ("brushwork.io", "brushwork.weights", "brushwork.vgg", "brushwork.losses",
                "brushwork.colour", "brushwork.runtime", "brushwork.signals",
                "brushwork.options", "brushwork.errors", "brushwork.floors")),
)

#: Packages whose modules on one floor stand side by side (one module per group of
#: commands): none of them imports another; what two of them share goes a floor down.
SIDE_BY_SIDE: tuple[str, ...] = ("brushwork.commands",)


def floor_of(module: str) -> int | None:
    """The index in ``FLOORS`` (0 = top) of a dotted module name; None if it has none."""
    for index, (_, patterns) in enumerate(FLOORS):
        if any(fnmatchcase(module, p) for p in patterns):
            return index
    return None
