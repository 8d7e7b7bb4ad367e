"""`--dry-run`: the schedule, peak memory and time of a run, before anything heavy starts.

Time is extrapolated from one forward and backward pass at 128 px, measured on the chosen
device, assuming cost proportional to pixels (true for VGG above ~100 px); memory from
``tiling.bytes_per_pixel``. Both are estimates, printed as such.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from brushwork.artistic import StyleOptions, style_bytes, tile_for
from brushwork.optimise import pyramid
from brushwork.runtime import autocast, available_memory, pick_device, resolve_precision
from brushwork.tiling import bytes_per_pixel, grid
from brushwork.vgg import run_network

CALIBRATION_SIDE = 128
# A tiled scale re-measures every tile's Gram once per visit (a forward pass per tile).
TILED_OVERHEAD = 1.15


@dataclass
class PlannedScale:
    width: int
    height: int
    iterations: int
    tile: int | None
    tiles: int
    memory: float
    seconds: float


def seconds_per_pixel_step(options: StyleOptions, device: torch.device,
                           dtype: torch.dtype) -> float:
    """Measure one optimisation step's cost per pixel at a small size."""
    net = run_network((*options.content_layers, *options.style_layers), options.pooling,
                      options.weights, device, dtype)
    x = torch.rand(1, 3, CALIBRATION_SIDE, CALIBRATION_SIDE, device=device, requires_grad=True)
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        with autocast(device, dtype):
            feats = net(x)
        sum(f.float().pow(2).mean() for f in feats.values()).backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best / CALIBRATION_SIDE**2


def plan(options: StyleOptions, height: int, width: int) -> list[PlannedScale]:
    """What a run of ``options`` on a ``height`` x ``width`` output would do and cost."""
    scales = pyramid(height, width, options.scales, options.iterations)  # fails before timing
    device = pick_device(options.device)
    dtype = resolve_precision(options.precision, device)
    layers = list(options.content_layers) + list(options.style_layers)
    per_pixel = bytes_per_pixel(layers, dtype)
    budget = available_memory(device)
    cost = seconds_per_pixel_step(options, device, dtype)
    rows = []
    for scale in scales:
        pixels = scale.height * scale.width
        tile = tile_for(options, scale.height, scale.width, per_pixel, budget)
        boxes = grid(scale.height, scale.width, tile, options.overlap) if tile else []
        piece = min(pixels, tile * tile) if tile else pixels
        work = sum((t.y1 - t.y0) * (t.x1 - t.x0) for t in boxes) if tile else pixels
        style = style_bytes(pixels * options.style_scale ** 2)
        rows.append(PlannedScale(scale.width, scale.height, scale.iterations, tile,
                                 max(1, len(boxes)), max(piece * per_pixel, style),
                                 scale.iterations * work * cost
                                 * (TILED_OVERHEAD if tile else 1.0)))
    return rows


def describe(rows: list[PlannedScale], device: str) -> str:
    """The plan as a table, with totals."""
    lines = [f"{'scale':>5s} {'size':>11s} {'steps':>6s} {'tiles':>12s} {'peak mem':>9s} "
             f"{'time':>8s}"]
    for i, r in enumerate(rows, 1):
        tiles = f"{r.tiles} x {r.tile}px" if r.tile else "whole"
        lines.append(f"{i:5d} {r.width:>5d}x{r.height:<5d} {r.iterations:6d} {tiles:>12s} "
                     f"{r.memory / 2**30:7.2f}GB {r.seconds:7.0f}s")
    total = sum(r.seconds for r in rows)
    peak = max(r.memory for r in rows)
    lines.append(f"estimated on {device}: about {total / 60:.1f} min, peak network memory "
                 f"{peak / 2**30:.2f} GB (plus the VGG weights, ~0.1 GB)")
    return "\n".join(lines)
