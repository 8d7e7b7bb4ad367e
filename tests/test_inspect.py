"""Tests for brushwork.inspect and brushwork.recording with the real VGG-19, at tiny sizes."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from brushwork.cli import main
from brushwork.errors import BrushworkError
from brushwork.inspect import (
    CAPTION,
    GAP,
    ReconstructOptions,
    feature_grid,
    feature_map_image,
    features,
    parse_channel,
    receptive_field,
    reconstruct_tensor,
    strongest_channels,
    tile_grid,
    top_patches,
)
from brushwork.io import load_image, pil_to_tensor
from brushwork.losses import gram, style_loss
from brushwork.optimise import Step
from brushwork.recording import FPS, HOLD_S, LossPlot, Recorder
from brushwork.vgg import Features

FAST = {"device": "cpu", "precision": "float32", "scales": 1}


@pytest.fixture(scope="module")
def photo(examples) -> torch.Tensor:
    return load_image(examples / "tubingen.jpg", 48)


def pixel_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).pow(2).mean())


def test_content_from_shallow_layer_is_far_closer_than_from_deep(photo, vgg_state):
    def rebuilt(layer: str) -> torch.Tensor:
        options = ReconstructOptions(content_layers=(layer,), iterations=20, **FAST)
        return reconstruct_tensor(photo, options, progress=False)

    shallow, deep = pixel_error(rebuilt("relu1_1"), photo), pixel_error(rebuilt("relu5_1"), photo)
    assert shallow < 0.2 * deep


def test_style_reconstruction_approaches_the_target_grams(photo, vgg_state):
    layers = ("relu1_1", "relu2_1")
    net = Features(layers, "avg", vgg_state)
    targets = {n: gram(f) for n, f in net(photo).items()}

    def distance(image: torch.Tensor) -> float:
        return sum(float(style_loss(gram(f), targets[n])) for n, f in net(image).items())

    options = ReconstructOptions(style_layers=layers, iterations=15, **FAST)
    out = reconstruct_tensor(photo, options, progress=False)
    # With one scale the run starts from exactly this noise.
    noise = torch.rand(photo.shape, generator=torch.Generator().manual_seed(options.seed))
    assert distance(out) < 0.2 * distance(noise)


def steps(total: int, scale_of=lambda done: 0):
    """Steps 1..total whose image encodes the step number, so frames can be identified."""
    for done in range(1, total + 1):
        size = 8 if scale_of(done) == 0 else 16
        yield Step(scale_of(done), 2, done, done, total, {"style": 1.0 / done, "total": 2.0},
                   torch.full((1, 3, size, size), done / 255))


def test_recorder_spreads_frames_evenly_and_ends_on_the_final_image():
    rec = Recorder(frames=4)
    for step in steps(10):
        rec(step)
    assert [f.getpixel((0, 0))[0] for f in rec.frames] == [3, 5, 8, 10]

    short = Recorder(frames=60)
    for step in steps(5):
        short(step)
    assert len(short.frames) == 5


def test_recorded_gif_has_the_requested_frames_at_the_final_size(tmp_path):
    path = tmp_path / "run.gif"
    rec = Recorder(path, frames=6)
    for step in steps(12, scale_of=lambda done: 0 if done <= 4 else 1):
        rec(step)
    with Image.open(path) as gif:
        assert gif.n_frames == 6
        assert gif.size == (16, 16)


def test_recorded_mp4_has_the_frames_then_holds_the_last(tmp_path):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    path = tmp_path / "run.mp4"
    rec = Recorder(path, frames=3)
    for step in steps(6):
        rec(step)
    frames = imageio_ffmpeg.read_frames(str(path))
    assert next(frames)["size"] == (8, 8)
    assert sum(1 for _ in frames) == 3 + round(FPS * HOLD_S)


def test_recording_of_a_real_run(tmp_path, photo, vgg_state):
    path = tmp_path / "synthesis.gif"
    options = ReconstructOptions(content_layers=("relu1_1",), iterations=8, **FAST)
    out = reconstruct_tensor(photo, options, [Recorder(path, frames=4)], progress=False)
    with Image.open(path) as gif:
        assert gif.n_frames == 4
        assert gif.size == (out.shape[-1], out.shape[-2])


def test_loss_plot_keeps_every_term(tmp_path):
    plot = LossPlot(tmp_path / "losses.png")
    for step in steps(6):
        plot(step)
    assert plot.steps == list(range(1, 7))
    assert set(plot.history) == {"style", "total"}
    with Image.open(tmp_path / "losses.png") as img:
        assert img.width > 300


def test_feature_grid_layout_and_tiles(photo, vgg_state):
    layers = ["relu1_1", "relu2_1"]
    grid = feature_grid(photo, layers, count=3, size=None, tile=40)
    w, h = 40, round(40 * photo.shape[-2] / photo.shape[-1])
    assert grid.size == (GAP + 3 * (w + GAP), GAP + 2 * (h + CAPTION + GAP))
    # Row 1, column 0 is relu2_1's strongest map, enlarged block by block.
    fmap = features(photo, layers, state=vgg_state)["relu2_1"]
    best = strongest_channels(fmap, 3)[0]
    expected = feature_map_image(fmap[0, best]).resize((w, h), Image.Resampling.NEAREST)
    top = GAP + (h + CAPTION + GAP) + CAPTION
    assert grid.crop((GAP, top, GAP + w, top + h)).tobytes() == expected.tobytes()


def test_strongest_channels_are_ordered_by_mean_activation():
    fmap = torch.zeros(1, 4, 2, 2)
    fmap[0, 2] = 5.0
    fmap[0, 0] = 1.0
    assert strongest_channels(fmap, 2) == [2, 0]


def test_ragged_rows_share_one_grid():
    tile = Image.new("RGB", (10, 6), (255, 0, 0))
    grid = tile_grid([[("a", tile)], [("b", tile), ("c", tile)]], (10, 6))
    assert grid.size == (GAP + 2 * (10 + GAP), GAP + 2 * (6 + CAPTION + GAP))


def test_receptive_fields_of_vgg19():
    assert receptive_field("conv1_1") == (3, 1, 0.5)
    assert receptive_field("pool1") == (6, 2, 1.0)
    assert receptive_field("relu5_1")[:2] == (156, 16)


def test_top_patches_are_crops_of_the_strongest_responses(photo, vgg_state):
    patches = top_patches(photo, "relu2_1", 7, count=5, state=vgg_state)
    assert 1 < len(patches) <= 5
    activations = [p.activation for p in patches]
    assert activations == sorted(activations, reverse=True)
    response = features(photo, ["relu2_1"], state=vgg_state)["relu2_1"][0, 7]
    assert activations[0] == pytest.approx(float(response.max()))
    for p in patches:
        assert p.image.size == (receptive_field("relu2_1")[0],) * 2
        left, top, right, bottom = p.box
        if left >= 0 and top >= 0 and right <= photo.shape[-1] and bottom <= photo.shape[-2]:
            crop = photo[..., top:bottom, left:right]
            assert torch.allclose(pil_to_tensor(p.image), crop, atol=0.5 / 255)


def test_bad_channels_are_one_line_errors(photo, vgg_state):
    with pytest.raises(BrushworkError, match="64 channels"):
        top_patches(photo, "relu1_1", 64, state=vgg_state)
    with pytest.raises(BrushworkError, match="LAYER:N"):
        parse_channel("relu1_1")
    with pytest.raises(BrushworkError, match="unknown VGG-19 layer"):
        parse_channel("relu9_1:3")


def test_bad_reconstruction_settings_are_one_line_errors(tmp_path):
    with pytest.raises(BrushworkError, match="not both"):
        ReconstructOptions(content_layers=("relu1_1",), style_layers=("relu1_1",)).check()
    with pytest.raises(BrushworkError, match="--content-layer or --style-layers"):
        ReconstructOptions().check()
    with pytest.raises(BrushworkError, match=r"\.gif"):
        Recorder(tmp_path / "run.avi")
    with pytest.raises(BrushworkError, match="at least 1"):
        Recorder(tmp_path / "run.gif", frames=0)


def test_cli_writes_reconstruction_recording_and_plot(tmp_path, examples, vgg_state):
    out, gif, plot = tmp_path / "out.png", tmp_path / "run.gif", tmp_path / "losses.png"
    code = main(["reconstruct", str(examples / "tubingen.jpg"), "--style-layers",
                 "relu1_1,relu2_1", "--size", "32", "--iterations", "5", "--scales", "1",
                 "--device", "cpu", "--quiet", "--record", str(gif), "--record-frames", "5",
                 "--plot", str(plot), "-o", str(out)])
    assert code == 0
    with Image.open(gif) as g:
        assert g.n_frames == 5
    assert out.is_file() and plot.is_file()


def test_cli_stylize_records_too(tmp_path, examples, vgg_state):
    out, gif = tmp_path / "out.png", tmp_path / "run.gif"
    code = main(["stylize", str(examples / "tubingen.jpg"), str(examples / "wave.jpg"),
                 "--size", "32", "--iterations", "3", "--scales", "1", "--device", "cpu",
                 "--quiet", "--record", str(gif), "--record-frames", "3", "-o", str(out)])
    assert code == 0
    with Image.open(gif) as g:
        assert g.n_frames == 3


def test_cli_figure_and_inspect(tmp_path, examples, vgg_state):
    fig, grid = tmp_path / "figure.png", tmp_path / "grid.png"
    image = str(examples / "tubingen.jpg")
    assert main(["reconstruct", image, "--figure", "--content-layers", "relu1_1,relu2_1",
                 "--style-layers", "relu1_1,relu2_1", "--size", "32", "--iterations", "2",
                 "--scales", "1", "--device", "cpu", "--quiet", "-o", str(fig)]) == 0
    th, tw = load_image(examples / "tubingen.jpg", 32).shape[-2:]
    with Image.open(fig) as img:  # two rows: the input, then one tile per layer (set)
        assert img.size == (GAP + 3 * (tw + GAP), GAP + 2 * (th + CAPTION + GAP))
        assert img.mode == "P"  # 256 colours keep committed figures small
    assert main(["inspect", image, "--layers", "relu1_1", "relu2_1", "--count", "2", "--size",
                 "32", "--tile", "16", "--channel", "relu2_1:3", "-o", str(grid)]) == 0
    assert grid.is_file()


def test_cli_refuses_recording_a_figure(tmp_path, examples, capsys):
    code = main(["reconstruct", str(examples / "tubingen.jpg"), "--figure", "--record",
                 str(tmp_path / "x.gif"), "-o", str(tmp_path / "f.png")])
    assert code == 2
    assert "without --figure" in capsys.readouterr().err


@pytest.mark.parametrize("tile, message", [("0", "--tile 0 is too small"),
                                           ("-5", "--tile -5 is too small"),
                                           ("100000", "larger than 16384"),
                                           ("4000", "the grid would be")])
def test_inspect_tile_out_of_bounds_is_one_line_and_writes_nothing(tmp_path, examples, capsys,
                                                                   tile, message):
    out = tmp_path / "grid.png"
    assert main(["inspect", str(examples / "chelsea.jpg"), "-o", str(out), "--tile", tile]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("brushwork: ")
    assert not out.exists()


def test_reconstruct_refuses_a_step_size_that_is_not_positive(tmp_path, examples, capsys):
    out = tmp_path / "out.png"
    assert main(["reconstruct", str(examples / "chelsea.jpg"), "-o", str(out),
                 "--content-layer", "relu2_1", "--lr", "-1", "--quiet"]) == 2
    assert "--lr -1 must be above 0" in capsys.readouterr().err
    assert not out.exists()


def test_reconstruct_help_offers_only_the_inits_it_accepts(capsys):
    with pytest.raises(SystemExit):
        main(["reconstruct", "-h"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--init INIT noise, or an image file [noise]" in help_text


def test_a_recording_that_cannot_be_written_warns_and_the_run_goes_on(tmp_path):
    plot = LossPlot(tmp_path / "sub" / "losses.png")
    (tmp_path / "sub").write_text("now a file, so the folder cannot be made")
    with pytest.warns(UserWarning, match="cannot write it.*the run goes on without it"):
        for step in steps(3):
            plot(step)
    assert plot.steps == [1, 2, 3]
