"""Export a trained network to ONNX, for onnxruntime and other runtimes without PyTorch.

The graph is the network as `brushwork fast` serves it (``stylise.Served``: edge margin
included). It takes ``image`` (N, 3, H, W), RGB in 0..1, of any batch and size (both sides at
least ``network.MIN_SIDE``), and gives ``stylised`` of the same shape. It is made with
PyTorch's torch.export-based exporter (the TorchScript one is deprecated), with the
batch, height and width symbolic, so the padding to a multiple of four stays in the graph.
Before the file is moved into place it is run in onnxruntime against PyTorch, so an export
that onnxruntime cannot load or that computes something else leaves no file behind.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from brushwork.errors import BrushworkError
from brushwork.fast.model import FastModel, load_model
from brushwork.fast.network import MIN_SIDE
from brushwork.fast.stylise import Served
from brushwork.io import atomic_write, check_suffix

OPSET = 18
#: torch.onnx's exporter builds opset-18 graphs (its torchlib); asked for less, it tries a
#: down-conversion that fails for this network and writes opset 18 anyway.
MIN_OPSET = OPSET
#: Largest difference from PyTorch an export may show in onnxruntime: one 8-bit grey level
#: (measured: 1e-5 at opset 18, 1e-4 from opset 21 on).
TOLERANCE = 1 / 255


def _cpu_net(model: FastModel | str | os.PathLike) -> torch.nn.Module:
    """The model's network as served (edge margin included) in float32 on the CPU: what
    ONNX export and its check compare."""
    model = model if isinstance(model, FastModel) else load_model(model)
    return Served(model.net.float().cpu()).eval()


def check_export(path: str | os.PathLike, opset: int) -> None:
    """The output name and --opset, before the minute an export takes."""
    check_suffix(path, ".onnx", "an ONNX file", "--onnx")
    try:
        import onnx
        import onnxscript  # noqa: F401  (the exporter's dependency; fail early and clearly)
    except ImportError:
        raise BrushworkError("ONNX export needs onnx and onnxscript: "
                             "pip install 'brushwork[export]'") from None
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise BrushworkError(f"--opset {opset}: use {MIN_OPSET} to {newest} (torch.onnx "
                             f"cannot go below {MIN_OPSET}; the installed onnx knows up to "
                             f"{newest})")


def export_onnx(model: FastModel | str | os.PathLike, path: str | os.PathLike,
                opset: int = OPSET, check: bool = True) -> tuple[Path, float | None]:
    """Write the model as an ONNX file (atomically); with ``check``, only once onnxruntime
    runs it within ``TOLERANCE`` of PyTorch. Returns the path and that difference."""
    check_export(path, opset)
    if check:
        _onnxruntime()  # missing: say so before the export, not after it
    from torch.export import Dim

    net = _cpu_net(model)
    # Sides that are not multiples of four, so the example exercises the padding path, and
    # a batch of two: torch.export would fix a batch of one as a constant.
    example = torch.rand(2, 3, 4 * 16 + 1, 4 * 16 + 3)
    shapes = {"images": {0: Dim("batch", max=1024),
                         2: Dim("height", min=MIN_SIDE, max=1 << 16),
                         3: Dim("width", min=MIN_SIDE, max=1 << 16)}}

    measured: list[float] = []

    def write(tmp: str) -> None:
        quiet = logging.getLogger("torch.onnx")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # it logs each torchvision operator it cannot find
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the exporter's own deprecation chatter
                program = torch.onnx.export(net, (example,), input_names=["image"],
                                            output_names=["stylised"], dynamic_shapes=shapes,
                                            opset_version=opset, dynamo=True, verbose=False)
        finally:
            quiet.setLevel(level)
        program.save(tmp)
        if check:
            difference = check_onnx(model, tmp)
            measured.append(difference)
            if difference > TOLERANCE:
                raise BrushworkError(f"{path}: in onnxruntime the export differs from PyTorch "
                                     f"by {difference:.1e}; nothing written, try --opset "
                                     f"{OPSET}")

    return atomic_write(path, write), measured[0] if measured else None


def _onnxruntime() -> ModuleType:
    """The onnxruntime module, or a one-line error saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise BrushworkError("checking the export needs onnxruntime: "
                             "pip install 'brushwork[export]'") from None
    return onnxruntime


def check_onnx(model: FastModel | str | os.PathLike, path: str | os.PathLike,
               sizes: tuple[tuple[int, int], ...] = ((61, 83), (128, 96))) -> float:
    """Largest difference between onnxruntime's and PyTorch's outputs over test images."""
    onnxruntime = _onnxruntime()
    net = _cpu_net(model)
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's errors share no base class
        raise BrushworkError(f"onnxruntime {onnxruntime.__version__} cannot load this ONNX "
                             f"file ({type(exc).__name__}); export it with --opset {OPSET}"
                             ) from None
    gen = torch.Generator().manual_seed(0)
    worst = 0.0
    for batch, (h, w) in enumerate(sizes, start=1):
        x = torch.rand(batch, 3, h, w, generator=gen)
        with torch.no_grad():
            expected = net(x).numpy()
        got = session.run(["stylised"], {"image": x.numpy()})[0]
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst
