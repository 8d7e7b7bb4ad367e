"""What the studio's scripts share: the studio in this process, the page in Debian's
headless Chromium (the system's chromedriver: Selenium Manager downloads nothing), and a
run started on the page as a user starts one. Used by studio_overhead.py and
studio_screenshot.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait


@contextmanager
def chromium(width: int = 1280, height: int = 1000) -> Iterator[WebDriver]:
    """Headless Chromium at a window of ``width`` x ``height`` CSS pixels."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def until(driver: WebDriver, condition: Callable[[WebDriver], object],
          timeout: float = 300, every: float = 0.1) -> object:
    """Wait for ``condition``, asking the browser every ``every`` seconds (each question
    costs the browser and its driver CPU time, which a measured run would share)."""
    return WebDriverWait(driver, timeout, poll_frequency=every).until(condition)


def open_page(driver: WebDriver, url: str) -> None:
    driver.get(url)
    until(driver, lambda d: d.find_element(By.ID, "connection").text == "connected")
    until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#style-examples img"))


def prepare_run(driver: WebDriver, mode: str, content: str, styles: tuple[str, ...],
                settings: dict[str, object]) -> None:
    """Choose the mode, a bundled content and styles, and the settings, as a user does."""
    driver.find_element(By.ID, f"mode-{mode}").click()
    driver.find_element(By.CSS_SELECTOR, f"#content-examples img[data-name={content}]").click()
    for style in styles:
        driver.find_element(By.CSS_SELECTOR, f"#style-examples img[data-name={style}]").click()
    for name, value in settings.items():
        field = driver.find_element(By.ID, f"setting-{name}")
        if not field.is_displayed():
            driver.find_element(By.CSS_SELECTOR, "#advanced summary").click()
        field.clear()
        field.send_keys(str(value))


def press_run(driver: WebDriver) -> None:
    driver.find_element(By.ID, "run").click()


def results(driver: WebDriver) -> int:
    return len(driver.find_elements(By.CSS_SELECTOR, "#gallery .result"))


def shown(driver: WebDriver) -> str | None:
    """Which job's which preview the page shows ("JOB:N"), None before any."""
    return driver.find_element(By.ID, "preview").get_attribute("data-n")


def first_preview(driver: WebDriver, before: str | None) -> float:
    """Wait for the first image of a job other than the one shown ``before``; the
    monotonic time it was seen."""
    old = (before or ":").split(":")[0]
    until(driver, lambda d: (shown(d) or ":").split(":")[0] not in ("", old), every=0.01)
    return time.monotonic()
