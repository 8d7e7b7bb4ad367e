"""Colour preservation (Gatys et al. 2017, "Controlling Perceptual Factors in NST").

Two ways to keep the content photo's colours while taking the style's texture:
- ``luminance``: transfer on luminance only, then put the content's chrominance back;
- ``histogram``: recolour the style image so its colour mean and covariance match the
  content's before the transfer.
"""

from __future__ import annotations

import torch

# ITU-R BT.601 YIQ, the space the paper uses for luminance-only transfer.
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114],
                            [0.595716, -0.274453, -0.321263],
                            [0.211456, -0.522591, 0.311135]])
COLOUR_MODES = ("none", "luminance", "histogram")


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", _RGB_TO_YIQ.to(image), image)


def yiq_to_rgb(image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", torch.linalg.inv(_RGB_TO_YIQ).to(image), image)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """The Y channel repeated three times, so VGG sees a grey image."""
    return rgb_to_yiq(image)[:, :1].repeat(1, 3, 1, 1)


def match_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Grey style image whose luminance mean and spread match the content's (paper, eq. 1)."""
    ys, yc = luminance(style), luminance(content)
    matched = (ys - ys.mean()) * (yc.std() / ys.std().clamp_min(1e-6)) + yc.mean()
    return matched.clamp(0, 1)


def restore_chrominance(output: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Luminance of ``output`` with the I and Q channels of ``content``."""
    if content.shape[-2:] != output.shape[-2:]:
        content = torch.nn.functional.interpolate(content, size=output.shape[-2:],
                                                  mode="bilinear", align_corners=False)
    yiq = torch.cat([rgb_to_yiq(output)[:, :1], rgb_to_yiq(content)[:, 1:]], dim=1)
    return yiq_to_rgb(yiq).clamp(0, 1)


def _sqrtm(cov: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """Symmetric (inverse) square root of a covariance matrix via its eigen-decomposition."""
    values, vectors = torch.linalg.eigh(cov)
    values = values.clamp_min(1e-8)
    power = -0.5 if inverse else 0.5
    return vectors @ torch.diag(values.pow(power)) @ vectors.T


def colour_stats(pixels: torch.Tensor, weights: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (3, 1) and covariance (3, 3) of (3, N) colours, optionally weighted per pixel
    (a soft region mask), in float64: a photo's channels are strongly correlated and
    float32 loses the small eigenvalues that the square roots below depend on."""
    flat = pixels.double()
    w = torch.ones(flat.shape[1], dtype=flat.dtype, device=flat.device) if weights is None \
        else weights.double().reshape(-1)
    w = w / w.sum().clamp_min(1e-12)
    mean = (flat * w).sum(dim=1, keepdim=True)
    centred = flat - mean
    cov = (centred * w) @ centred.T + 1e-5 * torch.eye(3, dtype=flat.dtype, device=flat.device)
    return mean, cov


def affine_match(pixels: torch.Tensor, source: tuple[torch.Tensor, torch.Tensor],
                 target: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """(3, N) colours moved affinely from the ``source`` (mean, covariance) to the
    ``target``'s: x -> A (x - mu_s) + mu_t with A = St^1/2 Ss^-1/2, the symmetric square
    roots, which the paper found to distort colours least among the linear choices."""
    (mean_s, cov_s), (mean_t, cov_t) = source, target
    transform = _sqrtm(cov_t) @ _sqrtm(cov_s, inverse=True)
    return transform @ (pixels.double() - mean_s) + mean_t


def match_histogram(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Affinely recolour ``style`` so its RGB mean and covariance equal the content's."""
    flat = style[0].reshape(3, -1)
    out = affine_match(flat, colour_stats(flat), colour_stats(content[0].reshape(3, -1)))
    return out.reshape_as(style[0]).unsqueeze(0).to(style.dtype).clamp(0, 1)
