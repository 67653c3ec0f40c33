"""Process-level speed settings for CPU runs (measured in benchmarks/, see BENCHMARKS.md).

- glibc returns large freed blocks to the OS and re-faults them on the next step: every
  forward/backward allocates activation buffers far above the mmap threshold, so each step
  paid for fresh zeroed pages. :func:`tune_allocator` keeps freed memory in the heap instead
  (``mallopt``: no mmap for large blocks, no trimming). Set ``FEATINV_NO_MALLOPT=1`` to skip it.
- convolutions run faster on channels-last tensors on CPU (oneDNN's native layout):
  :func:`use_channels_last` says when the loop should use them.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

import torch

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


@functools.lru_cache(maxsize=1)
def tune_allocator() -> bool:
    """Keep freed large blocks in glibc's heap (once per process); True if it was applied."""
    if os.environ.get("FEATINV_NO_MALLOPT") or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


def use_channels_last(device: torch.device) -> bool:
    """Channels-last pays for convolutions on CPU; on CUDA fp32 it is left to cuDNN's default."""
    return device.type == "cpu" and not os.environ.get("FEATINV_NO_CHANNELS_LAST")
