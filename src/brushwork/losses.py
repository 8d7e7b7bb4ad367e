"""The loss terms of optimisation-based and feed-forward transfer, each one formula.

Normalisation (why the same weights work at 256 px and at 1024 px): every term is a mean,
never a sum over pixels. The Gram matrix is divided by the number of positions H*W, so it
is the average outer product of feature vectors and does not grow with the image; the
style term is the mean squared Gram difference divided by the mean squared target Gram
(a relative error, so layers of very different magnitude count alike); the content term
is the mean squared feature difference divided by the mean squared target feature; total
variation is the mean squared difference of neighbouring pixels. Papers use sums, whose
balance shifts with resolution; this choice differs on purpose.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F


def gram(features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Gram matrix F F^T / positions of (N, C, H, W) features, in float32 (or float64).

    With a ``mask`` (N, 1, H, W) of weights in 0..1, positions are weighted by the mask and
    the division is by the mask's sum, so a region's Gram is the average over that region.
    The mask is a constant: no gradient flows into it.
    """
    # Outside autocast's reach: under it the product would be cast back to half precision,
    # and a half-precision target against a float32 Gram breaks the backward pass.
    with torch.autocast(features.device.type, enabled=False):
        return _Gram.apply(features.to(torch.promote_types(features.dtype, torch.float32)),
                           None if mask is None else mask.to(features.device))


def _matrix(features: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """The features as a matrix without a copy: (N, HW, C) when they are laid out
    channels-last (as the CPU network makes them), else (N, C, HW); and which it is."""
    n, c, h, w = features.shape
    if c > 1 and features.is_contiguous(memory_format=torch.channels_last):
        return features.permute(0, 2, 3, 1).reshape(n, h * w, c), True
    return features.reshape(n, c, h * w), False


class _Gram(torch.autograd.Function):
    """The Gram matrix with a backward pass of one product in the features' own layout:
    dF = m * (S + S^T) F / d. Autograd's own would take two products, sum them, and mix
    layouts (a strided add of the size of every style layer's features, each step)."""

    @staticmethod
    def forward(ctx, features: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        n, c, h, w = features.shape
        mat, last = _matrix(features)
        weights = None if mask is None else mask.to(features.dtype).reshape(n, 1, h * w)
        if weights is None:
            total = torch.full((n, 1, 1), float(h * w), dtype=features.dtype,
                               device=features.device)
            weighted = mat
        else:
            total = weights.sum(dim=2, keepdim=True).clamp_min(1.0)
            weighted = mat * (weights.transpose(1, 2) if last else weights)
        g = (weighted.transpose(1, 2) @ mat if last else weighted @ mat.transpose(1, 2)) / total
        ctx.save_for_backward(features, weights, total)
        return g

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        features, weights, total = ctx.saved_tensors
        n, c, h, w = features.shape
        mat, last = _matrix(features)
        sym = (grad + grad.transpose(1, 2)) / total
        if last:
            d = mat @ sym
            if weights is not None:
                d = d * weights.transpose(1, 2)
            return d.reshape(n, h, w, c).permute(0, 3, 1, 2), None
        d = sym @ mat
        if weights is not None:
            d = d * weights
        return d.reshape(n, c, h, w), None


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared feature difference, relative to the target's mean square."""
    target = target.float()
    return F.mse_loss(features.float(), target) / target.pow(2).mean().clamp_min(1e-8)


def style_loss(gram_image: torch.Tensor, gram_target: torch.Tensor) -> torch.Tensor:
    """Mean squared Gram difference, relative to the target Gram's mean square."""
    return F.mse_loss(gram_image, gram_target) / gram_target.pow(2).mean().clamp_min(1e-8)


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between neighbouring pixels (isotropic smoothness prior)."""
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return dx.float().pow(2).mean() + dy.float().pow(2).mean()


def weighted_total(terms: dict[str, torch.Tensor],
                   weights: Mapping[str, float]) -> dict[str, torch.Tensor]:
    """``terms`` and, as ``"total"``, their weighted sum: the one number an optimiser lowers.

    One sum for every job (artistic, photo, training), in the terms' order, so that a given
    set of weights balances the terms alike wherever it is used.
    """
    total: torch.Tensor | float = 0.0
    for name, value in terms.items():
        total = total + weights[name] * value
    return {**terms, "total": total}


def mask_shares(masks: dict[str, torch.Tensor]) -> dict[str, list[float]]:
    """Per layer, each mask's share of the masked area: what ``masked_style_total`` weighs
    mask k by, so a sliver of a mask weighs as little as the sliver."""
    shares = {}
    for n, m in masks.items():
        area = m.mean(dim=(0, 2, 3))
        shares[n] = (area / area.sum().clamp_min(1e-8)).tolist()
    return shares


def masked_style_total(feats: dict[str, torch.Tensor], layer_weights: dict[str, float],
                       masks: dict[str, torch.Tensor], targets: dict[str, list[torch.Tensor]],
                       shares: dict[str, list[float]]) -> torch.Tensor:
    """Sum over layers and masks k of weight * share_k * the style loss of the Gram of the
    features under mask k against target k: styles (or regions) each where their mask is."""
    total = torch.zeros(())
    for n, w in layer_weights.items():
        for k, target in enumerate(targets[n]):
            if shares[n][k] > 0:
                g = gram(feats[n], masks[n][:, k:k + 1])
                total = total + w * shares[n][k] * style_loss(g, target)
    return total
