"""The option strings a config carries, checked and parsed without torch: parameterisation
names, ``--channels`` / ``--window`` specs and ``--transforms`` lists.

They live below the config (which checks them when it is built) and the parts that use them
(:mod:`featinv.optim.masks`, :mod:`featinv.optim.transforms`, :mod:`featinv.optim.params`).

>>> parse_transforms("rotate=15,jitter")
{'jitter': 4.0, 'rotate': 15.0}
>>> check_window("0:2,1:3")
"""

from __future__ import annotations

import math

from .errors import ConfigError, did_you_mean

PARAMS = ("pixel", "fourier", "pyramid", "dip")
CHROMA_PARAMS = ("fourier", "pyramid")  # those that can hold colour to a coarser scale (chroma_scale)
CUSTOM_PARAM = "custom"  # a module of the user's, passed from Python: featinv.invert(param=...)
STARTS_WITHOUT_IMAGE = ("noise",)  # the inits that dip (which draws its own start) can honour

# Names a config may hold whose owners import torch (the CLI's help lists them without it).
OFFLINE_MODELS = ("vgg16_offline", "efficientnet_lite0_offline", "mobilenet_v2_offline")  # featinv.nets.models
PRESET_NAMES = ("imagenet", "caffe", "tf", "none")  # featinv.nets.preprocess.PRESETS
RECIPES = ("mahendran2015", "mahendran2016")  # featinv.optim.recipes

# Photos that ship inside installed packages (no download needed), as ``PACKAGE:NAME``:
# scikit-image's (``motorcycle`` is the left view of its stereo pair), matplotlib's sample photo
# and scikit-learn's two (the ``photos`` extra; CC BY 2.0, see sklearn/datasets/images/README.txt).
SAMPLE_IMAGES = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "camera",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "logo",
    "coins",
    "moon",
    "text",
    "motorcycle",
    "brick",
    "grass",
    "gravel",
    "cell",
    "clock",
)
MATPLOTLIB_IMAGES = ("grace_hopper",)
SKLEARN_IMAGES = ("china", "flower")
SAMPLE_PREFIX = "skimage:"
SAMPLES = {SAMPLE_PREFIX: SAMPLE_IMAGES, "matplotlib:": MATPLOTLIB_IMAGES, "sklearn:": SKLEARN_IMAGES}


def parse_range(text: str, limit: int, what: str) -> tuple[int, int]:
    """``"START:END"`` -> ``(start, end)``, checked: ``0 <= start < end <= limit``."""
    try:
        start, _, end = text.partition(":")
        lo, hi = int(start), int(end)
    except ValueError:
        raise ConfigError(f"{what} must be START:END (integers), got {text!r}") from None
    if not 0 <= lo < hi <= limit:
        raise ConfigError(f"{what} {text!r} is outside 0:{limit} (expected 0 <= start < end <= {limit})")
    return lo, hi


def check_channels(spec: str) -> None:
    """Fail early on a malformed ``--channels`` (the ranges are checked against the layer later)."""
    if spec.startswith("top:"):
        if not spec[4:].isdigit() or int(spec[4:]) < 1:
            raise ConfigError(f"channels top:K needs a positive integer K, got {spec!r}")
    elif ":" in spec:
        parse_range(spec, 10**9, "channels")
    elif not all(p.strip().isdigit() for p in spec.split(",")):
        raise ConfigError(f"channels must be START:END, a list like 3,7,12 or top:K, got {spec!r}")


def check_window(spec: str) -> None:
    """Fail early on a malformed ``--window``."""
    parts = spec.split(",")
    if len(parts) != 2:
        raise ConfigError(f"window must be Y0:Y1,X0:X1 in feature-map cells, got {spec!r}")
    for part, what in zip(parts, ("window rows", "window columns")):
        parse_range(part, 10**9, what)


KINDS = ("jitter", "scale", "rotate")
DEFAULT_AMOUNTS = {"jitter": 4.0, "scale": 0.1, "rotate": 10.0}  # pixels, +-fraction, +-degrees


def parse_transforms(text: str | None) -> dict[str, float]:
    """``"jitter=4,scale"`` -> ``{'jitter': 4.0, 'scale': 0.1}``; ``''``/``'none'`` -> ``{}``.

    >>> parse_transforms("rotate=15,jitter")
    {'jitter': 4.0, 'rotate': 15.0}
    """
    amounts: dict[str, float] = {}
    if text is None or str(text).strip().lower() in ("", "none"):
        return amounts
    for item in filter(None, (p.strip() for p in str(text).split(","))):
        name, eq, value = item.partition("=")
        name = name.strip().lower()
        if name not in KINDS:
            raise ConfigError(
                f"unknown transform {name!r}: expected a comma-separated list of "
                f"{', '.join(KINDS)} (e.g. 'jitter=4,scale=0.1,rotate=10').{did_you_mean(name, KINDS)}"
            )
        try:
            amount = float(value) if eq else DEFAULT_AMOUNTS[name]
        except ValueError:
            raise ConfigError(f"bad amount {value!r} for transform {name!r}: expected a number") from None
        if not math.isfinite(amount) or amount < 0:
            raise ConfigError(f"transform {name!r} needs an amount >= 0, got {value!r}")
        if name == "jitter" and not amount.is_integer():
            raise ConfigError(f"jitter is a whole number of pixels, got {value!r}")
        amounts[name] = amount
    return {k: amounts[k] for k in KINDS if k in amounts}
