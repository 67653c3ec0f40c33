"""``featinv compare RUN RUN ... --out DIR``: run folders side by side.

Each run's target, reconstruction and their difference (|result - target|, brightened 3x), with
PSNR, SSIM and feature error, as ``DIR/report.html`` (+ ``report.md``) and the image grid as
``DIR/compare.png``. A sweep folder stands for its trials. Runs of the same photo are ranked: which
keeps the most of it (PSNR and SSIM), which network or layer the least.
"""

from __future__ import annotations

import math
from pathlib import Path

from .. import files
from ..errors import RunFolderError
from ..runs.layout import FINAL, SUMMARY, TARGET, TRIALS_CSV
from .pages import RunRecord, Section, Table, grid_figure, read_run, write_report

DIFF_GAIN = 3.0  # differences are small where a reconstruction is good: brighten them to be seen


def run_folders(paths: list[Path]) -> list[Path]:
    """The run folders named, a sweep folder standing for its trials (in its trials.csv order)."""
    out = []
    for path in map(Path, paths):
        if (path / SUMMARY).is_file():
            out.append(path)
        elif (path / TRIALS_CSV).is_file():
            from .pages import read_trials

            out += [r.folder for r in read_trials(path)[1] if (r.folder / SUMMARY).is_file()]
        else:
            raise RunFolderError(
                f"nothing to compare in {str(path)!r}: expected a run folder (summary.json) "
                f"or a sweep folder (trials.csv)"
            )
    if len(out) < 2:
        raise RunFolderError(f"compare needs at least two runs, got {len(out)}")
    return out


def _name(folder: Path) -> str:
    """``sweep/trial`` for a sweep's trial (its folder is ``sweep/trials/trial``), else ``parent/run``."""
    parent = folder.parent.parent if folder.parent.name == "trials" else folder.parent
    return f"{parent.name}/{folder.name}"


def label(run: RunRecord) -> str:
    """What tells runs apart: model, layers, and the analysis options."""
    c = run.config
    parts = [Path(str(c.get("model", "?"))).stem, "+".join(c.get("layers") or [])]
    parts += [f"{k} {c[k]}" for k in ("channels", "window") if c.get(k)]
    return " ".join(p for p in parts if p)


def findings(runs: list[RunRecord]) -> str:
    """Which run keeps the most of each photo (PSNR first, SSIM beside it)."""
    by_photo: dict[str, list[RunRecord]] = {}
    for r in runs:
        by_photo.setdefault(str(r.config.get("image")), []).append(r)
    sentences = []
    for photo, group in by_photo.items():
        if len(group) < 2:
            continue
        ranked = sorted(group, key=lambda r: r.summary.get("psnr", -math.inf), reverse=True)
        best, worst = ranked[0], ranked[-1]
        sentences.append(
            f"Of {photo}, {label(best)} keeps the most ({best.summary['psnr']:.1f} dB, SSIM "
            f"{best.summary['ssim']:.2f}) and {label(worst)} the least ({worst.summary['psnr']:.1f} dB, SSIM "
            f"{worst.summary['ssim']:.2f})"
            + (
                "; SSIM ranks them differently"
                if max(group, key=lambda r: r.summary.get("ssim", -1)) is not best
                else ""
            )
            + "."
        )
    return " ".join(sentences) or "The runs are of different photos: no ranking."


def _judge_cells(verdict: dict | None) -> list:
    if not verdict:
        return ["-", "-", math.nan]
    kept = "-" if verdict.get("class_agreement") is None else ("yes" if verdict["class_agreement"] else "no")
    return [f"{verdict['rank']} of {verdict['gallery']}", kept, verdict["cosine"]]


def compare(paths: list[Path], out: Path) -> Path:
    """Write the comparison page of the runs in ``paths`` into ``out``; return the HTML's path."""
    runs = [read_run(folder, name=_name(folder)) for folder in run_folders(paths)]
    out = Path(out)
    if out.is_dir() and any(out.iterdir()) and not (out / "compare.png").is_file():
        raise RunFolderError(
            f"{str(out)!r} exists and is not a comparison: choose another --out (nothing was overwritten)"
        )
    tiles, captions = [], []
    for k, r in enumerate(runs):
        result, target = files.read_image(r.folder / FINAL), files.read_image(r.folder / TARGET)
        diff = ((result - target).abs() * DIFF_GAIN).clamp(0, 1)
        diff_path = out / "compare_files" / f"diff_{k}.png"
        files.save_image(diff, diff_path)
        s = r.summary
        tiles += [r.folder / TARGET, r.folder / FINAL, diff_path]
        captions += [
            f"{label(r)}\ntarget",
            f"result\nPSNR {s.get('psnr', math.nan):.1f} dB, SSIM {s.get('ssim', math.nan):.2f}",
            f"|result - target| x{DIFF_GAIN:g}",
        ]
    grid = grid_figure(tiles, captions, "Target, result, difference", "compare", columns=3)
    files.write_bytes(out / "compare.png", grid.png)
    judged = any("judge" in r.summary for r in runs)  # runs made with --judge: the judge's columns too
    table = Table(
        ["run", "what", "PSNR dB", "SSIM", "feature error", "ms/step", "status"]
        + (["judge: own photo's rank", "class in top 5", "judge cosine"] if judged else []),
        [
            [
                r.name,
                label(r),
                r.summary.get("psnr", math.nan),
                r.summary.get("ssim", math.nan),
                r.summary.get("feature_error_total", math.nan),
                r.summary.get("seconds_per_step", math.nan) * 1000,
                r.summary.get("status", "?"),
            ]
            + (_judge_cells(r.summary.get("judge")) if judged else [])
            for r in runs
        ],
    )
    blocks = [findings(runs), table, grid]
    return write_report(out, f"featinv compare: {len(runs)} runs", [Section("Runs side by side", blocks)])
