"""The parts of an inversion, built from configs: the problem (network, targets, objective), one
image parameterisation and transforms per image (grouped into trials by
:class:`~featinv.optim.restarts.Restarts`) and the stepper. The loop
(:class:`~featinv.optim.inversion.Inversion`) takes them as objects; the config is one way of
building them, and a parameterisation or objective of the user's replaces the config's.

>>> from featinv.config import InvertConfig
>>> parts = build_parts([InvertConfig(model="resnet18", weights="none", layers=("res1",), size=16, restarts=2)])
>>> len(parts.restarts.slots), [s.config.seed for s in parts.restarts.slots], parts.configs[0].param
(2, [0, 1], 'pyramid')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import torch

from ..config import BATCH_SHARED, InvertConfig, batch_key, resolved
from ..errors import ConfigError
from ..files import load_target
from ..nets.models import LoadedModel
from ..specs import CUSTOM_PARAM
from .compose import Sum
from .defaults import transform_amounts
from .params import make_param
from .problem import Problem
from .restarts import Restarts, Slot
from .stepper import Stepper
from .transforms import Transforms


@dataclass
class Parts:
    """What the loop runs: ``configs`` are the trials' configs, resolved (what config.yaml records)."""

    configs: list[InvertConfig]
    problem: Problem
    restarts: Restarts
    stepper: Stepper
    objective: Sum | None = None  # the user's, when one was passed (recorded in the summary)


def build_parts(
    configs: Sequence[InvertConfig],
    model: LoadedModel | None = None,
    images: Mapping[str, bytes | torch.Tensor] | None = None,
    *,
    param: torch.nn.Module | None = None,
    objective: Sum | None = None,
) -> Parts:
    """The parts for a batch of trials (configs that agree on ``featinv.config.BATCH_SHARED``).
    Everything that can fail on bad input (image, model, layers, a module of the user's) fails
    here, before anything runs."""
    check_batchable(configs)
    check_parts(configs, param, objective)
    trial_of = [i for i, c in enumerate(configs) for _ in range(c.restarts)]
    problem = Problem([c for config in configs for c in restart_configs(config)], model, images, objective)
    slots = []
    for trial, c in zip(trial_of, problem.configs):
        if param is not None:
            image_param = user_param(param, c.size, problem.device)
        else:
            bound = partial(problem.preprocess.bound_pixel_norm, bound=c.pixel_bound) if c.pixel_bound else None
            chroma = resolved(c.chroma_scale, "chroma_scale")
            start = start_image(c, images)
            image_param = make_param(
                resolved(c.param, "param"), c.size, c.seed, start, chroma, clamp=c.clamp, bound=bound
            ).to(problem.device)
        last_good = [t.detach().clone() for t in image_param.parameters()]
        slots.append(Slot(trial, c, image_param, Transforms(transform_amounts(c), c.seed + 1), last_good))
    restarts = Restarts(slots)
    stepper = Stepper([s.config for s in slots], [s.tensors for s in slots])
    trials = [problem.configs[restarts.of(i)[0]] for i in range(len(configs))]
    return Parts(trials, problem, restarts, stepper, objective)


def restart_configs(config: InvertConfig) -> list[InvertConfig]:
    """A trial's restarts: the same config with seeds ``seed, seed + 1, ...``."""
    return [config if k == 0 else config.replace(seed=config.seed + k) for k in range(config.restarts)]


def start_image(config: InvertConfig, images: Mapping[str, bytes | torch.Tensor] | None = None) -> torch.Tensor | None:
    """The image a parameterisation starts from: ``[1, 3, S, S]``, or None for its own seeded
    random start (``noise``)."""
    if config.init == "noise":
        return None
    if config.init == "grey":
        return torch.full((1, 3, config.size, config.size), 0.5)
    return load_target(config.init, config.size, images)[None].clamp(0, 1)


def check_batchable(configs: Sequence[InvertConfig]) -> None:
    if not configs:
        raise ConfigError("an inversion needs at least one config")
    if len({batch_key(c) for c in configs}) > 1:
        raise ConfigError(f"configs in one batch must agree on {', '.join(BATCH_SHARED)}")
    if configs[0].optimizer == "lbfgs" and (len(configs) > 1 or configs[0].restarts > 1):
        raise ConfigError("L-BFGS runs one trial at a time, without restarts (it has a single parameter group)")


def check_parts(configs: Sequence[InvertConfig], param: torch.nn.Module | None, objective: Sum | None) -> None:
    """A module or objective of the user's drives one trial: there is one of each."""
    if param is not None and (len(configs) > 1 or configs[0].restarts > 1):
        raise ConfigError(
            "your own parameterisation is one module: it runs one trial without restarts "
            f"(got {len(configs)} trial(s), restarts {configs[0].restarts})"
        )
    if (param is not None) != (configs[0].param == CUSTOM_PARAM):
        raise ConfigError(
            "param 'custom' is an nn.Module of your own, passed from Python "
            "(featinv.invert(..., param=module)); from a config, use pixel, fourier, pyramid or dip"
        )
    if objective is not None and len(configs) > 1:
        raise ConfigError("an objective of your own drives one trial (a batch builds its own from the configs)")


def user_param(module: torch.nn.Module, size: int, device: torch.device) -> torch.nn.Module:
    """The user's parameterisation, on the run's device, checked: ``forward()`` gives
    ``[1, 3, size, size]`` and something is optimised."""
    module.to(device)
    if not any(p.requires_grad for p in module.parameters()):
        raise ConfigError(f"your parameterisation ({type(module).__name__}) has no parameters to optimise")
    with torch.no_grad():
        image = module()
    shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
    if shape != (1, 3, size, size):
        raise ConfigError(
            f"your parameterisation's forward() must return an image [1, 3, {size}, {size}] "
            f"in [0, 1] (size {size}), got {shape}"
        )
    return module
