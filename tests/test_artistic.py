"""Artistic transfer with the real VGG-19 at small sizes: figures asserted, not printed."""

import pytest
import torch
import torch.nn.functional as F

from brushwork import colour, io
from brushwork.artistic import StyleOptions, stylize, stylize_tensor
from brushwork.errors import BrushworkError
from brushwork.losses import gram
from brushwork.optimise import Checkpoint, Interrupted, Snapshots, optimise_scale
from brushwork.vgg import Features

LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
SMALL = dict(size=64, iterations=25, scales=1, device="cpu")


@pytest.fixture(scope="module")
def net(vgg_state):
    return Features((*LAYERS, "relu4_2"), state=vgg_state)


def distances(net, image, content, style):
    """(style distance, content distance) in the quality report's relative form."""
    with torch.no_grad():
        fi, fc, fs = net(image), net(content), net(style)
    s = sum((torch.linalg.norm(gram(fi[n]) - gram(fs[n])) / torch.linalg.norm(gram(fs[n])))
            for n in LAYERS) / len(LAYERS)
    c = torch.linalg.norm(fi["relu4_2"] - fc["relu4_2"]) / torch.linalg.norm(fc["relu4_2"])
    return float(s), float(c)


@pytest.fixture(scope="module")
def pair(examples):
    content = io.load_image(examples / "tubingen.jpg", 64)
    style = io.load_image(examples / "starry_night.jpg", 64)
    return content, style


def test_style_distance_falls_and_content_is_kept(net, pair, vgg_state):
    content, style = pair
    out = stylize_tensor(content, [style], StyleOptions(**SMALL), progress=False)
    s0, _ = distances(net, content, content, style)
    s1, c1 = distances(net, out, content, style)
    style_resized = F.interpolate(style, size=content.shape[-2:])
    _, c_style = distances(net, style_resized, content, style)
    assert s1 < 0.5 * s0, (s0, s1)
    # Content kept: deep features nearer the photo than the painting's are, and the layout
    # (an 8x8 average) nearly unchanged.
    assert c1 < 0.85 * c_style, (c1, c_style)
    layout = (F.adaptive_avg_pool2d(out, 8) - F.adaptive_avg_pool2d(content, 8)).abs().mean()
    layout_style = (F.adaptive_avg_pool2d(style_resized, 8)
                    - F.adaptive_avg_pool2d(content, 8)).abs().mean()
    assert layout < 0.5 * layout_style, (layout, layout_style)
    assert out.shape == content.shape and 0 <= out.min() and out.max() <= 1


def test_more_style_weight_means_closer_to_style(net, pair):
    content, style = pair
    light = stylize_tensor(content, [style], StyleOptions(**SMALL, style_weight=1), progress=False)
    heavy = stylize_tensor(content, [style], StyleOptions(**SMALL, style_weight=300),
                           progress=False)
    (s_l, c_l), (s_h, c_h) = distances(net, light, content, style), \
        distances(net, heavy, content, style)
    assert s_h < s_l and c_h > c_l


def test_blend_weights_choose_between_styles(net, pair, examples):
    content, starry = pair
    wave = io.load_image(examples / "wave.jpg", 64)
    options = dict(SMALL, iterations=30)
    out = stylize_tensor(content, [starry, wave], StyleOptions(**options, style_blend=(1, 0)),
                         progress=False)
    assert distances(net, out, content, starry)[0] < distances(net, out, content, wave)[0]


def test_luminance_preservation_keeps_content_chrominance(pair):
    content, style = pair
    out = stylize_tensor(content, [style], StyleOptions(**dict(SMALL, iterations=10),
                                                        preserve_colour="luminance"),
                         progress=False)
    iq_out, iq_content = colour.rgb_to_yiq(out)[:, 1:], colour.rgb_to_yiq(content)[:, 1:]
    # Clipping to 0..1 can shift saturated pixels a little; on average chrominance is kept.
    assert (iq_out - iq_content).abs().mean() < 0.01


def test_histogram_matching_moves_style_colours_to_content():
    content = torch.rand(1, 3, 16, 16) * 0.2 + torch.tensor([0.7, 0.2, 0.1]).view(1, 3, 1, 1)
    style = torch.rand(1, 3, 16, 16) * 0.5 + torch.tensor([0.0, 0.3, 0.5]).view(1, 3, 1, 1)
    matched = colour.match_histogram(style, content)
    assert torch.allclose(matched.mean(dim=(2, 3)), content.mean(dim=(2, 3)), atol=0.02)


def test_interrupt_keeps_image_and_resume_finishes(pair):
    content, style = pair
    options = StyleOptions(**dict(SMALL, iterations=12))

    def stop_at_five(step):
        if step.done == 5:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted) as stop:
        stylize_tensor(content, [style], options, [stop_at_five], progress=False)
    assert stop.value.checkpoint.iteration == 5
    assert not torch.equal(stop.value.image, content)
    seen = []
    stylize_tensor(content, [style], options, [lambda s: seen.append(s.done)],
                   resume=stop.value.checkpoint, progress=False)
    assert seen == list(range(6, 13))


def test_a_checkpoint_is_also_written_when_minutes_pass_between_due_steps(pair, tmp_path):
    content, style = pair
    options = StyleOptions(**dict(SMALL, iterations=3))
    timely = Snapshots(tmp_path / "timely.png", {}, checkpoint_every=1000, checkpoint_minutes=1e-9)
    by_steps = Snapshots(tmp_path / "steps.png", {}, checkpoint_every=1000)
    seen = {}

    def look(step) -> None:  # after both snapshots of step 2, before the run's last step
        if step.done == 2:
            seen["timely"] = Checkpoint.load(tmp_path / "timely.png.ckpt").iteration
            seen["by steps"] = (tmp_path / "steps.png.ckpt").exists()

    stylize_tensor(content, [style], options, [timely, by_steps, look], progress=False)
    assert seen == {"timely": 2, "by steps": False}


def test_the_finished_optimisation_is_checkpointed_and_resumes_without_steps(pair, tmp_path):
    content, style = pair
    options = StyleOptions(**dict(SMALL, iterations=3))
    out = stylize_tensor(content, [style], options,
                         [Snapshots(tmp_path / "o.png", {}, checkpoint_every=1000)], progress=False)
    done = Checkpoint.load(tmp_path / "o.png.ckpt")  # before any later stage can be cut short
    assert (done.scale, done.iteration) == (1, 0) and torch.equal(done.image, out.cpu())
    steps = []
    again = stylize_tensor(content, [style], options, [steps.append], resume=done,
                           progress=False)
    assert steps == [] and torch.equal(again.cpu(), out.cpu())


def test_pyramid_runs_coarse_to_fine(pair):
    content, style = pair
    sizes = []
    stylize_tensor(content, [style], StyleOptions(size=64, iterations=(2, 2, 2), scales=3,
                                                  device="cpu"),
                   [lambda s: sizes.append(tuple(s.image.shape[-2:]))], progress=False)
    assert sizes[0][1] < sizes[2][1] < sizes[-1][1] == 64


def test_python_api_returns_pil_image(examples):
    img = stylize(examples / "tubingen.jpg", examples / "wave.jpg", size=48, iterations=3,
                  scales=1)
    assert max(img.size) == 48 and img.mode == "RGB"


@pytest.mark.parametrize("bad, match", [
    (dict(content_layers=("relu9_9",)), "unknown VGG-19 layer"),
    (dict(style_layer_weights=(1.0,)), "one weight per layer"),
    (dict(style_weight=-1), "must not be negative"),
    (dict(iterations=0), "at least 1"),
    (dict(init="nowhere.png"), "init"),
    (dict(preserve_colour="sepia"), "preserve-colour"),
    (dict(size=0), "too small"),
    (dict(style_layers="relu1_1,relu2_1"), "give a list of layer names"),
    (dict(size="64"), "size='64': give an integer"),
    (dict(iterations="100"), "iterations='100': give an integer"),
    (dict(style_weight="30"), "style_weight='30': give a number"),
    (dict(lr=float("nan")), "give a finite number"),
])
def test_bad_options_get_one_line_errors(bad, match):
    with pytest.raises(BrushworkError, match=match) as err:
        StyleOptions(**bad).check()
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("tensor, match", [
    (torch.rand(32, 32, 3), "shape"),           # HWC, as numpy arrays come
    (torch.rand(2, 3, 32, 32), "shape"),        # a batch: which one?
    (torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8), "floats"),
    (torch.rand(3, 32, 32) * 255, "divide it by 255"),
    (torch.full((3, 32, 32), float("nan")), "finite"),
])
def test_api_tensors_of_the_wrong_kind_are_refused_not_clamped(tensor, match):
    with pytest.raises(BrushworkError, match=match):
        io.as_tensor(tensor)
    good = torch.rand(3, 32, 32)
    assert torch.equal(io.as_tensor(good), good.unsqueeze(0))


def _halves(width: int) -> tuple[slice, slice]:
    return slice(0, width // 2), slice(width // 2, None)


def _half_masks(height: int, width: int, right_too: bool = True) -> list:
    from PIL import Image

    left = torch.zeros(height, width)
    left[:, : width // 2] = 1
    right = (1 - left) if right_too else torch.zeros(height, width)
    return [Image.fromarray((m.numpy() * 255).astype("uint8"), "L") for m in (left, right)]


def test_each_style_goes_where_its_mask_is(net, examples):
    content = io.load_image(examples / "tubingen.jpg", 96)
    blue, orange = (io.load_image(examples / f"{name}.jpg", 96)
                    for name in ("starry_night", "the_scream"))
    h, w = content.shape[-2:]
    out = io.pil_to_tensor(stylize(content, [blue, orange], style_masks=_half_masks(h, w),
                                   size=96, iterations=30, scales=1, device="cpu",
                                   precision="float32"))
    for half, own, other in zip(_halves(w), (blue, orange), (orange, blue), strict=True):
        part, photo = out[..., half], content[..., half]
        nearer = distances(net, part, photo, own)[0]
        assert nearer < distances(net, part, photo, other)[0]
        assert nearer < 0.8 * distances(net, photo, photo, own)[0]  # and it moved there


def test_pixels_no_mask_covers_keep_the_content(examples):
    content = io.load_image(examples / "tubingen.jpg", 64)
    style = io.load_image(examples / "starry_night.jpg", 64)
    h, w = content.shape[-2:]
    masks = _half_masks(h, w, right_too=False)  # the second style's mask is all black
    out = io.pil_to_tensor(stylize(content, [style, style], style_masks=masks, size=64,
                                   iterations=5, scales=1, device="cpu", precision="float32"))
    left, right = _halves(w)
    assert (out[..., right] - content[..., right]).abs().max() <= 1 / 255 + 1e-6
    assert (out[..., left] - content[..., left]).abs().mean() > 0.03


def _label_image(height: int, width: int, left: str, right: str):
    """A label image in the photo mode's colours: ``left`` on the left half, ``right`` on
    the right."""
    import numpy as np
    from PIL import Image

    from brushwork.regions import PALETTE

    rgb = np.zeros((height, width, 3), dtype=np.uint8)
    rgb[:, : width // 2], rgb[:, width // 2:] = PALETTE[left], PALETTE[right]
    return Image.fromarray(rgb, "RGB")


def test_label_images_give_each_region_the_style_of_its_partner_region(net, examples):
    # One style image made of two paintings side by side, labelled red | blue; the content
    # is labelled the other way round, blue | red, so each half must take the style of the
    # painting on the *other* side: region to region, not place to place.
    content = io.load_image(examples / "tubingen.jpg", 96)
    h, w = content.shape[-2:]
    blue, orange = (io.load_image(examples / f"{name}.jpg", 96)
                    for name in ("starry_night", "the_scream"))
    blue, orange = (F.interpolate(s, size=(h, w // 2), mode="bilinear") for s in (blue, orange))
    style = torch.cat([blue, orange], dim=3)
    out = io.pil_to_tensor(stylize(content, style, content_labels=_label_image(h, w, "blue",
                                                                                "red"),
                                   style_labels=_label_image(h, w, "red", "blue"), size=96,
                                   iterations=30, scales=1, device="cpu", precision="float32"))
    for half, own, other in zip(_halves(w), (orange, blue), (blue, orange), strict=True):
        part, photo = out[..., half], content[..., half]
        nearer = distances(net, part, photo, own)[0]
        assert nearer < distances(net, part, photo, other)[0]
        assert nearer < 0.8 * distances(net, photo, photo, own)[0]  # and it moved there


@pytest.mark.parametrize("given, match", [
    ("content", "give both a content mask and a style mask"),
    ("tall", "of other proportions"),
    ("two styles", "give one style"),
])
def test_bad_label_images_are_refused_before_any_work(examples, tmp_path, capsys, given, match):
    from PIL import Image

    from brushwork import cli

    content = examples / "tubingen.jpg"
    w, h = Image.open(content).size
    labels = tmp_path / "content_labels.png"
    _label_image(*((w, h) if given == "tall" else (h, w)), "red", "blue").save(labels)
    style = examples / "wave.jpg"
    style_labels = tmp_path / "style_labels.png"
    _label_image(*Image.open(style).size[::-1], "red", "blue").save(style_labels)
    flags = ["--content-labels", str(labels)]
    if given != "content":
        flags += ["--style-labels", str(style_labels)]
    styles = [str(style)] + ([str(examples / "udnie.jpg")] if given == "two styles" else [])
    out = tmp_path / "out.png"
    code = cli.main(["stylize", str(content), *styles, "-o", str(out), "--size", "48",
                     "--iterations", "2", "--device", "cpu", *flags])
    err = capsys.readouterr().err
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


@pytest.mark.parametrize("masks, match", [
    (1, "1 style masks for 2 style images"),
    ("tall", "of other proportions than the content"),
])
def test_bad_style_masks_are_refused_before_any_work(examples, tmp_path, capsys, masks, match):
    from PIL import Image

    from brushwork import cli

    content = examples / "tubingen.jpg"
    wide = Image.open(content).size
    files = []
    for i, size in enumerate([wide] * (masks if masks == 1 else 2)):
        shape = (size[1], size[0]) if masks == "tall" else size
        files.append(tmp_path / f"m{i}.png")
        Image.new("L", shape, 255).save(files[-1])
    out = tmp_path / "out.png"
    code = cli.main(["stylize", str(content), str(examples / "wave.jpg"),
                     str(examples / "udnie.jpg"), "-o", str(out), "--size", "48",
                     "--iterations", "2", "--device", "cpu", "--style-masks", *map(str, files)])
    err = capsys.readouterr().err
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_scale_that_ends_blown_up_returns_the_best_image_it_saw():
    """L-BFGS steps without a line search: on a loss that is flat far from its minimum
    (sqrt(1 + u^2)) the third step overshoots to the edge of the box and stays there. The
    scale must hand on the best image it evaluated, not the blown-up last one."""
    def loss(x: torch.Tensor) -> dict[str, torch.Tensor]:
        u = 40 * (x - 0.5)
        return {"total": torch.sqrt(1 + u * u).mean()}

    seen: list[float] = []
    out = optimise_scale(torch.full((1, 3, 4, 4), 0.7), loss, 5, "lbfgs", None,
                         lambda it, losses, x: seen.append(losses["total"]))
    assert seen[-1] > 2 * min(seen)  # the run did blow up
    assert float(loss(out)["total"]) == pytest.approx(min(seen))
