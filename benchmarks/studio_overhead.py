"""What the studio's page costs: the time from pressing Run to the first intermediate
image, and a whole run on the page against the same run through the Python face in this
process and on the command line (a fresh process: interpreter, torch, the weights).

The page's figures are read in headless Chromium from the press of Run (the first image
is an image shown, not one made); the face's from the call to its first step callback,
in a thread as the studio's worker runs it. Each is done ``--runs`` times, after one
warm-up of the face, and the median is printed: wall time, and CPU time, the figure to
trust on a busy machine (with ``--threads 1``, what the wall time would be on an idle
core). The page's CPU time is this process's (the server, its worker, and the few
requests this script makes of the browser); the browser's own is not counted. The
command line's figures include its start: what a user waits for.

    python benchmarks/studio_overhead.py --size 128 --iterations 20 --threads 1
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import torch

import brushwork
from brushwork.studio.app import running

sys.path.insert(0, str(Path(__file__).parent))
from studio_page import (  # noqa: E402
    chromium,
    first_preview,
    open_page,
    prepare_run,
    press_run,
    results,
    shown,
    until,
)

CONTENT, STYLE = "tubingen", "starry_night"


def clocks() -> tuple[float, float]:
    """Wall and CPU time (this process's) now."""
    return time.monotonic(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = clocks()
    return wall - start[0], cpu - start[1]


def face(size: int, iterations: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """(wall, CPU) seconds to the first step and to the finished image, through
    ``brushwork.stylize`` in a thread of its own."""
    start, first = clocks(), []
    run = threading.Thread(target=lambda: brushwork.stylize(
        brushwork.EXAMPLES / f"{CONTENT}.jpg", [brushwork.EXAMPLES / f"{STYLE}.jpg"],
        size=size, iterations=iterations,
        callback=lambda step: first or first.append(since(start))))
    run.start()
    run.join()
    return first[0], since(start)


def command_line(size: int, iterations: int, threads: int, folder: str) -> tuple[float, float]:
    """(wall, CPU) seconds of the same run as a `brushwork stylize` process."""
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    subprocess.run([sys.executable, "-c", f"import sys, torch; torch.set_num_threads({threads});"
                    " from brushwork.cli import main; sys.exit(main())", "stylize",
                    str(brushwork.EXAMPLES / f"{CONTENT}.jpg"),
                    str(brushwork.EXAMPLES / f"{STYLE}.jpg"), "-o", f"{folder}/cli.png",
                    "--size", str(size), "--iterations", str(iterations), "--quiet"],
                   check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return time.monotonic() - start, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads [%(default)s]")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)  # the process's pool, which the studio's worker uses
    face(args.size, args.iterations)  # warm-up
    rows: dict[str, list[tuple[float, float]]] = {k: [] for k in (
        "page first", "page total", "face first", "face total", "command line")}
    with tempfile.TemporaryDirectory() as folder, running(folder) as url, \
            chromium() as driver:
        open_page(driver, url)
        for run in range(args.runs):
            before = shown(driver)
            prepare_run(driver, "artistic", CONTENT, (STYLE,) if run == 0 else (),
                        {"size": args.size, "iterations": args.iterations})
            start = clocks()
            press_run(driver)
            first_preview(driver, before)
            rows["page first"].append(since(start))
            until(driver, lambda d, n=run + 1: results(d) == n)
            rows["page total"].append(since(start))
            first, total = face(args.size, args.iterations)
            rows["face first"].append(first)
            rows["face total"].append(total)
            rows["command line"].append(command_line(args.size, args.iterations, args.threads,
                                                     folder))
        jobs = json.load(urllib.request.urlopen(f"{url}/api/jobs"))
    served_first = statistics.median(j["first_image"] for j in jobs)

    def median(key: str, part: int) -> float:
        return statistics.median(r[part] for r in rows[key])

    def show(key: str) -> str:
        return f"{median(key, 0):6.2f} s wall {median(key, 1):6.2f} s CPU"

    print(f"{args.size} px, {args.iterations} iterations, {args.threads} torch thread(s), "
          f"median of {args.runs} runs")
    print(f"Run -> first image on the page  {show('page first')}  (the server's job start "
          f"to its first preview: {served_first:.2f} s)")
    print(f"the face's first step           {show('face first')}")
    print(f"whole run on the page           {show('page total')}")
    print(f"the same through the face       {show('face total')}")
    print(f"the same on the command line    {show('command line')}")
    wall, cpu = (median("page total", i) - median("face total", i) for i in (0, 1))
    print(f"page overhead against the face  {wall:+6.2f} s wall {cpu:+6.2f} s CPU")


if __name__ == "__main__":
    main()
