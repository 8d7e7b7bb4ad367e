"""Trained fast-style models as files, and the registry of the models that ship with brushwork.

A model file is a ``torch.save`` of a plain dictionary (loadable with ``weights_only``):
``kind``, the network ``config``, the ``state`` dict, the ``style`` name and the
``settings`` it was trained with. Weights are stored in float16, which halves the file
(a width-16 network is under 1 MB), but only when the float16 network's output stays
within ``FP16_TOLERANCE`` of the float32 one on a probe image; otherwise float32 is kept.
A training checkpoint (see ``fast.train``) is accepted wherever a model file is, so a run
can be tried out before it ends.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from brushwork.errors import BrushworkError
from brushwork.fast.network import TransformerNet
from brushwork.io import check_suffix, save_payload

MODEL_KIND = "brushwork-fast-model"
CHECKPOINT_KIND = "brushwork-fast-checkpoint"
MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
MODEL_SUFFIX = ".pt"
#: Largest output change (0..1 scale) on the probe image that storing float16 weights may
#: cause: one 8-bit grey level. Rounding the weights typically moves a pixel by 0.05 levels
#: on average and 0.3-0.6 at worst, so nearly all saved pixels are identical.
FP16_TOLERANCE = 1 / 255


@dataclass
class FastModel:
    """A trained transformation network with what it was trained on."""

    net: TransformerNet
    style: str
    settings: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def name(self) -> str:
        """The registry name: the file's stem, or the style's name for an unsaved model."""
        return self.path.stem if self.path is not None else self.style


def _probe(net: TransformerNet) -> torch.Tensor:
    """The network's output on a fixed smooth-plus-noise image, for the float16 check."""
    gen = torch.Generator().manual_seed(0)
    ramp = torch.linspace(0, 1, 96)
    image = torch.stack([ramp.expand(96, 96), ramp.expand(96, 96).T, ramp.flip(0).expand(96, 96)])
    image = (0.7 * image + 0.3 * torch.rand(3, 96, 96, generator=gen)).unsqueeze(0)
    with torch.no_grad():
        return net(image)


def compact_state(net: TransformerNet) -> dict[str, torch.Tensor]:
    """The state dict in float16 if that keeps the output within FP16_TOLERANCE, else float32."""
    net = net.float().cpu().eval()
    full = {k: v.detach().clone() for k, v in net.state_dict().items()}
    half = {k: v.half() for k, v in full.items()}
    copy = TransformerNet(**net.config()).eval()
    copy.load_state_dict(half)
    keep_half = (_probe(copy) - _probe(net)).abs().max().item() <= FP16_TOLERANCE
    return half if keep_half else full


def check_model_path(path: str | os.PathLike) -> Path:
    """A model file name ends in .pt: said before a run, not found out after it (and an
    image named by mistake is not overwritten with a model)."""
    return check_suffix(path, MODEL_SUFFIX, "a model file", "-o")


def save_model(net: TransformerNet, path: str | os.PathLike, style: str,
               settings: dict | None = None) -> Path:
    """Write a model file atomically (see the module's docstring for what it holds)."""
    check_model_path(path)
    payload = {"kind": MODEL_KIND, "config": net.config(), "state": compact_state(net),
               "style": style, "settings": dict(settings or {})}
    return save_payload(path, payload)


def _read(path: Path) -> dict:
    """The payload of a model or checkpoint file, or a one-line error saying what is wrong."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise BrushworkError(f"{path}: no such model file") from None
    except Exception as exc:  # a foreign or damaged file can raise almost anything
        raise BrushworkError(f"{path}: not a brushwork fast model ({type(exc).__name__}); "
                             "give a file written by `brushwork train`") from None
    kind = payload.get("kind") if isinstance(payload, dict) else None
    if kind not in (MODEL_KIND, CHECKPOINT_KIND):
        what = f"a {kind} file" if isinstance(kind, str) else "some other PyTorch file"
        raise BrushworkError(f"{path}: not a brushwork fast model but {what}; "
                             "give a file written by `brushwork train`")
    return payload


def load_model(model: str | os.PathLike) -> FastModel:
    """Load a model file, a training checkpoint, or a shipped model by name (on the CPU)."""
    path = resolve(model)
    payload = _read(path)
    state = payload["state"] if payload["kind"] == MODEL_KIND else payload["model"]
    try:
        net = TransformerNet(**payload["config"])
        net.load_state_dict({k: v.float() for k, v in state.items()})
    except (KeyError, TypeError, RuntimeError) as exc:
        raise BrushworkError(f"{path}: damaged model file ({type(exc).__name__}); "
                             "train or download it again") from None
    return FastModel(net.eval(), payload["style"], payload.get("settings", {}), path)


def mix(first: FastModel, second: FastModel, weight: float) -> FastModel:
    """The network whose weights are ``(1 - weight) * first + weight * second``.

    For two models of one style where one was fine-tuned from the other (e.g. to another
    style weight), the networks in between trade style for content; for wave, 0.2 of the
    way from a GPU model to its CPU fine-tune at style weight 4 met both quality goals
    where neither end did (see the README).
    Unrelated networks (trained apart from random starts) do not mix: their units do not
    correspond, so refuse models of different shape and warn about different styles."""
    if not 0.0 <= weight <= 1.0:
        raise BrushworkError(f"--weight {weight}: give a share from 0 (the first model) to 1 "
                             "(the second)")
    if first.net.config() != second.net.config():
        raise BrushworkError(f"cannot mix networks of different shape ({first.net.config()} "
                             f"and {second.net.config()}); mix a model with its fine-tune")
    if first.style != second.style:
        warnings.warn(f"mixing models of different styles ({first.style}, {second.style}): "
                      "this works only if one was fine-tuned from the other", stacklevel=2)
    net = TransformerNet(**first.net.config())
    theirs = second.net.state_dict()
    net.load_state_dict({k: torch.lerp(v.float(), theirs[k].float(), weight)
                         for k, v in first.net.state_dict().items()})
    settings = {"mix": [first.name, second.name], "mix_weight": weight,
                "parts": [first.settings, second.settings]}  # how each end was made
    return FastModel(net.eval(), first.style, settings)


def shipped() -> dict[str, Path]:
    """The models that ship with brushwork, by name."""
    return {p.stem: p for p in sorted(MODELS_DIR.glob(f"*{MODEL_SUFFIX}"))}


def resolve(model: str | os.PathLike) -> Path:
    """An existing file path as it is, else the shipped model of that name."""
    path = Path(model).expanduser()
    if path.is_file():
        return path
    models = shipped()
    if str(model) in models:
        return models[str(model)]
    names = ", ".join(models) or "none installed"
    raise BrushworkError(f"{model}: no such model file or shipped model (shipped: {names}); "
                         "see `brushwork models`")


def describe(path: Path) -> str:
    """One line for `brushwork models`: name, style, size, network and how it was trained."""
    model = load_model(path)
    s = model.settings
    cfg = model.net.config()
    trained = ", ".join(f"{k} {s[k]}" for k in ("steps", "batch_size", "size", "style_weight",
                                                  "device", "seconds") if k in s)
    if s.get("init"):
        trained += f", fine-tuned from {Path(s['init']).name}"
    if s.get("mix"):
        (a, b), w = s["mix"], s["mix_weight"]
        trained = f"mixed {1 - w:.2f} x {a} + {w:.2f} x {b}"
    return (f"{path.stem:<16} style {model.style:<16} {path.stat().st_size / 1e6:.2f} MB  "
            f"width {cfg['channels']}, {cfg['residual_blocks']} residual blocks"
            + (f"  (trained: {trained})" if trained else ""))
