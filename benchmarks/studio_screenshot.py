"""The README's screenshot of brushwork studio (docs/studio.png), taken by headless
Chromium: a fast result in the gallery and an artistic run under way, all from the
bundled example images.

    python benchmarks/studio_screenshot.py docs/studio.png
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from selenium.webdriver.common.by import By

from brushwork.studio.app import running

sys.path.insert(0, str(Path(__file__).parent))
from studio_page import chromium, open_page, prepare_run, press_run, results, until  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", default="docs/studio.png")
    parser.add_argument("--size", type=int, default=224, help="the artistic run's size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, running(folder) as url, \
            chromium(1280, 900) as driver:
        open_page(driver, url)
        prepare_run(driver, "fast", "chelsea", (), {"size": 256})
        press_run(driver)
        until(driver, lambda d: results(d) == 1)
        prepare_run(driver, "artistic", "tubingen", ("starry_night",),
                    {"size": args.size, "iterations": 400})
        press_run(driver)
        until(driver, lambda d: int(d.find_element(By.ID, "step").text or 0) >= 30)
        driver.execute_script("window.scrollTo(0, 0)")  # Run's click scrolled down
        driver.save_screenshot(args.output)
        driver.find_element(By.ID, "stop").click()
        until(driver, lambda d: results(d) == 2)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
