"""The checks every options class makes (StyleOptions, PhotoOptions, ReconstructOptions,
TrainOptions, FastOptions, the snapshots' counts), worded alike: "--lr -1 must be above 0".

On the ground floor so that the options of any job, and the engine, use the one wording.
Checks come before heavy work, and the Python API has no argparse in front of them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from brushwork.errors import BrushworkError


def require_finite(flag: str, value: float) -> None:
    """NaN passes every comparison (``nan < 0`` is false), so ranges are checked after this."""
    if not math.isfinite(value):
        raise BrushworkError(f"--{flag.replace('_', '-')} {value}: give a finite number")


def require(flag: str, value: float, least: float, above: bool = False, hint: str = "") -> None:
    """The one-line error for a setting below its least value (``above``: at it, too), so
    that every options check words it alike: "--lr -1 must be above 0, e.g. 0.02"."""
    require_finite(flag, value)
    if value < least or (above and value == least):
        need = "not be negative" if least == 0 and not above else \
            f"be {'above' if above else 'at least'} {least:g}"
        raise BrushworkError(f"--{flag.replace('_', '-')} {value:g} must {need}{hint}")


def check_schedule(scales: int, iterations: Sequence[int] | int, lr: float | None,
                   least: int = 1) -> None:
    """The settings every pixel-optimising run shares, checked before any heavy work;
    ``least`` steps per scale at the fewest (0 where a stage may be skipped)."""
    require("scales", scales, 1)
    if not isinstance(iterations, int) and len(iterations) != scales:
        raise BrushworkError(f"--iterations: {len(iterations)} counts for --scales {scales}; "
                             "give one total, or one count per scale (coarse first)")
    for count in [iterations] if isinstance(iterations, int) else iterations:
        require("iterations", count, least)
    if lr is not None:
        require("lr", lr, 0, above=True, hint=", e.g. 1 for L-BFGS or 0.02 for Adam")
