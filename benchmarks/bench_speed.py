"""Speed and memory of brushwork's optimisation at several sizes, against pastiche where feasible.

For each size, each system runs as a fresh process (`/usr/bin/time`-style: wall time and
peak resident memory of the child, and on CUDA the peak GPU memory PyTorch allocated), and
the per-step time is the difference between runs of 1 and 1 + --steps steps at one scale,
so start-up and weight loading cancel. Ratios are from the same run on the same machine.
On a fast GPU a step takes milliseconds and the start-up of a process varies by more than
ten of them, so give CUDA a large --steps (500) or use compare_pastiche.py's whole runs.

    python benchmarks/bench_speed.py --sizes 256 512 1024 --steps 10 [--pastiche] [--device cuda]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "brushwork" / "examples"
#: Runs a module as ``python -m`` would, then reports PyTorch's peak CUDA allocation.
PEAK_CUDA = """import runpy, sys, torch
sys.argv = sys.argv[1:]
try:
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
finally:
    if torch.cuda.is_initialized():
        print("cuda-peak", torch.cuda.max_memory_allocated(), file=sys.stderr)
"""


class Run(NamedTuple):
    """What one child process cost: seconds of wall and CPU time, peak RSS and CUDA GB."""

    wall: float
    cpu: float
    rss: float
    cuda: float


def cpu_kind() -> str:
    """The CPU model, cores and native bf16 flags (``lscpu | grep -o 'amx_bf16|avx512_bf16'``;
    none = AVX2 only, where bf16 is emulated and brushwork runs float32); every benchmark
    prints it with its figures."""
    try:
        flags = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return "unknown (no lscpu)"
    model = next((line.split(":", 1)[1].strip() for line in flags.splitlines()
                  if line.startswith("Model name")), platform.processor() or "?")
    bf16 = sorted(set(re.findall(r"amx_bf16|avx512_bf16", flags)))
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    kind = " ".join(bf16) if bf16 else f"none ({simd} only: --precision auto is float32)"
    return f"{model}, {os.cpu_count()} cores, native bf16 flags: {kind}"


def measure(module: str, args: list[str]) -> Run:
    """Run ``python -m module args`` as a child and measure it (its own rusage, via wait4);
    exit with its error output if it fails. Shared by the benchmarks that time whole runs."""
    cmd = [sys.executable, "-c", PEAK_CUDA, module, *args]
    with tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        err.seek(0)
        log = err.read()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {module} {' '.join(args)}\n{log[-1500:]}")
    cuda = [int(line.split()[1]) for line in log.splitlines() if line.startswith("cuda-peak")]
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 2**20,
               (cuda[-1] if cuda else 0) / 2**30)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--pastiche", action="store_true", help="also time pastiche 1.6.0")
    p.add_argument("--device", default="auto")
    a = p.parse_args()
    content, style = EXAMPLES / "tubingen.jpg", EXAMPLES / "starry_night.jpg"
    out = Path("/tmp/bench_speed.png")
    print(f"{'size':>5s} {'system':10s} {'s/step':>8s} {'RSS GB':>7s} {'CUDA GB':>8s} "
          f"{'ratio':>6s}")
    for size in a.sizes:
        base = ["stylize", str(content), str(style), "-o", str(out), "--size", str(size),
                "--scales", "1", "--quiet", "--device", a.device]
        t1, _, _, _ = measure("brushwork", [*base, "--iterations", "1"])
        tn, _, peak, cuda = measure("brushwork", [*base, "--iterations", str(a.steps + 1)])
        ours = (tn - t1) / a.steps
        print(f"{size:5d} {'brushwork':10s} {ours:8.3f} {peak:7.2f} {cuda:8.2f}", flush=True)
        if a.pastiche:
            cmd = ["--device", "cpu" if a.device == "auto" else a.device, "--size", str(size),
                   "-c", str(content), "-s", str(style), "-o", str(out), "--no-verbose"]
            p1, _, _, _ = measure("pastiche", [*cmd, "--num-steps", "1"])
            pn, _, ppeak, pcuda = measure("pastiche", [*cmd, "--num-steps", str(a.steps + 1)])
            theirs = (pn - p1) / a.steps
            print(f"{size:5d} {'pastiche':10s} {theirs:8.3f} {ppeak:7.2f} {pcuda:8.2f} "
                  f"{theirs / ours:5.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
