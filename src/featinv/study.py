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

Each question is a sweep folder inside the study folder; ``study.json`` lists them, and
re-running resumes (finished trials are kept). ``--fast`` is a small version for a first look
(64 px, 60 steps); ``size``/``steps`` (``--size``, ``--steps``) set those two directly.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from . import files
from .config import _positive_int
from .pages import Figure, RunRecord, Section, Table, feature_loss, fmt, read_trials, sweep_sections
from .results import FINISHED

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


def seed_specs(fast: bool = False, model: str | None = None, weights: str | None = None,
               image: str = "skimage:chelsea", size: int | None = None, steps: int | None = None
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
    specs["q1_learning_rate"] = {"base": {**base, **({"layers": mid} if mid else {})},
                                 "zip": {"lr": [1e-3, 1e-2, 1e-1, 1e-1, 1e-1],
                                         "schedule": ["constant", "constant", "constant",
                                                      f"step:every={third},gamma=0.1", "cosine"]}}
    specs["q2_total_variation"] = {"base": {**base, **({"layers": mid} if mid else {})},
                                   "grid": {"tv": [0.0, 0.1, 1.0, 10.0]}}
    if choice:
        layers: list[Any] = list(choice["q3"])
        tvs = [0.5, 0.5, 2.0]
        if family == "vgg" and model != "vgg16_offline" and (weights or "").lower() not in ("none", "random"):
            layers.append("fc6")  # trained fc6 weights exist only for torchvision's ImageNet VGGs
            tvs.append(4.0)
        layers.append([choice["q3"][1], deep])
        tvs.append(1.0)
        # three restarts a layer, all kept: what each depth leaves open (the diversity row)
        specs["q3_layers"] = {"base": {**base, "restarts": 3, "diversity": True},
                              "zip": {"layers": layers, "tv": tvs}}
    q4_weights = weights or "none"
    specs["q4_models"] = {
        "base": {k: v for k, v in base.items() if k not in ("model", "weights")},
        "zip": {"model": ["vgg16_offline", "efficientnet_lite0_offline", "mobilenet_v2_offline", "resnet18",
                          "resnet18", "vgg16_bn"],
                "weights": [None, None, None, q4_weights, q4_weights, q4_weights],
                "layers": ["conv3_1", "stage2", "stage2", "res2", "middle1", "conv3_1"],
                "tv": [0.5, 2.0, 0.5, 0.5, 0.5, 0.5]}}
    return specs


def run_seed_study(out: str | Path, fast: bool = False, model: str | None = None,
                   weights: str | None = None, image: str = "skimage:chelsea",
                   on_trial: Any = None, batch: int | None = None, size: int | None = None,
                   steps: int | None = None) -> Path:
    """Run every question's sweep into ``out`` (resuming), write study.json; return ``out``."""
    from .sweep import expand, run_sweep, save_spec

    out = Path(out)
    specs = seed_specs(fast, model, weights, image, size, steps)
    trials = {key: expand(spec, where=f"study {key}") for key, spec in specs.items()}  # all checked first
    out.mkdir(parents=True, exist_ok=True)
    base = specs["q2_total_variation"]["base"]
    files.write_json(out / "study.json", {"study": "seed", "fast": fast, "model": model, "weights": weights,
                                       "image": image, "size": base["size"], "steps": base["steps"],
                                       "questions": list(specs)})
    import yaml
    for key, spec in specs.items():
        (out / key).mkdir(exist_ok=True)
        save_spec(out / key, yaml.safe_dump(spec, sort_keys=False))
        run_sweep(trials[key], out / key, on_trial=on_trial, batch=batch)
    return out


# -- the report --------------------------------------------------------------------------
def _finished(runs: list[RunRecord]) -> list[RunRecord]:
    return [r for r in runs if r.ok and r.summary.get("status") in FINISHED]


def q1_findings(runs: list[RunRecord]) -> str:
    runs = [r for r in _finished(runs) if r.history]
    if not runs:
        return "No trial finished."

    def label(r: RunRecord) -> str:
        return f"lr {fmt(r.config['lr'])} {r.config['schedule']}"

    best = min(runs, key=lambda r: feature_loss(r.history[-1]))
    worst = max(runs, key=lambda r: feature_loss(r.history[-1]))
    text = (f"Best setting by final normalised feature loss: {label(best)} "
            f"({feature_loss(best.history[-1]):.3g}, PSNR {best.summary['psnr']:.1f} dB); worst: {label(worst)} "
            f"({feature_loss(worst.history[-1]):.3g}).")
    level = 2 * feature_loss(best.history[-1])  # a common bar: twice the best final loss
    reached = []
    for r in runs:
        step = next((row["step"] for row in r.history if feature_loss(row) <= level), None)
        reached.append(f"{label(r)} at step {int(step)}" if step else f"{label(r)} never")
    text += f" Reaching a loss of {level:.3g} (twice the best final): " + "; ".join(reached) + "."
    diverged = [label(r) for r in runs if r.summary.get("status") == "diverged"]
    if diverged:
        text += f" Diverged: {', '.join(diverged)}."
    return text


def _by_metric(runs: list[RunRecord], label: Any) -> str:
    runs = _finished(runs)
    if not runs:
        return "No trial finished."
    ranked = sorted(runs, key=lambda r: -r.summary["psnr"])
    order = ", ".join(f"{label(r)} {r.summary['psnr']:.1f} dB / SSIM {r.summary['ssim']:.2f}" for r in ranked)
    return f"Ranked by PSNR against the target: {order}."


def q2_findings(runs: list[RunRecord]) -> str:
    text = _by_metric(runs, lambda r: f"TV {fmt(r.config['tv'])}")
    done = _finished(runs)
    if done:
        tvs = {r.config["tv"]: r for r in done}
        if 0.0 in tvs:
            best = max(done, key=lambda r: r.summary["psnr"])
            gain = best.summary["psnr"] - tvs[0.0].summary["psnr"]
            none_err = tvs[0.0].summary["feature_error_total"]
            strong_err = max(done, key=lambda r: r.config["tv"]).summary["feature_error_total"]
            effect = ("so the smoother image matches the features less closely" if strong_err > none_err
                      else "so here TV also helped the optimiser reach closer features")
            text += (f" The best weight ({fmt(best.config['tv'])}) is {gain:+.1f} dB against no TV. The "
                     f"normalised feature error goes from {none_err:.3g} without TV to {strong_err:.3g} with "
                     f"the strongest, {effect}.")
    return text


def q3_findings(runs: list[RunRecord]) -> str:
    text = _by_metric(runs, lambda r: "+".join(r.config["layers"]))
    single = [r for r in _finished(runs) if len(r.config["layers"]) == 1]  # in network order
    if len(single) >= 2:
        psnrs = [r.summary["psnr"] for r in single]
        names = " > ".join(r.config["layers"][0] for r in single)
        if all(a > b for a, b in zip(psnrs, psnrs[1:])):
            text += f" PSNR falls steadily with depth ({names}): deeper layers keep less of the exact image."
        else:
            text += f" PSNR does not fall steadily with depth here ({', '.join(f'{p:.1f}' for p in psnrs)} dB along {names})."
    spreads = [(r.config["layers"][0], r.summary["diversity"]["pixel_std_mean"]) for r in single
               if r.summary.get("diversity")]
    if len(spreads) >= 2:
        text += (" Across three restarts each, the per-pixel spread is "
                 + ", ".join(f"{std:.3f} at {layer}" for layer, std in spreads)
                 + (": deeper layers leave more of the image open." if all(
                     a < b for (_, a), (_, b) in zip(spreads, spreads[1:])) else "."))
    return text


def diversity_row(runs: list[RunRecord]) -> Figure | None:
    """Q3's diversity row: each layer's restarts, their mean and their std map, one layer a line."""
    from .pages import strip_figure
    kept = [r for r in _finished(runs) if (r.folder / "diversity.png").is_file() and r.summary.get("diversity")]
    if not kept:
        return None
    captions = [f"{'+'.join(r.config['layers'])}: three restarts, their mean, the std map "
                f"(mean std {r.summary['diversity']['pixel_std_mean']:.3f})" for r in kept]
    figure = strip_figure([r.folder / "diversity.png" for r in kept], captions,
                          "What each layer leaves open", "q3_layers_diversity")
    figure.caption = ("Diversity per layer: three reconstructions from different seeds, their mean and the "
                      "per-pixel standard deviation (black: the restarts agree; each map is scaled to its own "
                      "largest value, so compare the mean std in the captions across layers).")
    return figure


def q4_table(runs: list[RunRecord]) -> Table:
    rows = []
    for r in runs:
        s = r.summary
        rows.append([s.get("model", r.config.get("model")), "+".join(r.config.get("layers") or []),
                     "yes" if s.get("pretrained") else "no (random init)", s.get("seconds_per_step", math.nan) * 1000,
                     s.get("memory_mb", math.nan), s.get("psnr", math.nan), s.get("ssim", math.nan),
                     s.get("feature_error_total", math.nan), s.get("status", "failed")])
    return Table(["model", "layer", "pretrained", "ms/step", "memory MB", "PSNR dB", "SSIM", "feature error", "status"], rows)


def q4_findings(runs: list[RunRecord]) -> str:
    done = _finished(runs)
    if not done:
        return "No trial finished."
    fast = min(done, key=lambda r: r.summary["seconds_per_step"])
    best = max(done, key=lambda r: r.summary["psnr"])
    random = [r.summary["model"] for r in done if not r.summary.get("pretrained")]
    text = (f"Fastest: {fast.summary['model']} at {fast.config['layers'][0]} "
            f"({fast.summary['seconds_per_step'] * 1000:.0f} ms/step); best PSNR: {best.summary['model']} at "
            f"{best.config['layers'][0]} ({best.summary['psnr']:.1f} dB).")
    by_model = {r.config["model"]: r for r in done}
    if "mobilenet_v2_offline" in by_model and "vgg16_offline" in by_model:
        res, plain = by_model["mobilenet_v2_offline"].summary["psnr"], by_model["vgg16_offline"].summary["psnr"]
        text += (f" Both trained, at stride 4: the residual MobileNetV2 "
                 f"{'keeps more' if res > plain else 'keeps less'} of the image than the plain VGG16 "
                 f"({res:.1f} against {plain:.1f} dB).")
    if random:
        text += (f" {', '.join(sorted(set(random)))} ran with random weights (no ImageNet weights offline; "
                 f"pass --weights DEFAULT with internet): their images say how much the architecture alone keeps, "
                 f"not what a trained network keeps.")
    return text


FINDINGS = {"q1_learning_rate": q1_findings, "q2_total_variation": q2_findings,
            "q3_layers": q3_findings, "q4_models": q4_findings}


def study_sections(folder: Path) -> tuple[str, list[Section]]:
    """Title and sections of a study folder's report."""
    meta = json.loads((Path(folder) / "study.json").read_text())
    sections = [Section("About this study", [
        f"Reconstructions of {meta.get('image')} ({'fast version' if meta.get('fast') else 'full size'}"
        + (f", {meta['size']} px, {meta['steps']} steps" if "size" in meta else "") + "); "
        f"model {meta.get('model') or 'vgg16_offline (ImageNet, offline)'}. Each question below is a sweep "
        f"whose trials are run folders under {Path(folder).name}/<question>/trials/."])]
    for key in meta["questions"]:
        qfolder = Path(folder) / key
        if not (qfolder / "trials.csv").is_file():
            sections.append(Section(QUESTIONS[key], ["Not run yet."]))
            continue
        rows, runs = read_trials(qfolder)
        section = sweep_sections(qfolder, QUESTIONS[key], prefix=key, trials=(rows, runs))[0]
        section.blocks.insert(0, FINDINGS[key](runs))
        if key == "q3_layers" and (row := diversity_row(runs)) is not None:
            section.blocks.append(row)
        if key == "q4_models":
            section.blocks.insert(1, q4_table(runs))
            section.blocks.extend(_structures(runs))
        sections.append(section)
    return "featinv study: the seed questions", sections


def _structures(runs: list[RunRecord]) -> list[Any]:
    from .models import load_model
    from .structure import structure_png

    figures, seen = [], {}
    for r in runs:
        key = (r.config["model"], r.config.get("weights"))
        seen.setdefault(key, []).extend(r.config.get("layers") or [])
    for (name, _), layers in seen.items():
        model = load_model(name, "none")  # shapes do not depend on the weights
        png = structure_png(model.module, name, 224, layers)
        figures.append(Figure(png, f"Structure of {name} with its layer aliases; inverted layers in orange.",
                              f"structure_{Path(name).stem}"))
    return figures
