"""Image and feature quality measures (pure functions)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import torch


def psnr(image: torch.Tensor, reference: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of two ``[3, H, W]`` images in [0, 1].

    >>> round(psnr(torch.full((3, 4, 4), 0.5), torch.full((3, 4, 4), 0.6)), 2)
    20.0
    """
    mse = (image.detach().double() - reference.detach().double()).pow(2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def ssim(image: torch.Tensor, reference: torch.Tensor) -> float:
    """Structural similarity (scikit-image, Gaussian 11x11 window) of two ``[3, H, W]`` images.

    Images smaller than the window (featinv allows 8 px) use the largest odd uniform window
    that fits.

    >>> ssim(torch.full((3, 8, 8), 0.5), torch.full((3, 8, 8), 0.5))
    1.0
    """
    from skimage.metrics import structural_similarity

    a = image.detach().double().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    b = reference.detach().double().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    side = min(a.shape[:2])
    window = {"gaussian_weights": True, "sigma": 1.5} if side >= 11 else {"win_size": max(3, side - 1 + side % 2)}
    return float(structural_similarity(a, b, channel_axis=2, data_range=1.0, use_sample_covariance=False, **window))


def ijcv_error(feature_error: float) -> float:
    """The IJCV 2016 paper's reported error: sqrt(||phi(x) - phi0||^2 / ||phi0||^2)."""
    return math.sqrt(max(feature_error, 0.0))


@dataclass(frozen=True)
class StepTimes:
    """Seconds per step after a warm-up: the median and the spread (25th to 75th percentile)."""

    median: float
    low: float
    high: float

    @property
    def spread(self) -> float:
        """The spread as a fraction of the median (0.1: the middle half within 10 %)."""
        return (self.high - self.low) / self.median if self.median > 0 else math.inf

    def overlaps(self, other: StepTimes) -> bool:
        """Too close to rank: the middle halves of the two runs' steps overlap."""
        return self.low <= other.high and other.low <= self.high


def step_times(seconds: Sequence[float], warmup: int | None = None) -> StepTimes:
    """The step times of a run (its log's ``seconds``), without the first ``warmup`` steps
    (default a tenth, at least one: allocation, kernels chosen, caches filled).

    >>> t = step_times([0.5, 0.010, 0.011, 0.012, 0.013, 0.2])
    >>> round(t.median * 1000, 1), round(t.low * 1000, 2), round(t.high * 1000, 2)
    (12.0, 11.0, 13.0)
    """
    skip = max(1, len(seconds) // 10) if warmup is None else warmup
    kept = sorted(seconds[skip:]) or sorted(seconds)
    if not kept:
        return StepTimes(math.nan, math.nan, math.nan)
    if len(kept) == 1:
        return StepTimes(kept[0], kept[0], kept[0])
    low, median, high = statistics.quantiles(kept, n=4, method="inclusive")
    return StepTimes(median, low, high)
