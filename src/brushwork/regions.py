"""Regions: colour-coded label images, region matching, and the style loss per region.

A label image (Luan et al.'s format: the corners of the RGB cube and mid grey) marks the
regions of a picture; the same colour in the content's and the style's label images makes
two regions partners, and each content region is given the Gram statistics of its partner.
The photorealistic mode is built on it, and the artistic mode uses it for "the sky from
the painting's sky".
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.ndimage import binary_opening, distance_transform_edt

from brushwork import io
from brushwork.errors import BrushworkError, brief
from brushwork.losses import gram, mask_shares, masked_style_total
from brushwork.matting import resize_array
from brushwork.runtime import autocast
from brushwork.vgg import Features, layer_masks

MaskLike = str | os.PathLike | Image.Image | np.ndarray

# The colours of Luan et al.'s label images: the corners of the RGB cube and mid grey.
PALETTE: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0), "white": (255, 255, 255), "red": (255, 0, 0), "green": (0, 255, 0),
    "blue": (0, 0, 255), "yellow": (255, 255, 0), "lightblue": (0, 255, 255),
    "purple": (255, 0, 255), "grey": (128, 128, 128),
}
# JPEG ringing and anti-aliased edges between two labels snap to a third colour in thin
# bands and specks. A label is real only if opening its mask with this square leaves at
# least MIN_AREA of the image; the pixels of the others join the nearest real region.
OPENING = 5
MIN_AREA = 0.002


def snap_labels(rgb: np.ndarray) -> np.ndarray:
    """Label each pixel of an (H, W, 3) uint8 label image with its nearest PALETTE colour.

    Returns (H, W) palette indices. Labels that are only thin bands or specks (see
    ``OPENING``) are dropped and their pixels take the label of the nearest real region,
    so neither JPEG noise nor anti-aliasing ever becomes a region.
    """
    # Distances are taken once per distinct colour, not per pixel: a photo-sized mask has
    # millions of pixels but at most a few thousand colours.
    packed = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) \
        | rgb[..., 2]
    distinct, inverse = np.unique(packed, return_inverse=True)
    seen = np.stack([distinct >> 16, (distinct >> 8) & 255, distinct & 255], axis=1)
    colours = np.asarray(list(PALETTE.values()))
    nearest = ((seen[:, None, :] - colours[None]) ** 2).sum(axis=2).argmin(axis=1)
    labels = nearest[inverse].reshape(rgb.shape[:2])
    square = np.ones((OPENING, OPENING), dtype=bool)
    real = np.zeros(labels.shape, dtype=bool)
    for i in np.unique(labels):
        if binary_opening(labels == i, square).sum() >= MIN_AREA * labels.size:
            real |= labels == i
    if not real.any():
        return labels
    _, (rows, cols) = distance_transform_edt(~real, return_indices=True)
    return labels[rows, cols]


def read_labels(source: MaskLike, shape: tuple[int, int], what: str = "mask") -> np.ndarray:
    """Read a colour-coded label image as (H, W) palette indices at the image's ``shape``.

    A label image of another size than its image is resized (nearest) with a warning.
    """
    if isinstance(source, np.ndarray):
        if source.dtype != np.uint8:
            raise BrushworkError(f"{what}: give label images as 8-bit arrays, got {source.dtype}")
        rgb = source if source.ndim == 3 else np.repeat(source[..., None], 3, axis=2)
    else:
        img = source if isinstance(source, Image.Image) else io.open_image(source)
        rgb = np.asarray(io.to_rgb(img))
    labels = snap_labels(rgb[..., :3])
    resized = resize_array(labels.astype(np.float64), shape, what, nearest=True)
    return resized.round().astype(np.int64)


def region_masks(labels: np.ndarray, ids: Sequence[int], height: int,
                 width: int) -> torch.Tensor:
    """(1, K, H, W) soft masks, one per label in ``ids``, resized to the working size.

    Resizing the one-hot channels (antialiased) rather than the label map gives boundary
    pixels fractional membership, so the masks still sum to one everywhere.
    """
    onehot = torch.from_numpy(np.stack([labels == i for i in ids])).float()[None]
    if onehot.shape[-2:] == (height, width):
        return onehot
    return F.interpolate(onehot, size=(height, width), mode="bilinear", align_corners=False,
                         antialias=True)


@dataclass
class Regions:
    """Label maps of content and style, the labels in each, and per content label the
    index of its partner among the style's labels (None: it has none)."""

    content: np.ndarray
    style: np.ndarray
    content_ids: list[int]
    style_ids: list[int]
    partners: list[int | None]


def single_region(image: torch.Tensor) -> np.ndarray:
    """A label map with the whole image in one region: the masked loss is then global."""
    return np.zeros(image.shape[-2:], dtype=np.int64)


def match_regions(content_labels: np.ndarray, style_labels: np.ndarray,
                  names: Sequence[str]) -> Regions:
    """Pair each content label with the same label in the style.

    A content region without a partner takes the style of the whole style image; a style
    region without a partner is not transferred anywhere. Both are reported by a warning.
    """
    in_content = [int(i) for i in np.unique(content_labels)]
    in_style = [int(i) for i in np.unique(style_labels)]
    lonely_content = [names[i] for i in in_content if i not in in_style]
    lonely_style = [names[i] for i in in_style if i not in in_content]
    if lonely_content:
        warnings.warn(f"content regions {brief(lonely_content)} have no partner in the "
                      "style's regions; they take the style of the whole style image",
                      stacklevel=2)
    if lonely_style:
        warnings.warn(f"style regions {brief(lonely_style)} have no partner in the "
                      "content's regions; their look is not transferred", stacklevel=2)
    return Regions(content_labels, style_labels, in_content, in_style,
                   [in_style.index(i) if i in in_style else None for i in in_content])


def check_pair(content_mask: object, style_mask: object) -> None:
    """Refuse one label image without the other: regions pair up only between two."""
    if (content_mask is None) != (style_mask is None):
        raise BrushworkError("give both a content mask and a style mask (label images), or "
                             "neither")


def read_label_pair(content_labels: MaskLike | None, style_labels: MaskLike | None,
                    content_shape: tuple[int, int], style_shape: tuple[int, int]
                    ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Both label maps at their images' shapes, or (None, None) when neither is given (a
    mask of another size than its image is reported before any resizing)."""
    check_pair(content_labels, style_labels)
    if content_labels is None:
        return None, None
    return (read_labels(content_labels, content_shape, "content mask"),
            read_labels(style_labels, style_shape, "style mask"))


class RegionStyleLoss(torch.nn.Module):
    """Sum over content regions of Gram losses between masked output and style features.

    Each region counts in proportion to its share of the content at that layer (Luan et
    al. sum regions equally): a single region covering everything is then exactly the
    global style loss, and a sliver of label noise cannot outweigh the sky. A region
    whose partner is ``None``, or covers less than one position of a layer (a deep layer
    has 1/256 of the pixels), is compared with the whole style's Gram matrix there.
    """

    def __init__(self, net: Features, style: torch.Tensor, regions: Regions, height: int,
                 width: int, layer_weights: dict[str, float], dtype: torch.dtype) -> None:
        super().__init__()
        self.layer_weights = layer_weights
        layers = list(layer_weights)
        with torch.no_grad(), autocast(style.device, dtype):
            feats = net(style)
        style_masks = region_masks(regions.style, regions.style_ids, *style.shape[-2:])
        content_masks = region_masks(regions.content, regions.content_ids, height, width)
        style_at = layer_masks(style_masks.to(style.device), layers)
        self.masks = layer_masks(content_masks.to(style.device), layers)
        self.targets: dict[str, list[torch.Tensor]] = {}
        for n in layers:
            whole = gram(feats[n])
            positions = style_at[n].sum(dim=(0, 2, 3)).tolist()
            self.targets[n] = [whole if j is None or positions[j] < 1.0
                               else gram(feats[n], style_at[n][:, j:j + 1])
                               for j in regions.partners]
        self.shares = mask_shares(self.masks)

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        return masked_style_total(feats, self.layer_weights, self.masks, self.targets,
                                  self.shares)
