"""Loss terms: normalised feature distance and the image priors (TV^beta, alpha-norm).

Each quantity is a pure function returning one value per image (``[B]``), so a batch of
independent inversions can share one forward/backward pass. :class:`Objective` sums weighted
terms; every term goes to zero when the result is good (all of them are minimised).

Scales (chosen so the seed study's TV weights 0.1 / 1 / 10 mean something):
- the feature term is ``||phi(x) - phi0||^2 / ||phi0||^2``: 1.0 for an all-zero feature map,
  0 for a perfect match, comparable across layers;
- TV and the alpha-norm are *means* over pixels of the RGB [0, 1] image, so their values do
  not depend on image size: TV_2 of a natural photo is about 0.002-0.01, of uniform noise about 0.3.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

EPS = 1e-8


def squared_norm(x: torch.Tensor) -> torch.Tensor:
    """``||x_b||^2`` per image: ``[B, ...]`` -> ``[B]`` (one fused reduction).

    Reduces over the trailing dimensions in place of flattening, which would copy a
    channels-last feature map (and copy its gradient back) every step.
    """
    return torch.linalg.vector_norm(x, dim=tuple(range(1, x.dim()))).square()


class _NormalizedDistance(torch.autograd.Function):
    """``||f - t||^2 / n`` per image with its gradient ``2 (f - t) / n`` written out: three passes
    over the feature map (difference, norm, scale) where autograd's norm backward takes five."""

    @staticmethod
    def forward(ctx: Any, feature: torch.Tensor, target: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
        diff = feature - target
        ctx.save_for_backward(diff, norm)
        return squared_norm(diff) / norm

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        diff, norm = ctx.saved_tensors
        scale = (2 * grad / norm).view(-1, *([1] * (diff.dim() - 1)))
        return diff * scale, None, None


def normalized_feature_loss(
    feature: torch.Tensor, target: torch.Tensor, target_norm: torch.Tensor | None = None
) -> torch.Tensor:
    """``||f - f0||^2 / ||f0||^2`` per image: ``[B, ...]``, ``[B or 1, ...]`` -> ``[B]``.

    ``target_norm`` (``||f0||^2``, ``[B or 1]``) may be given to save recomputing it every step.

    >>> normalized_feature_loss(torch.zeros(2, 3), torch.ones(1, 3)).tolist()
    [1.0, 1.0]
    """
    norm = (squared_norm(target) if target_norm is None else target_norm).clamp_min(EPS)
    if target.requires_grad or norm.requires_grad:  # rare: let autograd differentiate everything
        return squared_norm(feature - target) / norm
    return _NormalizedDistance.apply(feature, target, norm.expand(feature.shape[0]).contiguous())


def total_variation(x: torch.Tensor, beta: float = 2.0, kind: str = "iso") -> torch.Tensor:
    """Total variation of ``[B, C, H, W]`` images -> ``[B]``, as a mean over pixels.

    ``kind="iso"``: mean of ``((x[i,j+1]-x[i,j])^2 + (x[i+1,j]-x[i,j])^2 + eps)^(beta/2)``
    over channels and the ``(H-1) x (W-1)`` pixels that have both neighbours (the paper's
    TV^beta; beta=2 is the seed's squared-difference form, beta=1 isotropic TV).
    ``kind="l1"``: mean ``|dx|`` plus mean ``|dy|`` (anisotropic, what the seed's
    ``tf.image.total_variation`` summed), ``beta`` ignored.
    ``kind="vector"``: as ``iso`` but the squared differences are summed over channels before
    the power, one value per pixel (the papers' TV^beta of a colour image).

    >>> total_variation(torch.tensor([[[[0., 1.], [0., 1.]]]]), beta=2).item()
    1.0
    """
    if kind == "l1":
        dx = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).mean(1)
        dy = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).mean(1)
        return dx + dy
    if kind not in ("iso", "vector"):
        raise ValueError(f"TV kind must be 'iso', 'vector' or 'l1', got {kind!r}")
    return _TotalVariation.apply(x, float(beta), kind == "vector")


class _TotalVariation(torch.autograd.Function):
    """TV^beta (``iso`` / ``vector``) with its gradient written out: about half the kernels
    autograd launches for the same sums (four slice-backward scatters become three in-place adds),
    which counts on a GPU, where a small step's time goes to launches."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, beta: float, vector: bool) -> torch.Tensor:
        dx = x[..., :-1, 1:] - x[..., :-1, :-1]
        dy = x[..., 1:, :-1] - x[..., :-1, :-1]
        squared = torch.addcmul(dx * dx, dy, dy)
        if vector:
            squared = squared.sum(1, keepdim=True)
        # eps keeps the gradient finite where the image is flat (beta < 2); exact for beta = 2.
        value = squared if beta == 2 else (squared + EPS).pow(beta / 2)
        ctx.save_for_backward(dx, dy, squared)
        ctx.beta, ctx.count, ctx.shape = beta, value[0].numel(), x.shape
        return value.flatten(1).mean(1)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        dx, dy, squared = ctx.saved_tensors
        # d mean / d squared = 1 / count; d squared / d dx = 2 dx (and likewise for dy)
        scale = (grad * (2.0 / ctx.count)).view(-1, 1, 1, 1)
        if ctx.beta != 2:
            scale = scale * (ctx.beta / 2) * (squared + EPS).pow(ctx.beta / 2 - 1)
        gx, gy = dx * scale, dy * scale
        out = dx.new_zeros(ctx.shape)
        out[..., :-1, 1:] += gx
        out[..., 1:, :-1] += gy
        out[..., :-1, :-1] -= gx + gy
        return out, None, None


def alpha_norm(x: torch.Tensor, alpha: float = 6.0) -> torch.Tensor:
    """Mean ``|2x - 1|^alpha`` per image -> ``[B]``: the paper's alpha-norm of the centred image.

    Centred and scaled to [-1, 1], it is <= 1 inside the valid range and grows fast outside it.

    >>> alpha_norm(torch.ones(1, 3, 2, 2), alpha=6).item()
    1.0
    """
    return (2 * x - 1).abs().pow(alpha).flatten(1).mean(1)


def pixel_norm_power(x: torch.Tensor, alpha: float = 6.0) -> torch.Tensor:
    """Mean over pixels of ``||x[:, i, j]||^alpha`` (each pixel's colour vector) -> ``[B]``:
    the papers' alpha-norm prior, for images in the network's mean-subtracted space.

    >>> pixel_norm_power(torch.full((1, 3, 2, 2), 2.0), alpha=2).item()
    12.0
    """
    return x.pow(2).sum(1).pow(alpha / 2).flatten(1).mean(1)


Weight = float | torch.Tensor  # a scalar, or one weight per image ([B])


@dataclass
class FeatureTerm:
    """Normalised distance to the target's features at one layer; ``mask`` (0/1, broadcast over
    ``[B, ...]``) keeps a part of the layer (``--channels``, ``--window``): the target is masked
    once, the features every step."""

    layer: str
    target: torch.Tensor
    weight: Weight = 1.0
    mask: torch.Tensor | None = None
    name: str = ""

    def __post_init__(self) -> None:
        self.target = self.target.detach() if self.mask is None else (self.target * self.mask).detach()
        self.name = self.name or f"feat_{self.layer}"
        self.target_norm = squared_norm(self.target)  # constants: computed once, not every step
        self._divisor = self.target_norm.clamp_min(EPS).contiguous()

    def __call__(self, x: torch.Tensor, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        feature = features[self.layer]
        if self.mask is not None:
            feature = feature * self.mask
        if feature.shape[0] != self._divisor.shape[0]:  # one target for a batch of images
            return normalized_feature_loss(feature, self.target, self.target_norm)
        return _NormalizedDistance.apply(feature, self.target, self._divisor)

    def error(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The unweighted normalised error ``[B]`` of ``features`` at this layer."""
        feature = features[self.layer] if self.mask is None else features[self.layer] * self.mask
        return normalized_feature_loss(feature, self.target, self.target_norm)


Space = Callable[[torch.Tensor], torch.Tensor] | None  # where a prior sees the image (None: RGB [0, 1])


@dataclass
class TVTerm:
    """Total-variation prior (see :func:`total_variation`), optionally in another pixel space."""

    weight: Weight = 1.0
    beta: float = 2.0
    kind: str = "iso"
    space: Space = None
    name: str = "tv"

    def __call__(self, x: torch.Tensor, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return total_variation(self.space(x) if self.space else x, self.beta, self.kind)


@dataclass
class AlphaTerm:
    """Alpha-norm prior: :func:`alpha_norm` on RGB [0, 1], or :func:`pixel_norm_power` in ``space``."""

    weight: Weight = 1.0
    alpha: float = 6.0
    space: Space = None
    name: str = "alpha"

    def __call__(self, x: torch.Tensor, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return pixel_norm_power(self.space(x), self.alpha) if self.space else alpha_norm(x, self.alpha)


@dataclass
class ActivationTerm:
    """Minus the mean activation of ``channel`` at ``layer`` (at one position ``(y, x)`` for a
    neuron): minimising it makes the channel fire, as in feature visualisation."""

    layer: str
    channel: int
    position: tuple[int, int] | None = None
    weight: Weight = 1.0
    name: str = ""

    def __call__(self, x: torch.Tensor, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        activation = features[self.layer][:, self.channel]
        if self.position is not None:
            activation = activation[:, self.position[0], self.position[1]]
            return -activation
        return -activation.flatten(1).mean(1)


Term = FeatureTerm | TVTerm | AlphaTerm | ActivationTerm


@dataclass
class Objective:
    """A weighted sum of terms. Calling it gives the per-image total ``[B]`` and each raw term.

    >>> obj = Objective([TVTerm(weight=10.0)])
    >>> total, parts = obj(torch.zeros(1, 3, 4, 4), {})
    >>> total.item(), list(parts)
    (0.0, ['tv'])
    """

    terms: Sequence[Term] = field(default_factory=list)

    @property
    def layers(self) -> list[str]:
        return [t.layer for t in self.terms if isinstance(t, FeatureTerm)]

    def __call__(
        self, x: torch.Tensor, features: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        parts: dict[str, torch.Tensor] = {}
        total: torch.Tensor | None = None
        for term in self.terms:
            value = term(x, features)
            parts[term.name] = value
            weight = term.weight
            if not isinstance(weight, torch.Tensor) and weight == 0:
                continue  # reported, not optimised
            if isinstance(weight, torch.Tensor) or weight != 1:
                value = weight * value
            total = value if total is None else total + value
        return (x.new_zeros(x.shape[0]) if total is None else total), parts

    def feature_error(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The unweighted normalised error of each feature term ``{layer: [B]}``."""
        return {t.layer: t.error(features) for t in self.terms if isinstance(t, FeatureTerm)}
