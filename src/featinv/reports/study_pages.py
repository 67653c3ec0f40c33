"""The seed study's report: each question's findings (named from the numbers), Q4's speed and
quality table, Q3's diversity row and each network's structure (the runs: :mod:`featinv.experiments.study`)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..experiments.study import QUESTIONS
from ..metrics import StepTimes, step_times
from ..runs.layout import DIVERSITY, STUDY, TRIALS_CSV
from ..status import FINISHED, Status
from .pages import Figure, RunRecord, Section, Table, feature_loss, fmt, read_trials, sweep_sections


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
    text = (
        f"Best setting by final normalised feature loss: {label(best)} "
        f"({feature_loss(best.history[-1]):.3g}, PSNR {best.summary['psnr']:.1f} dB); worst: {label(worst)} "
        f"({feature_loss(worst.history[-1]):.3g})."
    )
    level = 2 * feature_loss(best.history[-1])  # a common bar: twice the best final loss
    reached = []
    for r in runs:
        step = next((row["step"] for row in r.history if feature_loss(row) <= level), None)
        reached.append(f"{label(r)} at step {int(step)}" if step else f"{label(r)} never")
    text += f" Reaching a loss of {level:.3g} (twice the best final): " + "; ".join(reached) + "."
    diverged = [label(r) for r in runs if r.summary.get("status") == Status.DIVERGED]
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
            effect = (
                "so the smoother image matches the features less closely"
                if strong_err > none_err
                else "so here TV also helped the optimiser reach closer features"
            )
            text += (
                f" The best weight ({fmt(best.config['tv'])}) is {gain:+.1f} dB against no TV. The "
                f"normalised feature error goes from {none_err:.3g} without TV to {strong_err:.3g} with "
                f"the strongest, {effect}."
            )
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
            values = ", ".join(f"{p:.1f}" for p in psnrs)
            text += f" PSNR does not fall steadily with depth here ({values} dB along {names})."
    spreads = [
        (r.config["layers"][0], r.summary["diversity"]["pixel_std_mean"]) for r in single if r.summary.get("diversity")
    ]
    if len(spreads) >= 2:
        text += (
            " Across three restarts each, the per-pixel spread is "
            + ", ".join(f"{std:.3f} at {layer}" for layer, std in spreads)
            + (
                ": deeper layers leave more of the image open."
                if all(a < b for (_, a), (_, b) in zip(spreads, spreads[1:]))
                else "."
            )
        )
    return text


def diversity_row(runs: list[RunRecord]) -> Figure | None:
    """Q3's diversity row: each layer's restarts, their mean and their std map, one layer a line."""
    from .pages import strip_figure

    kept = [r for r in _finished(runs) if (r.folder / DIVERSITY).is_file() and r.summary.get("diversity")]
    if not kept:
        return None
    captions = [
        f"{'+'.join(r.config['layers'])}: three restarts, their mean, the std map "
        f"(mean std {r.summary['diversity']['pixel_std_mean']:.3f})"
        for r in kept
    ]
    figure = strip_figure(
        [r.folder / DIVERSITY for r in kept], captions, "What each layer leaves open", "q3_layers_diversity"
    )
    figure.caption = (
        "Diversity per layer: three reconstructions from different seeds, their mean and the "
        "per-pixel standard deviation (black: the restarts agree; each map is scaled to its own "
        "largest value, so compare the mean std in the captions across layers)."
    )
    return figure


def q4_table(runs: list[RunRecord]) -> Table:
    rows = []
    for r in runs:
        s, t = r.summary, _times(r)
        rows.append(
            [
                s.get("model", r.config.get("model")),
                "+".join(r.config.get("layers") or []),
                "yes" if s.get("pretrained") else "no (random init)",
                t.median * 1000,
                f"{t.low * 1000:.1f}-{t.high * 1000:.1f}",
                s.get("memory_mb", math.nan),
                s.get("psnr", math.nan),
                s.get("ssim", math.nan),
                s.get("feature_error_total", math.nan),
                s.get("status", Status.FAILED),
            ]
        )
    return Table(
        [
            "model",
            "layer",
            "pretrained",
            "ms/step",
            "middle half",
            "memory MB",
            "PSNR dB",
            "SSIM",
            "feature error",
            "status",
        ],
        rows,
    )


def _times(run: RunRecord) -> StepTimes:
    """A run's step times from its log (median and middle half after a warm-up)."""
    return step_times([row["seconds"] for row in run.history if "seconds" in row])


def speed_sentence(done: list[RunRecord]) -> str:
    """Which run is fastest, only where the measurements can tell: a ranking needs the fastest
    run's middle half of step times to lie below the next one's (a busy machine swings a run's
    steps by several times, and one contended measurement ranked networks wrongly)."""
    times = {id(r): _times(r) for r in done if r.history}
    timed = sorted((r for r in done if r.history), key=lambda r: times[id(r)].median)
    if not timed:
        return ""
    fast, t = timed[0], times[id(timed[0])]
    where = f"{fast.summary['model']} at {fast.config['layers'][0]}"
    text = f"Fastest: {where} ({t.median * 1000:.0f} ms/step, middle half {t.low * 1000:.0f}-{t.high * 1000:.0f})"
    close = [r for r in timed[1:] if times[id(r)].overlaps(t)]
    if close:
        names = ", ".join(f"{r.summary['model']} ({times[id(r)].median * 1000:.0f} ms/step)" for r in close)
        text = (
            f"Speed: too close to rank {where} ({t.median * 1000:.0f} ms/step) against {names}: their "
            f"step times overlap (re-time them back to back on a quiet machine)"
        )
    noisy = [r for r in timed if times[id(r)].spread > 0.5]
    if noisy:
        text += (
            f"; step times varied by more than half within {len(noisy)} of {len(timed)} runs (a busy "
            f"machine?), so treat these speeds as rough"
        )
    return text + "."


def q4_findings(runs: list[RunRecord]) -> str:
    done = _finished(runs)
    if not done:
        return "No trial finished."
    best = max(done, key=lambda r: r.summary["psnr"])
    random = [r.summary["model"] for r in done if not r.summary.get("pretrained")]
    text = (
        f"{speed_sentence(done)} Best PSNR: {best.summary['model']} at "
        f"{best.config['layers'][0]} ({best.summary['psnr']:.1f} dB)."
    )
    by_model = {r.config["model"]: r for r in done}
    if "mobilenet_v2_offline" in by_model and "vgg16_offline" in by_model:
        res, plain = by_model["mobilenet_v2_offline"].summary["psnr"], by_model["vgg16_offline"].summary["psnr"]
        text += (
            f" Both trained, at stride 4: the residual MobileNetV2 "
            f"{'keeps more' if res > plain else 'keeps less'} of the image than the plain VGG16 "
            f"({res:.1f} against {plain:.1f} dB)."
        )
    if random:
        text += (
            f" {', '.join(sorted(set(random)))} ran with random weights (no ImageNet weights offline; "
            f"pass --weights DEFAULT with internet): their images say how much the architecture alone keeps, "
            f"not what a trained network keeps."
        )
    return text


FINDINGS = {
    "q1_learning_rate": q1_findings,
    "q2_total_variation": q2_findings,
    "q3_layers": q3_findings,
    "q4_models": q4_findings,
}


def study_sections(folder: Path) -> tuple[str, list[Section]]:
    """Title and sections of a study folder's report."""
    meta = json.loads((Path(folder) / STUDY).read_text())
    sections = [
        Section(
            "About this study",
            [
                f"Reconstructions of {meta.get('image')} ({'fast version' if meta.get('fast') else 'full size'}"
                + (f", {meta['size']} px, {meta['steps']} steps" if "size" in meta else "")
                + "); "
                f"model {meta.get('model') or 'vgg16_offline (ImageNet, offline)'}. Each question below is a sweep "
                f"whose trials are run folders under {Path(folder).name}/<question>/trials/."
            ],
        )
    ]
    for key in meta["questions"]:
        qfolder = Path(folder) / key
        if not (qfolder / TRIALS_CSV).is_file():
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
    from ..nets.models import load_model
    from .structure import structure_png

    figures, seen = [], dict[Any, list[Any]]()
    for r in runs:
        key = (r.config["model"], r.config.get("weights"))
        seen.setdefault(key, []).extend(r.config.get("layers") or [])
    for (name, _), layers in seen.items():
        model = load_model(name, "none")  # shapes do not depend on the weights
        png = structure_png(model.module, name, 224, layers)
        figures.append(
            Figure(
                png,
                f"Structure of {name} with its layer aliases; inverted layers in orange.",
                f"structure_{Path(name).stem}",
            )
        )
    return figures
