"""One module per group of subcommands; importing this package registers them all."""

from brushwork.commands import fast, inspect, photo, score, studio, stylize, weights  # noqa: F401
