"""Tiles: exact cover, shared global statistics, results close to untiled, no seams."""

import platform
import subprocess
import sys

import pytest
import torch

from brushwork import io
from brushwork.artistic import StyleOptions, stylize_tensor
from brushwork.errors import BrushworkError
from brushwork.losses import gram
from brushwork.tiling import Tile, TiledProblem, TiledStyle, bytes_per_pixel, choose_tile, grid
from brushwork.vgg import Features

from .test_artistic import LAYERS, distances


@pytest.mark.parametrize("h, w, tile, overlap", [(100, 300, 64, 16), (256, 256, 256, 32),
                                                 (513, 700, 256, 64)])
def test_owned_regions_partition_the_image_and_tiles_cover_it(h, w, tile, overlap):
    owned = torch.zeros(h, w)
    covered = torch.zeros(h, w)
    for t in grid(h, w, tile, overlap):
        assert t.y1 - t.y0 <= tile and t.x1 - t.x0 <= tile
        oy0, oy1, ox0, ox1 = t.own
        owned[oy0:oy1, ox0:ox1] += 1
        covered[t.y0:t.y1, t.x0:t.x1] += 1
    assert torch.all(owned == 1)
    assert torch.all(covered >= 1)


def test_tiled_gram_matches_whole_image_gram(vgg_state):
    net = Features(["relu1_1", "relu2_1"], state=vgg_state)
    image = torch.rand(1, 3, 96, 128)
    tiled = TiledStyle(net, ["relu1_1", "relu2_1"], grid(96, 128, 64, 16),
                       torch.float32).measure(image).grams()
    whole = net(image)
    for name in ("relu1_1", "relu2_1"):
        # Only the zero padding at tile borders differs: a small relative error.
        err = torch.linalg.norm(tiled[name] - gram(whole[name])) / torch.linalg.norm(
            gram(whole[name]))
        assert err < 0.05, (name, err)


def test_tile_choice_follows_memory():
    per_pixel = bytes_per_pixel(list(LAYERS))
    assert choose_tile(512, 512, per_pixel, 64 * 2**30) is None
    small = choose_tile(4096, 4096, per_pixel, 4 * 2**30)
    large = choose_tile(4096, 4096, per_pixel, 16 * 2**30)
    assert 256 <= small < large < 4096 and small % 32 == 0


@pytest.fixture(scope="module")
def runs(examples):
    """One float32 run at 128 px, whole and in 72 px tiles. float32 on every CPU: ``auto``
    would be bfloat16 where that is native, and the runs would differ between machines."""
    content = io.load_image(examples / "tubingen.jpg", 128)
    style = io.load_image(examples / "starry_night.jpg", 128)
    common = dict(size=128, iterations=(20, 10), scales=2, device="cpu", precision="float32")
    untiled = stylize_tensor(content, [style], StyleOptions(**common), progress=False)
    tiled = stylize_tensor(content, [style], StyleOptions(**common, tile=72, overlap=16),
                           progress=False)
    return content, style, untiled, tiled


@pytest.fixture(scope="module")
def bf16_run(examples):
    """A bfloat16 run in three 64 px tiles of a 64 px strip of the photo, one sweep of 5 steps:
    bfloat16 emulated (no AVX-512-BF16 or AMX) costs about 5x float32 at this size. Its
    reference is the strip whole in float32, for where the photo's own edges are."""
    content = io.load_image(examples / "tubingen.jpg", 128)[..., 16:80, :]
    style = io.load_image(examples / "starry_night.jpg", 128)
    common = dict(size=128, iterations=5, scales=1, device="cpu")
    tiled = stylize_tensor(content, [style], StyleOptions(**common, precision="bfloat16",
                                                          tile=64, overlap=16), progress=False)
    untiled = stylize_tensor(content, [style], StyleOptions(**common, precision="float32"),
                             progress=False)
    return tiled, untiled, 64, 16


@pytest.fixture(params=["float32", "bfloat16"])
def tiled_run(request):
    """(tiled, untiled, tile, overlap) in each precision (bfloat16 is built only if asked)."""
    if request.param == "float32":
        _, _, untiled, tiled = request.getfixturevalue("runs")
        return tiled, untiled, 72, 16
    return request.getfixturevalue("bf16_run")


def test_tiled_and_untiled_runs_reach_similar_distances(runs, vgg_state):
    content, style, untiled, tiled = runs
    net = Features((*LAYERS, "relu4_2"), state=vgg_state)
    s_u, c_u = distances(net, untiled, content, style)
    s_t, c_t = distances(net, tiled, content, style)
    s_0, _ = distances(net, content, content, style)
    assert s_t < 0.6 * s_0, (s_t, s_0)
    assert s_t < 1.6 * s_u and c_t < 1.3 * c_u, (s_u, s_t, c_u, c_t)


def jumps(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean colour jump between neighbouring rows, and between neighbouring columns, each over
    its mean across the image."""
    dy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean(dim=(0, 1, 3))
    dx = (image[..., :, 1:] - image[..., :, :-1]).abs().mean(dim=(0, 1, 2))
    return dy / dy.mean(), dx / dx.mean()


def test_no_seams_at_tile_borders(tiled_run):
    """Jumps across tile edges and owned borders stand no higher than the untiled run's
    there: the photo's own edges are no seams (at these rows the untiled run's jumps are
    1.26x its mean)."""
    tiled, untiled, tile, overlap = tiled_run
    h, w = tiled.shape[-2:]
    tiles = grid(h, w, tile, overlap)
    cols = sorted({t.x0 - 1 for t in tiles if t.x0 > 0} | {t.x1 - 1 for t in tiles if t.x1 < w}
                  | {t.own[2] - 1 for t in tiles if t.own[2] > 0})
    rows = sorted({t.y0 - 1 for t in tiles if t.y0 > 0} | {t.y1 - 1 for t in tiles if t.y1 < h}
                  | {t.own[0] - 1 for t in tiles if t.own[0] > 0})
    (ty, tx), (uy, ux) = jumps(tiled), jumps(untiled)
    at_borders, untiled_there = torch.cat([ty[rows], tx[cols]]), torch.cat([uy[rows], ux[cols]])
    assert at_borders.mean() < 1.25 * untiled_there.mean(), (at_borders, untiled_there)


def test_every_tile_is_stylised_alike(tiled_run):
    """No tile comes out more textured than another, against the untiled run there. With the
    other tiles' Grams frozen, the first tiles of a sweep made the whole image's correction
    and came out 1.7-2x as textured as the last: their borders stood out."""
    tiled, untiled, tile, overlap = tiled_run

    def texture(image: torch.Tensor, t: Tile) -> float:
        oy0, oy1, ox0, ox1 = t.own
        part = image[..., oy0:oy1, ox0:ox1]
        return float((part[..., 1:, :] - part[..., :-1, :]).abs().mean()
                     + (part[..., :, 1:] - part[..., :, :-1]).abs().mean())

    shares = [texture(tiled, t) / texture(untiled, t) for t in grid(*tiled.shape[-2:], tile,
                                                                     overlap)]
    assert max(shares) < 1.35 * min(shares), shares


def test_a_tiled_scale_says_how_it_is_split():
    tiles = grid(100, 150, 64, 16)
    assert len(tiles) == 2 * 3
    assert TiledProblem(tiles, 16, None, None).describe() == \
        "6 tiles of up to 64 px, 16 px overlap"


@pytest.mark.parametrize("changes, message", [(dict(tile=5), "at least 128 px"),
                                              (dict(tile=-3), "at least 128 px"),
                                              (dict(tile=50, overlap=16), "at least 64 px"),
                                              (dict(tile=100, overlap=60), "at least 120 px"),
                                              (dict(overlap=-5), "--overlap -5")])
def test_tiles_too_small_for_their_overlap_are_refused(changes, message):
    with pytest.raises(BrushworkError, match=message):
        StyleOptions(**changes).check()


def test_tile_zero_or_large_enough_is_accepted():
    for tile in (None, 0, 64, 128, 5000):
        StyleOptions(tile=tile, overlap=32).check()


REUSE = """
import resource, sys, torch
from brushwork.runtime import pick_device
if sys.argv[1] == "run":
    pick_device()
def step():
    # like an optimisation step: large maps kept for the backward pass, small tensors among them
    kept = []
    for n in (50_000_000, 25_000_000, 12_500_000, 25_000_000, 12_500_000):
        kept += [torch.ones(n), torch.ones(8)]
    return kept
faults = []
for _ in range(10):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    step()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(sum(faults[1:]))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")
def test_a_cpu_run_reuses_freed_buffers_instead_of_faulting_them_in_again():
    """Steps and tiles free and allocate the same large buffers: once a run has picked the
    CPU, later steps reuse what the first one freed (without it, every step faults in its
    500 MB again, page by page)."""
    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", REUSE, mode], capture_output=True,
                             text=True, check=True).stdout
        return int(out)

    pages_of_later_steps = 9 * 500_000_000 // 4096
    assert faults("bare") > pages_of_later_steps * 0.9
    assert faults("run") < pages_of_later_steps / 4
