"""Odd and broken image files: each is read correctly or refused with a one-line error."""

import os

import numpy as np
import pytest
import torch
from PIL import Image

from brushwork import io
from brushwork.errors import BrushworkError


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_missing_truncated_and_non_image_files(tmp_path, examples):
    with pytest.raises(BrushworkError, match="no such file") as e:
        io.load_image(tmp_path / "nope.jpg")
    _one_line(e)
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes((examples / "tubingen.jpg").read_bytes()[:5000])
    with pytest.raises(BrushworkError, match="truncated or corrupt") as e:
        io.load_image(truncated)
    _one_line(e)
    text = tmp_path / "notes.png"
    text.write_text("hello")
    with pytest.raises(BrushworkError, match="not an image") as e:
        io.load_image(text)
    with pytest.raises(BrushworkError, match="folder"):
        io.load_image(tmp_path)


@pytest.mark.parametrize("mode", ["L", "CMYK", "P", "RGBA", "LA", "I;16", "I", "F", "1"])
def test_every_mode_becomes_rgb_in_range(tmp_path, mode):
    base = Image.new("RGB", (20, 10), (200, 100, 50))
    if mode == "I;16":
        img = Image.fromarray(np.full((10, 20), 65535 // 2, dtype=np.uint16))
    elif mode in ("I", "F"):
        img = Image.fromarray(np.full((10, 20), 128, dtype=np.int32 if mode == "I" else np.float32))
        img = img.convert(mode)
    else:
        img = base.convert(mode)
    path = tmp_path / f"img.{'tif' if mode in ('I', 'F', 'CMYK') else 'png'}"
    img.save(path)
    t = io.load_image(path)
    assert t.shape == (1, 3, 10, 20) and t.dtype == torch.float32
    assert 0 <= t.min() and t.max() <= 1


def test_sixteen_bit_keeps_its_brightness(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 65535 // 4, dtype=np.uint16)).save(path)
    assert abs(io.load_image(path).mean().item() - 0.25) < 0.01


def test_alpha_is_composited_on_white(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(path)
    assert io.load_image(path).min() == 1.0


def test_exif_rotation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif)
    assert io.load_image(path).shape[-2:] == (40, 20)


def test_sizes_out_of_range_are_refused(examples):
    for size in (0, -5, 10, 100000):
        with pytest.raises(BrushworkError, match="size"):
            io.load_image(examples / "tubingen.jpg", size)
    assert max(io.load_image(examples / "tubingen.jpg", 100).shape[-2:]) == 100


def test_save_is_atomic_and_keeps_settings(tmp_path):
    out = tmp_path / "out.png"
    io.save_image(torch.rand(1, 3, 8, 8), out, {"style_weight": 3.0})
    assert io.read_metadata(out) == {"style_weight": 3.0}
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # not the 0600 of a temp file
    before = out.read_bytes()
    with pytest.raises(TypeError):
        io.atomic_write(out, lambda tmp: (open(tmp, "wb").write(b"half"), None + 1))
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_unknown_output_type_is_refused_before_work(tmp_path):
    with pytest.raises(BrushworkError, match="unknown output type"):
        io.save_image(torch.rand(1, 3, 8, 8), tmp_path / "out.xyz")


def test_an_unwritable_output_is_refused_before_any_work_and_leaves_nothing(tmp_path):
    blocker = tmp_path / "a_file.png"
    blocker.write_bytes(b"x")
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(BrushworkError, match="is a file, not a folder") as e:
        io.check_writable(blocker / "sub" / "out.png")
    _one_line(e)
    io.check_writable(tmp_path / "new" / "deeper" / "out.png")  # creatable: fine
    assert sorted(tmp_path.rglob("*")) == before  # the probe created nothing
    with pytest.raises(BrushworkError, match="cannot write it") as e:  # and late: one line
        io.save_image(torch.zeros(1, 3, 4, 4), blocker / "out.png")
    _one_line(e)


def test_a_dark_16_bit_image_keeps_its_brightness(tmp_path):
    path = tmp_path / "dark16.png"
    Image.fromarray(np.full((8, 8), 200, dtype=np.uint16)).save(path)  # 200 of 65535
    assert Image.open(path).mode == "I;16"
    assert io.load_image(path).max().item() < 2 / 255


def test_pillows_warning_zone_above_the_pixel_limit_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("RGB", (40, 40)).save(path)  # 1600 pixels: above 1000, below Pillow's 2x
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(BrushworkError, match="larger than"):
        io.load_image(path)
