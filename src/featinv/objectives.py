"""Objectives to pass to :func:`featinv.invert`: terms that compose with ``+`` and scalar ``*``.

>>> from featinv.objectives import features, tv, channel
>>> features("relu3_3") + 0.5 * tv()
features('relu3_3') + 0.5 * tv()
>>> import featinv
>>> result = featinv.invert("skimage:astronaut", model="resnet18", weights="none", size=32, steps=2,
...                         objective=features("res1") + 0.5 * tv())  # doctest: +SKIP

Reconstruction: :func:`features` (a layer's features, or the part ``channels`` / ``window`` keep).
Priors: :func:`tv`, :func:`alpha_norm`. Feature visualisation (maximised): :func:`channel`,
:func:`neuron`. The terms themselves live in :mod:`featinv.optim.compose`.
"""

from __future__ import annotations

from .optim.compose import Sum, alpha_norm, channel, features, neuron, tv

__all__ = ["Sum", "alpha_norm", "channel", "features", "neuron", "tv"]
