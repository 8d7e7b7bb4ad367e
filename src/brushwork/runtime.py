"""Where and in what precision the network runs, and how the CPU's memory is reused.

Reduced precision is used only where the hardware has it: on a CPU without native
bfloat16 (AVX-512-BF16 or AMX), PyTorch emulates bf16 convolutions at roughly a hundred
times the float32 cost, so ``auto`` picks bfloat16 only when oneDNN reports support.
Losses are always summed in float32.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import platform
from collections.abc import Iterator

import torch

from brushwork.errors import BrushworkError

PRECISIONS = ("auto", "float32", "bfloat16", "float16")


def pick_device(name: str = "auto") -> torch.device:
    """'auto' is CUDA when present, else CPU; a named device is checked to exist. A run on
    the CPU reuses the memory it frees from here on (``keep_freed_memory``)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" \
        else named_device(name)
    if device.type == "cpu":
        keep_freed_memory()
    return device


def named_device(name: str) -> torch.device:
    """The device ``name`` stands for, refused in one line where brushwork cannot run."""
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


#: glibc's mallopt parameters (malloc.h): never map a block of its own, trim the heap late.
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4


@functools.cache
def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for the next allocation instead of returning it.

    Every step (and every tile) frees and allocates the same large feature maps; glibc maps
    each block over 32 MB afresh and unmaps it on free, so the kernel zeroes and faults it
    in again page by page, which on large outputs costs a fifth of the CPU time. The price
    is that the process keeps the memory it freed until it ends (``BRUSHWORK_KEEP_MEMORY=0``
    leaves glibc as it is). Once per process; False where it does nothing.
    """
    if os.environ.get("BRUSHWORK_KEEP_MEMORY") == "0" or platform.system() != "Linux" or \
            platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(
            libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):
        return False


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
