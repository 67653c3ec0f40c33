"""What a layer does not pin down: several reconstructions from different seeds, side by side.

Where the restarts agree, the layer's features determine the image; where they differ, it throws
the information away (the IJCV paper's "diversity" of pre-images). :func:`spread` measures it,
:func:`diversity_image` draws the restarts, their mean and a per-pixel standard-deviation map.

>>> same = [torch.full((3, 4, 4), 0.5)] * 3
>>> spread(same)["pixel_std_mean"], spread(same)["mean_pairwise_rmse"]
(0.0, 0.0)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch


def std_map(images: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """The per-pixel standard deviation over the images ``[3, H, W]``, averaged over colour: ``[H, W]``."""
    return torch.stack(list(images)).std(dim=0, unbiased=False).mean(dim=0)


def spread(images: Sequence[torch.Tensor]) -> dict[str, float]:
    """How much the images differ: the mean per-pixel standard deviation and the mean RMSE over
    every pair (both in [0, 1] units)."""
    pairs = [float((a - b).pow(2).mean().sqrt()) for a, b in itertools.combinations(images, 2)]
    return {
        "pixel_std_mean": float(std_map(images).mean()),
        "mean_pairwise_rmse": sum(pairs) / len(pairs) if pairs else math.nan,
    }


def diversity_image(images: Sequence[torch.Tensor], gap: int = 4) -> torch.Tensor:
    """One ``[3, H, W']`` picture: the restarts, their mean, and the std map (magma colours, black =
    every restart agrees, scaled to the largest std), with white gaps."""
    from matplotlib import colormaps

    stack = torch.stack(list(images)).clamp(0, 1)
    std = std_map(stack)
    scaled = (std / std.max().clamp_min(1e-8)).numpy()
    heat = torch.from_numpy(colormaps["magma"](scaled)[..., :3]).permute(2, 0, 1).float()
    tiles = [*stack, stack.mean(0), heat]
    white = torch.ones(3, stack.shape[2], gap)
    row = [t for tile in tiles for t in (tile, white)][:-1]
    return torch.cat(row, dim=2)
