"""Tiled runs with and without brushwork's reuse of freed memory, side by side.

Each run is a fresh `brushwork stylize` process at one scale in tiles; ``BRUSHWORK_KEEP_MEMORY=0``
gives the baseline, glibc as it comes (every large buffer mapped afresh and faulted in page by
page). Printed per run: wall, user and system CPU seconds, minor page faults and peak RSS.

    python benchmarks/bench_reuse.py --size 1024 --tile 384 --steps 3
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from brushwork import io


def run(env: dict[str, str], args: list[str]) -> str:
    """One child process; its figures from its own rusage."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "brushwork", *args], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, use = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status):
        sys.exit(child.stderr.read()[-1500:])
    return (f"{wall:7.1f} {use.ru_utime:7.1f} {use.ru_stime:6.1f} {use.ru_minflt:10d} "
            f"{use.ru_maxrss / 2**20:6.2f}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--tile", type=int, default=384)
    p.add_argument("--steps", type=int, default=3)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        args = ["stylize", str(io.EXAMPLES / "tubingen.jpg"), str(io.EXAMPLES / "starry_night.jpg"),
                "--size", str(a.size), "--tile", str(a.tile), "--scales", "1", "--iterations",
                str(a.steps), "--quiet", "-o", str(Path(tmp) / "out.png")]
        print(f"{a.size} px in tiles of {a.tile}, {a.steps} steps")
        print(f"{'run':>14s} {'wall s':>7s} {'user s':>7s} {'sys s':>6s} {'faults':>10s} "
              f"{'RSS GB':>6s}")
        for name, keep in (("glibc as is", "0"), ("reusing", "1")):
            print(f"{name:>14s} {run({**os.environ, 'BRUSHWORK_KEEP_MEMORY': keep}, args)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
