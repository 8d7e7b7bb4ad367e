"""Universal style transfer (fast.universal) with the real VGG-19: the feature transforms
against hand computations, tiny decoders trained a few steps on crops of the bundled
photos, decoder files, and one-pass stylisation from the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from brushwork import io
from brushwork.cli import main
from brushwork.errors import BrushworkError
from brushwork.fast.model import save_model
from brushwork.fast.network import TransformerNet
from brushwork.fast.train import Ranks
from brushwork.fast.universal import (
    Decoder,
    DecoderOptions,
    DecoderTrainer,
    UniversalStylist,
    adain,
    colour,
    find_decoders,
    load_decoder,
    save_decoder,
    whiten,
    whiten_colour,
)

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = Ranks(0, 1, torch.device("cpu"))


def correlated(channels: int, h: int, w: int, seed: int, shift: float) -> torch.Tensor:
    """Features (1, C, H, W) with correlated channels and a mean away from zero."""
    gen = torch.Generator().manual_seed(seed)
    mix = torch.randn(channels, channels, generator=gen)
    noise = torch.randn(1, channels, h, w, generator=gen)
    return torch.einsum("ij,njhw->nihw", mix, noise) + shift


def stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flat = features[0].reshape(features.shape[1], -1).double()
    return flat.mean(dim=1), torch.cov(flat)


def test_whitened_features_have_identity_covariance_and_coloured_the_styles() -> None:
    content = correlated(16, 24, 20, seed=0, shift=3.0)
    style = correlated(16, 18, 22, seed=1, shift=-2.0)
    mean_w, cov_w = stats(whiten(content))
    assert torch.allclose(cov_w, torch.eye(16, dtype=torch.float64), atol=1e-4)
    assert mean_w.abs().max() < 1e-4
    mean_s, cov_s = stats(style)
    for out in (colour(whiten(content), style), whiten_colour(content, style)):
        mean_o, cov_o = stats(out)
        assert torch.allclose(cov_o, cov_s, atol=1e-3 * cov_s.abs().max())
        assert torch.allclose(mean_o, mean_s, atol=1e-4)
    half = whiten_colour(content, style, alpha=0.5)
    assert torch.allclose(half, 0.5 * (content + whiten_colour(content, style)), atol=1e-5)


def test_adain_gives_the_styles_channel_means_and_deviations() -> None:
    content = correlated(8, 16, 16, seed=2, shift=1.0)
    style = correlated(8, 12, 10, seed=3, shift=-4.0)
    out = adain(content, style)
    dims = (2, 3)
    assert torch.allclose(out.mean(dims), style.mean(dims), atol=1e-4)
    assert torch.allclose(out.std(dims), style.std(dims), rtol=1e-3)


def tiny(photos: Path, output: Path, layer: str, **changes) -> DecoderOptions:
    settings = dict(data=str(photos), output=str(output), layer=layer, width=0.125, steps=12,
                    batch_size=2, size=32, lr=3e-3, workers=0, preview_every=0,
                    checkpoint_every=0, device="cpu", progress=False)
    settings.update(changes)
    return DecoderOptions(**settings)


@pytest.fixture(scope="module")
def decoders(photos: Path, tmp_path_factory, vgg_state) -> Path:
    """A folder of two tiny decoders (relu1_1, relu2_1), trained briefly."""
    folder = tmp_path_factory.mktemp("decoders")
    for layer in ("relu1_1", "relu2_1"):
        DecoderTrainer(tiny(photos, folder / f"{layer}.pt", layer), CPU).run()
    return folder


def test_a_tiny_decoder_trains_and_its_reconstruction_loss_falls(photos: Path, tmp_path: Path,
                                                                 vgg_state) -> None:
    trainer = DecoderTrainer(tiny(photos, tmp_path / "d.pt", "relu2_1", steps=15), CPU)
    before, _ = trainer.validate()
    result = trainer.run()
    after, _ = trainer.validate()
    assert after < 0.7 * before, (before, after)
    assert result.model.net.layer == "relu2_1" and result.model.path == tmp_path / "d.pt"
    again = load_decoder(tmp_path / "d.pt")
    assert again.net.config() == {"layer": "relu2_1", "width": 0.125}
    assert again.settings["steps"] == 15 and "style_weight" not in again.settings
    feats = torch.rand(1, 128, 6, 6)
    with torch.no_grad():
        assert (again.net(feats) - result.model.net(feats)).abs().max() < 1e-2
    # the checkpoint of a decoder run is a decoder run's: resumable, and not a style model's
    assert load_decoder(tmp_path / "d.pt.ckpt").net.layer == "relu2_1"


def test_decoders_of_every_layer_give_back_the_images_size() -> None:
    for layer, channels, down in (("relu1_1", 64, 1), ("relu3_1", 256, 4),
                                  ("relu5_1", 512, 16)):
        net = Decoder(layer, width=1 / 32)
        assert net.factor == down
        assert net(torch.rand(1, channels, 3, 2)).shape == (1, 3, 3 * down, 2 * down)


def test_one_pass_from_the_command_line_with_a_style_image(decoders: Path, examples: Path,
                                                           tmp_path: Path, capsys) -> None:
    out = tmp_path / "out.png"
    content = examples / "chelsea.jpg"
    size = 40
    assert main(["fast", str(examples / "starry_night.jpg"), str(content), "-o", str(out),
                 "--decoders", str(decoders), "--size", str(size), "--style-size", "64"]) == 0
    expected = io.load_image(content, size).shape[-2:]
    assert io.load_image(out).shape[-2:] == expected
    assert f"wrote {out}" in capsys.readouterr().out
    stylist = UniversalStylist(examples / "starry_night.jpg", find_decoders(decoders),
                               style_size=64, transform="adain")
    assert stylist.levels == ["relu2_1", "relu1_1"]
    photo = io.load_image(content, 37)  # sides that are no multiple of the pooling
    assert stylist(photo).shape == photo.shape


def test_without_decoders_a_one_line_error_says_how_to_train_them(examples: Path,
                                                                   tmp_path: Path,
                                                                   capsys) -> None:
    out = tmp_path / "out.png"
    code = main(["fast", str(examples / "starry_night.jpg"), str(examples / "chelsea.jpg"),
                 "-o", str(out), "--decoders", str(tmp_path / "none")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and not out.exists()
    assert len(err.splitlines()) == 1 and "brushwork train --decoder relu1_1" in err


def test_a_wrong_file_is_refused_as_a_decoder_in_one_line(tmp_path: Path, decoders: Path,
                                                          examples: Path, capsys) -> None:
    johnson = save_model(TransformerNet(4, 0), tmp_path / "johnson.pt", "x")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a pickle at all")
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, plain)
    damaged = tmp_path / "damaged.pt"
    payload = torch.load(decoders / "relu1_1.pt", weights_only=True)
    payload["state"] = {k: v + 1 for k, v in payload["state"].items()}
    torch.save(payload, damaged)
    for path in (johnson, garbage, plain, damaged, tmp_path / "missing.pt"):
        with pytest.raises(BrushworkError) as info:
            load_decoder(path)
        assert "\n" not in str(info.value) and str(path) in str(info.value)
    assert "damaged" in str(pytest.raises(BrushworkError, load_decoder, damaged).value)
    folder = tmp_path / "folder"
    folder.mkdir()
    johnson.rename(folder / "relu1_1.pt")
    out = tmp_path / "out.png"
    assert main(["fast", str(examples / "wave.jpg"), str(examples / "chelsea.jpg"), "-o",
                 str(out), "--decoders", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "relu1_1.pt" in err and not out.exists()


def test_saved_decoders_are_float16_and_checksummed(tmp_path: Path) -> None:
    path = save_decoder(Decoder("relu2_1", 0.25), tmp_path / "d.pt", {"steps": 1})
    payload = torch.load(path, weights_only=True)
    assert payload["kind"] == "brushwork-decoder" and len(payload["md5"]) == 32
    assert all(v.dtype == torch.float16 for v in payload["state"].values())
    with pytest.raises(BrushworkError, match="ends in .pt"):
        save_decoder(Decoder("relu1_1"), tmp_path / "d.png")


def test_decoders_beside_the_shipped_models_are_found_and_listed(decoders: Path, examples: Path,
                                                                tmp_path: Path, monkeypatch,
                                                                capsys) -> None:
    from brushwork.fast import universal

    monkeypatch.setattr(universal, "DECODERS_DIR", decoders)
    assert main(["models"]) == 0
    listed = capsys.readouterr().out
    assert "relu1_1  width 0.125" in listed and "relu2_1" in listed and "steps 12" in listed
    out = tmp_path / "out.jpg"
    assert main(["fast", str(examples / "wave.jpg"), str(examples / "chelsea.jpg"), "-o",
                 str(out), "--size", "32", "--style-size", "48", "--strength", "0.5",
                 "--preserve-colour", "luminance", "--transform", "adain"]) == 0
    assert out.is_file()
