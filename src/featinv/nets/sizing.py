"""Will a run fit? The input sizes a network's layers take, and the memory a step needs, checked
before anything large is allocated.

A layer may need a minimum input (VGG16's pool5 halves the image five times: 32 px at least); the
smallest size is found by running the network on small grey images. Memory is measured, not
guessed: the bytes autograd saves for one image at a small size, scaled by the area, plus what
each image keeps (its parameters, gradient, optimiser state, target). A run that needs more than
the machine has free is refused with the largest size that fits.

>>> import torch
>>> pool = torch.nn.MaxPool2d(4)
>>> smallest_size(lambda x: {"pool": pool(x)}, start=1)
4
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from ..errors import ConfigError, ResourceError

Forward = Callable[[torch.Tensor], dict[str, torch.Tensor]]
PROBE = 64  # the size memory is measured at (cheap, and above most networks' minimum)
LARGEST_PROBE = 512  # no minimum is searched above this
PER_IMAGE_FLOATS = 12  # floats per pixel and channel an image keeps: param, grad, Adam's two, target, ...


def refusal(forward: Forward, size: int, device: torch.device) -> Exception | None:
    """Why the network does not take a ``size x size`` input (a layer's output shrinks to nothing,
    a fixed position embedding, ...), or None if it does."""
    try:
        with torch.no_grad():
            forward(torch.full((1, 3, size, size), 0.5, device=device))
    except (RuntimeError, ValueError, IndexError, AssertionError) as exc:
        return exc
    return None


def runs_at(forward: Forward, size: int, device: torch.device) -> bool:
    """Does the network take a ``size x size`` input?"""
    return refusal(forward, size, device) is None


def smallest_size(
    forward: Forward, start: int, device: torch.device | str = "cpu", limit: int = LARGEST_PROBE
) -> int | None:
    """The smallest square input at least ``start`` the network takes, or None up to ``limit``."""
    device = torch.device(device)
    if not runs_at(forward, limit, device):
        return None
    low, high = start, limit  # invariant: high runs
    while low < high:
        mid = (low + high) // 2
        if runs_at(forward, mid, device):
            high = mid
        else:
            low = mid + 1
    return high


@contextmanager
def count_saved_bytes(enabled: bool = True) -> Iterator[list[int]]:
    """Sum the bytes autograd saves for backward inside the block (the activation memory)."""
    total = [0]
    if not enabled:
        yield total
        return

    def pack(t: torch.Tensor) -> torch.Tensor:
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield total


def saved_bytes(forward: Forward, size: int, device: torch.device) -> int:
    """The bytes autograd keeps for backward when one ``size x size`` image goes through."""
    x = torch.full((1, 3, size, size), 0.5, device=device, requires_grad=True)
    with torch.enable_grad(), count_saved_bytes() as total:
        forward(x)
    return total[0]


def available_bytes(device: torch.device) -> int | None:
    """Free memory on ``device`` (CUDA: the driver's count; CPU: the kernel's MemAvailable), or None."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None


def check_size(forward: Forward, size: int, images: int, device: torch.device, what: str) -> None:
    """Refuse, before allocating, a ``size`` the network cannot take or a run that cannot fit.

    ``forward`` runs the network to the requested layers on ``[B, 3, S, S]`` images in [0, 1];
    ``images`` is how many share each step; ``what`` names the layers and model in messages.
    """
    probe = min(size, PROBE)
    if not runs_at(forward, probe, device):
        at_size = refusal(forward, size, device) if size <= LARGEST_PROBE else None
        if size <= LARGEST_PROBE and at_size is None:
            probe = size  # a network with a fixed input size: measure it there
        else:
            smallest = smallest_size(forward, probe + 1, device)
            if smallest is None:  # nothing up to 512 px works: say what the network said
                why = at_size or refusal(forward, probe, device)
                first = (str(why).strip().splitlines() or [type(why).__name__])[0][:200]
                first = re.sub(r"Proxy\([^)]*\)", str(size), first)  # a traced graph's placeholder
                raise ConfigError(
                    f"{what} does not take a {size}x{size} input: {first} (a network "
                    f"with a fixed input size needs --size set to it)"
                )
            if size < smallest:
                raise ConfigError(
                    f"--size {size} is too small for {what}: the smallest input it takes is {smallest} px"
                )
            probe = smallest
    free = available_bytes(device)
    if free is None:
        return
    per_pixel = saved_bytes(forward, probe, device) / probe**2 + 3 * 4 * PER_IMAGE_FLOATS
    need = per_pixel * size**2 * images
    if need > free:
        fits = int(math.sqrt(free / (per_pixel * images)) // 8 * 8)
        batch = f" with {images} images per step" if images > 1 else ""
        raise ResourceError(
            f"--size {size}{batch} needs about {_gb(need)} for {what}, but {device} has "
            f"{_gb(free)} free: the largest size that fits is about {max(fits, 8)} px"
        )


def _gb(n: float) -> str:
    return f"{n / 2**30:,.1f} GB" if n < 2**40 else f"{n / 2**40:,.1f} TB"
