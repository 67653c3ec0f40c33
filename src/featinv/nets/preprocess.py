"""Preprocessing that travels with a network's weights.

The optimised image always lives in RGB [0, 1]; a :class:`Preprocess` maps it to what the
weights were trained on (value range, channel order, mean and std). It is differentiable.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import torch

from ..errors import ConfigError, did_you_mean


@dataclass(frozen=True)
class Preprocess:
    """``model_input = ((flip(x) * scale) - mean) / std``, per channel, after optional RGB->BGR.

    ``mean`` and ``std`` are in the scaled range and in the model's channel order.

    >>> caffe = PRESETS["caffe"]
    >>> caffe(torch.zeros(1, 3, 2, 2))[0, :, 0, 0].tolist()
    [-103.93900299072266, -116.77899932861328, -123.68000030517578]
    """

    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    scale: float = 1.0
    bgr: bool = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B, 3, H, W]`` RGB in [0, 1] -> ``[B, 3, H, W]`` model input."""
        _, _, gain, shift = _constants(self, x.device, x.dtype)
        # one fused multiply-add (and one multiply backward) instead of three ops each way
        return torch.addcmul(shift, x.flip(1) if self.bgr else x, gain)

    def centred(self, x: torch.Tensor) -> torch.Tensor:
        """RGB [0, 1] -> the network's mean-subtracted, scaled space (``x * scale - mean``, no std):
        for Caffe weights, the papers' BGR 0-255 space where the priors were defined."""
        mean = _constants(self, x.device, x.dtype)[0]
        return (x.flip(1) if self.bgr else x) * self.scale - mean

    def bound_pixel_norm(self, x: torch.Tensor, bound: float) -> torch.Tensor:
        """Cap each pixel's colour vector at norm ``bound`` in the mean-subtracted, scaled space
        (``x * scale - mean``, before std): the IJCV paper's projection with B = 160 on 0-255."""
        mean = _constants(self, x.device, x.dtype)[0]
        centred = self.centred(x)
        norm = centred.norm(dim=1, keepdim=True).clamp_min(1e-12)
        centred = centred * (bound / norm).clamp(max=1.0)
        x = (centred + mean) / self.scale
        return x.flip(1) if self.bgr else x

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _constants(pre: Preprocess, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """``mean, std, gain, shift`` as ``[1, 3, 1, 1]`` tensors (``gain = scale / std``,
    ``shift = -mean / std``), made once per device and dtype rather than every step; under
    ``torch.compile`` they are made in the traced code and become constants of the graph."""
    return (_make_constants if torch.compiler.is_compiling() else _cached_constants)(pre, device, dtype)


def _make_constants(pre: Preprocess, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    mean = torch.tensor(pre.mean, dtype=dtype, device=device).view(1, 3, 1, 1)
    std = torch.tensor(pre.std, dtype=dtype, device=device).view(1, 3, 1, 1)
    return mean, std, pre.scale / std, -mean / std


_cached_constants = functools.lru_cache(maxsize=64)(_make_constants)


PRESETS: dict[str, Preprocess] = {
    # torchvision's ImageNet weights
    "imagenet": Preprocess(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
    # Caffe / Keras VGG: BGR, 0-255, mean subtracted, no std
    "caffe": Preprocess(mean=(103.939, 116.779, 123.68), scale=255.0, bgr=True),
    # TensorFlow-style [-1, 1] (EfficientNet-Lite, Inception)
    "tf": Preprocess(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
    # the image as it is
    "none": Preprocess(),
}


def preset(name: str) -> Preprocess:
    """Look up a preprocessing preset by name ('imagenet', 'caffe', 'tf', 'none')."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown preprocessing preset {name!r}: expected one of {', '.join(PRESETS)}.{did_you_mean(name, PRESETS)}"
        ) from None
