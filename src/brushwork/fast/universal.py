"""Any style in one pass: universal style transfer (Li et al. 2017) without a network per style.

VGG-19 encodes the photo; a feature transform gives its features the style image's
statistics; a decoder trained once (on photos, not on any style) turns them back into an
image. The transforms:

* ``whiten_colour`` (WCT, Li et al. 2017, "Universal Style Transfer via Feature
  Transforms"): the full channel covariance, so correlations between channels (which
  strokes go with which colours) carry over, not only each channel's spread;
* ``adain`` (Huang & Belongie 2017): each channel's mean and standard deviation only,
  cheaper and milder.

``UniversalStylist`` runs the levels coarse to fine as Li et al. do (relu5_1 first: the
large-scale layout of the style, then finer and finer texture), each level encode ->
transform -> decode, over whichever decoders it is given. A decoder file is a
``torch.save`` of a plain dictionary like a model file (``fast.model``), tagged with its
own kind and carrying the md5 of its weights, so a damaged or foreign file is refused
in one line before any work.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from brushwork import io
from brushwork.errors import BrushworkError
from brushwork.fast.model import MODELS_DIR, check_model_path
from brushwork.fast.network import ConvLayer
from brushwork.fast.stylise import FastOptions, finish
from brushwork.fast.train import Trainer, TrainOptions, TrainResult, distributed
from brushwork.losses import content_loss, weighted_total
from brushwork.options import require
from brushwork.runtime import autocast, pick_device, resolve_precision
from brushwork.vgg import Features, layer_shape_factor, run_network
from brushwork.weights import VGG19_BLOCKS

DECODER_KIND = "brushwork-decoder"
DECODER_CHECKPOINT_KIND = "brushwork-decoder-checkpoint"
#: The layers a decoder can invert, shallowest first (the first ReLU of each block).
DECODER_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
#: Where ``brushwork fast STYLE_IMAGE ...`` looks for decoders unless --decoders says:
#: beside the shipped models, in a folder of its own so `brushwork models` never sees them.
DECODERS_DIR = MODELS_DIR / "decoders"
TRANSFORMS = ("wct", "adain")
#: Share of the largest eigenvalue below which a covariance direction counts as empty:
#: whitening divides by the square root of the eigenvalue, so noise there would explode.
EIGEN_FLOOR = 1e-5


def _pixels(features: torch.Tensor) -> torch.Tensor:
    """(1, C, H, W) features as (H*W, C), a pixel per row: a view, no copy, of the
    channels-last maps the encoder gives on a CPU (a (C, H*W) layout would copy the whole
    map, which took longer than the transform itself)."""
    return features[0].permute(1, 2, 0).reshape(-1, features.shape[1]).float()


def _as_features(pixels: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(H*W, C) rows back to ``like``'s (1, C, H, W) shape (channels-last, as ``_pixels``)."""
    _, c, h, w = like.shape
    return pixels.reshape(h, w, c).permute(2, 0, 1).unsqueeze(0)


def _centred(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The features' pixels (H*W, C) less their mean, and the mean (1, C)."""
    pixels = _pixels(features)
    mean = pixels.mean(dim=0, keepdim=True)
    return pixels - mean, mean


def _covariance_power(centred: torch.Tensor, power: float) -> torch.Tensor:
    """The channel covariance of centred (N, C) features to the given power (-1/2 or 1/2).

    The covariance is summed in float32 (a float64 product over a 512 px image's pixels
    takes seconds on a CPU) but decomposed in float64, where the small eigenvalues that
    the inverse square root depends on survive; directions below EIGEN_FLOOR are dropped
    (power 0 there) as Li et al. drop them."""
    cov = (centred.T @ centred / max(1, centred.shape[0] - 1)).double()
    values, vectors = torch.linalg.eigh(cov)
    keep = values > EIGEN_FLOOR * values.max().clamp_min(1e-12)
    scaled = torch.where(keep, values.clamp_min(1e-12).pow(power), torch.zeros_like(values))
    return ((vectors * scaled) @ vectors.T).float()


def whiten(features: torch.Tensor) -> torch.Tensor:
    """Centred features (1, C, H, W) with identity channel covariance: the content's
    layout kept, its channel statistics (its own style) taken out."""
    centred, _ = _centred(features)
    return _as_features(centred @ _covariance_power(centred, -0.5), features)


def colour(whitened: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """Whitened features given the style features' covariance and mean (any H, W)."""
    centred, mean = _centred(style)
    return _as_features(_pixels(whitened) @ _covariance_power(centred, 0.5) + mean, whitened)


def whiten_colour(content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """WCT: the content features (1, C, H, W) with the style's mean and covariance, blended
    with the content's own by ``alpha`` (Li et al.'s control of style strength).

    ``colour(whiten(content), style)`` as one C x C matrix on the centred features, the
    blend folded into it (alpha T + (1 - alpha) I), so that the large feature map is
    multiplied once, not three times."""
    centred, mean = _centred(content)
    s_centred, s_mean = _centred(style)
    # rows are pixels, so the matrices apply on the right (both powers are symmetric)
    transform = _covariance_power(centred, -0.5) @ _covariance_power(s_centred, 0.5)
    eye = torch.eye(len(transform), device=transform.device)
    matrix = torch.lerp(eye, transform, alpha)
    # (x - mean) M + target = x M + (target - mean M): one fused pass over the pixels
    shift = torch.lerp(mean, s_mean, alpha) - mean @ matrix
    return _as_features(torch.addmm(shift, _pixels(content), matrix), content).to(content.dtype)


def adain(content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0,
          eps: float = 1e-5) -> torch.Tensor:
    """AdaIN: each content channel moved to the style channel's mean and standard deviation,
    blended with the content by ``alpha``: what Huang & Belongie found a decoder needs to
    paint a style's texture, at a fraction of WCT's cost."""
    (c_centred, c_mean), (s_centred, s_mean) = _centred(content), _centred(style)
    c_std, s_std = (torch.linalg.vector_norm(x, dim=0) / max(1, len(x) - 1) ** 0.5
                    for x in (c_centred, s_centred))
    # x -> (x - c_mean) * scale + s_mean, blended by alpha, as one x * a + b
    scale = torch.lerp(torch.ones_like(c_std), s_std / (c_std + eps), alpha)
    shift = torch.lerp(c_mean[0], s_mean[0], alpha) - c_mean[0] * scale
    view = (1, -1, 1, 1)
    return torch.addcmul(shift.view(view), content.float(), scale.view(view)).to(content.dtype)


def encoder_plan(layer: str) -> list[tuple[int, int] | None]:
    """VGG-19 up to ``layer`` (a DECODER_LAYERS name) as (in, out) channels per convolution,
    None per pooling: what a decoder mirrors."""
    check_layer(layer)
    block = int(layer[4])
    plan: list[tuple[int, int] | None] = []
    c_in = 3
    for b, n in VGG19_BLOCKS[:block]:
        c = layer_shape_factor(f"relu{b}_1")[0]
        for _ in range(n if b < block else 1):
            plan.append((c_in, c))
            c_in = c
        if b < block:
            plan.append(None)
    return plan


def check_layer(layer: str) -> str:
    if layer not in DECODER_LAYERS:
        raise BrushworkError(f"--decoder {layer}: decoders invert {', '.join(DECODER_LAYERS)}")
    return layer


class Decoder(nn.Module):
    """VGG-19 features at one layer (relu1_1..relu5_1) back to an RGB image in 0..1.

    The encoder's mirror: its convolutions in reverse order (3x3, reflection-padded, so
    borders are not darkened, each but the last followed by ReLU) and nearest-neighbour
    doubling where it pools. ``width`` scales every hidden layer's channels (1: as VGG;
    tests use tiny ones). Parameters at width 1, and the float16 file: relu1_1 0.002 M
    (0.003 MB), relu2_1 0.11 M (0.22 MB), relu3_1 0.56 M (1.1 MB), relu4_1 3.5 M (7.0 MB),
    relu5_1 12.9 M (26 MB), all five 34 MB; at width 0.5: 0.09, 0.43, 2.3 and 7.7 MB
    (``benchmarks/bench_universal.py`` prints them).
    """

    def __init__(self, layer: str = "relu3_1", width: float = 1.0) -> None:
        super().__init__()
        plan = encoder_plan(layer)
        if not width > 0:
            raise BrushworkError(f"--width {width}: give a channel share above 0 (1: as VGG)")
        self.layer, self.width = layer, width
        body: list[nn.Module] = []
        for step in reversed(plan):
            if step is None:
                body.append(nn.Upsample(scale_factor=2, mode="nearest"))
                continue
            enc_in, enc_out = step
            d_in = enc_out if not body else self._scaled(enc_out)
            d_out = 3 if enc_in == 3 else self._scaled(enc_in)
            body.append(ConvLayer(d_in, d_out, 3))
            if enc_in != 3:
                body.append(nn.ReLU(inplace=True))
        self.body = nn.Sequential(*body)

    def _scaled(self, channels: int) -> int:
        return max(1, round(channels * self.width))

    @property
    def factor(self) -> int:
        """How much smaller the features' sides are than the image's."""
        return layer_shape_factor(self.layer)[1]

    def config(self) -> dict:
        """The constructor arguments, stored in files: ``Decoder(**config)``."""
        return {"layer": self.layer, "width": self.width}

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.body(features)


@dataclass
class DecoderModel:
    """A trained decoder with how it was trained."""

    net: Decoder
    settings: dict = field(default_factory=dict)
    path: Path | None = None


def _digest(state: dict[str, torch.Tensor]) -> str:
    """md5 over the weights' names and bytes, in name order: the file's checksum."""
    digest = hashlib.md5()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_decoder(net: Decoder, path: str | os.PathLike, settings: dict | None = None) -> Path:
    """Write a decoder file atomically, weights in float16 (half the size to ship; a
    decoder's output moves by rounding noise only)."""
    check_model_path(path)
    state = {k: v.detach().cpu().half() for k, v in net.state_dict().items()}
    payload = {"kind": DECODER_KIND, "config": net.config(), "state": state,
               "md5": _digest(state), "settings": dict(settings or {})}
    return io.save_payload(path, payload)


def load_decoder(path: str | os.PathLike) -> DecoderModel:
    """A decoder file (or a decoder training checkpoint), or a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise BrushworkError(f"{path}: no such decoder file")
    try:
        payload = io.load_payload(path, DECODER_KIND, "decoder file")
    except BrushworkError:
        payload = io.load_payload(path, DECODER_CHECKPOINT_KIND, "decoder file")
    state = payload.get("state", payload.get("model"))
    try:
        if "md5" in payload and _digest(state) != payload["md5"]:
            raise ValueError("md5 mismatch")
        net = Decoder(**payload["config"])
        net.load_state_dict({k: v.float() for k, v in state.items()})
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise BrushworkError(f"{path}: damaged decoder file ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:80]}); train it again") from None
    return DecoderModel(net.eval(), payload.get("settings", {}), path)


def find_decoders(folder: str | os.PathLike | None = None) -> dict[str, DecoderModel]:
    """The decoders in ``folder`` (DECODERS_DIR if None) by layer, or a one-line error that
    says how to get them."""
    root = Path(folder) if folder is not None else DECODERS_DIR
    files = sorted(root.glob("*.pt")) if root.is_dir() else []
    if not files:
        raise BrushworkError(
            f"no trained decoders in {root} (none ship yet); train them with `brushwork "
            f"train --decoder relu1_1 --data PHOTOS -o {root}/relu1_1.pt` (likewise relu2_1 "
            ".. relu5_1), or name a folder of decoder files with --decoders DIR")
    found: dict[str, DecoderModel] = {}
    for path in files:
        decoder = load_decoder(path)
        layer = decoder.net.layer
        if layer in found:
            raise BrushworkError(f"{root}: two decoders for {layer} ({found[layer].path.name}, "
                                 f"{path.name}); keep one")
        found[layer] = decoder
    return found


def describe_decoder(decoder: DecoderModel) -> str:
    """One line for `brushwork models`: layer, width, size and how it was trained."""
    s, net = decoder.settings, decoder.net
    trained = ", ".join(f"{k} {s[k]}" for k in ("steps", "batch_size", "size", "device",
                                                  "seconds") if k in s)
    size = decoder.path.stat().st_size / 1e6 if decoder.path else 0.0
    return (f"{net.layer:<8} width {net.width:g}, {size:.2f} MB"
            + (f"  (trained: {trained})" if trained else ""))


def is_style_image(name: str | os.PathLike) -> bool:
    """Whether what `brushwork fast` was given in place of a model is an image: the style
    of a one-pass universal run."""
    return Path(name).suffix.lower() in io.IMAGE_SUFFIXES


class UniversalStylist:
    """A style image and decoders on a device, ready to stylise batches of images in one
    pass each (the interface of ``fast.stylise.Stylist``: folders and video work alike).

    ``options.strength`` is the transform's alpha at every level (in feature space, as
    Li et al.), and colour preservation is the fast mode's; tiling is not done here.
    """

    def __init__(self, style: str | os.PathLike, decoders: dict[str, DecoderModel] | None = None,
                 options: FastOptions | None = None, style_size: int = 512,
                 transform: str = "wct", folder: str | os.PathLike | None = None) -> None:
        self.options = (options or FastOptions()).check()
        io.check_size(style_size, "--style-size")
        if transform not in TRANSFORMS:
            raise BrushworkError(f"--transform {transform!r}: use one of {', '.join(TRANSFORMS)}")
        self.transform = whiten_colour if transform == "wct" else adain
        style_image = io.load_image(style, style_size)
        decoders = decoders if decoders is not None else find_decoders(folder)
        self.device = pick_device(self.options.device)
        self.dtype = resolve_precision(self.options.precision, self.device)
        self.levels = sorted(decoders, key=DECODER_LAYERS.index, reverse=True)
        self.decoders = {k: decoders[k].net.to(self.device).eval() for k in self.levels}
        self.encoder = run_network(self.levels, "max", None, self.device)
        self.name = Path(style).stem
        self.use_style(style_image)

    @torch.no_grad()
    def use_style(self, image: torch.Tensor) -> None:
        """Take the style from ``image`` (1, 3, H, W): one encoder pass, so another style
        costs about one image's stylisation more, no training."""
        with autocast(self.device, self.dtype):
            feats = self.encoder(image.to(self.device))
        self.style_features = {k: v.float() for k, v in feats.items()}

    def encode(self, image: torch.Tensor, layer: str) -> torch.Tensor:
        """The encoder's features at ``layer`` only, stopping there (one level of the run
        needs no deeper layers)."""
        x = self.encoder.preprocess(image)
        for name, module in zip(self.encoder.names, self.encoder.body, strict=True):
            x = module(x)
            if name == layer:
                return x
        raise AssertionError(layer)  # the encoder is cut after the deepest level

    @torch.no_grad()
    def one(self, image: torch.Tensor) -> torch.Tensor:
        """One image (1, 3, H, W) through every level, deepest first; on the CPU."""
        h, w = image.shape[-2:]
        step = max(d.factor for d in self.decoders.values())
        # Reflect-pad to a multiple of the deepest pooling so each decoder gives back the
        # size its encoder saw.
        x = F.pad(image, (0, -w % step, 0, -h % step), mode="reflect").to(self.device)
        for layer in self.levels:
            with autocast(self.device, self.dtype):
                feats = self.encode(x, layer).float()
                t = self.transform(feats, self.style_features[layer], self.options.strength)
                x = self.decoders[layer](t).float().clamp(0, 1)
        return x[..., :h, :w].cpu()

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Stylise a batch (N, 3, H, W) in 0..1, then the colour step; on the CPU."""
        images = images.float().cpu()
        out = torch.cat([self.one(image[None]) for image in images])
        return finish(out, images, replace(self.options, strength=1.0))


#: TrainOptions' settings that only a style network's training has.
STYLE_ONLY = ("style_size", "channels", "residual_blocks", "content_layers", "style_layers",
              "content_weight", "style_weight", "tv_weight", "name")


@dataclass
class DecoderOptions(TrainOptions):
    """A decoder's training run: TrainOptions' data, schedule and output settings (the
    style ones unused), the layer, the width, and the loss weights of Li et al.: pixel
    reconstruction plus feature reconstruction at the decoder's layer."""

    style: str = ""
    data: str = ""
    output: str = ""
    layer: str = "relu3_1"
    width: float = 1.0
    pixel_weight: float = 1.0
    feature_weight: float = 1.0

    def check(self) -> DecoderOptions:
        super().check()
        check_layer(self.layer)
        require("width", self.width, 0, above=True, hint=" (1: as VGG)")
        require("pixel_weight", self.pixel_weight, 0)
        require("feature_weight", self.feature_weight, 0)
        return self

    def settings(self) -> dict:
        """TrainOptions' settings less the style network's."""
        return {k: v for k, v in super().settings().items()
                if k not in ("style", *STYLE_ONLY)}


class ReconstructionLoss(nn.Module):
    """Pixel and feature reconstruction of decoded images: the pixel term keeps colours
    and edges, the feature term (relative, as the content loss) the layer's content."""

    def __init__(self, encoder: Features, options: DecoderOptions) -> None:
        super().__init__()
        self.encoder, self.o = encoder, options

    def forward(self, output: torch.Tensor, images: torch.Tensor,
                features: torch.Tensor) -> dict[str, torch.Tensor]:
        layer = self.o.layer
        again = self.encoder(output)[layer]
        return weighted_total({"pixel": F.mse_loss(output, images),
                               "feature": content_loss(again, features)},
                              {"pixel": self.o.pixel_weight, "feature": self.o.feature_weight})


class DecoderTrainer(Trainer):
    """fast.train's Trainer with a decoder for the network and reconstruction for the loss."""

    checkpoint_kind = DECODER_CHECKPOINT_KIND
    o: DecoderOptions

    def run_name(self) -> str:
        return f"decoder {self.o.layer}"

    def build_network(self) -> Decoder:
        return Decoder(self.o.layer, self.o.width)

    def build_loss(self) -> ReconstructionLoss:
        self.encoder = run_network((self.o.layer,), self.o.pooling, self.o.weights,
                                   self.ranks.device, channels_last=True)
        return ReconstructionLoss(self.encoder, self.o)

    def outputs(self, module: nn.Module,
                batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        h, w = batch.shape[-2:]
        with autocast(self.ranks.device, self.dtype):
            with torch.no_grad():
                feats = self.encoder(batch)[self.o.layer]
            # pooling rounds odd sides up (ceil mode), so the decoder may give a row more
            output = module(feats).float()[..., :h, :w]
        return output, self.loss(output, batch, feats.float())

    def _init_from(self, model: str) -> None:
        start = load_decoder(model)
        if start.net.config() != self.net.config():
            raise BrushworkError(f"--init {model}: a decoder {start.net.config()}, not "
                                 f"{self.net.config()}; use its layer and --width")
        self.net.load_state_dict(start.net.state_dict())

    def trained(self, settings: dict, path: Path | None) -> DecoderModel:
        return DecoderModel(self.net.eval(), settings, path)

    def write_model(self, settings: dict) -> Path:
        return save_decoder(self.net, self.o.output, settings)


def train_decoder(options: DecoderOptions, resume: bool = False) -> TrainResult:
    """Train a decoder as ``options`` say, in one process or as one rank under torchrun;
    returns fast.train's TrainResult with a DecoderModel."""
    with distributed(options.device) as ranks:
        return DecoderTrainer(options, ranks, resume).run()
