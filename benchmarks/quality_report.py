"""Write QUALITY.md from one or more `featinv bench --quality` runs: machine, versions, date,
command, the issue's targets checked against the numbers, the table and the image grids.

    featinv bench --quality --out runs/quality          # the benchmark (several hours on 2 CPU cores)
    python benchmarks/quality_report.py runs/quality     # -> QUALITY.md, docs/quality/*.png

An interrupted benchmark resumes case by case when run again with the same --out. The whole
list does not fit one session on two cores, so a report can merge runs: each RUN is a folder
with ``quality.json`` or such a file, and a later run's rows replace an earlier one's for the
same photo, case, method and equal-time flag. Rows it lacks are kept, but for the equal-time
rows of a case whose default it ran again (they were timed against the old default). A case's
grid comes from the last run that ran the case's ``default``. Keep each run's ``quality.json``
under ``benchmarks/results/quality/`` (``runs/`` is not kept): a later merge starts from them.
A ``notes.md`` beside a run's json (how the run went) goes under the header.

    python benchmarks/quality_report.py benchmarks/results/quality/a.json runs/quality-relu4_3

Runs on photos outside the benchmark's ten (``featinv bench --quality --photos ...``) go after
``--unseen``: photos nobody looked at while choosing the defaults or the benchmark. Their rows are
never merged into the main table (its means are over the ten photos); they get a section of
their own, with the same bars checked and their grids under ``docs/quality/unseen/``.

    python benchmarks/quality_report.py benchmarks/results/quality/*.json --unseen benchmarks/results/unseen/a.json
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VGG = "vgg16_offline"  # the network of the relu3_3 and pool5 bars
COMMAND = "featinv bench --quality --out runs/quality"  # every case and method (featinv.experiments.quality)


def _key(row: dict) -> tuple:
    return row["photo"], row["model"], row["layer"], row["method"], row["equal_time"]


def load_run(path: Path) -> dict:
    """A run's ``quality.json`` (``path`` is the file or its folder), with ``folder`` and ``notes`` added."""
    file = path / "quality.json" if path.is_dir() else path
    data = json.loads(file.read_text())
    notes = file.with_name("notes.md") if file.name == "quality.json" else file.with_suffix(".notes.md")
    name = str(file.parent if file.name == "quality.json" else file)
    return {**data, "folder": file.parent, "name": name, "notes": notes.read_text().strip() if notes.is_file() else ""}


def merge(runs: list[dict]) -> dict:
    """One run of every row, later runs replacing earlier ones' rows with the same key (and the
    equal-time rows of a case whose default they ran again); refuses runs at another size or
    step count. ``sources`` says which cases and methods each run gave.

    >>> row = dict(photo="clock", model="m", layer="l", method="flat", equal_time=False, psnr=1.0)
    >>> a = dict(size=128, steps=200, environment={}, rows=[row, {**row, "method": "pixel"}])
    >>> b = dict(size=128, steps=200, environment={}, rows=[{**row, "psnr": 2.0}])
    >>> [(r["method"], r["psnr"]) for r in merge([a, b])["rows"]]
    [('flat', 2.0), ('pixel', 1.0)]
    """
    first = runs[0]
    for run in runs[1:]:
        if (run["size"], run["steps"]) != (first["size"], first["steps"]):
            raise SystemExit(
                f"runs at {run['size']} px / {run['steps']} steps and {first['size']} px / "
                f"{first['steps']} steps cannot share a table"
            )
    rows: dict[tuple, dict] = {}
    for run in runs:
        # Equal-time rows get their default's seconds: a run with a new default for a case
        # makes the earlier equal-time rows of that case stale.
        new_defaults = {(r["model"], r["layer"]) for r in run["rows"] if r["method"] == "default"}
        rows = {k: r for k, r in rows.items() if not (r["equal_time"] and (r["model"], r["layer"]) in new_defaults)}
        rows.update({_key(r): r for r in run["rows"]})
    sources = []
    for run in runs:
        gave: dict[str, dict[str, None]] = {}  # case -> its methods this run's rows still give
        for r in run["rows"]:
            if rows.get(_key(r)) is r:
                method = r["method"] + (" (equal time)" if r["equal_time"] else "")
                gave.setdefault(f"{r['model']}:{r['layer']}", {})[method] = None
        sources.append({"run": run, "gave": [f"{case} ({', '.join(m)})" for case, m in gave.items()]})
    return {
        "size": first["size"],
        "steps": first["steps"],
        "rows": list(rows.values()),
        "environment": runs[-1]["environment"],
        "sources": sources,
    }


def _rows(data: dict, case: tuple[str, str], method: str, equal_time: bool = False) -> list[dict]:
    """The rows of one (model, layer) and method: networks can share a layer name (``stage3``)."""
    return [
        r
        for r in data["rows"]
        if (r["model"], r["layer"]) == case and r["method"] == method and r["equal_time"] == equal_time
    ]


def _mean(rows: list[dict], key: str) -> float:
    return sum(r[key] for r in rows) / len(rows) if rows else float("nan")


def targets(data: dict) -> list[str]:
    """The natural pre-images issue's bars, each with the measured numbers and met / not met.
    The relu3_3, pool5 and recipe bars are the offline VGG16's."""
    lines = []

    def check(text: str, ok: bool) -> None:
        lines.append(f"- {'met' if ok else '**not met**'}: {text}")

    relu = _rows(data, (VGG, "relu3_3"), "default")
    if relu:
        worst, mean = min(r["psnr"] for r in relu), _mean(relu, "psnr")
        check(f"relu3_3 with the defaults >= 20 dB on every photo (worst {worst:.2f} dB)", worst >= 20)
        check(f"relu3_3 with the defaults, mean >= 23 dB ({mean:.2f} dB)", mean >= 23)
    pool = {m: _rows(data, (VGG, "pool5"), m) for m in ("default", "pixel", "fourier", "pyramid", "dip", "flat")}
    if pool["default"]:
        # the default's rows are its parameterisation's (a run may skip that param's own rows)
        default_param = pool["default"][0].get("param")
        if default_param in pool and not pool[default_param]:
            pool[default_param] = pool["default"]
        best = max(("pixel", "fourier", "pyramid", "dip"), key=lambda m: _mean(pool[m], "psnr") if pool[m] else -1)
        b = pool[best]
        check(
            f"pool5, best param ({best}) >= 10.5 dB and SSIM >= 0.2 ({_mean(b, 'psnr'):.2f} dB, "
            f"SSIM {_mean(b, 'ssim'):.3f}; the flat mean-colour image: {_mean(pool['flat'], 'psnr'):.2f} dB, "
            f"SSIM {_mean(pool['flat'], 'ssim'):.3f})",
            _mean(b, "psnr") >= 10.5 and _mean(b, "ssim") >= 0.2,
        )
        check(
            f"pool5, best param beats the flat image in PSNR ({_mean(b, 'psnr'):.2f} vs "
            f"{_mean(pool['flat'], 'psnr'):.2f} dB)",
            _mean(b, "psnr") > _mean(pool["flat"], "psnr"),
        )
        d = pool["default"]
        check(
            f"pool5 with the defaults >= 9.5 dB and SSIM >= 0.15 ({_mean(d, 'psnr'):.2f} dB, "
            f"SSIM {_mean(d, 'ssim'):.3f})",
            _mean(d, "psnr") >= 9.5 and _mean(d, "ssim") >= 0.15,
        )
    for case in dict.fromkeys((r["model"], r["layer"]) for r in data["rows"]):
        d = _rows(data, case, "default")
        for peer in ("peer", "mahendran2016"):
            p = _rows(data, case, peer)
            if d and p:
                check(
                    f"{case[0]} {case[1]}: default not worse than {peer} in PSNR and SSIM ({_mean(d, 'psnr'):.2f} / "
                    f"{_mean(d, 'ssim'):.3f} vs {_mean(p, 'psnr'):.2f} / {_mean(p, 'ssim'):.3f})",
                    _mean(d, "psnr") >= _mean(p, "psnr") and _mean(d, "ssim") >= _mean(p, "ssim"),
                )
    for layer, bar in (("relu3_3", 0.05), ("pool5", 0.2)):
        p = _rows(data, (VGG, layer), "mahendran2016")
        if p:
            worst = max(r["feature_error"] for r in p)
            check(
                f"mahendran2016 at {layer}: normalised feature error < {bar} on every photo (worst {worst:.4f})",
                worst < bar,
            )
    return lines


def _copy_grids(runs: list[dict], rows: list[dict], into: Path) -> list[Path]:
    """Each case's grid from the last run that ran its default, copied ``into``; the grids
    there of the cases whose default is in ``rows``."""
    chosen: dict[str, Path] = {}
    for run in runs:
        for r in run["rows"]:
            grid = run["folder"] / f"grid_{r['model']}_{r['layer']}.png"
            if r["method"] == "default" and grid.is_file():
                chosen[grid.name] = grid
    into.mkdir(parents=True, exist_ok=True)
    for name, grid in chosen.items():
        shutil.copyfile(grid, into / name)
    names = dict.fromkeys(f"grid_{r['model']}_{r['layer']}.png" for r in rows if r["method"] == "default")
    return sorted(into / n for n in names if (into / n).is_file())


def _machine(env: dict) -> str:
    return (
        f"{env.get('processor')}, {env.get('threads')} threads, device {env.get('device')}; "
        f"Python {env.get('python')}, torch {env.get('torch')}, torchvision {env.get('torchvision')}; "
        f"{env.get('date')}"
    )


def _source_lines(data: dict) -> list[str]:
    """One line per merged run: its name, machine, and the cases and methods it still gives."""
    return [
        f"- `{s['run']['name']}` ({_machine(s['run']['environment'])}): {'; '.join(s['gave']) or 'nothing kept'}"
        for s in data["sources"]
    ]


def _own_section(
    title: str, intro: Callable[[dict, str], str], paths: list[Path], root: Path, folder: str, bars: str = ""
) -> list[str]:
    """A section of QUALITY.md for runs not merged into the main table: ``intro(data, photos)``,
    their sources and notes, the targets checked on them (headed ``bars``, if given), their own
    merged table and grids (under docs/quality/``folder``)."""
    from featinv.experiments.quality import from_json, table

    runs = [load_run(p) for p in paths]
    data = merge(runs)
    grids = _copy_grids(runs, data["rows"], root / "docs" / "quality" / folder)
    return [
        f"## {title}",
        "",
        intro(data, ", ".join(sorted({r["photo"] for r in data["rows"]}))),
        "",
        *_source_lines(data),
        "",
        *[s["run"]["notes"] + "\n" for s in data["sources"] if s["run"]["notes"]],
        *([bars, "", *targets(data), ""] if bars else []),
        table(from_json(data["rows"]), held_out=()),
        "",
        *[f"![{g.stem}](docs/quality/{folder}/{g.name})" for g in grids],
        "",
    ]


def _unseen_section(paths: list[Path], root: Path) -> list[str]:
    """Runs on photos outside the benchmark's, with the bars checked on them."""

    def intro(data: dict, photos: str) -> str:
        return (
            f"{photos.count(',') + 1} more photos that ship with the same packages ({photos}), never used "
            f"to choose a default nor in the table above, {data['size']} px, {data['steps']} steps; "
            f"not merged into the table above."
        )

    return _own_section("Photos outside the benchmark", intro, paths, root, "unseen", "The same bars on these photos:")


def _native_size_section(paths: list[Path], root: Path) -> list[str]:
    """Deep layers at the size the network was trained at (the main table is at 128 px)."""

    def intro(data: dict, photos: str) -> str:
        return (
            f"The deep layers at {data['size']} px, the size VGG16 was trained at and the papers inverted "
            f"(pool5 is a 7x7 map there, 4x4 at 128 px), on {photos.count(',') + 1} of the photos "
            f"({photos}), {data['steps']} steps; not merged into the table above."
        )

    return _own_section("Deep layers at the network's own size", intro, paths, root, "native")


def _levers_section(paths: list[Path], root: Path) -> list[str]:
    """benchmarks/probes/deep_levers.py's runs: changes to the defaults at deep layers, judged; a
    per-photo table for each network and layer."""
    module = _load_script(Path(__file__).with_name("probes") / "deep_levers.py")

    def intro(data: dict, photos: str) -> str:
        return (
            f"`python benchmarks/probes/deep_levers.py` (its docstring names each lever): the defaults changed "
            f"one way at a time, on {photos.count(',') + 1} photos ({photos}), {data['size']} px, one batch per "
            "lever; the gallery the judge retrieves from is these photos and the built-in distractors not among "
            "them. The table's ms/step is each image's share of a batched step."
        )

    from featinv.experiments.quality import from_json

    runs = [load_run(p) for p in paths]
    rows = from_json(merge(runs)["rows"])
    cases = dict.fromkeys((r.model, r.layer) for r in rows)
    per_case = [
        [f"{model} {layer}:", "", module.per_photo([r for r in rows if (r.model, r.layer) == (model, layer)]), ""]
        for model, layer in cases
    ]
    return [
        *_own_section("Levers for deep layers", intro, paths, root, "levers"),
        "Per photo: the judge's rank of the photo's own original, its class in the top 5 (y / n), the cosine:",
        "",
        *[line for lines in per_case for line in lines],
    ]


def _load_script(path: Path):
    """A script beside this one, imported as a module (benchmarks/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _time_to_picture_section(path: Path) -> list[str]:
    """benchmarks/time_to_picture.py's curves: PSNR and the judge's cosine against wall seconds."""
    module = _load_script(Path(__file__).with_name("time_to_picture.py"))
    data = json.loads(path.read_text())
    notes = path.with_suffix(".notes.md")
    return [
        "## Time to a good picture",
        "",
        f"`python benchmarks/time_to_picture.py` ({path}): each method on each photo "
        f"({', '.join(data['args']['photos'])}) on its own, as a user waits for one picture, "
        f"{data['args']['size']} px, "
        f"this CPU, one run; every {data['args']['every']} steps the image is scored. Means over the photos. "
        "`own photo first`: EfficientNet-Lite0 finds the photo's own original first among it and the 21 "
        "built-in photos, at the end; `every photo first after`: the wall time from which it does so for every photo.",
        "",
        *([notes.read_text().strip(), ""] if notes.is_file() else []),
        module.summary(data["rows"]),
        "",
        "![time to a good picture](docs/quality/time_to_picture.png)",
        "",
    ]


def main(
    paths: list[Path],
    root: Path = ROOT,
    unseen: list[Path] | None = None,
    native: list[Path] | None = None,
    time_to_picture: Path | None = None,
    levers: list[Path] | None = None,
) -> None:
    """Write ``root``/QUALITY.md (and its grids under ``root``/docs/quality) from these runs,
    and a section of its own for the ``unseen`` runs (photos outside the benchmark)."""
    from featinv.experiments.quality import CASES, HELD_OUT, from_json, table

    runs = [load_run(p) for p in paths]
    data = merge(runs)
    grids = _copy_grids(runs, data["rows"], root / "docs" / "quality")
    photos = sorted({r["photo"] for r in data["rows"]})
    held = [p for p in photos if p in HELD_OUT]
    tuned = [p for p in photos if p not in HELD_OUT]
    ran = {f"{r['model']}:{r['layer']}" for r in data["rows"]}
    missing = [c for c in CASES if c not in ran]
    arguments = " ".join(str(p) for p in paths) + (" --unseen " + " ".join(str(p) for p in unseen) if unseen else "")
    arguments += (" --native " + " ".join(str(p) for p in native) if native else "") + (
        f" --time-to-picture {time_to_picture}" if time_to_picture else ""
    )
    arguments += " --levers " + " ".join(str(p) for p in levers) if levers else ""
    if len(runs) == 1:
        origin = [
            f"Machine: {_machine(data['environment'])}.",
            "",
            f"Command: `{COMMAND}` (or some of its cases and methods), then "
            f"`python benchmarks/quality_report.py {arguments}`.",
        ]
    else:
        origin = [
            f"Merged from {len(runs)} runs (`python benchmarks/quality_report.py "
            f"{arguments}`; a later run's rows replace an earlier one's):",
            "",
        ]
        origin += _source_lines(data)
        origin += [
            "",
            f"Each run is `featinv bench --quality --quality-size {data['size']} --quality-steps "
            f"{data['steps']}` with its cases and methods; the full list is `{COMMAND}`.",
        ]
    notes = [s["run"]["notes"] for s in data["sources"] if s["run"]["notes"]]
    text = [
        "# Quality benchmark",
        "",
        f"{len(photos)} photos that ship with scikit-image, matplotlib and scikit-learn: {len(tuned)} that the "
        f"layer-adaptive defaults were chosen on ({', '.join(tuned)}) and {len(held)} never looked at while "
        f"choosing them ({', '.join(held) or 'none in this run'}: the held-out columns), {data['size']} px, "
        f"{data['steps']} steps (the paper recipes at their own 350 / 400, the pytorch-cnn-visualizations "
        "recipe at its 201). Means over the photos; the worst photo's PSNR in brackets. `PSNR 8x` compares "
        "both images downsampled 8x (layout and colour: what deep layers should keep). `feature error` is "
        "the normalised squared error at the layer. ms/step is each image's share of a step with all the "
        "photos in one batch. `(equal time)` rows give a parameterisation as many steps as the default "
        "took seconds. `flat` is the photo's mean colour everywhere: the floor.",
        "",
        *origin,
        "",
        *([f"Not measured (the notes below say why): {', '.join(missing)}.", ""] if missing else []),
        *[n + "\n" for n in notes],
        "## The natural pre-images issue's targets",
        "",
        *targets(data),
        "",
        "## Table",
        "",
        table(from_json(data["rows"])),
        "",
        "## Grids (rows: target, then each method; columns: the photos)",
        "",
        *[f"![{g.stem}](docs/quality/{g.name})" for g in grids],
        "",
        *(_unseen_section(unseen, root) if unseen else []),
        *(_native_size_section(native, root) if native else []),
        *(_time_to_picture_section(time_to_picture) if time_to_picture else []),
        *(_levers_section(levers, root) if levers else []),
    ]
    (root / "QUALITY.md").write_text("\n".join(text))
    print("\n".join(targets(data)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Write QUALITY.md from quality benchmark runs.")
    parser.add_argument(
        "runs",
        nargs="*",
        type=Path,
        default=[ROOT / "runs" / "quality"],
        help="quality.json files or their folders, earliest first (default runs/quality)",
    )
    parser.add_argument(
        "--unseen",
        nargs="+",
        type=Path,
        default=None,
        help="runs on photos outside the benchmark: a section of their own",
    )
    parser.add_argument(
        "--native",
        nargs="+",
        type=Path,
        default=None,
        help="runs of the deep layers at the network's own size (224 px): a section of their own",
    )
    parser.add_argument(
        "--time-to-picture", type=Path, default=None, help="benchmarks/time_to_picture.py's JSON: a section"
    )
    parser.add_argument(
        "--levers", nargs="+", type=Path, default=None, help="benchmarks/probes/deep_levers.py's JSON: a section"
    )
    args = parser.parse_args()
    main(args.runs, unseen=args.unseen, native=args.native, time_to_picture=args.time_to_picture, levers=args.levers)
