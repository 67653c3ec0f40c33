"""``featinv study seed``: the four questions that started the project, as sweeps plus a report.

Q1 learning rate  - constant 1e-3 (the seed's baseline), 1e-2 (the seed's best), 1e-1, a step
                    decay and cosine: convergence curves, one image each, the best named from numbers.
Q2 total variation - TV weights 0, 0.1, 1, 10 (the seed's scale): images with PSNR/SSIM.
Q3 shallow vs deep - conv1_1, conv3_1, pool5 (fc6 where the network has trained fc6 weights) and
                    conv3_1 + the deepest: images with metrics. Deeper layers get stronger TV, as in the paper.
                    Three restarts a layer, all kept: a diversity row shows what each depth leaves open.
Q4 models         - the offline VGG16, EfficientNet-Lite0 and MobileNetV2 (trained, with residual
                    blocks: all three at stride 4), ResNet18 (res2, middle1) and VGG16-BN
                    (with ``--weights`` as given, random init otherwise, flagged on every image): images,
                    a table of seconds per step, memory and quality, and each network's structure.

Each question is a sweep folder inside the study folder (its report:
:mod:`featinv.reports.study_pages`); ``study.json`` lists them, and re-running resumes (finished
trials are kept). ``--fast`` is a small version for a first look (64 px, 60 steps);
``size``/``steps`` (``--size``, ``--steps``) set those two directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import files
from ..config import _positive_int
from ..runs.layout import STUDY

QUESTIONS = {
    "q1_learning_rate": "Q1 — Which learning-rate schedule converges?",
    "q2_total_variation": "Q2 — How much total-variation regularisation helps?",
    "q3_layers": "Q3 — Do shallow or deep layers keep more of the image?",
    "q4_models": "Q4 — How do the networks compare in quality and speed?",
}


# Layers per network family: a mid layer for Q1/Q2, and shallow / mid / deepest for Q3.
LAYER_CHOICES = {
    "vgg": {"mid": "relu3_3", "deep": "pool5", "q3": ("conv1_1", "conv3_1", "pool5")},
    "resnet": {"mid": "res4", "deep": "res8", "q3": ("conv1", "res2", "res8")},
    "efficientnet": {"mid": "stage3", "deep": "stage7", "q3": ("stem", "stage3", "stage7")},
}


def seed_specs(
    fast: bool = False,
    model: str | None = None,
    weights: str | None = None,
    image: str = "skimage:chelsea",
    size: int | None = None,
    steps: int | None = None,
) -> dict[str, dict[str, Any]]:
    """The sweep spec of each question. ``model``/``weights`` replace the offline default;
    ``size``/``steps`` replace the full (128 px, 200) or fast (64 px, 60) study's.

    >>> seed_specs(fast=True, steps=10)["q2_total_variation"]["base"]["steps"]
    10
    """
    for name, value in (("size", size), ("steps", steps)):
        if value is not None:
            _positive_int(name, value)  # 0 is not "the default": refused like a config's size
    size = size if size is not None else (64 if fast else 128)
    steps = steps if steps is not None else (60 if fast else 200)
    model = model or "vgg16_offline"
    base = {"image": image, "model": model, "size": size, "steps": steps, "snapshot_every": max(steps // 10, 1)}
    if weights:
        base["weights"] = weights
    family = next((f for f in LAYER_CHOICES if Path(model).name.startswith(f)), None)
    choice = LAYER_CHOICES.get(family or "", {})
    mid, deep = choice.get("mid"), choice.get("deep")
    specs: dict[str, dict[str, Any]] = {}
    third = max(steps // 3, 1)
    specs["q1_learning_rate"] = {
        "base": {**base, **({"layers": mid} if mid else {})},
        "zip": {
            "lr": [1e-3, 1e-2, 1e-1, 1e-1, 1e-1],
            "schedule": ["constant", "constant", "constant", f"step:every={third},gamma=0.1", "cosine"],
        },
    }
    specs["q2_total_variation"] = {
        "base": {**base, **({"layers": mid} if mid else {})},
        "grid": {"tv": [0.0, 0.1, 1.0, 10.0]},
    }
    if choice:
        layers: list[Any] = list(choice["q3"])
        tvs = [0.5, 0.5, 2.0]
        if family == "vgg" and model != "vgg16_offline" and (weights or "").lower() not in ("none", "random"):
            layers.append("fc6")  # trained fc6 weights exist only for torchvision's ImageNet VGGs
            tvs.append(4.0)
        layers.append([choice["q3"][1], deep])
        tvs.append(1.0)
        # three restarts a layer, all kept: what each depth leaves open (the diversity row)
        specs["q3_layers"] = {"base": {**base, "restarts": 3, "diversity": True}, "zip": {"layers": layers, "tv": tvs}}
    q4_weights = weights or "none"
    specs["q4_models"] = {
        "base": {k: v for k, v in base.items() if k not in ("model", "weights")},
        "zip": {
            "model": [
                "vgg16_offline",
                "efficientnet_lite0_offline",
                "mobilenet_v2_offline",
                "resnet18",
                "resnet18",
                "vgg16_bn",
            ],
            "weights": [None, None, None, q4_weights, q4_weights, q4_weights],
            "layers": ["conv3_1", "stage2", "stage2", "res2", "middle1", "conv3_1"],
            "tv": [0.5, 2.0, 0.5, 0.5, 0.5, 0.5],
        },
    }
    return specs


def run_seed_study(
    out: str | Path,
    fast: bool = False,
    model: str | None = None,
    weights: str | None = None,
    image: str = "skimage:chelsea",
    on_trial: Any = None,
    batch: int | None = None,
    size: int | None = None,
    steps: int | None = None,
) -> Path:
    """Run every question's sweep into ``out`` (resuming), write study.json; return ``out``."""
    from ..runs.sweep import expand, run_sweep, save_spec

    out = Path(out)
    specs = seed_specs(fast, model, weights, image, size, steps)
    trials = {key: expand(spec, where=f"study {key}") for key, spec in specs.items()}  # all checked first
    out.mkdir(parents=True, exist_ok=True)
    base = specs["q2_total_variation"]["base"]
    files.write_json(
        out / STUDY,
        {
            "study": "seed",
            "fast": fast,
            "model": model,
            "weights": weights,
            "image": image,
            "size": base["size"],
            "steps": base["steps"],
            "questions": list(specs),
        },
    )
    import yaml

    for key, spec in specs.items():
        (out / key).mkdir(exist_ok=True)
        save_spec(out / key, yaml.safe_dump(spec, sort_keys=False))
        run_sweep(trials[key], out / key, on_trial=on_trial, batch=batch)
    return out
