"""Where and in what precision the network runs.

Reduced precision is used only where the hardware has it: on a CPU without native
bfloat16 (AVX-512-BF16 or AMX), PyTorch emulates bf16 convolutions at roughly a hundred
times the float32 cost, so ``auto`` picks bfloat16 only when oneDNN reports support.
Losses are always summed in float32.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from brushwork.errors import BrushworkError

PRECISIONS = ("auto", "float32", "bfloat16", "float16")


def pick_device(name: str = "auto") -> torch.device:
    """'auto' is CUDA when present, else CPU; a named device is checked to exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BrushworkError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):  # mps, meta, xpu...: not built or tested here
        raise BrushworkError(f"device {name!r}: brushwork runs on the CPU or a CUDA GPU; use "
                             "auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise BrushworkError(f"device {name} asked for, but PyTorch sees no CUDA GPU; "
                                 "use --device cpu or install a CUDA build of torch")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise BrushworkError(f"device {name}: only {torch.cuda.device_count()} GPU(s)")
    return device


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bfloat16 convolutions natively (AVX-512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """Turn 'auto' and names into a dtype: fp16 on CUDA, bf16 on capable CPUs, else fp32."""
    if precision not in PRECISIONS:
        raise BrushworkError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_has_bf16() else torch.float32
    return getattr(torch, precision)


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype) -> Iterator[None]:
    """Autocast the network to ``dtype``; a no-op for float32."""
    if dtype == torch.float32:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def available_memory(device: torch.device) -> int:
    """Bytes free on the device: CUDA's own count, else the OS's available memory (what a
    pass may plan to use)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as fh:
            info = {line.split(":")[0]: line.split()[1] for line in fh}
        return int(info["MemAvailable"]) * 1024
    except (OSError, KeyError, ValueError):
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
