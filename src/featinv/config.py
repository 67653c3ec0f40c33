"""Run configuration: one frozen dataclass, loaded from YAML, checked on creation.

Unknown keys are errors (with the closest valid key); every value is checked before any
work starts, and the fully resolved config is what a run folder's ``config.yaml`` holds.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError, did_you_mean
from .specs import OFFLINE_MODELS, PARAMS, PRESET_NAMES, RECIPES, SAMPLES

OPTIMIZERS = ("adam", "sgd", "lbfgs")
TV_KINDS = ("iso", "vector", "l1")
PRIOR_SPACES = ("rgb", "network")
PRECISIONS = ("fp32", "bf16", "fp16")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile's


# Fields whose default (None, 'auto' in YAML) is chosen by the layer (see featinv.optim.defaults).
T = TypeVar("T")
AUTO = ("param", "lr", "tv", "alpha_norm", "alpha", "transforms", "jitter_off_last", "chroma_scale")


def option(default: Any, help: str, choices: tuple[str, ...] = ()) -> Any:
    """A config field with what it means (and its valid values): the one source the CLI's flags,
    their help and ``help(featinv.invert)`` are generated from (see :mod:`featinv.options`)."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class InvertConfig:
    """Everything that defines one inversion. Defaults give a good result on the offline VGG16.

    >>> InvertConfig(lr=0.1).lr
    0.1
    >>> InvertConfig(steps=0)
    Traceback (most recent call last):
    ...
    featinv.errors.ConfigError: steps must be a positive integer, got 0
    """

    image: str = option(
        "skimage:chelsea",
        "the photo to reconstruct: an image file or a built-in photo, "
        + ", ".join(
            f"{prefix}NAME ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
            for prefix, names in SAMPLES.items()
        ),
    )
    model: str = option(
        "vgg16_offline",
        f"network: {', '.join(OFFLINE_MODELS)} (offline weights), a torchvision name (e.g. vgg16_bn, "
        "resnet18), timm:NAME, or a .onnx file",
    )
    weights: str | None = option(
        None,
        "torchvision weights enum (DEFAULT, IMAGENET1K_V1), a local .pth file, or 'none' (random init); "
        "unset: the model's own",
    )
    layers: tuple[str, ...] | None = option(
        None,
        "comma-separated layer names, each optionally NAME:WEIGHT (e.g. conv3_1,fc6:2); unset: the model's "
        "default layer (see `featinv layers MODEL`)",
    )
    size: int = option(128, "square input size in pixels")
    steps: int = option(200, "optimisation steps")
    lr: float | None = option(None, "base learning rate")
    schedule: str = option(
        "constant", "constant | step:every=100,gamma=0.1 | exp:final=0.01 | cosine:warmup=10 | piecewise:800x1,500x0.1"
    )
    optimizer: str = option("adam", "the optimiser: adam | sgd | lbfgs (L-BFGS with line search)", OPTIMIZERS)
    momentum: float = option(0.9, "SGD momentum (sgd only)")
    tv: float | None = option(None, "total-variation weight (TV is a per-pixel mean; see featinv.optim.objectives)")
    tv_beta: float = option(2.0, "TV exponent beta (1 = isotropic TV)")
    tv_kind: str = option(
        "iso", "iso: TV^beta | vector: channels summed | l1: anisotropic, like tf.image.total_variation", TV_KINDS
    )
    alpha_norm: float | None = option(None, "alpha-norm weight (the paper recipes set their own)")
    alpha: float | None = option(None, "alpha-norm exponent (6 is the papers'; 2 = a pull towards grey)")
    prior_space: str = option(
        "rgb",
        "where the priors act: rgb, on the image in [0, 1] | network: on the mean-subtracted network input "
        "(the papers')",
        PRIOR_SPACES,
    )
    param: str | None = option(
        None,
        "image parameterisation: pixel | fourier (1/f spectrum, decorrelated colour) | pyramid (Laplacian) | "
        "dip (Deep Image Prior)",
        PARAMS,
    )
    transforms: str | None = option(
        None, "random transforms before the network each step, e.g. jitter=4,scale=0.1,rotate=10, or none"
    )
    chroma_scale: int | None = option(
        None,
        "fourier/pyramid: colour may change only over N pixels or more, brightness at every pixel (1 = no limit)",
    )
    restarts: int = option(1, "run N seeds side by side (seed, seed+1, ...) and keep the lowest final loss")
    diversity: bool = option(
        False,
        "with restarts N: keep all N images and write diversity.png (them, their mean, a per-pixel std map: "
        "what the layer does not pin down) and their spread in summary.json",
    )
    judge: bool = option(
        False,
        "show the result to an independent offline network (EfficientNet-Lite0 for VGG16, VGG16 otherwise) "
        "and write its verdict to summary.json: the photo found first among the built-in photos, its class "
        "kept in the top 5, the cosine of their features",
    )
    channels: str | None = option(
        None, "invert only some of the layers' channels: 0:64 | 3,7,12 | top:K (by the target's energy); unset: all"
    )
    window: str | None = option(
        None,
        "invert only a window of the feature map, y0:y1,x0:x1 in cells; window.png shows the pixels it sees "
        "(its receptive field); unset: the whole map",
    )
    init: str = option("noise", "the start: noise (seeded) | grey | path to an image")
    seed: int = option(0, "random seed")
    clamp: bool = option(True, "project pixels back into [0, 1] after each step")
    pixel_bound: float = option(
        0.0, "cap each pixel's norm in the network's mean-subtracted space (IJCV's B; 0 = no cap)"
    )
    jitter: int = option(0, "random shift of up to N pixels before each forward pass (IJCV)")
    jitter_off_last: int | None = option(None, "no jitter or other transforms during the last N steps")
    momentum_reset: bool = option(
        False, "clear the optimiser's momentum whenever the learning rate changes (the CVPR code)"
    )
    snapshot_every: int = option(10, "save a snapshot every N steps (0 = none; the final image is always saved)")
    device: str = option("auto", "auto | cpu | cuda | cuda:N")
    precision: str = option(
        "fp32",
        "autocast the network: fp32 | bf16 | fp16 (CUDA; bf16 on CPUs with AVX512-BF16/AMX, 1.2-1.8x faster "
        "there; elsewhere it is emulated and slow; see featinv.nets.perf.native_precision)",
        PRECISIONS,
    )
    compile: str | None = option(
        None,
        "opt-in torch.compile of each step: default | reduce-overhead (CUDA graphs) | max-autotune | "
        "max-autotune-no-cudagraphs; the first "
        "step compiles (slower on a 2-core CPU: see BENCHMARKS.md); unset: eager",
        COMPILE_MODES,
    )
    preprocess: str | None = option(
        None, f"override the weights' preprocessing: {' | '.join(PRESET_NAMES)}; unset: the weights' own", PRESET_NAMES
    )
    recipe: str | None = option(
        None,
        f"set everything as a paper's code did: {' | '.join(RECIPES)} (options still override; "
        "see featinv.optim.recipes); unset: featinv's own defaults",
        RECIPES,
    )

    def __post_init__(self) -> None:
        if isinstance(self.layers, str):
            object.__setattr__(self, "layers", tuple(s.strip() for s in self.layers.split(",") if s.strip()))
        elif self.layers is not None:
            object.__setattr__(self, "layers", tuple(str(s) for s in self.layers))
        for name in ("image", "model", "schedule", "init"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ConfigError(f"{name} must be a non-empty string, got {getattr(self, name)!r}")
        _positive_int("steps", self.steps)
        _positive_int("size", self.size)
        if self.size < 8:
            raise ConfigError(f"size must be at least 8 pixels, got {self.size}")
        if self.lr is not None:
            _positive_float("lr", self.lr)
        for name in ("tv", "alpha_norm", "momentum", "pixel_bound"):
            if getattr(self, name) is not None or name not in AUTO:
                _nonnegative_float(name, getattr(self, name))
        _positive_int("restarts", self.restarts)
        if not isinstance(self.diversity, bool):
            raise ConfigError(f"diversity must be true or false, got {self.diversity!r}")
        if self.diversity and self.restarts < 2:
            raise ConfigError(f"diversity compares restarts: it needs restarts >= 2, got {self.restarts}")
        from .specs import check_channels, check_window

        for name, check in (("channels", check_channels), ("window", check_window)):
            value = getattr(self, name)
            if value is not None:
                if not isinstance(value, str):
                    object.__setattr__(self, name, str(value))
                check(getattr(self, name))
        if self.param is not None:
            from .specs import CUSTOM_PARAM, PARAMS, STARTS_WITHOUT_IMAGE

            _choice("param", self.param, (*PARAMS, CUSTOM_PARAM))
            if self.param in ("dip", CUSTOM_PARAM) and self.init not in STARTS_WITHOUT_IMAGE:
                raise ConfigError(
                    f"init {self.init!r} needs param pixel, fourier or pyramid, got param "
                    f"{self.param!r} (it starts from its own seeded network; leave init at noise)"
                    if self.param == "dip"
                    else f"init {self.init!r} cannot start your own parameterisation (param "
                    f"'custom'): it draws its own start; leave init at noise"
                )
        if self.transforms is not None:
            from .specs import parse_transforms

            parse_transforms(self.transforms)  # fail early on a bad list
        if self.chroma_scale is not None:
            _positive_int("chroma_scale", self.chroma_scale)
            from .specs import CHROMA_PARAMS

            if self.chroma_scale > 1 and self.param is not None and self.param not in CHROMA_PARAMS:
                raise ConfigError(
                    f"chroma_scale {self.chroma_scale} needs param {' or '.join(CHROMA_PARAMS)}, "
                    f"got param {self.param!r} (leave chroma_scale unset or 1)"
                )
        _positive_float("tv_beta", self.tv_beta)
        if self.alpha is not None:
            _positive_float("alpha", self.alpha)
        if not isinstance(self.snapshot_every, int) or self.snapshot_every < 0:
            raise ConfigError(f"snapshot_every must be an integer >= 0, got {self.snapshot_every!r}")
        for name in ("jitter", "jitter_off_last"):
            if name in AUTO and getattr(self, name) is None:
                continue
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ConfigError(f"{name} must be an integer >= 0, got {getattr(self, name)!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ConfigError(f"seed must be an integer, got {self.seed!r}")
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("tv_kind", self.tv_kind, TV_KINDS)
        _choice("prior_space", self.prior_space, PRIOR_SPACES)
        _choice("precision", self.precision, PRECISIONS)
        if self.compile is True:  # `compile: true` in YAML
            object.__setattr__(self, "compile", "default")
        elif self.compile is False:
            object.__setattr__(self, "compile", None)
        if self.compile is not None:
            _choice("compile", self.compile, COMPILE_MODES)
        if self.layers is not None and not self.layers:
            raise ConfigError("layers is empty: expected names like 'relu3_3' or 'conv3_1,fc6'")
        from .schedules import Schedule

        Schedule.parse(self.schedule)  # fail early on a bad schedule

    def replace(self, **changes: Any) -> InvertConfig:
        """A copy with some fields changed (unknown names are errors)."""
        return from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["layers"] = list(self.layers) if self.layers is not None else None
        return d


FIELDS = {f.name: f for f in dataclasses.fields(InvertConfig)}

# Trials that agree on these can share one forward/backward pass (see featinv.optim.inversion);
# everything else (image, lr, schedule, momentum, tv, alpha_norm, seed, init, jitter, ...) may differ.
BATCH_SHARED = (
    "model",
    "weights",
    "layers",
    "size",
    "steps",
    "optimizer",
    "device",
    "preprocess",
    "tv_beta",
    "tv_kind",
    "alpha",
    "clamp",
    "prior_space",
    "precision",
    "compile",
)


def batch_key(config: InvertConfig) -> tuple:
    """Configs with equal keys can run as one batch."""
    return tuple(str(getattr(config, k)) for k in BATCH_SHARED)


def resolved(value: T | None, name: str) -> T:
    """A field :func:`featinv.optim.defaults.resolve_defaults` fills in (``lr``, ``param``, ...),
    read where the config must already be resolved.

    >>> resolved(0.05, "lr")
    0.05
    """
    if value is None:
        raise ValueError(f"{name} is read before the defaults were resolved (see resolve_defaults)")
    return value


def _positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def _positive_float(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive finite number, got {value!r}")


def _nonnegative_float(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(
            f"{name} must be one of {', '.join(choices)}, got {value!r}.{did_you_mean(str(value), choices)}"
        )


def _coerce(name: str, value: Any) -> Any:
    """YAML reads '1e-2' as a string and users type numbers as text: convert by field type."""
    kind = FIELDS[name].type.removesuffix(" | None")
    if value is None or not isinstance(value, str):
        if kind in ("float",) and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value
    text = value.strip()
    if FIELDS[name].type.endswith("| None") and text.lower() in ("null", "~", "auto"):
        return None  # 'auto': chosen by the layer (see featinv.optim.defaults)
    try:
        if kind == "float":
            return float(text)
        if kind == "int":
            return int(float(text)) if float(text).is_integer() else float(text)
        if kind == "bool":
            if text.lower() in ("true", "yes", "1", "on"):
                return True
            if text.lower() in ("false", "no", "0", "off"):
                return False
            raise ValueError
    except ValueError:
        raise ConfigError(f"{name} must be a {kind}, got {value!r}") from None
    return value


def check_keys(data: Mapping[str, Any], where: str = "config") -> None:
    """Raise a :class:`ConfigError` naming the first unknown key and its closest valid one."""
    for key in data:
        if key not in FIELDS:
            raise ConfigError(
                f"unknown key {key!r} in {where}: expected one of {', '.join(FIELDS)}.{did_you_mean(str(key), FIELDS)}"
            )


def from_dict(data: Mapping[str, Any], where: str = "config") -> InvertConfig:
    """Build a config from a mapping (keys may use '-' or '_')."""
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    check_keys(data, where)
    return InvertConfig(**{k: _coerce(k, v) for k, v in data.items()})


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with clear errors for a missing or malformed file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: expected a YAML file, got {str(path)!r}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot parse {str(path)!r} as YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{str(path)!r} must hold a mapping of config keys, got {type(data).__name__}")
    return data


def load_config(path: str | Path, **overrides: Any) -> InvertConfig:
    """Load a YAML config; ``overrides`` (e.g. from the command line) win over the file."""
    data = read_yaml(path)
    return from_dict({**data, **{k: v for k, v in overrides.items() if v is not None}}, where=str(path))


def to_yaml(config: InvertConfig, header: str = "") -> str:
    """The config as YAML text that :func:`load_config` reads back to an equal config."""
    import yaml

    body = yaml.safe_dump(config.to_dict(), sort_keys=False)
    return (header + body) if header else body
