"""The Python face: every job from ``import brushwork`` alone, on tiny inputs; the quality
report's ranking, through ``brushwork score``; the face's type hints under mypy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import brushwork

ROOT = Path(__file__).resolve().parents[1]
PHOTO, STYLE = brushwork.EXAMPLES / "tubingen.jpg", brushwork.EXAMPLES / "starry_night.jpg"
TINY = dict(size=48, scales=1, device="cpu", precision="float32")


pytestmark = pytest.mark.usefixtures("one_thread")


def _grey_spread(img: Image.Image) -> float:
    a = np.asarray(img, dtype=np.float64)
    return float(np.abs(a - a.mean(axis=2, keepdims=True)).mean())


def test_the_optimising_jobs_take_paths_and_images_and_give_pillow_images(
        vgg_state: dict) -> None:
    photo = Image.open(PHOTO).convert("RGB")
    out = brushwork.stylize(photo, [STYLE], iterations=4, **TINY)
    assert isinstance(out, Image.Image) and max(out.size) == 48
    assert np.abs(np.asarray(out, float) - np.asarray(photo.resize(out.size), float)).mean() > 2

    grey = Image.open(STYLE).convert("L").convert("RGB")  # a black-and-white reference
    photo_out = brushwork.photo(PHOTO, grey, iterations=0, matting_iterations=4, regions=1,
                                output_size=64, **TINY)
    assert isinstance(photo_out, Image.Image) and max(photo_out.size) == 64
    assert _grey_spread(photo_out) < 0.3 * _grey_spread(photo.resize(photo_out.size))

    rebuilt = brushwork.reconstruct(PHOTO, content_layer="relu2_1", size=32, iterations=3,
                                    device="cpu")
    assert isinstance(rebuilt, Image.Image) and max(rebuilt.size) == 32
    grid = brushwork.feature_grid(PHOTO, layers=("relu1_1", "relu2_1"), count=2, size=32,
                                  tile=24)
    assert isinstance(grid, Image.Image) and grid.height > 2 * 24


def test_fast_models_load_once_and_stylise_any_image() -> None:
    painter = brushwork.load_model("wave", size=64, device="cpu")
    assert painter.name == "wave"
    first = painter(PHOTO)
    second = painter(torch.rand(1, 3, 40, 56))
    assert isinstance(first, Image.Image) and max(first.size) == max(second.size) == 64
    assert np.array_equal(np.asarray(brushwork.fast("wave", PHOTO, size=64, device="cpu")),
                          np.asarray(first))


def test_matte_and_train_from_the_face(tmp_path: Path) -> None:
    image = np.zeros((24, 24, 3), dtype=np.uint8)
    image[:, 12:] = 230
    trimap = np.full((24, 24), 128, dtype=np.uint8)
    trimap[:, :6], trimap[:, 18:] = 0, 255
    alpha = brushwork.matte(Image.fromarray(image), trimap=np.repeat(trimap[..., None], 3, 2))
    assert alpha.mode == "L" and alpha.size == (24, 24)
    values = np.asarray(alpha, dtype=np.float64)
    assert values[:, :10].mean() < 30 and values[:, 14:].mean() > 225

    photos = tmp_path / "photos"
    photos.mkdir()
    for i, box in enumerate([(0, 0, 200, 200), (200, 0, 400, 200)]):
        Image.open(PHOTO).convert("RGB").crop(box).resize((64, 64)).save(photos / f"{i}.jpg")
    result = brushwork.train(STYLE, photos, tmp_path / "tiny.pt", steps=3, batch_size=2,
                             size=32, style_size=64, channels=8, residual_blocks=1, workers=0,
                             preview_every=0, checkpoint_every=0, device="cpu",
                             progress=False)
    assert result.steps == 3 and (tmp_path / "tiny.pt").is_file()
    assert isinstance(brushwork.load_model(tmp_path / "tiny.pt", device="cpu")(PHOTO, 32),
                      Image.Image)


def _score(capsys: pytest.CaptureFixture, result: Path | str, *extra: str) -> dict:
    from brushwork import cli

    assert cli.main(["score", str(result), "--content", str(PHOTO), "--style", str(STYLE),
                     "--eval-size", "96", "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[0])


def test_score_ranks_a_stylised_image_nearer_the_style_and_the_photo_nearest_itself(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    stylised = tmp_path / "stylised.png"
    brushwork.fast("starry_night", PHOTO, size=96, device="cpu").save(stylised)
    sheet = tmp_path / "sheet.png"
    of_photo = _score(capsys, PHOTO)
    of_stylised = _score(capsys, stylised, "--sheet", str(sheet))
    assert of_stylised["style"] < of_photo["style"]
    assert of_photo["content"] < 1e-9 < of_stylised["content"]
    assert of_photo["ssim"] > 1 - 1e-9 > of_stylised["ssim"]
    assert of_stylised["colour"] < of_photo["colour"]
    with Image.open(sheet) as written:
        assert written.width > 3 * 96
    report = brushwork.score(stylised, PHOTO, STYLE, eval_size=96, photo=True)
    assert report["matting"] > brushwork.score(PHOTO, PHOTO, STYLE, 96, photo=True)["matting"]
    assert "lower is nearer the style" in report.text()


def test_score_refuses_a_missing_file_in_one_line(capsys: pytest.CaptureFixture) -> None:
    from brushwork import cli

    assert cli.main(["score", "nowhere.png", "--content", str(PHOTO), "--style",
                     str(STYLE)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("brushwork: nowhere.png") and "\n" not in err


def test_the_public_face_type_checks(tmp_path: Path) -> None:
    """mypy accepts the face's hints and a script that uses it as the README does."""
    script = '''
import brushwork
from PIL import Image
out: Image.Image = brushwork.stylize("a.jpg", ["b.jpg"], size=64)
photo: Image.Image = brushwork.photo("a.jpg", "b.jpg", size=64)
painter: brushwork.Model = brushwork.load_model("wave")
again: Image.Image = painter(out)
report: brushwork.Report = brushwork.score(out, "a.jpg", "b.jpg")
style: float = report["style"]
'''
    path = tmp_path / "face_usage.py"
    path.write_text(script)
    run = subprocess.run([sys.executable, "-m", "mypy", "--follow-imports=silent",
                          "--ignore-missing-imports", "--cache-dir", str(tmp_path / "cache"),
                          str(ROOT / "src" / "brushwork" / "__init__.py"),
                          str(ROOT / "src" / "brushwork" / "quality.py"), str(path)],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("job", ["stylize", "photo", "reconstruct"])
def test_report_prints_the_figures_and_keeps_them_in_the_png(
        job: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from brushwork import cli, io

    out = tmp_path / "out.png"
    inputs = {"stylize": [str(PHOTO), str(STYLE)], "photo": [str(PHOTO), str(STYLE)],
              "reconstruct": [str(PHOTO), "--content-layer", "relu2_1"]}[job]
    steps = ["--matting-iterations", "2", "--regions", "1"] if job == "photo" else []
    assert cli.main([job, *inputs, "-o", str(out), "--size", "48", "--iterations", "3",
                     "--scales", "1", "--device", "cpu", "--quiet", "--report", *steps]) == 0
    printed = capsys.readouterr().out
    kept = io.read_metadata(out)["report"]
    assert "style distance, lower is nearer the style" in printed
    assert f"{kept['style']:.3g}" in printed
    style = PHOTO if job == "reconstruct" else STYLE  # a reconstruction is judged by its image
    assert kept["style"] == pytest.approx(brushwork.score(out, PHOTO, style)["style"], rel=1e-6)
    assert ("matting" in kept) == (job == "photo")
