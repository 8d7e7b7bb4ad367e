"""Video by optimisation with the real VGG-19 on a synthetic panning clip of a bundled image
(64x48 px, a few frames, few steps): the temporal term against independent frames, resume
after Ctrl-C and after SIGTERM to a real child process, and bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from brushwork.artistic_video import RECORD, frame_store, stylize_video
from brushwork.cli import main
from brushwork.errors import BrushworkError
from brushwork.quality import feature_distances
from brushwork.video import pan_clip, probe, read_frames

pytest.importorskip("cv2")
pytestmark = pytest.mark.usefixtures("one_thread", "vgg_state")

TINY = {"size": 64, "iterations": 40, "scales": 1, "progress": False}


@pytest.fixture(scope="module")
def clip(tmp_path_factory, examples: Path) -> Path:
    return pan_clip(examples / "tubingen.jpg", tmp_path_factory.mktemp("clip") / "pan.mp4",
                    64, 48, 5)


def style_distance(video: Path, clip: Path, style: Path) -> float:
    """The quality report's style distance, averaged over the frames."""
    painting = Image.open(style).convert("RGB")
    found = [feature_distances(Image.fromarray(out), Image.fromarray(frame), painting)["style"]
             for out, frame in zip(read_frames(video), read_frames(clip), strict=True)]
    return float(np.mean(found))


def test_temporal_term_halves_the_flicker_at_the_same_style(clip: Path, examples: Path,
                                                            tmp_path: Path) -> None:
    style = examples / "starry_night.jpg"
    alone = stylize_video(clip, style, tmp_path / "alone.mp4", temporal_weight=0,
                          independent=True, **TINY)
    held = stylize_video(clip, style, tmp_path / "held.mp4", frame_iterations=20, **TINY)
    assert alone.frames == held.frames == 5 and held.computed == [0, 1, 2, 3, 4]
    assert held.flicker["output"] <= 0.5 * alone.flicker["output"]
    d_alone = style_distance(tmp_path / "alone.mp4", clip, style)
    d_held = style_distance(tmp_path / "held.mp4", clip, style)
    assert abs(d_held - d_alone) <= 0.1 * d_alone
    info = probe(tmp_path / "held.mp4")
    assert (info.width, info.height, info.frames) == (64, 48, 5)
    assert not frame_store(clip, tmp_path / "held.mp4").folder.exists()  # removed once encoded


def test_resume_after_ctrl_c_goes_on_at_the_first_unfinished_frame(clip: Path, examples: Path,
                                                                   tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    style = examples / "wave.jpg"
    options = {**TINY, "iterations": 10, "frame_iterations": 5}

    def stop_after_two(index: int) -> None:
        if index == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stylize_video(clip, style, out, on_frame=stop_after_two, **options)
    store = frame_store(clip, out)
    folder = store.folder
    assert store.finished() == 2 and not out.exists()
    assert sorted(p.name for p in folder.glob("*.png")) == ["00000.png", "00001.png"]
    with pytest.raises(BrushworkError, match="another run .*temporal_weight"):
        stylize_video(clip, style, out, resume=True, **{**options, "temporal_weight": 5.0})
    seen: list[int] = []
    result = stylize_video(clip, style, out, resume=True, on_frame=seen.append, **options)
    assert seen == result.computed == [2, 3, 4] and result.frames == 5
    assert probe(out).frames == 5 and not folder.exists()


def test_sigterm_keeps_the_frames_and_resume_stylises_only_the_rest(clip: Path, examples: Path,
                                                                    tmp_path: Path,
                                                                    capsys) -> None:
    out = tmp_path / "out.mp4"
    args = ["stylize", str(clip), str(examples / "wave.jpg"), "-o", str(out), "--size", "64",
            "--iterations", "10", "--scales", "1", "--frame-iterations", "5", "--quiet",
            "--device", "cpu"]
    store = frame_store(clip, out)
    folder = store.folder
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-m", "brushwork", *args], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (folder / "00000.png").exists() and child.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.02)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1].endswith("continue with the same command and --resume")
    done = store.finished()
    assert 1 <= done <= 5 and not out.exists()
    # Without --resume the frames of the earlier run are not thrown away.
    assert main(args) == 2
    assert "--resume" in capsys.readouterr().err and store.finished() == done
    assert main([*args, "--resume"]) == 0
    said = capsys.readouterr().out
    assert f"5 frames, {5 - done} stylised" in said and "flicker" in said
    assert probe(out).frames == 5 and not folder.exists()


@pytest.mark.parametrize("content", [b"", b"not a video at all\n"])
def test_a_video_without_frames_is_a_one_line_error(content: bytes, examples: Path,
                                                    tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    out = tmp_path / "out.mp4"
    assert main(["stylize", str(bad), str(examples / "wave.jpg"), "-o", str(out),
                 "--size", "64", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("brushwork: ") and "frames" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4"]


@pytest.fixture(scope="module")
def frames(tmp_path_factory, clip: Path) -> Path:
    """The clip as a folder of PNG frames numbered without padding (frame_9 before frame_10)."""
    folder = tmp_path_factory.mktemp("frames")
    for i, frame in enumerate(read_frames(clip)):
        Image.fromarray(frame).save(folder / f"frame_{i * 5}.png")  # 0, 5, 10, 15, 20
    return folder


def test_a_folder_of_frames_becomes_a_folder_and_resumes_after_ctrl_c(frames: Path,
                                                                      examples: Path,
                                                                      tmp_path: Path) -> None:
    out = tmp_path / "styled"
    style = examples / "wave.jpg"
    options = {**TINY, "iterations": 10, "frame_iterations": 5}

    def stop_after_three(index: int) -> None:
        if index == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stylize_video(frames, style, out, on_frame=stop_after_three, **options)
    assert sorted(p.name for p in out.glob("*.png")) == ["frame_0.png", "frame_10.png",
                                                         "frame_5.png"]
    with pytest.raises(BrushworkError, match="interrupted run .*--resume"):
        stylize_video(frames, style, out, **options)  # nothing replaced without --resume
    seen: list[int] = []
    result = stylize_video(frames, style, out, resume=True, on_frame=seen.append, **options)
    assert seen == result.computed == [3, 4] and result.frames == 5 and "output" in result.flicker
    names = [f"frame_{i * 5}.png" for i in range(5)]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)  # the run's record is gone
    assert all(Image.open(out / n).size == (64, 48) for n in names)
    # A finished folder is not written over by a new run either.
    with pytest.raises(BrushworkError, match="would be replaced"):
        stylize_video(frames, style, out, **options)


def test_bad_folders_of_frames_are_one_line_errors_with_nothing_written(
        frames: Path, examples: Path, tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    uneven = tmp_path / "uneven"
    uneven.mkdir()
    for i, size in enumerate([(64, 48), (48, 64)]):
        Image.new("RGB", size).save(uneven / f"{i}.png")
    style = str(examples / "wave.jpg")
    for content, output, said in ((empty, tmp_path / "o1", "no frames"),
                                  (uneven, tmp_path / "o2", "frames of different sizes"),
                                  (frames, tmp_path / "o3.mp4", "written as a folder")):
        assert main(["stylize", str(content), style, "-o", str(output), "--size", "64",
                     "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and said in err, err
        assert not output.exists()
    assert RECORD not in {p.name for p in frames.iterdir()}
