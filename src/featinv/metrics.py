"""Image and feature quality measures (pure functions)."""
from __future__ import annotations

import math

import torch


def psnr(image: torch.Tensor, reference: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of two ``[3, H, W]`` images in [0, 1].

    >>> round(psnr(torch.full((3, 4, 4), 0.5), torch.full((3, 4, 4), 0.6)), 2)
    20.0
    """
    mse = (image.detach().double() - reference.detach().double()).pow(2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def ssim(image: torch.Tensor, reference: torch.Tensor) -> float:
    """Structural similarity (scikit-image, Gaussian 11x11 window) of two ``[3, H, W]`` images."""
    from skimage.metrics import structural_similarity

    a = image.detach().double().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    b = reference.detach().double().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    return float(structural_similarity(a, b, channel_axis=2, data_range=1.0,
                                       gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


def ijcv_error(feature_error: float) -> float:
    """The IJCV 2016 paper's reported error: sqrt(||phi(x) - phi0||^2 / ||phi0||^2)."""
    return math.sqrt(max(feature_error, 0.0))
