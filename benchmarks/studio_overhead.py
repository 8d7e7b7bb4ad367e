"""What the studio's page costs: the time from pressing Run to the first intermediate
image, and a whole run on the page against the same run through the Python face in this
process and on the command line (a fresh process: interpreter, torch, weights).

The page's figures are read in headless Chromium from the press of Run (the first image
is an image shown, not one made); the face's from the call to its first step callback.
Each run is done ``--runs`` times and the median is printed, after one warm-up of the
face so that neither side pays for the first load of torch's kernels. The command line's
figure includes its start (interpreter, torch, the weights): what a user waits for.

    python benchmarks/studio_overhead.py --size 128 --iterations 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import brushwork
from brushwork.studio.app import running

sys.path.insert(0, str(Path(__file__).parent))
from studio_page import (  # noqa: E402
    chromium,
    first_preview,
    open_page,
    results,
    shown,
    start_run,
    until,
)

CONTENT, STYLE = "tubingen", "starry_night"


def face(size: int, iterations: int) -> tuple[float, float]:
    """Seconds to the first step and to the finished image, through ``brushwork.stylize``
    in a thread of its own, as the studio's worker runs it (on a busy machine, torch's
    threads fare differently under the main thread and under another)."""
    steps: list[float] = []
    start = time.monotonic()
    run = threading.Thread(target=lambda: brushwork.stylize(
        brushwork.EXAMPLES / f"{CONTENT}.jpg", [brushwork.EXAMPLES / f"{STYLE}.jpg"],
        size=size, iterations=iterations,
        callback=lambda step: steps.append(time.monotonic())))
    run.start()
    run.join()
    return steps[0] - start, time.monotonic() - start


def command_line(size: int, iterations: int, folder: str) -> float:
    """Seconds of the same run as a `brushwork stylize` process."""
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "brushwork", "stylize",
                    str(brushwork.EXAMPLES / f"{CONTENT}.jpg"),
                    str(brushwork.EXAMPLES / f"{STYLE}.jpg"), "-o", f"{folder}/cli.png",
                    "--size", str(size), "--iterations", str(iterations), "--quiet"],
                   check=True, capture_output=True)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    face(args.size, args.iterations)  # warm-up
    with tempfile.TemporaryDirectory() as folder, running(folder) as url, \
            chromium() as driver:
        page_first, page_total, own_first, own_total, cli = [], [], [], [], []
        open_page(driver, url)
        for run in range(args.runs):
            before = shown(driver)
            pressed = start_run(driver, "artistic", CONTENT, (STYLE,) if run == 0 else (),
                                {"size": args.size, "iterations": args.iterations})
            page_first.append(first_preview(driver, before) - pressed)
            until(driver, lambda d, n=run + 1: results(d) == n)
            page_total.append(time.monotonic() - pressed)
            first, total = face(args.size, args.iterations)
            own_first.append(first)
            own_total.append(total)
            cli.append(command_line(args.size, args.iterations, folder))
        jobs = json.load(urllib.request.urlopen(f"{url}/api/jobs"))
        served_first = [j["first_image"] for j in jobs]
        served_total = [j["seconds"] for j in jobs]
    median = statistics.median
    print(f"{args.size} px, {args.iterations} iterations, median of {args.runs} runs")
    print(f"Run -> first image on the page  {median(page_first):6.2f} s   "
          f"(the face's first step: {median(own_first):.2f} s)")
    print(f"  of which the server's          {median(served_first):6.2f} s   (job start to "
          "its first preview)")
    print(f"whole run on the page           {median(page_total):6.2f} s   (the server's job: "
          f"{median(served_total):.2f} s)")
    print(f"the same through the face       {median(own_total):6.2f} s   "
          f"(page overhead {median(page_total) - median(own_total):+.2f} s)")
    print(f"the same on the command line    {median(cli):6.2f} s   "
          f"(page {median(page_total) - median(cli):+.2f} s against it)")


if __name__ == "__main__":
    main()
