#!/usr/bin/env bash
# Rebuild the offline photo set used to train feed-forward style networks (Johnson et al.).
#
# No photo data set can be downloaded here, but Debian's wallpaper and documentation
# packages ship high-resolution photographs. This script downloads pinned versions of those
# packages (without installing them), unpacks them, keeps the 83 files that are photographs
# (the abstract and rendered wallpapers are left out by name), and cuts each photo into
# 320x320 JPEG tiles at several scales (a 5K wallpaper gives up to 50 views, a small sample
# photo one), dropping flat tiles. Ten whole photos are held out so that validation tiles
# never share a source with training tiles; they are also written whole (longest side 1024,
# in $VAL_FULL), the fairer test: varied scenes, shrunk rather than enlarged to 512 px.
#
# Result (Debian bookworm, Pillow 13, byte-identical across runs): 83 photos; 1269 training
# tiles in $OUT from 73 of them (73 at scale 320, 203 at 640, 393 at 960, 600 at 1280) and
# 20 validation tiles in $VAL (scales 320 and 480 of the 10 held-out photos); 10 whole
# photos in $VAL_FULL.
#
# Usage: bash benchmarks/make_photo_set.sh      (as root, or with sudo for apt-get update)
# Env:   WORK (default /tmp, holds debs/ and debx/), OUT (/tmp/photos), VAL (/tmp/photos_val),
#        VAL_FULL (/tmp/photos_val_full), PYTHON (python3; needs Pillow).
set -euo pipefail

WORK=${WORK:-/tmp}
OUT=${OUT:-/tmp/photos}
VAL=${VAL:-/tmp/photos_val}
VAL_FULL=${VAL_FULL:-/tmp/photos_val_full}
PYTHON=${PYTHON:-python3}
PACKAGES=(
    lomiri-wallpapers-16.04=20.04.0-2
    lomiri-wallpapers-20.04=20.04.0-2
    mate-backgrounds=1.26.0-1
    plasma-workspace-wallpapers=4:5.27.5-2
    palapeli-data=4:22.12.3-1
    kphotoalbum=5.9.1-1
    opencv-doc=4.6.0+dfsg-12
)

if [ -e "$OUT" ] || [ -e "$VAL" ] || [ -e "$VAL_FULL" ]; then
    echo "$OUT, $VAL or $VAL_FULL already exists; remove them first" >&2
    exit 1
fi
mkdir -p "$WORK/debs" "$WORK/debx"
apt-get update -qq
(cd "$WORK/debs" && apt-get download "${PACKAGES[@]}")
for spec in "${PACKAGES[@]}"; do
    pkg=${spec%%=*}
    mkdir -p "$WORK/debx/$pkg"
    dpkg -x "$WORK/debs/${pkg}"_*.deb "$WORK/debx/$pkg"
done

"$PYTHON" - "$WORK/debx" "$OUT" "$VAL" "$VAL_FULL" <<'EOF'
import sys
from collections.abc import Iterator
from pathlib import Path

from PIL import Image, ImageOps, ImageStat

debx, out, val, val_full = (Path(a) for a in sys.argv[1:5])
TILE = 320
SCALES = (320, 640, 960, 1280)  # shorter side after resizing; never above the source's own
VAL_SCALES = (320, 480)
FULL = 1024  # longest side of the whole held-out photos
MIN_STD = 10.0  # grey-level spread below which a tile is flat sky or blur: nothing to learn
# Folder -> photographs in it. A folder entry (plasma) means: its largest image.
SOURCES = {
    "lomiri-wallpapers-16.04/usr/share/backgrounds": (
        "Bridge_by_Sander_Klootwijk.jpg Dragonfly_by_Bolly.jpg Picture_0B_by_freespace.jpg "
        "Picture_1A_by_freespace.jpg Wine_by_Jakkub_Mede.jpg aitzgorri_by_Aitzol_Berasategi.jpg "
        "free_by_Peter_Nerlich.jpg friends_by_Aitzol_Berasategi.jpg greentock_by_Peter_Nerlich.jpg "
        "life_by_Aitzol_Berasategi.jpg picosdeeuropa_by_Aitzol_Berasategi.jpg "
        "seeding_by_Clements_Engelhardt.jpg sunset_by_Aitzol_Berasategi.jpg"
    ),
    "lomiri-wallpapers-20.04/usr/share/backgrounds": (
        "Infinite-Sea_by_Aury88.jpg Kleiber_by_Lukas_Baubkus.jpg"
    ),
    "mate-backgrounds/usr/share/backgrounds/mate/nature": (
        "Aqua.jpg Blinds.jpg Dune.jpg FreshFlower.jpg Garden.jpg GreenMeadow.jpg LadyBird.jpg "
        "RainDrops.jpg Storm.jpg TwoWings.jpg Wood.jpg YellowFlower.jpg"
    ),
    "plasma-workspace-wallpapers/usr/share/wallpapers": (
        "BytheWater ColdRipple ColorfulCups DarkestHour EveningGlow FallenLeaf Grey Kite "
        "OneStandsOut Path Volna summer_1am"
    ),
    "palapeli-data/usr/share/palapeli/collection": (
        "castle-maintenon.jpg cincinnati-bridge.jpg citrus-fruits.jpg european-honey-bee.jpg "
        "panther-chameleon-female.jpg"
    ),
    "kphotoalbum/usr/share/kphotoalbum/demo": (
        "anne_helene.jpg bar55.jpg bar55_2.jpg blackie.jpg cold_water.jpg donna.jpg donna_2.jpg "
        "grand_canyon_1.jpg grand_canyon_2.jpg grand_canyon_3.jpg jesper.jpg jesper_2.jpg "
        "new_wave_1.jpg new_wave_2.jpg pool.jpg pool_2.jpg skagen.jpg skagen_2.jpg snow.jpg "
        "spiff.jpg spiff_2.jpg sunset.jpg wayne.jpg"
    ),
    "opencv-doc/usr/share/doc/opencv-doc/examples/data": (
        "aero1.jpg aero3.jpg aloeL.jpg apple.jpg baboon.jpg basketball1.png building.jpg "
        "butterfly.jpg ela_original.jpg fruits.jpg home.jpg leuvenA.jpg messi5.jpg orange.jpg "
        "squirrel_cls.jpg stuff.jpg"
    ),
}


def area(path: Path) -> int:
    with Image.open(path) as im:
        return im.width * im.height


def resolve(path: Path) -> Path:
    """Plasma ships each wallpaper at many sizes; keep only the largest."""
    if not path.is_dir():
        return path
    return max((path / "contents" / "images").iterdir(), key=area)


def tiles(im: Image.Image, scales: tuple[int, ...]) -> Iterator[tuple[int, int, int, Image.Image]]:
    """Yield (scale, row, col, tile): a centred grid of TILE crops at each scale."""
    for s in scales:
        if s > max(TILE, min(im.size)):
            continue
        k = s / min(im.size)
        w, h = round(im.width * k), round(im.height * k)
        scaled = im.resize((w, h), Image.LANCZOS, reducing_gap=3.0)
        nx, ny = w // TILE, h // TILE
        x0, y0 = (w - nx * TILE) // 2, (h - ny * TILE) // 2
        for r in range(ny):
            for c in range(nx):
                x, y = x0 + c * TILE, y0 + r * TILE
                yield s, r, c, scaled.crop((x, y, x + TILE, y + TILE))


def centre(im: Image.Image, scale: int) -> Image.Image:
    """One TILE crop from the middle, for the held-out validation photos."""
    k = scale / min(im.size)
    w, h = round(im.width * k), round(im.height * k)
    x, y = (w - TILE) // 2, (h - TILE) // 2
    return im.resize((w, h), Image.LANCZOS).crop((x, y, x + TILE, y + TILE))


sources = {}
for folder, names in SOURCES.items():
    for name in names.split():
        sources[Path(name).stem] = resolve(debx / folder / name)
assert len(sources) == 83, len(sources)
held_out = sorted(sources)[3::8][:10]

out.mkdir(parents=True, exist_ok=True)
val.mkdir(parents=True, exist_ok=True)
val_full.mkdir(parents=True, exist_ok=True)
n_train = n_val = 0
for name, path in sorted(sources.items()):
    with Image.open(path) as raw:
        im = ImageOps.exif_transpose(raw).convert("RGB")
    if name in held_out:
        for s in VAL_SCALES:
            centre(im, s).save(val / f"{name}_s{s}.jpg", quality=90)
            n_val += 1
        whole = im.copy()
        whole.thumbnail((FULL, FULL), Image.LANCZOS)
        whole.save(val_full / f"{name}.jpg", quality=90)
        continue
    for s, r, c, tile in tiles(im, SCALES):
        if ImageStat.Stat(tile.convert("L")).stddev[0] < MIN_STD:
            continue
        tile.save(out / f"{name}_s{s}_{r}-{c}.jpg", quality=90)
        n_train += 1
print(f"{len(sources)} photos ({len(held_out)} held out): {n_train} train, {n_val} val tiles, "
      f"{len(held_out)} whole")
EOF
