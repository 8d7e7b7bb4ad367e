"""Nothing lost, whatever ends a run: signals sent to real child processes, a full disk
simulated by a file-size limit, and the checks that must come before any work.

Children run the real `brushwork` command. Where a signal must land at one exact moment
(during the enlargement, inside a save, after the fifth video frame), the child's own
code sends it from a wrapper around that stage, so no test depends on timing luck; where
any moment of the optimisation will do, the run is far too long to end first.
"""

from __future__ import annotations

import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from brushwork import io
from brushwork.cli import main
from brushwork.commands import common as command_helpers
from brushwork.optimise import Checkpoint, Snapshots

CPU = ["--quiet", "--device", "cpu", "--precision", "float32"]
#: A run that cannot end before the test stops it.
ENDLESS = ["--size", "40", "--iterations", "100000", "--scales", "1", "--checkpoint-every", "1",
           *CPU]


_CHILDREN: list[subprocess.Popen] = []
#: A child answers Ctrl-C and SIGHUP as it would in a terminal, even when the suite runs
#: where they are ignored and children inherit that (nohup, a shell's background job).
DEFAULT_SIGNALS = ("import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
                   "signal.signal(signal.SIGHUP, signal.SIG_DFL)")


@pytest.fixture(autouse=True)
def no_child_outlives_its_test():
    """An endless child left by a failed test would eat the cores the next tests need."""
    yield
    while _CHILDREN:
        proc = _CHILDREN.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def child(argv: list[str], prelude: str = "", cwd: Path | None = None,
          limit: int | None = None) -> subprocess.Popen:
    """`brushwork ARGV` in a new process, after ``prelude`` (code that wraps one stage so
    that the child signals itself there); ``limit`` caps the size of any file it writes."""
    code = f"import sys\n{DEFAULT_SIGNALS}\n{prelude}\nfrom brushwork.cli import main\n" \
           f"sys.exit(main({argv!r}))\n"

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.Popen([sys.executable, "-c", code], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=cap if limit else None)
    _CHILDREN.append(proc)
    return proc


def finish(proc: subprocess.Popen, timeout: float = 180) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{path} never appeared: {proc.communicate()[1][-2000:]}")
        time.sleep(0.05)


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(f"{io.TEMP_PREFIX}*"))


def gone(pid: int, timeout: float = 20) -> bool:
    """Whether a process has ended (a zombie awaiting its reaper counts as ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def pair(examples: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Copies of two bundled images in the test's folder (so that they can be replaced)."""
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    shutil.copy(examples / "chelsea.jpg", a)
    shutil.copy(examples / "wave.jpg", b)
    return a, b


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_every_ending_signal_keeps_the_image_so_far_and_a_checkpoint(pair, tmp_path, signum):
    out, ckpt = tmp_path / "out.png", tmp_path / "out.png.ckpt"
    proc = child(["stylize", str(pair[0]), str(pair[1]), "-o", str(out), *ENDLESS])
    wait_for(ckpt, proc)
    proc.send_signal(signum)
    code, _, err = finish(proc)
    assert code == 128 + signum, err
    assert f"interrupted ({signal.Signals(signum).name})" in err and "Traceback" not in err
    assert io.read_metadata(out)["partial"] is True
    assert Checkpoint.load(ckpt).iteration >= 1
    assert temp_files(tmp_path) == []


def test_resume_after_a_signal_goes_on_from_the_checkpoint(pair, tmp_path):
    out, ckpt = tmp_path / "out.png", tmp_path / "out.png.ckpt"
    argv = ["stylize", str(pair[0]), str(pair[1]), "-o", str(out), *ENDLESS]
    proc = child(argv)
    wait_for(ckpt, proc)
    proc.send_signal(signal.SIGTERM)
    assert finish(proc)[0] == 128 + signal.SIGTERM
    first = Checkpoint.load(ckpt).iteration
    proc = child([*argv, "--resume"])
    while Checkpoint.load(ckpt).iteration < first + 3 and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    code, _, err = finish(proc)
    assert code == 128 + signal.SIGTERM, err
    assert "resuming" not in err  # the same command: its own checkpoint, taken quietly
    assert Checkpoint.load(ckpt).iteration >= first + 3


#: Wraps brushwork.io.save_image: as the image so far is saved after a first signal, a
#: second one arrives.
SECOND_SIGNAL_IN_SAVE = """
import os, signal
from brushwork import io
def save_image(image, path, metadata=None):
    if metadata and metadata.get("partial"):
        os.kill(os.getpid(), signal.SIGTERM)
    return original(image, path, metadata)
original, io.save_image = io.save_image, save_image
"""


def test_a_second_signal_waits_until_the_work_so_far_is_saved(pair, tmp_path):
    out, ckpt = tmp_path / "out.png", tmp_path / "out.png.ckpt"
    proc = child(["stylize", str(pair[0]), str(pair[1]), "-o", str(out), *ENDLESS],
                 SECOND_SIGNAL_IN_SAVE)
    wait_for(ckpt, proc)
    proc.send_signal(signal.SIGINT)
    code, _, err = finish(proc)
    assert code == 128 + signal.SIGTERM and "Traceback" not in err, err
    assert io.read_metadata(out)["partial"] is True and Checkpoint.load(ckpt).iteration >= 1
    assert temp_files(tmp_path) == []


def test_an_interrupted_run_does_not_replace_a_finished_output(pair, tmp_path):
    out = tmp_path / "out.png"
    assert main(["stylize", str(pair[0]), str(pair[1]), "-o", str(out), "--size", "32",
                 "--iterations", "2", *CPU]) == 0
    finished = out.read_bytes()
    proc = child(["stylize", str(pair[0]), str(pair[1]), "-o", str(out), *ENDLESS])
    wait_for(tmp_path / "out.png.ckpt", proc)
    proc.send_signal(signal.SIGINT)
    code, _, err = finish(proc)
    assert code == 130 and "which is kept" in err
    assert out.read_bytes() == finished
    assert io.read_metadata(tmp_path / "out.partial.png")["partial"] is True


#: Wraps brushwork.commands.photo.enlarge: the child sends itself SIGTERM as the
#: enlargement starts, after the optimisation has ended.
SIGNAL_IN_ENLARGE = """
import os, signal
import brushwork.commands.photo as photo_command
def enlarge(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    return original(*args, **kwargs)
original, photo_command.finish = photo_command.finish, enlarge
"""


def test_a_signal_after_the_optimisation_keeps_its_result_for_resume(pair, tmp_path):
    out, ckpt = tmp_path / "out.png", tmp_path / "out.png.ckpt"
    argv = ["photo", str(pair[0]), str(pair[1]), "-o", str(out), "--size", "40",
            "--iterations", "3", "--matting-iterations", "2", "--scales", "1",
            "--output-size", "64", *CPU]
    code, _, err = finish(child(argv, SIGNAL_IN_ENLARGE))
    assert code == 128 + signal.SIGTERM and "--resume" in err, err
    done = Checkpoint.load(ckpt)
    assert done.scale == len(done.schedule) == 2  # the finished optimisation, both stages
    assert not out.exists() and temp_files(tmp_path) == []
    assert main([*argv, "--resume"]) == 0
    assert max(io.open_image(out).size) == 64 and not ckpt.exists()


#: Wraps Pillow's save: once a temporary file of the output is written, and before it is
#: renamed into place, the child sends itself SIGTERM.
SIGNAL_IN_SAVE = """
import os, signal
from PIL import Image
def save(self, fp, *args, **kwargs):
    original(self, fp, *args, **kwargs)
    if "out.png" not in str(fp):
        os.kill(os.getpid(), signal.SIGTERM)
original, Image.Image.save = Image.Image.save, save
"""


def test_a_signal_during_the_save_leaves_no_temp_file_and_loses_nothing(pair, tmp_path):
    out, ckpt = tmp_path / "out.png", tmp_path / "out.png.ckpt"
    argv = ["stylize", str(pair[0]), str(pair[1]), "-o", str(out), "--size", "32",
            "--iterations", "3", "--scales", "1", *CPU]
    code, _, err = finish(child(argv, SIGNAL_IN_SAVE))
    assert code == 128 + signal.SIGTERM, err
    assert temp_files(tmp_path) == [] and not out.exists()
    assert Checkpoint.load(ckpt).scale == 1  # finished: --resume only saves
    assert main([*argv, "--resume"]) == 0 and out.exists()


#: Wraps FrameWriter.write: after the fifth frame the child prints ffmpeg's process id,
#: then ends itself by SIGTERM, or waits for the test to kill it (SIGKILL).
SIGNAL_IN_ENCODE = """
import os, signal, time
from brushwork import video
def write(self, frame):
    original(self, frame)
    self.frames = getattr(self, "frames", 0) + 1
    if self.frames == 5:
        print(self.process.pid, flush=True)
        if {kill!r}:
            time.sleep(600)
        os.kill(os.getpid(), signal.SIGTERM)
original, video.FrameWriter.write = video.FrameWriter.write, write
"""


@pytest.fixture
def clip(examples: Path, tmp_path: Path) -> Path:
    from brushwork.video import pan_clip

    return pan_clip(examples / "tubingen.jpg", tmp_path / "clip.mp4", 64, 48, 20)


def test_a_video_encode_cut_short_leaves_no_ffmpeg_and_no_temp_file(clip, tmp_path):
    out = tmp_path / "out.mp4"
    code, pid, err = finish(child(["fast", "starry_night", str(clip), "-o", str(out), *CPU[:3]],
                                  SIGNAL_IN_ENCODE.format(kill=False)))
    assert code == 128 + signal.SIGTERM, err
    assert gone(int(pid)), "ffmpeg outlived the run"
    assert temp_files(tmp_path) == [] and not out.exists()


def test_a_killed_encode_takes_ffmpeg_along_and_the_next_write_sweeps_its_temp(clip, tmp_path):
    out = tmp_path / "out.mp4"
    argv = ["fast", "starry_night", str(clip), "-o", str(out), *CPU[:3]]
    proc = child(argv, SIGNAL_IN_ENCODE.format(kill=True))
    pid = int(proc.stdout.readline())
    proc.kill()  # SIGKILL: no handler runs, no cleanup is possible
    finish(proc)
    assert gone(pid), "ffmpeg outlived the killed run"
    assert len(temp_files(tmp_path)) == 1  # left by the dead process...
    assert main(argv) == 0 and out.exists()
    assert temp_files(tmp_path) == []  # ...and swept by the next write beside it


def test_an_earlier_runs_checkpoint_and_snapshots_are_not_written_over(pair, tmp_path,
                                                                       capsys, photos_dir):
    out = tmp_path / "out.png"
    run = ["stylize", str(pair[0]), str(pair[1]), "-o", str(out), "--size", "32",
           "--iterations", "2", *CPU]
    ckpt = Path(f"{out}.ckpt")
    work = b"an interrupted run's work"
    ckpt.write_bytes(work)
    assert main(run) == 2
    assert "--resume" in capsys.readouterr().err and ckpt.read_bytes() == work
    ckpt.unlink()
    snapshot = tmp_path / "out_00001.png"
    snapshot.write_bytes(b"an earlier run's snapshot")
    assert main([*run, "--save-every", "1"]) == 2
    assert "--save-every would write over" in capsys.readouterr().err
    assert snapshot.read_bytes() == b"an earlier run's snapshot" and not out.exists()
    model = tmp_path / "m.pt"
    Path(f"{model}.ckpt").write_bytes(b"an earlier training")
    assert main(["train", "starry_night", "--data", str(photos_dir), "-o", str(model),
                 "--steps", "2", "--quiet", "--device", "cpu"]) == 2
    assert "--resume" in capsys.readouterr().err


@pytest.fixture
def photos_dir(examples: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(examples / "chelsea.jpg", folder / "c.jpg")
    return folder


@pytest.fixture
def immutable(tmp_path: Path):
    """An existing output that not even root can replace (chattr +i), made mutable again
    afterwards so that the test's folder can be removed."""
    path = tmp_path / "locked.png"
    path.write_bytes(b"kept")
    subprocess.run(["chattr", "+i", str(path)], check=True)
    yield path
    subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.mark.parametrize("case, message", [
    ("long name", "the name is"),
    ("checkpoint folder", "the checkpoint path is a folder"),
    ("immutable output", "read-only or immutable"),
    ("folder into a file", "a folder of images is written to a folder"),
    ("huge style scale", "lower --style-scale"),
    ("mps", "runs on the CPU or a CUDA GPU"),
    ("meta", "runs on the CPU or a CUDA GPU"),
])
def test_what_would_fail_late_fails_before_the_run(pair, tmp_path, capsys, request, case,
                                                   message):
    content, style = str(pair[0]), str(pair[1])
    out = tmp_path / "out.png"
    argv = {
        "long name": ["stylize", content, style, "-o", str(tmp_path / ("n" * 246 + ".png"))],
        "checkpoint folder": ["stylize", content, style, "-o", str(out)],
        "immutable output": ["stylize", content, style, "-o", str(tmp_path / "locked.png")],
        "folder into a file": ["fast", "starry_night", str(tmp_path), "-o", str(pair[0])],
        "huge style scale": ["stylize", content, style, "-o", str(out), "--size", "48",
                             "--style-scale", "1000"],
        "mps": ["stylize", content, style, "-o", str(out), "--device", "mps"],
        "meta": ["stylize", content, style, "-o", str(out), "--device", "meta"],
    }[case]
    if case == "checkpoint folder":
        (tmp_path / "out.png.ckpt").mkdir()
    if case == "immutable output":
        request.getfixturevalue("immutable")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_the_plan_counts_the_style_images(pair, capsys):
    assert main(["stylize", str(pair[0]), str(pair[1]), "-o", "x.png", "--size", "48",
                 "--style-scale", "60", "--dry-run", "--device", "cpu"]) == 0
    peak = float(capsys.readouterr().out.split("peak network memory ")[1].split(" GB")[0])
    assert peak >= 48 * 32 * 60**2 * 3 * 4 / 2**30  # one float copy of the style: 0.06 GB


def test_weights_problems_name_a_fix_that_works(tmp_path, capsys, monkeypatch, vgg_state):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not weights")
    monkeypatch.setenv("BRUSHWORK_WEIGHTS", str(bad))
    assert main(["weights", "fetch"]) == 2  # the cache is fine; the named file is not
    err = capsys.readouterr().err
    assert "unset it to use the cache" in err and "weights fetch" not in err
    monkeypatch.delenv("BRUSHWORK_WEIGHTS")
    monkeypatch.setenv("BRUSHWORK_CACHE", str(bad))  # a file where the cache folder should be
    assert main(["weights", "fetch"]) == 2
    err = capsys.readouterr().err.strip()
    assert "weights cache cannot be written" in err and len(err.splitlines()) == 1


class StopAtStep3(Snapshots):
    """The user's Ctrl-C, at step 3 of a run started in this process."""

    def __call__(self, step) -> None:
        super().__call__(step)
        if step.done == 3:
            raise KeyboardInterrupt


def interrupted(monkeypatch, argv: list[str]) -> Path:
    """Run ``argv`` up to step 3 as if interrupted there; the checkpoint it left."""
    with monkeypatch.context() as patch:
        patch.setattr(command_helpers, "Snapshots", StopAtStep3)
        assert main(argv) == 130
    return Path(f"{argv[argv.index('-o') + 1]}.ckpt")


def test_resume_knows_the_inputs_by_their_contents_not_their_spelling(pair, tmp_path,
                                                                      monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    short = ["--size", "32", "--iterations", "6", "--scales", "1", *CPU]
    interrupted(monkeypatch, ["stylize", "a.jpg", "./b.jpg", "-o", "out.png", *short])
    sub = tmp_path / "sub"
    sub.mkdir()
    monkeypatch.chdir(sub)  # another folder, other spellings of the same files
    assert main(["stylize", str(pair[0]), "../b.jpg", "-o", "../out.png", *short,
                 "--resume"]) == 0
    assert "resuming" not in capsys.readouterr().err

    monkeypatch.chdir(tmp_path)
    interrupted(monkeypatch, ["stylize", "a.jpg", "b.jpg", "-o", "out.png", *short])
    shutil.copy(pair[1], pair[0])  # another picture at the same path
    assert main(["stylize", "a.jpg", "b.jpg", "-o", "out.png", *short, "--resume"]) == 2
    assert "a checkpoint of another run (differing: content)" in capsys.readouterr().err


def test_resume_refuses_another_schedule_and_a_damaged_checkpoint(pair, tmp_path, monkeypatch,
                                                                 capsys):
    def photo(matting_steps: int) -> list[str]:
        return ["photo", str(pair[0]), str(pair[1]), "-o", str(tmp_path / "out.png"),
                "--size", "32", "--iterations", "4", "--matting-iterations", str(matting_steps),
                "--scales", "1", *CPU]

    argv = photo(4)
    ckpt = interrupted(monkeypatch, argv)
    good = Checkpoint.load(ckpt)
    assert main([*photo(2), "--resume"]) == 2  # would end the run at the wrong place
    assert "made for another schedule" in capsys.readouterr().err

    nan = good.image.clone()
    nan[..., 0, 0] = float("nan")
    for image, message in [(nan, "the checkpoint is damaged"),
                           (good.image[..., :20, :20], "not the 32x21 of its place")]:
        Checkpoint(image, good.scale, good.iteration, good.settings, good.schedule).save(ckpt)
        assert main([*argv, "--resume"]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
    ckpt.write_bytes(b"\x80\x02garbage")
    assert main([*argv, "--resume"]) == 2
    assert "not a readable checkpoint" in capsys.readouterr().err
    assert torch.isfinite(good.image).all()


def test_a_full_disk_during_checkpoints_is_a_warning_and_the_result_still_lands(pair,
                                                                               tmp_path):
    out = tmp_path / "out.png"
    # A 96x72 checkpoint holds 83 kB of floats, the PNG about a quarter of that.
    code, _, err = finish(child(["stylize", str(pair[0]), str(pair[1]), "-o", str(out),
                                 "--size", "96", "--iterations", "3", "--scales", "1",
                                 "--checkpoint-every", "1", *CPU], limit=50_000))
    assert code == 0, err
    assert err.count("the run goes on without this checkpoint") == 1
    assert out.exists() and temp_files(tmp_path) == []


def test_a_full_disk_at_the_end_is_one_line_and_leaves_nothing_behind(pair, clip, tmp_path):
    out = tmp_path / "out.png"
    code, _, err = finish(child(["stylize", str(pair[0]), str(pair[1]), "-o", str(out),
                                 "--size", "48", "--iterations", "2", "--scales", "1", *CPU],
                                limit=1_000))
    assert code == 2 and err.strip().splitlines()[-1].startswith("brushwork: "), err
    assert "free some space" in err and "Traceback" not in err
    video = tmp_path / "out.mp4"
    code, _, err = finish(child(["fast", "starry_night", str(clip), "-o", str(video),
                                 *CPU[:3]], limit=3_000))
    assert code == 2 and "ffmpeg could not write the video" in err and "Traceback" not in err
    assert not out.exists() and not video.exists() and temp_files(tmp_path) == []
