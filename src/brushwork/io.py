"""Images in and out: any file Pillow reads becomes an RGB float tensor, outputs land atomically.

Everything inside brushwork works on tensors of shape (1, 3, H, W), RGB, values in 0..1.
Conversion happens only here, at the edges, so that odd files (palette, CMYK, 16-bit,
alpha, EXIF-rotated) are dealt with once.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from io import BytesIO
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from brushwork.errors import BrushworkError

# Pillow refuses to open images above ~179 Mpx by default; we keep a limit of our own so
# that a decompression bomb gets a clear message instead of a MemoryError later.
MAX_PIXELS = 16384 * 16384
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
# The largest longest side brushwork will produce: beyond this even tiled synthesis
# would take days, so it is almost certainly a typo.
MAX_SIZE = 16384
SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP",
                ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}
#: The suffixes by which image files are picked out of a folder (training photos, a folder
#: to stylise): on the ground floor, as every floor above that reads folders needs them.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
#: The bundled example images: the demo's photo and paintings, styles named by their stem,
#: and training's preview photos.
EXAMPLES = Path(__file__).parent / "examples"
#: What the Python API takes wherever an image goes in.
ImageLike = str | os.PathLike | Image.Image | torch.Tensor


def open_image(path: str | os.PathLike) -> Image.Image:
    """Open an image file as an upright 8-bit RGB Pillow image, or raise a one-line error."""
    path = Path(path)
    if not path.exists():
        raise BrushworkError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise BrushworkError(f"{path}: is a folder; give an image file")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice that; brushwork's limit is firm.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                img = ImageOps.exif_transpose(img)
                return to_rgb(img)
    except UnidentifiedImageError:
        raise BrushworkError(
            f"{path}: not an image Pillow can read; give a PNG, JPEG, WebP, TIFF or BMP file"
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BrushworkError(
            f"{path}: image is larger than {MAX_PIXELS} pixels; downscale it first"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BrushworkError(f"{path}: cannot decode image ({exc}); the file may be "
                             "truncated or corrupt, re-export it") from None


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB: alpha is composited on white, 16-bit scaled to 8-bit."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        # I;16 is 16-bit by definition (a dark photo may never pass 255); plain 32-bit "I"
        # has no stated range, so values above 255 are taken as 16-bit.
        peak = 65535.0 if img.mode != "I" or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        scale = 255.0 if arr.max() <= 1.0 else 1.0
        img = Image.fromarray(np.clip(arr * scale + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB") if img.mode != "RGB" else img


def check_size(size: int, what: str = "--size") -> int:
    """Reject sizes that cannot be meant, with the valid range in the message."""
    if size < 16:
        raise BrushworkError(f"{what} {size} is too small; use at least 16 pixels")
    if size > MAX_SIZE:
        raise BrushworkError(f"{what} {size} is larger than {MAX_SIZE}; use a smaller size")
    return size


def resize_to(img: Image.Image, size: int | None) -> Image.Image:
    """Resize so that the longest side is ``size`` pixels (None keeps the image as it is)."""
    if size is None:
        return img
    check_size(size)
    w, h = img.size
    if not w or not h:
        raise BrushworkError(f"the image is empty ({w}x{h} pixels)")
    scale = size / max(w, h)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    return img if new == img.size else img.resize(new, Image.Resampling.LANCZOS)


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB Pillow image -> (1, 3, H, W) float32 tensor in 0..1."""
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def tensor_to_pil(t: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) or (3, H, W) tensor in 0..1 -> RGB Pillow image (values clipped)."""
    if t.dim() == 4:
        t = t[0]
    arr = t.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, "RGB")


def load_image(path: str | os.PathLike, size: int | None = None) -> torch.Tensor:
    """Load an image file as a (1, 3, H, W) tensor, longest side resized to ``size``."""
    return pil_to_tensor(resize_to(open_image(path), size))


def as_tensor(image: str | os.PathLike | Image.Image | torch.Tensor,
              size: int | None = None) -> torch.Tensor:
    """Accept a path, a Pillow image or a tensor, so the Python API takes whatever is at hand."""
    if isinstance(image, torch.Tensor):
        t = image if image.dim() == 4 else image.unsqueeze(0)
        if t.dim() != 4 or t.shape[:2] != (1, 3) or not t.is_floating_point():
            raise BrushworkError(f"a tensor of shape {tuple(image.shape)} and {image.dtype}: "
                                 "give an RGB image as floats, shape (3, H, W) or (1, 3, H, W)")
        if not torch.isfinite(t).all() or t.min() < -0.01 or t.max() > 1.01:
            raise BrushworkError("tensor values must be finite and in 0..1 (a 0..255 image: "
                                 "divide it by 255)")
        if size is not None:
            return pil_to_tensor(resize_to(tensor_to_pil(t), size))
        return t.float()
    if isinstance(image, Image.Image):
        return pil_to_tensor(resize_to(to_rgb(ImageOps.exif_transpose(image)), size))
    return load_image(image, size)


def _nearest_folder(path: Path) -> Path:
    """``path`` or its nearest existing ancestor: where a file on the way would be made."""
    while not path.exists():
        path = path.parent
    return path


def check_writable(path: str | os.PathLike) -> None:
    """Fail before the work, not after it: the nearest existing folder on the way to ``path``
    must take a new file (tried with a probe file, removed at once; nothing is created)."""
    path = Path(path).expanduser().absolute()
    folder = _nearest_folder(path if path.is_dir() else path.parent)
    if not folder.is_dir():
        raise BrushworkError(f"{path}: {folder} is a file, not a folder; "
                             "choose another output path")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".brushwork-probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise BrushworkError(f"{path}: cannot write in {folder} ({exc.strerror}); "
                             "choose another output path") from None


#: Temporary files are named ``.brushwork-PID-XXXXXXXX.SUFFIX``: short, so that an output
#: name near the file system's limit still has room for one, and carrying the writer's
#: process id, so that one left by a killed process (SIGKILL allows no cleanup) is swept
#: away by the next write into that folder.
TEMP_PREFIX = ".brushwork-"
#: The longest addition to an output's name among the files written beside it
#: (``OUT.partial.png``, ``OUT.png.ckpt``, ``OUT_00025.png``).
SIDE_NAME_ROOM = len(".partial")


def _sweep_stale(folder: Path) -> None:
    """Remove temporary files whose writing process no longer exists."""
    try:
        names = [n for n in os.listdir(folder) if n.startswith(TEMP_PREFIX)]
    except OSError:
        return
    for name in names:
        pid = name[len(TEMP_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            (folder / name).unlink(missing_ok=True)
        except OSError:
            pass  # alive under another user, or unknowable: leave it


def atomic_write(path: str | os.PathLike, write, suffix: str | None = None) -> Path:
    """Call ``write(tmp_path)`` then rename into place, so a crash never leaves half a file;
    whatever ends the write (an error, Ctrl-C, a signal made into one) removes the temp."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _sweep_stale(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TEMP_PREFIX}{os.getpid()}-",
                                   suffix=suffix or path.suffix)
        os.close(fd)
        write(tmp)
        # mkstemp makes the file private (0600); give it the permissions a plain open would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):  # no folder, no permission, disk full: say so in a line
            raise BrushworkError(f"{path}: cannot write it ({exc.strerror or exc}); "
                                 "choose another output path or free some space") from None
        raise
    return path


def check_replaceable(path: str | os.PathLike, flag: str) -> None:
    """An output name that leaves no room for the files written beside it, or an existing
    file that cannot be replaced, fails before the run rather than at its end."""
    path = Path(path).expanduser().absolute()
    try:
        limit = os.pathconf(_nearest_folder(path.parent), "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    room = limit - SIDE_NAME_ROOM
    if len(path.name.encode()) > room:
        raise BrushworkError(f"{flag} {path.name[:40]}...: the name is "
                             f"{len(path.name.encode())} bytes; give one of at most {room} "
                             f"(the file system allows {limit}, and brushwork writes files "
                             "such as NAME.ckpt beside it)")
    if path.exists() and not path.is_dir():
        if not path.is_file():
            raise BrushworkError(f"{flag} {path}: that is not a regular file; "
                                 "choose another output path")
        if not os.access(path, os.W_OK):
            raise BrushworkError(f"{flag} {path}: the existing file is read-only or immutable "
                                 "and cannot be replaced; make it writable or choose another "
                                 "output path")


def check_suffix(path: str | os.PathLike, suffix: str, what: str, flag: str) -> Path:
    """An output named for its kind, said before the work (and an image named by mistake is
    not overwritten with a model or a graph)."""
    path = Path(path)
    if path.suffix.lower() != suffix:
        raise BrushworkError(f"{path}: {what} ends in {suffix}; give {flag} "
                             f"{path.with_suffix(suffix).name} or similar")
    return path


def output_format(path: str | os.PathLike) -> str:
    """The Pillow format for an output path, or a one-line error naming the choices."""
    suffix = Path(path).suffix.lower()
    if suffix not in SAVE_FORMATS:
        choices = ", ".join(sorted(SAVE_FORMATS))
        raise BrushworkError(f"{path}: unknown output type {suffix or '(none)'!r}; "
                             f"use one of {choices}")
    return SAVE_FORMATS[suffix]


def save_image(image: torch.Tensor | Image.Image, path: str | os.PathLike,
               metadata: dict | None = None) -> Path:
    """Save atomically; ``metadata`` goes into a PNG text chunk ``brushwork`` as JSON."""
    fmt = output_format(path)
    img = tensor_to_pil(image) if isinstance(image, torch.Tensor) else image.convert("RGB")
    kwargs: dict = {}
    if fmt == "PNG" and metadata:
        info = PngImagePlugin.PngInfo()
        info.add_text("brushwork", json.dumps(metadata, sort_keys=True, default=str))
        kwargs["pnginfo"] = info
    elif metadata:
        warnings.warn(f"{path}: settings are recorded only in PNG files", stacklevel=2)
    if fmt == "JPEG":
        kwargs["quality"] = 95
    return atomic_write(path, lambda tmp: img.save(tmp, format=fmt, **kwargs))


def read_metadata(path: str | os.PathLike) -> dict:
    """The settings a brushwork PNG was made with (empty if there are none)."""
    with Image.open(path) as img:
        text = getattr(img, "text", {}).get("brushwork")
    return json.loads(text) if text else {}


def save_payload(path: str | os.PathLike, payload: dict) -> Path:
    """``torch.save`` a dictionary atomically. It is serialised in memory first: torch's
    own file writer reports a full disk as a bare RuntimeError, Python's file as OSError,
    which becomes the usual one-line error."""
    buffer = BytesIO()
    torch.save(payload, buffer)
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(buffer.getbuffer()))


def load_payload(path: str | os.PathLike, kind: str, what: str) -> dict:
    """A dict saved with torch.save and tagged ``{"kind": kind}``, or a one-line error.

    Checkpoints and model files share this, so every damaged file is reported alike.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise BrushworkError(f"{path}: no {what} there; run without --resume") from None
    except Exception as exc:  # a damaged pickle can raise almost anything
        raise BrushworkError(f"{path}: not a readable {what} ({type(exc).__name__}); "
                             "delete it and start again") from None
    if not isinstance(payload, dict) or payload.get("kind") != kind:
        raise BrushworkError(f"{path}: not a brushwork {what}")
    return payload
