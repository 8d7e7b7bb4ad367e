"""One module per group of subcommands; importing this package registers them all."""

from brushwork.commands import inspect, stylize, weights  # noqa: F401
