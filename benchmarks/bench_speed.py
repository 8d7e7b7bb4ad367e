"""Speed and memory of brushwork's optimisation at several sizes, against pastiche where feasible.

For each size, each system runs as a fresh process (`/usr/bin/time`-style: wall time and
peak resident memory of the child), and brushwork's per-step time is taken from a run of
a fixed number of steps at one scale. Ratios are from the same run on the same machine.

    python benchmarks/bench_speed.py --sizes 256 512 1024 --steps 10 [--pastiche]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "brushwork" / "examples"


def measure(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in GB) of one child process (its own rusage, via wait4)."""
    with tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            sys.exit(f"failed: {' '.join(cmd)}\n{err.read()[-1500:]}")
    return wall, usage.ru_maxrss / 2**20


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--pastiche", action="store_true", help="also time pastiche 1.6.0")
    p.add_argument("--device", default="auto")
    a = p.parse_args()
    content, style = EXAMPLES / "tubingen.jpg", EXAMPLES / "starry_night.jpg"
    out = Path("/tmp/bench_speed.png")
    print(f"{'size':>5s} {'system':10s} {'s/step':>8s} {'peak GB':>8s} {'ratio':>6s}")
    for size in a.sizes:
        base = [sys.executable, "-m", "brushwork", "stylize", str(content), str(style), "-o",
                str(out), "--size", str(size), "--scales", "1", "--quiet", "--device", a.device]
        t1, _ = measure([*base, "--iterations", "1"])
        tn, peak = measure([*base, "--iterations", str(a.steps + 1)])
        ours = (tn - t1) / a.steps
        print(f"{size:5d} {'brushwork':10s} {ours:8.3f} {peak:8.2f}", flush=True)
        if a.pastiche:
            cmd = [sys.executable, "-m", "pastiche", "--device", "cpu" if a.device == "auto"
                   else a.device, "--size", str(size), "-c", str(content), "-s", str(style),
                   "-o", str(out), "--no-verbose"]
            p1, _ = measure([*cmd, "--num-steps", "1"])
            pn, ppeak = measure([*cmd, "--num-steps", str(a.steps + 1)])
            theirs = (pn - p1) / a.steps
            print(f"{size:5d} {'pastiche':10s} {theirs:8.3f} {ppeak:8.2f} {theirs / ours:5.2f}x",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
