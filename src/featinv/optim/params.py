"""Image parameterisations: what the optimiser moves, and how it becomes an RGB image.

Each parameterisation is a small ``nn.Module`` that owns its parameters and maps them to one
image ``[1, 3, S, S]`` in [0, 1] (``forward()``); its ``state_dict()`` is its checkpoint. The
choice is a prior: the same objective optimised over pixels, over a 1/f-scaled spectrum or over
the weights of an untrained convolutional network lands on very different images.

- ``pixel``   the pixels themselves, projected back into [0, 1] after each step (CVPR 2015);
- ``fourier`` the image's spectrum scaled by 1/frequency, with decorrelated colour and a sigmoid
  (Olah et al., "Feature Visualization", Distill 2017): low frequencies move first, so flat
  regions stay flat instead of keeping the initial noise;
- ``pyramid`` a Laplacian pyramid (one tensor per octave, each upsampled and added), with the
  same colour decorrelation and sigmoid: coarse levels move whole regions at once;
- ``dip``     Deep Image Prior (Ulyanov et al., CVPR 2018): an untrained encoder-decoder with
  skip connections maps fixed noise to the image; its weights are what is optimised.

>>> p = make_param("fourier", size=16, seed=0)
>>> image = p()
>>> tuple(image.shape), bool(image.min() >= 0 and image.max() <= 1)
((1, 3, 16, 16), True)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, did_you_mean
from ..specs import CHROMA_PARAMS, CUSTOM_PARAM, PARAMS

# The square root of ImageNet's RGB colour covariance, from the eigen-decomposition AlexNet's
# "PCA lighting" augmentation published (Krizhevsky et al. 2012): eigenvectors times the square
# roots of the eigenvalues. Mixing three independent channels through it gives natural colour
# statistics; each column is then scaled so the largest has norm 1.
_EIGVAL = torch.tensor([0.2175, 0.0188, 0.0045])
_EIGVEC = torch.tensor([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]])
_COLOUR_SQRT = _EIGVEC * _EIGVAL.sqrt()
COLOUR_MIX = _COLOUR_SQRT / _COLOUR_SQRT.norm(dim=0).max()
_LOGIT_EPS = 1e-3  # images given as a start are kept this far from 0 and 1 (sigmoid's ends)


def decorrelated_to_rgb(t: torch.Tensor) -> torch.Tensor:
    """Independent channels ``[B, 3, H, W]`` -> RGB in [0, 1]: mix with ImageNet's colour
    correlation, then a sigmoid (so every value is a valid image)."""
    mixed = torch.einsum("ij,bjhw->bihw", COLOUR_MIX.to(t), t)
    return torch.sigmoid(mixed)


def rgb_to_decorrelated(image: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`decorrelated_to_rgb` (images kept inside (0, 1))."""
    logits = torch.logit(image.clamp(_LOGIT_EPS, 1 - _LOGIT_EPS))
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(COLOUR_MIX).to(image), logits)


class ImageParam(nn.Module):
    """Base class: ``forward() -> [1, 3, S, S]`` in [0, 1]; ``project_()`` after each step."""

    size: int

    def project_(self) -> None:
        """Keep the parameters valid after an optimiser step (nothing by default)."""


class PixelParam(ImageParam):
    """The pixels themselves, ``[1, 3, S, S]``. After each step :meth:`project_` applies
    ``bound`` (IJCV's pixel-norm bound, in the network's space: see
    :meth:`featinv.nets.preprocess.Preprocess.bound_pixel_norm`) where given, then clamps the
    pixels into [0, 1] unless ``clamp`` is off.

    >>> p = PixelParam(torch.full((1, 3, 2, 2), 1.5))
    >>> p.project_(); p().max().item()
    1.0
    """

    def __init__(
        self,
        start: torch.Tensor,
        clamp: bool = True,
        bound: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.size = start.shape[-1]
        self.pixels = nn.Parameter(start.clone())
        self.clamp, self.bound = clamp, bound

    def forward(self) -> torch.Tensor:
        return self.pixels

    @torch.no_grad()
    def project_(self) -> None:
        if self.bound is not None:
            self.pixels.copy_(self.bound(self.pixels))
        if self.clamp:
            self.pixels.clamp_(0.0, 1.0)


def _frequencies(size: int) -> torch.Tensor:
    """Radial frequency (cycles per pixel) of each coefficient of a ``size x size`` rfft2."""
    fy = torch.fft.fftfreq(size)[:, None]
    fx = torch.fft.rfftfreq(size)[None, :]
    return (fy * fy + fx * fx).sqrt()


def _check_chroma_scale(chroma_scale: int, size: int) -> None:
    if not isinstance(chroma_scale, int) or isinstance(chroma_scale, bool) or not 1 <= chroma_scale <= size:
        raise ConfigError(
            f"chroma_scale must be a whole number of pixels from 1 to the image size ({size}), got {chroma_scale!r}"
        )


def _moving(t: torch.Tensor, free: torch.Tensor | None) -> torch.Tensor:
    """``t`` where ``free`` (a boolean mask broadcast over it), and elsewhere ``t`` held where it
    is: no gradient reaches those entries, so the optimiser never moves them (Adam's step for a
    zero gradient is exactly zero)."""
    return t if free is None else torch.where(free, t, t.detach())


class FourierParam(ImageParam):
    """The image's spectrum, scaled by ``1 / f^decay`` (f the radial frequency, at least one
    cycle per image) so that every coefficient moves the image about equally per unit of the
    optimiser's step -- in effect a preconditioner that favours smooth images. Colour is
    decorrelated and squashed by a sigmoid (:func:`decorrelated_to_rgb`).

    ``start`` (``[1, 3, S, S]`` in [0, 1]) is represented exactly. With ``chroma_scale`` N > 1
    the two colour channels move only at frequencies up to 1 / (2N) cycles per pixel (colour
    changes over N pixels or more; brightness at every frequency), as for :class:`PyramidParam`.
    """

    def __init__(self, start: torch.Tensor, decay: float = 1.0, chroma_scale: int = 1) -> None:
        super().__init__()
        size = start.shape[-1]
        _check_chroma_scale(chroma_scale, size)
        self.size, self.chroma_scale = size, chroma_scale
        # with the orthonormal transform, a unit step of the mean (DC) coefficient moves every
        # pixel by one unit and a unit step at frequency f moves the image by 1/(S f)^decay as much
        self.register_buffer("scale", size / (size * _frequencies(size).clamp_min(1.0 / size)) ** decay)
        spectrum = torch.fft.rfft2(rgb_to_decorrelated(start), norm="ortho") / self.scale
        self.spectrum = nn.Parameter(torch.view_as_real(spectrum).contiguous())
        free = None
        if chroma_scale > 1:  # brightness everywhere; colour below the cut-off frequency
            low = _frequencies(size) <= 1.0 / (2 * chroma_scale)
            free = torch.stack([torch.ones_like(low), low, low])[None, ..., None]  # [1, 3, S, S//2+1, 1]
        self.register_buffer("free", free, persistent=False)  # None: every coefficient moves

    free: torch.Tensor | None
    scale: torch.Tensor

    def forward(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(_moving(self.spectrum, self.free)) * self.scale
        return decorrelated_to_rgb(torch.fft.irfft2(spectrum, s=(self.size, self.size), norm="ortho"))


class PyramidParam(ImageParam):
    """A Laplacian pyramid: one ``[1, 3, s, s]`` tensor per octave (s = S, S/2, ... down to
    ``coarsest``), each upsampled bilinearly to S and added, then decorrelated colour and a
    sigmoid. A coarse value moves a whole block of the image, so the layout settles first.
    ``start`` goes into the finest level (exactly represented).

    ``chroma_scale`` N > 1: the two colour channels (of the decorrelated space; the first is
    brightness) move only in the octaves of side S/N and coarser, so colour changes over N
    pixels or more while brightness keeps every pixel -- the way the eye, and JPEG, treat colour.
    A network's blind spots at deep layers are largely fine colour patterns (the rainbow
    textures of a pixel reconstruction from pool5); this rules them out.
    """

    def __init__(self, start: torch.Tensor, coarsest: int = 4, chroma_scale: int = 1) -> None:
        super().__init__()
        size = start.shape[-1]
        _check_chroma_scale(chroma_scale, size)
        self.size, self.chroma_scale = size, chroma_scale
        sizes = [size]
        while sizes[-1] // 2 >= coarsest:
            sizes.append(sizes[-1] // 2)
        finest = rgb_to_decorrelated(start)
        self.levels = nn.ParameterList(
            [nn.Parameter(finest.clone() if s == size else start.new_zeros(1, 3, s, s)) for s in sizes]
        )
        # the octaves finer than S/N move their brightness channel alone
        self._colour_held = [s > size // chroma_scale for s in sizes]
        self.register_buffer("brightness_only", torch.tensor([True, False, False]).view(1, 3, 1, 1), persistent=False)

    brightness_only: torch.Tensor

    def forward(self) -> torch.Tensor:
        levels = [
            _moving(level, self.brightness_only if held else None)
            for level, held in zip(self.levels, self._colour_held)
        ]
        total = levels[0]
        for level in levels[1:]:
            total = total + F.interpolate(level, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return decorrelated_to_rgb(total)


def _conv_block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, padding_mode="reflect"), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)
    )


class DIPNet(nn.Module):
    """The Deep Image Prior's encoder-decoder ("skip" architecture, made small for a CPU):
    ``depth`` stride-2 down blocks, bilinear up blocks, and a 1x1 skip branch at each scale."""

    def __init__(self, channels: int = 32, depth: int = 4, skip: int = 4, noise_channels: int = 32) -> None:
        super().__init__()
        self.down = nn.ModuleList()
        self.skips = nn.ModuleList()
        self.up = nn.ModuleList()
        cin = noise_channels
        for _ in range(depth):
            self.skips.append(nn.Sequential(nn.Conv2d(cin, skip, 1), nn.BatchNorm2d(skip), nn.LeakyReLU(0.2)))
            self.down.append(nn.Sequential(_conv_block(cin, channels, 2), _conv_block(channels, channels)))
            cin = channels
        for _ in range(depth):
            self.up.append(
                nn.Sequential(
                    nn.BatchNorm2d(channels + skip),
                    _conv_block(channels + skip, channels),
                    _conv_block(channels, channels, 1),
                )
            )
        self.out = nn.Conv2d(channels, 3, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        skips = []
        h = z
        for skip, down in zip(self.skips, self.down):
            skips.append(skip(h))
            h = down(h)
        for up, s in zip(self.up, reversed(skips)):
            h = F.interpolate(h, size=s.shape[-2:], mode="bilinear", align_corners=False)
            h = up(torch.cat([h, s], 1))
        return torch.sigmoid(self.out(h))


class DIPParam(ImageParam):
    """Deep Image Prior: a seeded, untrained :class:`DIPNet` applied to fixed seeded noise
    (uniform, scaled by 1/10 as in the paper). The network is in training mode (BatchNorm on the
    one image's statistics), as DIP runs it; the noise is a buffer, so it is checkpointed."""

    def __init__(self, size: int, seed: int, noise_channels: int = 32) -> None:
        super().__init__()
        self.size = size
        depth = max(1, min(5, size.bit_length() - 4))  # 128 px: 4 levels, down to 8 x 8; 16 px: 1
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("noise", torch.rand(1, noise_channels, size, size, generator=gen) / 10)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = DIPNet(depth=depth, noise_channels=noise_channels)

    def forward(self) -> torch.Tensor:
        return self.net(self.noise)


def random_start(kind: str, size: int, seed: int) -> torch.Tensor:
    """The seeded random image a parameterisation starts from, ``[1, 3, S, S]``.

    Pixels start from white noise around grey (featinv's start since the first release). The
    sigmoid parameterisations start from grey plus seeded noise on a 4 x 4 grid in their own
    decorrelated colour space, upsampled: white noise would sit in their finest coefficients, which
    move slowest, and linger in flat regions, and noise drawn in RGB would put strong colour into
    the weak decorrelated channels (measured at relu3_3 on astronaut and camera: +1.4 dB PSNR,
    SSIM 0.56 -> 0.72).
    """
    gen = torch.Generator().manual_seed(seed)
    if kind == "pixel":
        return (0.5 + 0.1 * torch.randn(1, 3, size, size, generator=gen)).clamp(0, 1)
    coarse = 0.4 * torch.randn(1, 3, 4, 4, generator=gen)  # logits: about 0.1 in pixel values
    return decorrelated_to_rgb(F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False))


def make_param(
    kind: str,
    size: int,
    seed: int = 0,
    start: torch.Tensor | None = None,
    chroma_scale: int = 1,
    *,
    clamp: bool = True,
    bound: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> ImageParam:
    """The parameterisation ``kind`` (see :data:`PARAMS`) of an ``size x size`` image.

    ``start`` (``[1, 3, S, S]`` in [0, 1]) is the image to begin from: ``pixel``, ``fourier``
    and ``pyramid`` represent it exactly; without it, they start from :func:`random_start`.
    ``dip`` starts from its own seeded network and takes no ``start``. ``chroma_scale`` N > 1
    (``fourier``, ``pyramid``): colour changes over N pixels or more, brightness at every pixel.
    ``clamp`` and ``bound``: the projection of ``pixel`` (see :class:`PixelParam`); the others
    map into [0, 1] by construction.

    >>> make_param("pixel", 4, start=torch.full((1, 3, 4, 4), 0.25))().unique().tolist()
    [0.25]
    """
    if kind == CUSTOM_PARAM:
        raise ConfigError(
            "param 'custom' is an nn.Module of your own, passed from Python "
            "(featinv.invert(..., param=module)); pass it again to resume such a run "
            f"(built-in ones: {', '.join(PARAMS)})"
        )
    if kind not in PARAMS:
        raise ConfigError(f"unknown param {kind!r}: expected one of {', '.join(PARAMS)}.{did_you_mean(kind, PARAMS)}")
    if chroma_scale != 1 and kind not in CHROMA_PARAMS:
        raise ConfigError(
            f"chroma_scale {chroma_scale} needs param {' or '.join(CHROMA_PARAMS)}, "
            f"got param {kind!r} (use chroma_scale 1)"
        )
    if kind == "dip":
        if start is not None:
            raise ValueError("dip draws its own start: it cannot begin from a given image")
        return DIPParam(size, seed)
    if start is None:
        start = random_start(kind, size, seed)
    if start.shape != (1, 3, size, size):
        raise ValueError(f"start must be [1, 3, {size}, {size}], got {list(start.shape)}")
    if kind == "pixel":
        return PixelParam(start, clamp, bound)
    if kind == "fourier":
        return FourierParam(start, chroma_scale=chroma_scale)
    return PyramidParam(start, chroma_scale=chroma_scale)


def fit_error(param: ImageParam, target: torch.Tensor, steps: int = 100, lr: float = 0.05) -> float:
    """Fit ``param`` directly to ``target`` (``[1, 3, S, S]``, no network) with Adam on the mean
    squared error, and return the final error: how well a parameterisation can express an image.

    >>> p = make_param("pixel", 8, seed=1)
    >>> fit_error(p, torch.full((1, 3, 8, 8), 0.3), steps=200, lr=0.05) < 1e-4
    True
    """
    optimizer = torch.optim.Adam(param.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.mse_loss(param(), target)
        loss.backward()
        optimizer.step()
        if isinstance(param, PixelParam):
            with torch.no_grad():
                param.pixels.clamp_(0, 1)
    with torch.no_grad():
        return F.mse_loss(param(), target).item()
