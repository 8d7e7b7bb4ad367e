"""Tests for brushwork.matting: the Laplacian against the paper's formula, and its mattes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import binary_dilation, gaussian_filter

from brushwork.errors import BrushworkError
from brushwork.matting import (
    MattingLoss,
    affine_upsample,
    closed_form_matte,
    composite,
    detail_upsample,
    estimate_foreground,
    matting_energy,
    matting_laplacian,
    matting_smooth,
    resample,
    scribble_constraints,
    solve_bytes,
    trimap_constraints,
)


def brute_force_laplacian(
    image: np.ndarray, eps: float, radius: int, mask: np.ndarray | None = None
) -> np.ndarray:
    """Dense Laplacian built one window at a time, straight from Levin et al.'s equation."""
    height, width, _ = image.shape
    side = 2 * radius + 1
    size = side * side
    dense = np.zeros((height * width, height * width))
    for cy in range(radius, height - radius):
        for cx in range(radius, width - radius):
            ys, xs = np.mgrid[cy - radius : cy + radius + 1, cx - radius : cx + radius + 1]
            if mask is not None and not mask[ys, xs].any():
                continue
            index = (ys * width + xs).ravel()
            colours = image[ys, xs].reshape(size, 3)
            mean = colours.mean(axis=0)
            cov = (colours - mean).T @ (colours - mean) / size
            inverse = np.linalg.inv(cov + eps / size * np.eye(3))
            centred = colours - mean
            block = np.eye(size) - (1.0 + centred @ inverse @ centred.T) / size
            dense[np.ix_(index, index)] += block
    return dense


def synthetic_matte(size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Image composited from smooth colour gradients and a blurred disc: (I, F, B, alpha)."""
    ys, xs = np.mgrid[0:size, 0:size] / (size - 1)
    foreground = np.stack([0.8 - 0.3 * xs, 0.2 + 0.5 * ys, 0.3 + 0.2 * xs * ys], axis=-1)
    background = np.stack([0.1 + 0.2 * ys, 0.3 - 0.2 * xs, 0.9 - 0.4 * ys], axis=-1)
    disc = (ys - 0.5) ** 2 + (xs - 0.45) ** 2 < 0.3**2
    alpha = np.clip(gaussian_filter(disc.astype(np.float64), sigma=2.0), 0.0, 1.0)
    image = alpha[..., None] * foreground + (1.0 - alpha[..., None]) * background
    return image, foreground, background, alpha


def trimap_from_alpha(alpha: np.ndarray, band: int = 2) -> np.ndarray:
    """8-bit trimap whose grey band covers the soft edge of ``alpha`` widened by ``band`` px."""
    soft = (alpha > 0.01) & (alpha < 0.99)
    unknown = binary_dilation(soft, iterations=band)
    trimap = np.where(alpha >= 0.5, 255, 0).astype(np.uint8)
    trimap[unknown] = 128
    return trimap


@pytest.mark.parametrize(
    ("height", "width", "eps", "radius", "with_mask"),
    [(5, 6, 1e-7, 1, False), (6, 5, 1e-3, 1, True), (7, 8, 1e-5, 2, False), (4, 3, 1e-7, 1, False)],
)
def test_laplacian_matches_brute_force(
    height: int, width: int, eps: float, radius: int, with_mask: bool
) -> None:
    rng = np.random.default_rng(height * width)
    image = rng.random((height, width, 3))
    mask = None
    if with_mask:
        mask = np.zeros((height, width), dtype=bool)
        mask[0, 0] = True  # only windows touching the top-left corner count
    expected = brute_force_laplacian(image, eps, radius, mask)
    laplacian = matting_laplacian(image, eps=eps, radius=radius, mask=mask)
    assert laplacian.shape == (height * width, height * width)
    assert np.allclose(laplacian.toarray(), expected, rtol=0.0, atol=1e-10)


def test_laplacian_symmetric_with_zero_row_sums_and_affine_null_space() -> None:
    rng = np.random.default_rng(1)
    ys, xs = np.mgrid[0:24, 0:20] / 20.0
    image = np.clip(
        np.stack([np.sin(3 * xs), np.cos(2 * ys), xs * ys], axis=-1) * 0.4
        + 0.5
        + 0.05 * rng.standard_normal((24, 20, 3)),
        0.0,
        1.0,
    )
    laplacian = matting_laplacian(image)
    assert abs(laplacian - laplacian.T).max() < 1e-12
    assert np.abs(np.asarray(laplacian.sum(axis=1))).max() < 1e-9

    # The energy is min over per-window (a, b) of sum (V - a^T I - b)^2 + eps |a|^2, so an
    # affine V = I A + c costs at most eps |A|^2 per window, and noise costs far more.
    eps = 1e-7
    coefficients = rng.standard_normal((3, 3))
    affine = image @ coefficients + rng.standard_normal(3)
    windows = (24 - 2) * (20 - 2)
    bound = eps * windows * np.sum(coefficients**2)
    assert 0.0 <= matting_energy(affine, laplacian) <= bound * (1 + 1e-6)
    assert matting_energy(rng.random(image.shape), laplacian) > 1e4 * bound
    assert matting_energy(np.ones_like(image), laplacian) == pytest.approx(0.0, abs=1e-9)


def test_laplacian_rejects_images_smaller_than_a_window() -> None:
    with pytest.raises(BrushworkError, match="at least 3x3"):
        matting_laplacian(np.zeros((2, 8, 3)))


def test_closed_form_matte_recovers_known_alpha_from_trimap() -> None:
    image, _, _, alpha = synthetic_matte()
    trimap = trimap_from_alpha(alpha)
    constraints, known = trimap_constraints(trimap)
    assert (~known).sum() > 200  # the test is about the unknown band, so it must exist
    matte = closed_form_matte(image, constraints, known)
    assert matte.shape == alpha.shape
    assert matte.min() >= 0.0 and matte.max() <= 1.0
    assert np.abs(matte - alpha)[~known].mean() < 0.05


def test_closed_form_matte_from_scribbles_and_foreground_estimate() -> None:
    image, foreground, _, alpha = synthetic_matte()
    canvas = np.full(alpha.shape, 128, dtype=np.uint8)
    canvas[30:34, 15:45] = 255  # a stroke across the disc
    canvas[3:5, :] = 0  # strokes along the top and bottom, outside it
    canvas[60:62, :] = 0
    constraints, known = scribble_constraints(canvas, image)
    assert known.mean() < 0.1
    matte = closed_form_matte(image, constraints, known)
    assert np.abs(matte - alpha).mean() < 0.05

    estimate, background = estimate_foreground(image, alpha)
    inside = alpha > 0.3
    assert np.abs(estimate - foreground)[inside].mean() < 0.03
    recomposed = composite(estimate, alpha, background)
    assert np.abs(recomposed - image).mean() < 0.01
    red = composite(estimate, alpha, np.array([1.0, 0.0, 0.0]))
    assert np.allclose(red[alpha == 0.0], [1.0, 0.0, 0.0])


def test_scribble_thresholds_for_grey_rgb_and_float_input() -> None:
    image = np.zeros((2, 4, 3))
    grey = np.array([[255, 240, 239, 128], [0, 15, 16, 200]], dtype=np.uint8)
    alpha, known = scribble_constraints(grey, image)
    assert known.tolist() == [[True, True, False, False], [True, True, False, False]]
    assert alpha[known].tolist() == [1.0, 1.0, 0.0, 0.0]

    rgb = np.stack([grey] * 3, axis=-1)
    rgb[0, 1] = (255, 255, 100)  # white in two channels only: not a stroke
    rgb[1, 1] = (0, 0, 60)
    alpha_rgb, known_rgb = scribble_constraints(rgb, image)
    assert known_rgb.tolist() == [[True, False, False, False], [True, False, False, False]]
    assert alpha_rgb[known_rgb].tolist() == [1.0, 0.0]

    alpha_float, known_float = scribble_constraints(grey / 255.0, image)
    assert np.array_equal(known_float, known) and np.array_equal(alpha_float, alpha)


def test_trimap_without_background_or_foreground_is_refused() -> None:
    image = synthetic_matte(16)[0]
    for levels in ([255], [255, 128], [0, 128]):
        trimap = np.resize(np.array(levels, dtype=np.uint8), (16, 16))
        constraints, known = trimap_constraints(trimap)
        with pytest.raises(BrushworkError, match="both foreground .* and background"):
            closed_form_matte(image, constraints, known)


def test_fully_known_trimap_is_returned_with_a_warning() -> None:
    image = synthetic_matte(16)[0]
    trimap = np.zeros((16, 16, 3), dtype=np.uint8)
    trimap[4:12, 4:12] = 255
    constraints, known = trimap_constraints(trimap)
    with pytest.warns(UserWarning, match="no unknown pixels"):
        matte = closed_form_matte(image, constraints, known)
    assert np.array_equal(matte, trimap[..., 0] / 255.0)


def test_mismatched_trimap_is_resized_with_a_warning() -> None:
    image, _, _, alpha = synthetic_matte()
    small = trimap_from_alpha(alpha, band=3)[::2, ::2]
    with pytest.warns(UserWarning, match="32x32 but the image is 64x64"):
        constraints, known = trimap_constraints(small, image.shape[:2])
    assert constraints.shape == known.shape == alpha.shape
    assert np.array_equal(known[::2, ::2], (small != 128))
    matte = closed_form_matte(image, constraints, known)
    assert np.abs(matte - alpha)[~known].mean() < 0.05

    with pytest.warns(UserWarning, match="resizing"):
        closed_form_matte(image, constraints[:-1], known[:-1])


def test_matting_loss_value_and_gradient() -> None:
    rng = np.random.default_rng(3)
    laplacian = matting_laplacian(rng.random((5, 6, 3)))
    loss = MattingLoss(laplacian, dtype=torch.float64)
    output = torch.rand(1, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    expected = matting_energy(output.detach()[0].permute(1, 2, 0).numpy(), laplacian)
    assert loss(output).item() == pytest.approx(expected, rel=1e-12)
    assert torch.autograd.gradcheck(loss, (output,))

    value = loss(output)
    value.backward()
    flat = output.detach()[0].reshape(3, -1).numpy().T
    assert np.allclose(output.grad[0].reshape(3, -1).numpy().T, 2.0 * (laplacian @ flat))

    with pytest.raises(ValueError, match="built for"):
        loss(torch.rand(1, 3, 6, 6, dtype=torch.float64))


def test_matting_smoothing_keeps_affine_images_and_removes_unexplained_noise() -> None:
    rng = np.random.default_rng(4)
    guide = gaussian_filter(rng.random((40, 48, 3)), sigma=(1.0, 1.0, 0.0))
    guide = (guide - guide.min()) / (guide.max() - guide.min())
    matrix = np.array([[0.5, -0.2, 0.1], [0.1, 0.4, 0.2], [-0.1, 0.1, 0.3]])
    affine = guide @ matrix + np.array([0.3, 0.25, 0.35])
    assert affine.min() > 0.0 and affine.max() < 1.0
    laplacian = matting_laplacian(guide)

    assert np.abs(matting_smooth(affine, laplacian, 10.0) - affine).max() < 1e-3

    noisy = np.clip(affine + 0.05 * rng.standard_normal(affine.shape), 0.0, 1.0)
    cleaned = matting_smooth(noisy, laplacian, 10.0)
    assert np.abs(cleaned - affine).mean() < 0.5 * np.abs(noisy - affine).mean()
    assert matting_energy(cleaned, laplacian) < 0.05 * matting_energy(noisy, laplacian)
    gentle = matting_smooth(noisy, laplacian, 0.5)  # a lower strength changes less
    assert np.abs(gentle - noisy).mean() < np.abs(cleaned - noisy).mean()


def test_affine_upsample_restores_full_detail_where_bilinear_blurs() -> None:
    rng = np.random.default_rng(5)
    guide = gaussian_filter(rng.random((96, 120, 3)), sigma=(1.5, 1.5, 0.0))
    guide = (guide - guide.min()) / (guide.max() - guide.min())
    matrix = np.array([[0.6, 0.1, -0.1], [0.0, 0.5, 0.2], [0.1, -0.2, 0.4]])
    offset = np.array([0.2, 0.1, 0.3])
    truth = guide @ matrix + offset  # what a transfer at full size would have given
    small = resample(guide, (48, 60)) @ matrix + offset  # the same look, made at half size

    enlarged = affine_upsample(small, guide)
    plain = resample(small, guide.shape[:2])
    assert enlarged.shape == truth.shape
    assert np.abs(enlarged - truth).mean() < 0.25 * np.abs(plain - truth).mean()
    assert np.abs(enlarged - truth).mean() < 0.01


def test_detail_upsample_keeps_the_outputs_colours_and_adds_the_guides_detail() -> None:
    rng = np.random.default_rng(6)
    guide = gaussian_filter(rng.random((96, 120, 3)), sigma=(1.0, 1.0, 0.0))
    guide = (guide - guide.min()) / (guide.max() - guide.min())
    small_guide = resample(guide, (48, 60))
    warm = np.array([0.08, 0.02, -0.06])  # a colour shift the small output carries
    small = np.clip(small_guide + warm, 0, 1)

    enlarged = detail_upsample(small, small_guide, guide)
    plain = resample(small, guide.shape[:2], cubic=True)
    assert enlarged.shape == guide.shape
    inside = (guide + warm > 0.01).all(-1) & (guide + warm < 0.99).all(-1)
    # the shift survives, and the guide's own fine detail is back where plain enlarging blurs
    assert np.abs((enlarged - guide)[inside].mean(0) - warm).max() < 0.01
    assert np.abs(enlarged - (guide + warm))[inside].mean() < \
        0.3 * np.abs(plain - (guide + warm))[inside].mean()


def test_detail_upsample_passes_the_detail_through_the_outputs_colour_map() -> None:
    rng = np.random.default_rng(7)
    guide = gaussian_filter(rng.random((96, 120, 3)), sigma=(1.0, 1.0, 0.0))
    guide = (guide - guide.min()) / (guide.max() - guide.min())
    small_guide = resample(guide, (48, 60))
    grey = np.array([0.299, 0.587, 0.114])
    # a colour photo turned dim and grey: the detail it gets back must be dim and grey too
    small = np.repeat(0.1 + 0.4 * (small_guide @ grey)[..., None], 3, axis=2)
    truth = np.repeat(0.1 + 0.4 * (guide @ grey)[..., None], 3, axis=2)

    enlarged = detail_upsample(small, small_guide, guide)
    plain = resample(small, guide.shape[:2], cubic=True)
    assert np.abs(enlarged - truth).mean() < 0.3 * np.abs(plain - truth).mean()
    assert np.abs(enlarged - enlarged.mean(-1, keepdims=True)).max() < 0.02  # no colour back


def test_a_solve_too_large_for_memory_is_refused_with_its_estimate(monkeypatch) -> None:
    import brushwork.matting

    image, _, _, alpha = synthetic_matte()
    constraints, known = trimap_constraints(trimap_from_alpha(alpha, band=3), image.shape[:2])
    unknown = int((~known).sum())
    monkeypatch.setattr(brushwork.matting, "available_memory", lambda device: 1000)
    with pytest.raises(BrushworkError, match=f"{unknown} unknown pixels need about"):
        closed_form_matte(image, constraints, known)
    assert solve_bytes(160_000) > 4 * solve_bytes(40_000)  # fill-in: more than linear


def test_marks_of_other_proportions_are_refused_and_smaller_ones_resized() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((24, 36, 3))
    alpha = np.zeros((24, 36))
    alpha[:, 24:] = 1.0
    known = np.ones((24, 36))
    known[:, 12:24] = 0.0
    with pytest.raises(BrushworkError, match="other proportions"):
        closed_form_matte(image, alpha.T, known.T)  # turned: would mark the wrong pixels
    with pytest.warns(UserWarning, match="resizing it to match"):
        half = closed_form_matte(image, alpha[::2, ::2], known[::2, ::2])
    assert half.shape == (24, 36) and half[:, :10].max() < 0.5 < half[:, 26:].min()
