"""What a brushwork step costs against what the network costs, and the default at 512 px.

For each size (longest side, 4:3): the VGG-19 forward and backward pass alone (to the
deepest layer the default uses, in the run's precision, gradients of ones at every used
layer), then one L-BFGS step of a real artistic run at that size (``stylize_tensor`` with
one scale, timed between its own step callbacks), and their ratio. The network pass is
the floor: a step that costs 1.0x spends nothing outside it. Then the default run at
512 px as a fresh process (`brushwork stylize`, start-up included) with its style and
content distances from ``brushwork.quality``.

    python benchmarks/bench_step.py                       # 256, 512, 1024; default at 512
    python benchmarks/bench_step.py --sizes 512 --steps 8 --no-default --profile

Name the CPU with the figures: ``lscpu | grep -o 'amx_bf16\\|avx512_bf16' | sort -u``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_speed import cpu_kind, measure  # noqa: E402

from brushwork import io  # noqa: E402
from brushwork.artistic import StyleOptions, feature_network, stylize_tensor  # noqa: E402
from brushwork.quality import score  # noqa: E402
from brushwork.runtime import autocast, pick_device, resolve_precision  # noqa: E402

CONTENT = io.EXAMPLES / "tubingen.jpg"
STYLE = io.EXAMPLES / "starry_night.jpg"


def network_pass(options: StyleOptions, height: int, width: int, reps: int) -> float:
    """Median seconds of one forward + backward pass of the run's network."""
    device = pick_device(options.device)
    dtype = resolve_precision(options.precision, device)
    net = feature_network(options, device, dtype)
    x = torch.rand(1, 3, height, width, device=device).requires_grad_(True)
    times = []
    for _ in range(reps + 1):  # the first pass warms the kernels up
        start = time.perf_counter()
        with autocast(device, dtype):
            feats = list(net(x).values())
        torch.autograd.backward(feats, [torch.ones_like(f) for f in feats])
        x.grad = None
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def step_time(options: StyleOptions, content: torch.Tensor, style: torch.Tensor,
              steps: int) -> float:
    """Median seconds between the step callbacks of a one-scale artistic run (the first
    two steps, which warm up and build the L-BFGS history, are left out)."""
    stamps: list[float] = []
    opts = StyleOptions(**{**options.__dict__, "scales": 1, "iterations": steps + 2})
    stylize_tensor(content, [style], opts, [lambda _: stamps.append(time.perf_counter())],
                   progress=False)
    return statistics.median(b - a for a, b in zip(stamps[1:], stamps[2:], strict=False))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    p.add_argument("--steps", type=int, default=5, help="timed steps per size [5]")
    p.add_argument("--precision", default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-default", action="store_true", help="skip the 512 px default run")
    p.add_argument("--profile", action="store_true",
                   help="print the operators of the steps at the first size")
    a = p.parse_args()
    options = StyleOptions(precision=a.precision, device=a.device, tile=0).check()
    device = pick_device(a.device)
    print(f"{cpu_kind()}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{device}, {resolve_precision(a.precision, device)}")
    print(f"{'size':>10s} {'network s':>10s} {'step s':>8s} {'ratio':>6s}")
    for i, size in enumerate(a.sizes):
        content = io.load_image(CONTENT, size)
        style = io.load_image(STYLE, size)
        h, w = content.shape[-2:]
        net = network_pass(options, h, w, a.steps)
        if a.profile and i == 0:
            with torch.profiler.profile() as prof:
                step = step_time(options, content, style, a.steps)
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
        else:
            step = step_time(options, content, style, a.steps)
        print(f"{w:>5d}x{h:<4d} {net:10.3f} {step:8.3f} {step / net:6.2f}")
    if not a.no_default:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out.png"
            run = measure("brushwork", ["stylize", str(CONTENT), str(STYLE), "-o", str(out),
                                        "--precision", a.precision, "--device", a.device,
                                        "--quiet"])
            report = score(out, CONTENT, STYLE)
        print(f"default at 512 px: {run.wall:.1f} s wall, {run.cpu:.1f} s CPU, style "
              f"{report['style']:.3f}, content {report['content']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
