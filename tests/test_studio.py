"""brushwork studio, driven as a user drives it: the page in Debian's headless Chromium
(through Selenium, with the system's chromedriver, so nothing is downloaded), and raw HTTP
for what a browser would tidy away (``..`` in a path, a dropped event stream).

Every wait is on a condition with a generous timeout, never a sleep: on a busy machine a
step may take a second, and the tests must not depend on it taking less.
"""

from __future__ import annotations

import http.client
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from brushwork import BrushworkError, cli, io
from brushwork.studio.app import running

WAIT = 90  # seconds: far beyond what any condition takes, so only a real failure times out
MAX_UPLOAD = 2**20  # the test server's upload limit (a shipped model is half of it)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition: Callable[[], object], what: str, timeout: float = WAIT) -> object:
    """Poll ``condition`` until it is truthy; fail naming ``what`` after ``timeout``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


class Server:
    """The studio's app served from a thread of this process (``studio.app.running``)."""

    def __init__(self, url: str, folder: Path) -> None:
        self.url, self.folder = url, folder
        self.port = int(url.rpartition(":")[2])

    def request(self, method: str, path: str, body: bytes | str | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """A raw request: the path goes out exactly as written (no normalising of ``..``)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body, headers or {})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def job(self, job_id: str) -> dict:
        status, body = self.request("GET", "/api/jobs")
        assert status == 200
        return next(j for j in json.loads(body) if j["id"] == job_id)

    def attach(self, session: str) -> socket.socket:
        """An open event stream of ``session``, as a page keeps one: its jobs are wanted."""
        stream = socket.create_connection(("127.0.0.1", self.port))
        stream.sendall(f"GET /api/events?session={session} HTTP/1.1\r\n"
                       f"Host: 127.0.0.1:{self.port}\r\n\r\n".encode())
        assert stream.recv(100).startswith(b"HTTP/1.1 200")
        return stream

    def submit(self, **spec: object) -> str:
        status, body = self.request("POST", "/api/jobs", json.dumps(spec))
        assert status == 200, body
        return json.loads(body)["id"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("studio") / "work"
    with running(folder, orphan_seconds=2.0, max_upload=MAX_UPLOAD) as url:
        yield Server(url, folder)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1280,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    yield driver
    driver.quit()


def until(driver: WebDriver, condition: Callable[[WebDriver], object], timeout: float = WAIT):
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)


def open_page(driver: WebDriver, server: Server) -> None:
    driver.get(server.url + "/")
    until(driver, lambda d: d.find_element(By.ID, "connection").text == "connected")
    until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#style-examples img"))


def set_setting(driver: WebDriver, name: str, value: str) -> None:
    field = driver.find_element(By.ID, f"setting-{name}")
    if not field.is_displayed():
        driver.find_element(By.CSS_SELECTOR, "#advanced summary").click()
    field.clear()
    field.send_keys(value)


def cards(driver: WebDriver) -> list:
    return driver.find_elements(By.CSS_SELECTOR, "#gallery .result")


def test_artistic_run_shows_the_image_evolving_and_stop_keeps_it(
        browser: WebDriver, server: Server, examples: Path) -> None:
    open_page(browser, server)
    browser.find_element(By.ID, "content-file").send_keys(str(examples / "tubingen.jpg"))
    until(browser, lambda d: d.find_element(By.ID, "content-name").text == "tubingen.jpg")
    browser.find_element(By.ID, "style-file").send_keys(str(examples / "starry_night.jpg"))
    until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#styles-chosen img"))
    set_setting(browser, "size", "64")
    set_setting(browser, "iterations", "5000")  # far more than the test waits for: Stop ends it
    browser.find_element(By.ID, "run").click()

    preview = browser.find_element(By.ID, "preview")
    until(browser, lambda d: (preview.get_attribute("src") or "").startswith("data:image/"))
    first = preview.get_attribute("src")
    until(browser, lambda d: preview.get_attribute("src") != first)  # a later image
    assert int(browser.find_element(By.ID, "step").text) >= 2
    assert browser.find_element(By.ID, "total").text == "5000"
    assert "ETA" in browser.find_element(By.ID, "eta").text
    assert "style" in browser.find_element(By.ID, "losses").text
    browser.find_element(By.ID, "stop").click()

    card = until(browser, lambda d: cards(d) and cards(d)[0])
    assert "stopped at step" in card.text
    href = card.find_element(By.CSS_SELECTOR, "a.download").get_attribute("href")
    status, body = server.request("GET", href.removeprefix(server.url))
    assert status == 200
    saved = server.folder / "downloaded.png"
    saved.write_bytes(body)
    assert max(Image.open(saved).size) == 64
    settings = io.read_metadata(saved)
    assert settings["partial"] is True and settings["size"] == 64
    uploads = (server.folder / "uploads").resolve()
    assert [Path(p).parent for p in (settings["content"], *settings["styles"])] == [uploads] * 2
    command = card.find_element(By.CSS_SELECTOR, "code.command").text
    assert command.startswith("brushwork stylize ") and "--size 64" in command
    assert not browser.find_element(By.ID, "error").is_displayed()
    # Offline: every script, style sheet and image the page loaded came from the studio.
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(url.startswith((server.url + "/", "data:")) for url in loaded)


def halves(size: tuple[int, int], path: Path) -> Path:
    """A label image: the left half one region (red), the right half another (blue)."""
    labels = Image.new("RGB", size, (0, 0, 255))
    labels.paste((255, 0, 0), (0, 0, size[0] // 2, size[1]))
    labels.save(path)
    return path


def test_photo_jobs_with_automatic_regions_and_with_label_images(
        browser: WebDriver, server: Server, tmp_path: Path) -> None:
    open_page(browser, server)
    before = len(cards(browser))
    browser.find_element(By.ID, "mode-photo").click()
    assert browser.find_element(By.ID, "labels-box").is_displayed()
    browser.find_element(By.CSS_SELECTOR, "#content-examples img[data-name=chelsea]").click()
    browser.find_element(By.CSS_SELECTOR, "#style-examples img[data-name=tubingen]").click()
    for name, value in (("size", "48"), ("matting_iterations", "3"), ("regions", "2"),
                        ("output_size", "48")):
        set_setting(browser, name, value)
    browser.find_element(By.ID, "run").click()
    until(browser, lambda d: len(cards(d)) == before + 1)
    card = cards(browser)[0]
    result = server.folder / "results" / card.find_element(
        By.CSS_SELECTOR, "a.download").get_attribute("download")
    settings = io.read_metadata(result)
    assert settings["regions"] == 2 and settings["style"].endswith("tubingen.jpg")
    assert max(Image.open(result).size) == 48
    assert "--matting-iterations 3" in card.find_element(By.CSS_SELECTOR, "code.command").text

    for key, image in (("content-mask", "chelsea"), ("style-mask", "tubingen")):
        labels = halves(Image.open(io.EXAMPLES / f"{image}.jpg").size, tmp_path / f"{key}.png")
        browser.find_element(By.ID, f"{key}-file").send_keys(str(labels))
        until(browser, lambda d, k=key: d.find_element(By.ID, f"{k}-name").text.endswith(".png"))
    browser.find_element(By.ID, "run").click()
    until(browser, lambda d: len(cards(d)) == before + 2)
    command = cards(browser)[0].find_element(By.CSS_SELECTOR, "code.command").text
    assert "--content-mask" in command and "--style-mask" in command
    result = server.folder / "results" / cards(browser)[0].find_element(
        By.CSS_SELECTOR, "a.download").get_attribute("download")
    assert io.read_metadata(result)["content_mask"].startswith(str(server.folder.resolve()))


def test_fast_job_matches_the_command_line_and_chains(
        browser: WebDriver, server: Server, tmp_path: Path, monkeypatch) -> None:
    open_page(browser, server)
    before = len(cards(browser))
    browser.find_element(By.ID, "mode-fast").click()
    browser.find_element(By.CSS_SELECTOR, "#content-examples img[data-name=chelsea]").click()
    set_setting(browser, "size", "96")
    browser.find_element(By.ID, "run").click()
    until(browser, lambda d: len(cards(d)) == before + 1)
    card = cards(browser)[0]
    assert card.text.startswith("fast transfer: chelsea")
    result = server.folder / "results" / card.find_element(
        By.CSS_SELECTOR, "a.download").get_attribute("download")
    assert io.read_metadata(result)["model"] in ("starry_night", "the_scream", "wave")

    # The command shown makes the same image on the command line.
    command = shlex.split(card.find_element(By.CSS_SELECTOR, "code.command").text)
    monkeypatch.chdir(tmp_path)
    assert cli.main(command[1:]) == 0
    again = tmp_path / command[command.index("-o") + 1]
    assert Image.open(again).tobytes() == Image.open(result).tobytes()

    # "use as content" chains: the result is the next run's photo.
    card.find_element(By.CSS_SELECTOR, "button.use-content").click()
    assert browser.find_element(By.ID, "content-name").text == result.name
    browser.find_element(By.ID, "run").click()
    until(browser, lambda d: len(cards(d)) == before + 2)
    assert cards(browser)[0].text.startswith(f"fast transfer: {result.name}")


def test_a_broken_upload_is_a_one_line_error_on_the_page(
        browser: WebDriver, server: Server, tmp_path: Path) -> None:
    open_page(browser, server)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really" * 20)
    kept = set((server.folder / "uploads").iterdir())
    browser.find_element(By.ID, "content-file").send_keys(str(broken))
    error = browser.find_element(By.ID, "error")
    until(browser, lambda d: error.is_displayed())
    with pytest.raises(BrushworkError) as cli_error:  # the command line's own message
        io.open_image(broken)
    assert error.text == str(cli_error.value).replace(str(broken), "broken.png")
    assert "\n" not in error.text and "Traceback" not in error.text
    assert set((server.folder / "uploads").iterdir()) == kept  # nothing kept of it

    # A job the options refuse is the options' own one-line message.
    browser.find_element(By.CSS_SELECTOR, "#content-examples img[data-name=tubingen]").click()
    browser.find_element(By.CSS_SELECTOR, "#style-examples img[data-name=wave]").click()
    set_setting(browser, "size", "3")
    browser.find_element(By.ID, "run").click()
    until(browser, lambda d: error.text == "--size 3 is too small; use at least 16 pixels")
    assert server.request("GET", "/")[0] == 200  # the server is still there


def test_uploads_are_limited_and_a_trained_model_is_checked(server: Server) -> None:
    status, body = server.request("POST", "/api/uploads?name=huge.png",
                                  b"\0" * (MAX_UPLOAD + 1))
    assert status == 413 and json.loads(body)["error"] == (
        "huge.png: larger than 1 MB; downscale it or give a smaller file")
    status, body = server.request("POST", "/api/uploads?name=mine.pt&kind=model",
                                  (io.EXAMPLES / "wave.jpg").read_bytes())
    assert status == 400 and json.loads(body)["error"].startswith("mine.pt: not a brushwork")
    status, body = server.request("POST", "/api/uploads?name=mine.pt&kind=model",
                                  (io.EXAMPLES.parent / "models" / "wave.pt").read_bytes())
    assert status == 200
    ref = json.loads(body)["ref"]
    with server.attach("models"):
        job = server.submit(session="models", mode="fast", content="example:chelsea",
                            model=ref, settings={"size": 64})
        wait_for(lambda: server.job(job)["status"] == "done", "the fast job")
    assert f"brushwork fast {(server.folder / ref).resolve()} " in server.job(job)["command"]


def test_nothing_outside_the_working_folder_is_served(
        browser: WebDriver, server: Server) -> None:
    secret = server.folder.parent / "secret.txt"
    secret.write_text("the secret")
    (server.folder / "results" / "link.png").symlink_to(secret)
    for path in ("/files/../secret.txt", "/files/results/../../secret.txt",
                 "/files/results/%2e%2e/%2e%2e/secret.txt", "/files/%2e%2e%2fsecret.txt",
                 f"/files/{secret}", f"/files//{secret}", "/files/results/link.png",
                 "/files/uploads/../../secret.txt", "/examples/../../../secret.txt",
                 "/static/../../secret.txt", "/static/%2e%2e/%2e%2e/studio/app.py"):
        status, body = server.request("GET", path)
        assert status == 404 and b"the secret" not in body and b"import" not in body, path
    browser.get(server.url + "/files/results/..%2F..%2Fsecret.txt")
    assert "the secret" not in browser.page_source

    # An upload's name never becomes a path; a job cannot name one either.
    status, body = server.request("POST", "/api/uploads?name=../../evil.jpg",
                                  (io.EXAMPLES / "wave.jpg").read_bytes())
    assert status == 200 and json.loads(body)["ref"].startswith("uploads/")
    assert not (server.folder.parent / "evil.jpg").exists()
    for content in (str(secret), "../secret.txt", "results/link.png", "example:../secret"):
        status, body = server.request("POST", "/api/jobs", json.dumps(
            {"mode": "fast", "content": content, "model": "wave"}))
        assert status == 400 and "not a file of this studio" in json.loads(body)["error"]


def test_other_sites_cannot_use_it(server: Server) -> None:
    """Any web page may make the browser POST to 127.0.0.1, and a name rebound to it would
    reach the studio: both are refused before anything runs."""
    job = json.dumps({"mode": "fast", "content": "example:chelsea", "model": "wave"})
    status, body = server.request("POST", "/api/jobs", job, {"Origin": "http://evil.example"})
    assert status == 403 and "only the studio's own page" in json.loads(body)["error"]
    status, body = server.request("GET", "/api/jobs", headers={"Host": "evil.example:80"})
    assert status == 403 and "answers only at its own address" in json.loads(body)["error"]
    own = f"http://127.0.0.1:{server.port}"
    assert server.request("GET", "/api/jobs", headers={"Origin": own})[0] == 200


def test_one_job_at_a_time_a_queue_and_no_orphans(browser: WebDriver, server: Server) -> None:
    # A page that keeps its event stream open: its jobs run; one job at a time.
    stream = server.attach("kept")
    long = {"session": "kept", "mode": "artistic", "content": "example:chelsea",
            "styles": ["example:udnie"], "settings": {"size": 64, "iterations": 5000}}
    first, second = server.submit(**long), server.submit(**long)
    open_page(browser, server)
    until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#queue li"))
    wait_for(lambda: server.job(first)["step"] >= 1, "the first job to step")
    assert server.job(second)["status"] == "queued"

    # The page goes (the connection drops): its jobs are stopped, the queued one dropped.
    stream.close()
    wait_for(lambda: server.job(first)["status"] == "stopped", "the orphan to stop")
    assert server.job(second)["status"] == "cancelled"
    until(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, "#queue li"))

    # A job whose page never connected is an orphan too.
    ghost = server.submit(**{**long, "session": "ghost"})
    wait_for(lambda: server.job(ghost)["status"] in ("stopped", "cancelled"), "the ghost job")
    assert server.request("GET", "/api/config")[0] == 200


def test_the_command_warns_off_a_public_host(tmp_path: Path) -> None:
    port = free_port()
    child = subprocess.Popen([sys.executable, "-m", "brushwork", "studio", "--no-browser",
                              "--host", "0.0.0.0", "--port", str(port), "--folder",
                              str(tmp_path)], stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        lines: list[str] = []
        while not any("brushwork studio: http" in line for line in lines):
            line = child.stderr.readline()
            assert line, "".join(lines)
            lines.append(line)
        assert "anyone on the network" in "".join(lines)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/")
        assert b"brushwork studio" in connection.getresponse().read()
    finally:
        child.send_signal(signal.SIGINT)
        child.wait(timeout=30)


def test_a_taken_port_is_a_one_line_error(server: Server, capsys) -> None:
    assert cli.main(["studio", "--no-browser", "--port", str(server.port)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"brushwork: --host 127.0.0.1 --port {server.port}: cannot listen")
    assert "\n" not in err


@pytest.mark.parametrize(("argv", "message"), [
    (["--port", "70000"], "brushwork: --port 70000: give a port from 1 to 65535"),
    (["--folder", "README.md"], "brushwork: --folder README.md: that is a file; give a "
                                "folder (new or existing)"),
])
def test_bad_command_flags_are_one_line(argv: list[str], message: str, capsys,
                                        monkeypatch) -> None:
    monkeypatch.chdir(Path(__file__).parents[1])
    assert cli.main(["studio", "--no-browser", *argv]) == 2
    assert capsys.readouterr().err.strip() == message
