"""Weights: the real file converts to the right shapes; wrong files get one-line errors."""

import hashlib

import h5py
import numpy as np
import pytest
import torch
from scipy.io import savemat

from brushwork import weights
from brushwork.errors import BrushworkError
from brushwork.vgg import Features


def test_cached_weights_are_vgg19(vgg_state):
    assert len(vgg_state) == 32
    assert vgg_state["conv1_1.weight"].shape == (64, 3, 3, 3)
    assert vgg_state["conv5_4.weight"].shape == (512, 512, 3, 3)


def test_features_respond_like_a_trained_network(vgg_state):
    # A trained VGG answers a structured image far more strongly in deep layers than a flat one.
    net = Features(["relu5_1"], state=vgg_state)
    edges = torch.zeros(1, 3, 64, 64)
    edges[..., ::8, :] = 1
    flat = torch.full((1, 3, 64, 64), 0.5)
    assert net(edges)["relu5_1"].mean() > 2 * net(flat)["relu5_1"].mean()


def test_wrong_h5_file_is_rejected_by_md5(tmp_path):
    bad = tmp_path / weights.KERAS_FILE
    with h5py.File(bad, "w") as f:
        f.create_dataset("block1_conv1/block1_conv1_W_1:0", data=np.zeros((3, 3, 3, 64)))
    with pytest.raises(BrushworkError, match="md5"):
        weights.load_state_file(bad)


def test_garbage_and_wrong_shapes_are_rejected(tmp_path, vgg_state):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a pickle at all")
    with pytest.raises(BrushworkError, match="cannot read weights"):
        weights.load_state_file(junk)
    wrong = dict(vgg_state)
    wrong["conv3_1.weight"] = torch.zeros(256, 64, 3, 3)
    torch.save(wrong, tmp_path / "wrong.pt")
    with pytest.raises(BrushworkError, match="conv3_1"):
        weights.load_state_file(tmp_path / "wrong.pt")
    with pytest.raises(BrushworkError, match="not found"):
        weights.load_state_file(tmp_path / "missing.h5")


def _write_matconvnet(path, state):
    """A .mat in MatConvNet's layout: (w, h, in, out) kernels, RGB input, layers as structs."""
    layers = np.empty((1, len(weights.CONV_NAMES) + 1), dtype=object)
    dtype = [("name", "O"), ("type", "O"), ("weights", "O")]
    for i, name in enumerate(weights.CONV_NAMES):
        w = state[f"{name}.weight"].numpy()
        if name == "conv1_1":
            w = w[:, ::-1]
        kernel = np.ascontiguousarray(w.transpose(3, 2, 1, 0))
        entry = np.empty((1, 1), dtype=dtype)
        cell = np.empty((1, 2), dtype=object)
        cell[0, 0], cell[0, 1] = kernel, state[f"{name}.bias"].numpy().reshape(-1, 1)
        entry[0, 0] = (np.array([name]), np.array(["conv"]), cell)
        layers[0, i] = entry
    relu = np.empty((1, 1), dtype=dtype)
    relu[0, 0] = (np.array(["relu1_1"]), np.array(["relu"]), np.empty((1, 0), dtype=object))
    layers[0, -1] = relu
    savemat(path, {"layers": layers})


def test_matconvnet_file_gives_the_same_network(tmp_path, vgg_state):
    path = tmp_path / "imagenet-vgg-verydeep-19.mat"
    _write_matconvnet(path, vgg_state)
    converted = weights.load_state_file(path)
    for key, value in vgg_state.items():
        assert torch.equal(converted[key], value), key


@pytest.mark.parametrize("content", [b"junk", None])
def test_a_truncated_or_foreign_mat_file_is_one_clear_error(tmp_path, content):
    path = tmp_path / "weights.mat"
    if content is None:
        savemat(path, {"layers": np.zeros(3)})  # a real .mat, not MatConvNet's layout
    else:
        path.write_bytes(content)
    with pytest.raises(BrushworkError, match="not a MatConvNet VGG-19 .mat file"):
        weights.load_state_file(path)


def test_explicit_path_and_env_var_take_precedence(tmp_path, monkeypatch, vgg_state):
    torch.save(vgg_state, tmp_path / "mine.pt")
    monkeypatch.setenv(weights.ENV_WEIGHTS, str(tmp_path / "mine.pt"))
    assert weights.resolve() == tmp_path / "mine.pt"
    assert weights.resolve(tmp_path / "other.pt") == tmp_path / "other.pt"
    assert "valid VGG-19" in weights.report()[0]


def test_fetch_failure_says_what_was_tried_and_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv(weights.ENV_CACHE, str(tmp_path / "cache"))

    def unreachable(dest):
        raise OSError("network unreachable")

    monkeypatch.setattr(weights, "SOURCES", (weights.Source("nowhere", unreachable),))
    with pytest.raises(BrushworkError) as err:
        weights.fetch(quiet=True)
    message = str(err.value)
    assert "nowhere: network unreachable" in message and weights.KERAS_MD5 in message
    assert "\n" not in message


def test_fetch_verifies_md5_of_a_download(tmp_path, monkeypatch):
    monkeypatch.setenv(weights.ENV_CACHE, str(tmp_path / "cache"))
    monkeypatch.setattr(weights, "SOURCES", (
        weights.Source("tampered", lambda dest: dest.write_bytes(b"x" * 100)),))
    with pytest.raises(BrushworkError, match=hashlib.md5(b"x" * 100).hexdigest()):
        weights.fetch(quiet=True)
    assert not (tmp_path / "cache" / weights.CACHE_NAME).exists()
