"""Tests for brushwork.photo and the photo/matte commands, with the real VGG-19 at tiny sizes."""

from __future__ import annotations

import io as bytes_io
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from brushwork import cli, io
from brushwork.artistic import ArtisticLoss, StyleOptions
from brushwork.errors import BrushworkError
from brushwork.losses import gram
from brushwork.matting import matting_energy, matting_laplacian
from brushwork.photo import (
    PhotoOptions,
    auto_labels,
    load_inputs,
    matte,
    photo_transfer,
    region_colour_start,
    style_distance,
)
from brushwork.regions import PALETTE, RegionStyleLoss, match_regions, read_labels, single_region
from brushwork.vgg import Features, layer_masks

from .test_matting import synthetic_matte, trimap_from_alpha

NAMES = list(PALETTE)
RED, BLUE, GREEN, YELLOW = (NAMES.index(c) for c in ("red", "blue", "green", "yellow"))
STYLE_LAYERS = StyleOptions().style_layers


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def net(vgg_state: dict[str, torch.Tensor]) -> Features:
    return Features(STYLE_LAYERS + ("relu4_2",), state=vgg_state)


@pytest.fixture(scope="module")
def pair(shared: Path) -> dict[str, Path]:
    photo = shared / "photo"
    return {"content": photo / "input" / "in1.png", "style": photo / "style" / "tar1.png",
            "content_mask": photo / "segmentation" / "in1.png",
            "style_mask": photo / "segmentation" / "tar1.png"}


def label_image(height: int, width: int, colours: list[str]) -> np.ndarray:
    """Vertical stripes of the named palette colours, as an 8-bit RGB label image."""
    out = np.zeros((height, width, 3), dtype=np.uint8)
    for i, name in enumerate(colours):
        out[:, i * width // len(colours):(i + 1) * width // len(colours)] = PALETTE[name]
    return out


def test_palette_snapping_removes_jpeg_noise_labels() -> None:
    truth = label_image(64, 96, ["red", "blue", "white"])
    truth[20:44, 40:60] = PALETTE["yellow"]
    buffer = bytes_io.BytesIO()
    Image.fromarray(truth).save(buffer, format="JPEG", quality=40)
    noisy = np.asarray(Image.open(buffer).convert("RGB"))
    assert len(np.unique(noisy.reshape(-1, 3), axis=0)) > 50  # JPEG made many colours

    labels = read_labels(noisy, (64, 96))
    expected = read_labels(truth, (64, 96))
    assert sorted(np.unique(labels)) == sorted(np.unique(expected))
    assert len(np.unique(labels)) == 4
    assert (labels == expected).mean() > 0.98


def test_mask_of_another_size_is_resized_with_a_warning() -> None:
    content = Image.fromarray(np.full((64, 96, 3), 90, dtype=np.uint8))
    mask = label_image(32, 48, ["red", "blue"])
    with pytest.warns(UserWarning, match="content mask is 48x32 but the image is 96x64"):
        _, _, content_labels, style_labels = load_inputs(content, content, mask,
                                                         label_image(64, 96, ["red", "blue"]),
                                                         size=48)
    assert content_labels.shape == style_labels.shape == (64, 96)
    assert np.array_equal(content_labels, style_labels)

    with pytest.raises(BrushworkError, match="both a content mask and a style mask"):
        load_inputs(content, content, mask, None, size=48)


def test_unmatched_regions_are_reported_and_take_the_whole_style(net: Features) -> None:
    content_labels = read_labels(label_image(32, 48, ["red", "blue", "green"]), (32, 48))
    style_labels = read_labels(label_image(32, 48, ["yellow", "red", "blue"]), (32, 48))
    with pytest.warns(UserWarning) as caught:
        regions = match_regions(content_labels, style_labels, NAMES)
    messages = " | ".join(str(w.message) for w in caught)
    assert "content regions green have no partner" in messages
    assert "style regions yellow have no partner" in messages
    by_label = dict(zip(regions.content_ids, regions.partners, strict=True))
    assert regions.style_ids[by_label[RED]] == RED and regions.style_ids[by_label[BLUE]] == BLUE
    assert by_label[GREEN] is None and YELLOW in regions.style_ids

    style = torch.rand(1, 3, 32, 48)
    loss = RegionStyleLoss(net, style, regions, 32, 48, {"relu2_1": 1.0}, torch.float32)
    whole = gram(net(style)["relu2_1"])
    targets = dict(zip(regions.content_ids, loss.targets["relu2_1"], strict=True))
    assert torch.equal(targets[GREEN], whole)
    assert not torch.allclose(targets[RED], whole)


def test_masked_style_loss_of_one_region_is_the_plain_style_loss(net: Features) -> None:
    rng = torch.Generator().manual_seed(0)
    content, style = torch.rand(1, 3, 40, 56, generator=rng), torch.rand(1, 3, 48, 48,
                                                                        generator=rng)
    features = net(content)
    everywhere = layer_masks(torch.ones(1, 1, 40, 56), STYLE_LAYERS)
    for name in STYLE_LAYERS:
        assert everywhere[name].shape[-2:] == features[name].shape[-2:]
        assert torch.allclose(gram(features[name], everywhere[name]), gram(features[name]))

    options = StyleOptions(style_layers=STYLE_LAYERS)
    style_features = net(style)
    targets = {name: gram(style_features[name]) for name in STYLE_LAYERS}
    plain = ArtisticLoss(net, options, content, targets, torch.float32)
    one = match_regions(single_region(content), single_region(style), NAMES)
    masked = RegionStyleLoss(net, style, one, 40, 56, plain.style_w, torch.float32)
    assert float(masked(features)) == pytest.approx(float(plain.style_term(features)), rel=1e-5)


def _halves(image: torch.Tensor, top: str, bottom: str) -> np.ndarray:
    """Labels of ``image``: its top half one palette colour, its bottom half another."""
    h, w = image.shape[-2:]
    labels = np.full((h, w), NAMES.index(bottom), dtype=np.int64)
    labels[: h // 2] = NAMES.index(top)
    return labels


def _colour_spread(pixels: torch.Tensor) -> float:
    """Mean distance of (3, N) colours from grey (their own channel mean)."""
    return float((pixels - pixels.mean(dim=0, keepdim=True)).abs().mean())


def _grey_topped(pair: dict[str, Path], style_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The pair's content at 64 px and its style with the top half made black-and-white."""
    content, style = io.load_image(pair["content"], 64), io.load_image(pair["style"], style_size)
    top = style[:, :, : style.shape[-2] // 2]
    top[:] = top.mean(1, keepdim=True)
    return content, style


def _halves_inside(height: int) -> tuple[slice, slice]:
    """The rows of the top and bottom halves, three rows clear of the border between them."""
    return slice(0, height // 2 - 3), slice(height // 2 + 3, None)


def test_region_start_is_affine_in_the_content_and_takes_each_partners_colours(
        pair: dict[str, Path]) -> None:
    content, style = _grey_topped(pair, 80)
    content_labels = _halves(content, "red", "blue")
    style_labels = _halves(style, "blue", "red")  # swapped: the content's bottom takes the
    # reference's grey top, its top the coloured bottom
    start = region_colour_start(content, style, match_regions(content_labels, style_labels,
                                                              NAMES))
    halves = _halves_inside(content.shape[-2])
    for rows, partner in zip(halves, (slice(style.shape[-2] // 2, None),
                                      slice(None, style.shape[-2] // 2)), strict=True):
        x = content[0, :, rows].reshape(3, -1).double()
        y = start[0, :, rows].reshape(3, -1).double()
        # Away from the border the start is one affine colour map of the content (up to
        # clipping at 0 and 1, and 8-bit rounding of nothing: these are tensors).
        inside = ((y > 0.002) & (y < 0.998)).all(dim=0)
        design = torch.cat([x, torch.ones_like(x[:1])])[:, inside].T
        fit = torch.linalg.lstsq(design, y[:, inside].T).solution
        assert float((design @ fit - y[:, inside].T).abs().max()) < 1e-6
        # ... that gives it the colour mean of its partner region: the grey half (a B&W
        # reference) makes the content's bottom grey, the colour half colours its top.
        target = style[0, :, partner].reshape(3, -1).double()
        assert torch.allclose(y.mean(1), target.mean(1), atol=0.03)
    top, bottom = (start[0, :, rows].reshape(3, -1) for rows in halves)
    assert _colour_spread(bottom) < 0.01 < 0.03 < _colour_spread(top)


def test_a_black_and_white_reference_region_makes_its_partner_grey_in_a_run(
        pair: dict[str, Path]) -> None:
    content, style = _grey_topped(pair, 64)
    colours = np.asarray(list(PALETTE.values()), dtype=np.uint8)
    labels = colours[_halves(content, "red", "blue")], colours[_halves(style, "red", "blue")]
    halves = _halves_inside(content.shape[-2])
    before = [_colour_spread(content[0, :, rows].reshape(3, -1)) for rows in halves]
    out = io.pil_to_tensor(photo_transfer(
        io.tensor_to_pil(content), io.tensor_to_pil(style), *labels, size=64, iterations=10,
        scales=1, matting_iterations=10, device="cpu", precision="float32"))
    grey, coloured = (_colour_spread(out[0, :, rows].reshape(3, -1)) for rows in halves)
    assert grey < 0.02 < 0.5 * before[0]
    assert coloured > 0.03


def test_automatic_labels_correspond_between_images(net: Features, pair: dict[str, Path]) -> None:
    content = io.load_image(pair["content"], 96)
    mirrored = content.flip(-1)
    labels, mirrored_labels = auto_labels(content, mirrored, 2, net)
    assert labels.shape == tuple(content.shape[-2:])
    assert len(np.unique(labels)) == 2
    assert (labels == mirrored_labels[:, ::-1]).mean() > 0.9


def test_photo_transfer_moves_to_the_style_and_the_matting_term_keeps_it_photographic(
        net: Features, pair: dict[str, Path]) -> None:
    settings = dict(size=64, output_size=64, iterations=20, scales=1, matting_iterations=15,
                    device="cpu", smooth=0.0)
    content, style, content_labels, style_labels = load_inputs(*pair.values(), size=64)
    laplacian = matting_laplacian(content[0].permute(1, 2, 0).double().numpy())
    results = {}
    for weight in (0.0, PhotoOptions().matting_weight):
        out = io.pil_to_tensor(photo_transfer(*pair.values(), matting_weight=weight,
                                              **settings))
        results[weight] = (style_distance(out, style, net, content_labels, style_labels),
                           matting_energy(out[0].permute(1, 2, 0).double().numpy(), laplacian))
    before = style_distance(content, style, net, content_labels, style_labels)
    (free_style, free_energy), (kept_style, kept_energy) = results.values()
    assert free_style < 0.5 * before and kept_style < 0.5 * before
    assert kept_energy < 0.5 * free_energy


def test_the_result_comes_at_the_contents_size_and_smoothing_keeps_it_photographic(
        pair: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """By default the output has the content photo's resolution; the smoothing makes it
    locally affine in the photo at that size; above SMOOTH_PIXELS the smoothing runs smaller
    and guided upsampling carries it to full size."""
    photo_module = sys.modules["brushwork.photo"]
    settings = dict(size=48, iterations=0, scales=1, matting_iterations=4, device="cpu",
                    precision="float32", output_size=120)
    full = io.load_image(pair["content"], 120)[0].permute(1, 2, 0).double().numpy()
    laplacian = matting_laplacian(full)
    energies = {}
    for smooth in (0.0, 30.0):
        out = photo_transfer(*pair.values(), smooth=smooth, **settings)
        assert out.size == (full.shape[1], full.shape[0])
        energies[smooth] = matting_energy(np.asarray(out, float) / 255, laplacian)
    assert energies[30.0] < 0.3 * energies[0.0]
    monkeypatch.setattr(photo_module, "SMOOTH_PIXELS", 4000)  # smoothing at about 80x50
    capped = photo_transfer(*pair.values(), smooth=30.0, **settings)
    assert capped.size == out.size
    assert matting_energy(np.asarray(capped, float) / 255, laplacian) < energies[0.0]
    assert photo_transfer(*pair.values(), **{**settings, "output_size": None}).size == \
        Image.open(pair["content"]).size


def test_photo_command_with_automatic_regions(tmp_path: Path, pair: dict[str, Path]) -> None:
    out = tmp_path / "photo.png"
    code = cli.main(["photo", str(pair["content"]), str(pair["style"]), "-o", str(out),
                     "--size", "48", "--iterations", "4", "--scales", "1",
                     "--matting-iterations", "2", "--regions", "2", "--smooth", "10", "--quiet",
                     "--device", "cpu", "--output-size", "96"])
    assert code == 0
    with Image.open(out) as written:
        assert written.size == (96, 60)  # run at 48 px, enlarged
    meta = io.read_metadata(out)
    assert meta["matting_iterations"] == 2 and meta["output_size"] == 96


def test_output_size_below_the_run_size_is_refused(tmp_path: Path, pair: dict[str, Path],
                                                   capsys: pytest.CaptureFixture) -> None:
    code = cli.main(["photo", str(pair["content"]), str(pair["style"]), "-o",
                     str(tmp_path / "x.png"), "--size", "64", "--output-size", "48"])
    assert code == 2
    assert "--output-size 48 is below --size 64" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_photo_command_refuses_a_single_mask(tmp_path: Path, pair: dict[str, Path],
                                             capsys: pytest.CaptureFixture) -> None:
    code = cli.main(["photo", str(pair["content"]), str(pair["style"]), "-o",
                     str(tmp_path / "x.png"), "--content-mask", str(pair["content_mask"])])
    assert code == 2
    assert "give both a content mask and a style mask" in capsys.readouterr().err


def to_pil(image: np.ndarray) -> Image.Image:
    return Image.fromarray((image * 255 + 0.5).astype(np.uint8))


def _synthetic_files(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    image, _, _, alpha = synthetic_matte()
    path = tmp_path / "image.png"
    to_pil(image).save(path)
    return path, image, alpha


def test_matte_command_writes_alpha_and_composite(tmp_path: Path) -> None:
    image_path, _, alpha = _synthetic_files(tmp_path)
    trimap = tmp_path / "trimap.png"
    Image.fromarray(trimap_from_alpha(alpha)).save(trimap)
    out, comp = tmp_path / "alpha.png", tmp_path / "green.png"
    code = cli.main(["matte", str(image_path), "--trimap", str(trimap), "-o", str(out),
                     "--composite", "#00ff00", "-o2", str(comp)])
    assert code == 0
    with Image.open(out) as written:
        assert written.mode == "L" and written.size == (64, 64)
        assert np.abs(np.asarray(written) / 255.0 - alpha).mean() < 0.02
    green = np.asarray(io.open_image(comp))
    assert np.array_equal(green[alpha == 0.0][0], [0, 255, 0])


def test_all_foreground_trimap_is_refused_in_one_line(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    image_path, _, _ = _synthetic_files(tmp_path)
    trimap = tmp_path / "white.png"
    Image.new("L", (64, 64), 255).save(trimap)
    code = cli.main(["matte", str(image_path), "--trimap", str(trimap), "-o",
                     str(tmp_path / "a.png")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "need both foreground (white) and background (black)" in err
    assert not (tmp_path / "a.png").exists()


def test_non_binary_scribbles_leave_soft_strokes_unknown() -> None:
    image, _, _, alpha = synthetic_matte()
    canvas = np.full(alpha.shape, 128, dtype=np.uint8)
    canvas[30:34, 15:45] = 255
    canvas[29, 15:45] = canvas[34, 15:45] = 200  # anti-aliased rims: neither white nor black
    canvas[3:5, :] = canvas[60:62, :] = 0
    canvas[5, :] = 60
    # As a float tensor: 8-bit rounding of these smooth gradients alone costs 0.07 in alpha.
    result = matte(torch.from_numpy(image).permute(2, 0, 1).float(), scribbles=canvas)
    assert np.abs(result - alpha).mean() < 0.05

    with pytest.raises(BrushworkError, match="both foreground"):
        matte(to_pil(image), scribbles=np.full(alpha.shape, 200, np.uint8))
    with pytest.raises(BrushworkError, match="exactly one of a trimap and scribbles"):
        matte(to_pil(image))


def test_many_unmatched_regions_are_reported_in_one_short_line() -> None:
    content_labels = np.arange(10).repeat(4).reshape(4, 10)  # ten regions
    style_labels = np.zeros((4, 10), dtype=np.int64)  # one
    names = [f"automatic region {i + 1}" for i in range(10)]
    with pytest.warns(UserWarning, match="automatic region 2, .* region 5 and 5 more have no") \
            as caught:
        match_regions(content_labels, style_labels, names)
    assert len(str(caught[0].message)) < 200
