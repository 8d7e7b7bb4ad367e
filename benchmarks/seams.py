"""Seam check for a large tiled output: the jump between neighbouring columns and rows at the
owned tile borders against the image mean, a 512 px crop around the first border and a
1024 px preview.

An upscaled JPEG content leaves 8 px block edges in the output, so each border's jump is
also compared with the mean jump of the columns (rows) at the same position modulo 8: a
seam would stand above both.

    python benchmarks/seams.py demo4096.png TILE crop.png preview.png
"""
import sys

import numpy as np
from PIL import Image

from brushwork.artistic import StyleOptions
from brushwork.tiling import grid

img = Image.open(sys.argv[1]).convert("RGB")
tile = int(sys.argv[2])
a = np.asarray(img, np.float32)
h, w, _ = a.shape
tiles = grid(h, w, tile, StyleOptions.overlap)  # the run's default overlap
xs = sorted({t.own[3] for t in tiles if t.own[3] < w})
ys = sorted({t.own[1] for t in tiles if t.own[1] < h})
print("image", w, h, "tiles", len(tiles), "owned borders x", xs, "y", ys)
dx = np.abs(np.diff(a, axis=1)).mean(axis=(0, 2))  # mean jump between columns
dy = np.abs(np.diff(a, axis=0)).mean(axis=(1, 2))
for name, jumps, borders in (("column", dx, xs), ("row", dy, ys)):
    for b in borders:
        print(f"{name} jump at {b}: {jumps[b-1]:.2f} vs image mean {jumps.mean():.2f}, "
              f"same phase mod 8 {jumps[(b - 1) % 8::8].mean():.2f}, "
              f"max over band +-40: {jumps[b-40:b+40].max():.2f}")
x, y = xs[0], ys[0]
box = (x - 256, y - 256, x + 256, y + 256)
img.crop(box).save(sys.argv[3])
print("crop", box, "->", sys.argv[3])
small = img.resize((1024, round(1024 * h / w)), Image.LANCZOS)
small.save(sys.argv[4])
