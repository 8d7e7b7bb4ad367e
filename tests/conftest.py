"""Shared fixtures: paths to the bundled and shared images, and the real VGG-19 weights."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from brushwork import io, weights

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "src" / "brushwork" / "examples"
SHARED = ROOT.parent / "shared" / "images"


@pytest.fixture(scope="session")
def vgg_state() -> dict[str, torch.Tensor]:
    """The real Caffe VGG-19 weights, fetched into the cache on first use."""
    return weights.load()


@pytest.fixture(scope="session")
def examples() -> Path:
    return EXAMPLES


@pytest.fixture(scope="session")
def photos(tmp_path_factory, examples: Path) -> Path:
    """Six small photos cut from the bundled ones: a training set for fast networks and
    decoders (test_fast, test_universal)."""
    folder = tmp_path_factory.mktemp("photos")
    for name in ("tubingen", "chelsea"):
        img = io.open_image(examples / f"{name}.jpg").resize((120, 90))
        for i, box in enumerate([(0, 0, 60, 60), (60, 0, 120, 60), (30, 30, 90, 90)]):
            img.crop(box).save(folder / f"{name}_{i}.jpg", quality=90)
    return folder


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"{SHARED} is missing: the tests need the shared images beside the repo")
    return SHARED



@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny images: on a busy machine a second thread waiting for a core made steps 5x
    slower. A module takes it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
