"""What part of a layer's representation to invert: a subset of its channels (``--channels``) or a
window of its feature map (``--window``), as in the IJCV paper's channel and neighbourhood
experiments (aravindhm/nnpreimage).

A mask is a constant 0/1 tensor the layer's features and the target's are multiplied by before the
normalised distance, so the loss sees only what is kept and its gradient is zero elsewhere.

Channels: ``0:64`` (a range, end excluded), ``3,7,12`` (a list), or ``top:K`` (the K channels with
the most activation energy in the target, per image). Window: ``y0:y1,x0:x1`` in feature-map cells
(ends excluded); :mod:`featinv.nets.receptive` says which pixels such a window sees.

>>> t = torch.zeros(1, 4, 2, 2); t[0, 2] = 3; t[0, 0] = 1
>>> channel_mask("top:2", t)[0, :, 0, 0].tolist()
[1.0, 0.0, 1.0, 0.0]
>>> window_mask("0:1,1:2", t)[0, 0].tolist()
[[0.0, 1.0], [0.0, 0.0]]
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from ..specs import check_channels, check_window, parse_range

__all__ = ["channel_mask", "check_channels", "check_window", "window_mask"]


def channel_mask(spec: str, target: torch.Tensor) -> torch.Tensor:
    """``[B, C, 1...]`` ones on the kept channels of a layer whose target features are ``target``
    (``[B, C, ...]``; the channel axis is 1 for feature maps, the last for tokens ``[B, N, C]``)."""
    axis = 1 if target.dim() != 3 else 2
    count = target.shape[axis]
    shape = [target.shape[0]] + [1] * (target.dim() - 1)
    shape[axis] = count
    mask = torch.zeros(shape, device=target.device)
    view = mask.movedim(axis, 1).reshape(target.shape[0], count)
    if spec.startswith("top:"):
        k = int(spec[4:])
        if k > count:
            raise ConfigError(f"channels {spec!r} asks for more channels than the layer has ({count})")
        energy = target.detach().float().pow(2).movedim(axis, 1).reshape(target.shape[0], count, -1).sum(-1)
        view.scatter_(1, energy.topk(k, dim=1).indices, 1.0)
    elif ":" in spec:
        lo, hi = parse_range(spec, count, "channels")
        view[:, lo:hi] = 1.0
    else:
        picked = [int(p) for p in spec.split(",")]
        if max(picked) >= count:
            raise ConfigError(f"channel {max(picked)} does not exist: the layer has {count} (0 to {count - 1})")
        view[:, picked] = 1.0
    return view.reshape(mask.movedim(axis, 1).shape).movedim(1, axis).contiguous()


def window_mask(spec: str, target: torch.Tensor) -> torch.Tensor:
    """``[B, 1, H, W]`` ones on the window's cells of a feature map ``target`` ``[B, C, H, W]``."""
    if target.dim() != 4:
        raise ConfigError(
            f"--window needs a layer with a spatial feature map, but this one's output is {list(target.shape[1:])}"
        )
    rows, cols = spec.split(",")
    y0, y1 = parse_range(rows, target.shape[2], "window rows")
    x0, x1 = parse_range(cols, target.shape[3], "window columns")
    mask = torch.zeros(target.shape[0], 1, target.shape[2], target.shape[3], device=target.device)
    mask[:, :, y0:y1, x0:x1] = 1.0
    return mask
