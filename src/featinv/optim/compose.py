"""Objectives written from Python: ``features("relu3_3") + 0.5 * tv()``.

What a user writes names layers, not target tensors: each builder returns a :class:`Sum` of
weighted specs, and ``+`` / scalar ``*`` combine them. A run binds the sum to its target's
features (:meth:`Sum.bind`), which gives the :class:`~featinv.optim.objectives.Objective` the
loop minimises. The CLI's ``--layers``, ``--tv``, ``--alpha-norm``, ``--channels`` and ``--window``
build the same sums (:meth:`featinv.optim.problem.Problem.config_objective`).

>>> import torch
>>> objective = features("a") + 0.5 * tv()
>>> objective
features('a') + 0.5 * tv()
>>> bound = objective.bind({"a": torch.ones(1, 4)})
>>> total, parts = bound(torch.zeros(1, 3, 4, 4), {"a": torch.ones(1, 4)})
>>> total.item(), sorted(parts)
(0.0, ['feat_a', 'tv'])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from ..errors import ConfigError
from ..specs import check_channels, check_window
from .objectives import ActivationTerm, AlphaTerm, FeatureTerm, Objective, Space, Term, TVTerm, Weight

Targets = Mapping[str, torch.Tensor]  # the target image's features by layer, [B, ...]


@dataclass(frozen=True, eq=False)  # __eq__ below: a tensor field has no truth value
class Features:
    """Match the target's features at ``layer``, or the part ``channels`` / ``window`` keep."""

    layer: str
    channels: str | None = None
    window: str | None = None
    mask: torch.Tensor | None = None  # given by the config path: one 0/1 mask per image

    def bind(self, weight: Weight, targets: Targets, centred: Space) -> Term:
        from .masks import channel_mask, window_mask

        target = targets[self.layer]
        mask = self.mask
        for spec, make in ((self.channels, channel_mask), (self.window, window_mask)):
            if spec:
                mask = make(spec, target) if mask is None else mask * make(spec, target)
        return FeatureTerm(self.layer, target, weight, mask)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Features)
            and (self.layer, self.channels, self.window) == (other.layer, other.channels, other.window)
            and self.mask is other.mask
        )

    def __hash__(self) -> int:
        return hash((self.layer, self.channels, self.window, id(self.mask)))

    def __repr__(self) -> str:
        options = "".join(f", {k}={v!r}" for k, v in (("channels", self.channels), ("window", self.window)) if v)
        return f"features({self.layer!r}{options})"


@dataclass(frozen=True)
class TV:
    """Total variation ``TV^beta`` of the image (see :func:`~featinv.optim.objectives.total_variation`)."""

    beta: float = 2.0
    kind: str = "iso"
    space: str = "rgb"

    def bind(self, weight: Weight, targets: Targets, centred: Space) -> Term:
        return TVTerm(weight, self.beta, self.kind, centred if self.space == "network" else None)

    def __repr__(self) -> str:
        options = [f"beta={self.beta:g}"] * (self.beta != 2) + [f"kind={self.kind!r}"] * (self.kind != "iso")
        return f"tv({', '.join(options + [f'space={self.space!r}'] * (self.space != 'rgb'))})"


@dataclass(frozen=True)
class AlphaNorm:
    """The alpha-norm prior (see :class:`~featinv.optim.objectives.AlphaTerm`)."""

    alpha: float = 6.0
    space: str = "rgb"

    def bind(self, weight: Weight, targets: Targets, centred: Space) -> Term:
        return AlphaTerm(weight, self.alpha, centred if self.space == "network" else None)

    def __repr__(self) -> str:
        return f"alpha_norm({self.alpha:g}" + (f", space={self.space!r})" if self.space != "rgb" else ")")


@dataclass(frozen=True)
class Activation:
    """Make ``channel`` of ``layer`` fire: its mean over the map, or (``neuron``) one cell
    ``(y, x)``, the centre of the map where not given."""

    layer: str
    channel: int
    neuron: bool = False
    y: int | None = None
    x: int | None = None

    def bind(self, weight: Weight, targets: Targets, centred: Space) -> Term:
        shape = tuple(targets[self.layer].shape[1:])
        if not 0 <= self.channel < shape[0]:
            raise ConfigError(
                f"channel {self.channel} of {self.layer} does not exist: the layer has "
                f"{shape[0]} channels (0 to {shape[0] - 1})"
            )
        if not self.neuron:
            return ActivationTerm(self.layer, self.channel, None, weight, f"channel_{self.layer}_{self.channel}")
        if len(shape) != 3:
            raise ConfigError(f"neuron() needs a layer with a spatial map, {self.layer}'s output is {list(shape)}")
        y = shape[1] // 2 if self.y is None else self.y
        x = shape[2] // 2 if self.x is None else self.x
        if not (0 <= y < shape[1] and 0 <= x < shape[2]):
            raise ConfigError(f"neuron ({y}, {x}) is outside {self.layer}'s {shape[1]}x{shape[2]} map")
        return ActivationTerm(self.layer, self.channel, (y, x), weight, f"neuron_{self.layer}_{self.channel}")

    def __repr__(self) -> str:
        if not self.neuron:
            return f"channel({self.layer!r}, {self.channel})"
        where = "" if self.y is None and self.x is None else f", {self.y}, {self.x}"
        return f"neuron({self.layer!r}, {self.channel}{where})"


Spec = Features | TV | AlphaNorm | Activation


@dataclass(frozen=True)
class Sum:
    """A weighted sum of specs. ``+`` adds sums, ``*`` scales one by a number (or, for a batch,
    a tensor of one weight per image).

    >>> 2 * (features("relu3_3") - 0.25 * tv())
    2 * features('relu3_3') + -0.5 * tv()
    >>> (features("relu3_3") + channel("pool5", 3)).layers
    ('relu3_3', 'pool5')
    """

    parts: tuple[tuple[Weight, Spec], ...]

    def __add__(self, other: object) -> Sum:
        if not isinstance(other, Sum):
            return NotImplemented
        return Sum(self.parts + other.parts)

    def __radd__(self, other: object) -> Sum:
        if isinstance(other, (int, float)) and other == 0:  # sum([...]) starts from 0
            return self
        return NotImplemented

    def __mul__(self, scale: object) -> Sum:
        if isinstance(scale, torch.Tensor):
            return Sum(tuple((scale * w, s) for w, s in self.parts))
        if isinstance(scale, bool) or not isinstance(scale, (int, float)):
            return NotImplemented
        return Sum(tuple((float(scale) * w, s) for w, s in self.parts))

    __rmul__ = __mul__

    def __neg__(self) -> Sum:
        return -1.0 * self

    def __sub__(self, other: object) -> Sum:
        if not isinstance(other, Sum):
            return NotImplemented
        return self + -other

    @property
    def layers(self) -> tuple[str, ...]:
        """The layers the network must output, in the order first named."""
        return tuple(dict.fromkeys(s.layer for _, s in self.parts if isinstance(s, (Features, Activation))))

    def bind(self, targets: Targets, centred: Space = None) -> Objective:
        """The objective against ``targets``; ``centred`` maps RGB [0, 1] to the network's
        mean-subtracted space (for priors with ``space="network"``)."""
        missing = [layer for layer in self.layers if layer not in targets]
        if missing:
            raise ConfigError(
                f"the objective names {', '.join(missing)}, which the run does not extract "
                f"(it has {', '.join(targets)})"
            )
        terms = [spec.bind(weight, targets, centred) for weight, spec in self.parts]
        counts: dict[str, int] = {}
        for term in terms:  # two terms of one kind on one layer keep a log column each
            counts[term.name] = counts.get(term.name, 0) + 1
            if counts[term.name] > 1:
                term.name = f"{term.name}_{counts[term.name]}"
        return Objective(terms)

    def __repr__(self) -> str:
        def one(weight: Weight, spec: Spec) -> str:
            if isinstance(weight, torch.Tensor):
                return f"{weight.tolist()} * {spec!r}"
            return repr(spec) if weight == 1 else f"{weight:g} * {spec!r}"

        return " + ".join(one(w, s) for w, s in self.parts)


def features(layer: str, *, channels: str | None = None, window: str | None = None) -> Sum:
    """Reconstruct ``layer``'s features (the papers' normalised distance); ``channels``
    (``"0:64"``, ``"3,7,12"``, ``"top:K"``) and ``window`` (``"y0:y1,x0:x1"`` in feature-map
    cells) keep a part of the layer, as ``--channels`` and ``--window`` do.

    >>> features("pool5", channels="top:32", window="1:3,1:3")
    features('pool5', channels='top:32', window='1:3,1:3')
    """
    channels = None if channels is None else str(channels)
    if channels is not None:
        check_channels(channels)
    if window is not None:
        check_window(window)
    return Sum(((1.0, Features(layer, channels, window)),))


def tv(beta: float = 2.0, *, kind: str = "iso", space: str = "rgb") -> Sum:
    """Total variation ``TV^beta`` (``kind``: iso, vector or l1) as a mean over the pixels of the
    image in RGB [0, 1], or in the network's centred space (``space="network"``, as the papers).

    >>> tv(beta=1, kind="vector")
    tv(beta=1, kind='vector')
    """
    if kind not in ("iso", "vector", "l1"):
        raise ConfigError(f"tv kind must be iso, vector or l1, got {kind!r}")
    return Sum(((1.0, TV(float(beta), kind, _space(space))),))


def alpha_norm(alpha: float = 6.0, *, space: str = "rgb") -> Sum:
    """The alpha-norm prior: mean ``|2x - 1|^alpha`` of the image (``space="network"``: each
    pixel's colour norm in the network's space, as the papers).

    >>> 0.01 * alpha_norm(6)
    0.01 * alpha_norm(6)
    """
    if not alpha > 0:
        raise ConfigError(f"alpha must be > 0, got {alpha!r}")
    return Sum(((1.0, AlphaNorm(float(alpha), _space(space))),))


def channel(layer: str, index: int) -> Sum:
    """Maximise channel ``index``'s mean activation at ``layer`` (feature visualisation: the term
    is minus that mean; add priors as usual, ``channel("relu4_3", 12) + 0.1 * tv()``).

    >>> channel("relu4_3", 12) + 0.1 * tv()
    channel('relu4_3', 12) + 0.1 * tv()
    """
    return Sum(((1.0, Activation(layer, int(index))),))


def neuron(layer: str, index: int, y: int | None = None, x: int | None = None) -> Sum:
    """Maximise one neuron: channel ``index`` of ``layer`` at cell ``(y, x)`` (the map's centre
    where not given).

    >>> neuron("relu4_3", 12, 3, 4)
    neuron('relu4_3', 12, 3, 4)
    """
    return Sum(((1.0, Activation(layer, int(index), True, y, x)),))


def _space(space: str) -> str:
    if space not in ("rgb", "network"):
        raise ConfigError(f"a prior's space is 'rgb' or 'network', got {space!r}")
    return space
