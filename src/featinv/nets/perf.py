"""Speed settings of the inversion loop, each measured in benchmarks/ (see BENCHMARKS.md).

- glibc returns large freed blocks to the OS and re-faults them on the next step: every
  forward/backward allocates activation buffers far above the mmap threshold, so each step
  paid for fresh zeroed pages. :func:`tune_allocator` keeps freed memory in the heap instead
  (``mallopt``: no mmap for large blocks, no trimming). Set ``FEATINV_NO_MALLOPT=1`` to skip it.
- cuDNN's autotuner (``cudnn.benchmark``) pays for fixed input sizes, which an inversion has.

Both change the whole process, so the library never applies them: :func:`tune_process` does (with
Pillow's size limit raised to 400 megapixels), and the CLI, its process-pool workers and the test
suite call it. Call it yourself in a script of your own for the CLI's speed.
- convolutions run faster on channels-last tensors on CPU (oneDNN's native layout):
  :func:`use_channels_last` says when the loop should use them.
- bf16 / fp16 autocast pays on a CPU only where oneDNN has native kernels for it (AVX512-BF16,
  AMX): on this 2-core EPYC bf16 ran 1.2-1.8x faster than fp32 and fp16, emulated, 26x slower.
  :func:`native_precision` tells, so a run can warn before it crawls.
- ``torch.compile`` of the step is opt-in (:func:`compile_step`): slower on this CPU, for GPUs to
  measure (``benchmarks/gpu.sh --compile``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
from collections.abc import Callable

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


def tune_process() -> None:
    """The CLI's process-wide settings: glibc keeps freed blocks, cuDNN autotunes, and Pillow reads
    photos up to 400 megapixels (its default refuses 179 as a decompression bomb; featinv shrinks
    each photo once). A library call never does this."""
    from PIL import Image

    if Image.MAX_IMAGE_PIXELS is not None:  # None: the host already lifted the limit
        Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS, 400_000_000)
    tune_allocator()
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its fastest kernels


def use_channels_last(device: torch.device) -> bool:
    """Channels-last pays for convolutions on CPU; on CUDA fp32 it is left to cuDNN's default."""
    return device.type == "cpu" and not os.environ.get("FEATINV_NO_CHANNELS_LAST")


def native_precision(device: torch.device, precision: str) -> bool:
    """Does ``device`` run ``precision`` ('bf16', 'fp16') convolutions natively? Always True for
    fp32 and CUDA; on CPU, oneDNN's own check (AVX512 BW/VL/DQ for bf16, AVX512-FP16 / AMX-FP16
    for fp16)."""
    if precision == "fp32" or device.type != "cpu":
        return True
    try:
        check = (
            torch.ops.mkldnn._is_mkldnn_bf16_supported
            if precision == "bf16"
            else torch.ops.mkldnn._is_mkldnn_fp16_supported
        )
        return bool(check())
    except (AttributeError, RuntimeError):  # a torch without oneDNN: assume emulation
        return False


def is_compile_failure(exc: BaseException) -> bool:
    """Did torch.compile itself fail (no C++ compiler, no Triton, an unsupported op)?"""
    from torch._dynamo.exc import TorchDynamoException
    from torch._inductor.exc import InductorError

    return isinstance(exc, (TorchDynamoException, InductorError))


def compile_step(fn: Callable, mode: str | None) -> Callable:
    """``fn`` (a step's forward: network + objective) through ``torch.compile`` in ``mode``
    (opt-in, ``config.compile``), or ``fn`` itself when ``mode`` is None.

    Only the step's forward is compiled, with its backward; the target's features and the final
    measurements stay eager, so there is one graph to build. The first step pays the compile
    time (``featinv bench --compile`` reports it); jitter's shifts are applied before, so they
    do not cause recompiles.
    """
    if mode is None:
        return fn
    return torch.compile(fn, mode=mode, dynamic=False)
