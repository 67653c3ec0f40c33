"""Transformation robustness: random, seeded changes to the image before the network sees it.

Asking the reconstruction to match the target's features under small shifts, rescalings and
rotations keeps it from fitting the network's blind spots (high-frequency patterns that only
work at one exact alignment); the IJCV paper's jitter is the shift alone. The transforms act on
the image ``x`` after the parameterisation and before preprocessing; the priors still see ``x``.

A :class:`Transforms` is parsed from a comma-separated list (``"jitter,scale,rotate"``; each
may carry its amount, ``"jitter=4,scale=0.1,rotate=10"``) and draws from its own generator, so a
seeded run is repeatable and a checkpoint carries the generator's state.

>>> t = Transforms.parse("jitter=2,scale,rotate=5", seed=0)
>>> t(torch.rand(1, 3, 16, 16)).shape
torch.Size([1, 3, 16, 16])
>>> str(t)
'jitter=2,scale=0.1,rotate=5'
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..specs import parse_transforms as parse_spec


def jitter(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Shift ``[B, C, H, W]`` images by ``(dy, dx)`` pixels, wrapping around (IJCV's jitter)."""
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


def scale_rotate(x: torch.Tensor, scale: float, degrees: float) -> torch.Tensor:
    """Zoom ``[B, C, H, W]`` images by ``scale`` and rotate them by ``degrees`` about the centre,
    keeping their size (bilinear; the border is mirrored, so no black corners appear)."""
    angle = math.radians(degrees)
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    theta = x.new_tensor([[cos, -sin, 0.0], [sin, cos, 0.0]]).expand(x.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


class Transforms:
    """Seeded random transforms of one trial's image (see the module docstring)."""

    def __init__(self, amounts: dict[str, float], seed: int = 0) -> None:
        self.amounts = dict(amounts)
        self.generator = torch.Generator().manual_seed(seed)

    @classmethod
    def parse(cls, text: str | None, seed: int = 0) -> Transforms:
        return cls(parse_spec(text), seed)

    def __bool__(self) -> bool:
        return any(self.amounts.values())

    def __str__(self) -> str:
        return ",".join(f"{k}={v:g}" for k, v in self.amounts.items())

    def _uniform(self, half_width: float) -> float:
        return (torch.rand((), generator=self.generator).item() * 2 - 1) * half_width

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """One random draw applied to ``x`` ``[B, C, H, W]``: zoom and rotation, then the shift."""
        scale, rotate, shift = (self.amounts.get(k, 0.0) for k in ("scale", "rotate", "jitter"))
        if scale or rotate:
            x = scale_rotate(x, 1.0 + self._uniform(scale), self._uniform(rotate))
        if shift:
            n = int(shift)
            dy, dx = torch.randint(-n, n + 1, (2,), generator=self.generator).tolist()
            x = jitter(x, dy, dx)
        return x

    def get_state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)
