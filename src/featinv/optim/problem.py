"""The problem of a batch of inversions: the network, its preprocessing, the targets' features and
the objective. Given images, it answers "how far are they?"; it owns no image and no optimiser.

>>> from featinv.config import InvertConfig
>>> problem = Problem([InvertConfig(model="resnet18", weights="none", layers=("res1",), size=16)])
>>> total, parts = problem.losses(problem.target, problem.target)
>>> round(parts["feat_res1"].item(), 6), problem.stride, problem.configs[0].tv
(0.0, 4, 0.5)
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import torch

from ..config import InvertConfig, resolved
from ..errors import ConfigError, FeatinvWarning
from ..files import load_target
from ..nets.extractor import FeatureExtractor, frozen
from ..nets.layers import LayerRequest, check_invertible, default_layer, parse_layers, stride_of
from ..nets.models import LoadedModel, load_model
from ..nets.perf import native_precision, use_channels_last
from ..nets.preprocess import preset
from ..nets.sizing import check_size
from .compose import Features, Sum, alpha_norm, tv
from .defaults import resolve_defaults
from .masks import channel_mask, window_mask
from .objectives import Objective


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available here: use --device cpu")
    return device


class Problem:
    """Network, preprocessing, targets ``[B, 3, S, S]`` and their features (computed once), for
    configs that agree on ``featinv.config.BATCH_SHARED``.

    ``stride`` is the deepest requested layer's downsampling (:func:`featinv.nets.layers.stride_of`);
    ``configs`` are the configs with the values left to the layer filled in for it
    (:func:`featinv.optim.defaults.resolve_defaults`: what a run folder's config.yaml records), and
    the objective is ``objective`` (a :class:`~featinv.optim.compose.Sum` of the user's) or what
    those configs ask for (:meth:`config_objective`), bound to the targets' features.
    ``images`` maps the configs' image names to images already read or to files' bytes (see
    :func:`featinv.files.read_image`); other names are read from disk.
    """

    def __init__(
        self,
        configs: Sequence[InvertConfig],
        model: LoadedModel | None = None,
        images: Mapping[str, bytes | torch.Tensor] | None = None,
        objective: Sum | None = None,
    ) -> None:
        first = configs[0]
        self.device = resolve_device(first.device)
        self.precision = first.precision
        self.model = model or load_model(first.model, first.weights, self.device)
        self.model.module.to(self.device)
        self.preprocess = preset(first.preprocess) if first.preprocess else self.model.preprocess
        layer_spec = first.layers or (self.model.default_layer or default_layer(self.model.module, first.size),)
        self.requests: tuple[LayerRequest, ...] = parse_layers(list(layer_spec))
        self.layers = tuple(f"{r.name}:{r.weight:g}" if r.weight != 1 else r.name for r in self.requests)
        self.extractor = FeatureExtractor(self.model.module, [r.name for r in self.requests])
        self.memory_format = torch.channels_last if use_channels_last(self.device) else torch.contiguous_format
        if not native_precision(self.device, first.precision):
            warnings.warn(
                f"precision {first.precision} has no native kernels on this CPU and is emulated: "
                f"expect it to be much slower than fp32 (measured 26x for fp16 on a CPU without "
                f"AVX512-FP16); use --precision fp32",
                FeatinvWarning,
                stacklevel=3,
            )
        if self.memory_format == torch.channels_last:  # on a copy: the user's model keeps its layout
            self.extractor.own_weights(self.memory_format)
        with frozen(self.model.module):  # before any image is read: a size that cannot work is refused
            check_size(
                self.features, first.size, len(configs), self.device, f"{', '.join(self.layers)} of {self.model.name}"
            )
        loaded: dict[str, torch.Tensor] = {}  # restarts of one trial share its image
        for c in configs:
            if c.image not in loaded:
                loaded[c.image] = load_target(c.image, c.size, images)
        self.target = torch.stack([loaded[c.image] for c in configs]).to(self.device)
        with torch.no_grad(), frozen(self.model.module):
            self.target_features = self.features(self.target)
        check_invertible(self.model.module, self.target_features, first.size)
        self.masks = self._masks(configs)
        self._fields: dict = {}  # receptive fields of --window layers, by layer
        self.target_features = self.kept(self.target_features)
        self.stride = stride_of(first.size, [f.shape for f in self.target_features.values()])
        self.configs = [resolve_defaults(c.replace(layers=self.layers), self.stride) for c in configs]
        spec = objective if objective is not None else self.config_objective(self.configs)
        self.objective: Objective = spec.bind(self.target_features, self.preprocess.centred)

    def _masks(self, configs: Sequence[InvertConfig]) -> dict[str, torch.Tensor]:
        """Each layer's 0/1 mask ``[B, ...]`` from the configs' ``channels`` and ``window`` (none when
        no config asks: the common case costs nothing)."""
        if not any(c.channels or c.window for c in configs):
            return {}
        masks = {}
        for layer, features in self.target_features.items():
            per_image = []
            for b, c in enumerate(configs):
                one = features[b : b + 1]
                mask = torch.ones_like(one)
                if c.channels:
                    mask = mask * channel_mask(c.channels, one)
                if c.window:
                    mask = mask * window_mask(c.window, one)
                per_image.append(mask)
            masks[layer] = torch.cat(per_image)
        return masks

    def window_pixels(self, config: InvertConfig) -> dict | None:
        """For a ``--window`` run: the deepest layer's receptive field and the pixels
        ``[top, left, bottom, right]`` (inclusive) the window's cells see; None otherwise."""
        if not config.window:
            return None
        from ..nets.receptive import receptive_field, window_pixels

        maps = {r.name: self.target_features[r.name] for r in self.requests if self.target_features[r.name].dim() == 4}
        layer = min(maps, key=lambda name: maps[name].shape[-1])
        if layer not in self._fields:  # tracing the graph is slow: once a layer
            self._fields[layer] = receptive_field(self.model.module, layer, config.size)
        field = self._fields[layer]
        rows, cols = ([int(v) for v in part.split(":")] for part in config.window.split(","))
        box = window_pixels(field, (rows[0], rows[1]), (cols[0], cols[1]), config.size)
        return {
            "cells": config.window,
            "layer": layer,
            "receptive_field_px": field.size,
            "cell_stride_px": field.jump,
            "pixels": list(box),
        }

    def kept(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``features`` with what ``--channels`` / ``--window`` leave out set to zero."""
        if not self.masks:
            return features
        return {k: v * self.masks[k] if k in self.masks else v for k, v in features.items()}

    def config_objective(self, configs: Sequence[InvertConfig]) -> Sum:
        """What the configs ask for, as a sum: each requested layer with its weight (and its
        ``channels`` / ``window`` masks, one per image), TV and the alpha-norm with each image's
        weights (one number when the batch agrees, a ``[B]`` tensor otherwise)."""

        def per_trial(name: str) -> float | torch.Tensor:
            values = [float(getattr(c, name)) for c in configs]
            return values[0] if len(set(values)) == 1 else torch.tensor(values, device=self.device)

        first = configs[0]
        space = "network" if first.prior_space == "network" else "rgb"
        objective = sum(
            (Sum(((r.weight, Features(r.name, mask=self.masks.get(r.name))),)) for r in self.requests),
            start=per_trial("tv") * tv(first.tv_beta, kind=first.tv_kind, space=space),
        )
        objective = Sum(objective.parts[1:] + objective.parts[:1])  # the feature terms first, as logged
        if any(resolved(c.alpha_norm, "alpha_norm") > 0 for c in configs):
            objective = objective + per_trial("alpha_norm") * alpha_norm(resolved(first.alpha, "alpha"), space=space)
        return objective

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Preprocess RGB [0, 1] images ``[B, 3, S, S]`` and run the truncated network on them
        (autocast if asked; the losses are always computed in fp32)."""
        x = self.preprocess(x).contiguous(memory_format=self.memory_format)
        if self.precision == "fp32":
            return self.extractor(x)
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        with torch.autocast(self.device.type, dtype=dtype):
            features = self.extractor(x)
        return {k: v.float() for k, v in features.items()}

    def losses(self, x: torch.Tensor, seen: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Per-image losses ``[B]`` and their terms: the network sees ``seen`` (``x`` after the
        transforms), the priors ``x``."""
        return self.objective(x, self.features(seen))

    def feature_errors(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The unweighted normalised feature error of ``images`` at each layer ``{layer: [B]}``."""
        with torch.no_grad():
            return self.objective.feature_error(self.features(images))
