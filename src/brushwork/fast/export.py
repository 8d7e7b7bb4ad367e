"""Export a trained network to ONNX, for onnxruntime and other runtimes without PyTorch.

The graph is the network as `brushwork fast` serves it (``stylise.Served``: edge margin
included). It takes ``image`` (N, 3, H, W), RGB in 0..1, of any batch and size (both sides at
least ``network.MIN_SIDE``), and gives ``stylised`` of the same shape. It is made with
PyTorch's torch.export-based exporter (the TorchScript one is deprecated), with the
batch, height and width symbolic, so the padding to a multiple of four stays in the graph.
After writing, the file is run in onnxruntime (when installed) against PyTorch.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from brushwork.errors import BrushworkError
from brushwork.fast.model import FastModel, load_model
from brushwork.fast.network import MIN_SIDE
from brushwork.fast.stylise import Served
from brushwork.io import atomic_write

OPSET = 18


def _cpu_net(model: FastModel | str | os.PathLike) -> torch.nn.Module:
    """The model's network as served (edge margin included) in float32 on the CPU: what
    ONNX export and its check compare."""
    model = model if isinstance(model, FastModel) else load_model(model)
    return Served(model.net.float().cpu()).eval()


def export_onnx(model: FastModel | str | os.PathLike, path: str | os.PathLike,
                opset: int = OPSET) -> Path:
    """Write the model as an ONNX file (atomically) and return its path."""
    try:
        import onnxscript  # noqa: F401  (the exporter's dependency; fail early and clearly)
    except ImportError:
        raise BrushworkError("ONNX export needs onnx and onnxscript: "
                             "pip install 'brushwork[export]'") from None
    from torch.export import Dim

    net = _cpu_net(model)
    # Sides that are not multiples of four, so the example exercises the padding path, and
    # a batch of two: torch.export would fix a batch of one as a constant.
    example = torch.rand(2, 3, 4 * 16 + 1, 4 * 16 + 3)
    shapes = {"images": {0: Dim("batch", max=1024),
                         2: Dim("height", min=MIN_SIDE, max=1 << 16),
                         3: Dim("width", min=MIN_SIDE, max=1 << 16)}}

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

    return atomic_write(path, write)


def check_onnx(model: FastModel | str | os.PathLike, path: str | os.PathLike,
               sizes: tuple[tuple[int, int], ...] = ((61, 83), (128, 96))) -> float:
    """Largest difference between onnxruntime's and PyTorch's outputs over test images."""
    try:
        import onnxruntime
    except ImportError:
        raise BrushworkError("checking the export needs onnxruntime: "
                             "pip install 'brushwork[export]'") from None
    net = _cpu_net(model)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(0)
    worst = 0.0
    for batch, (h, w) in enumerate(sizes, start=1):
        x = torch.rand(batch, 3, h, w, generator=gen)
        with torch.no_grad():
            expected = net(x).numpy()
        got = session.run(["stylised"], {"image": x.numpy()})[0]
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst
