"""Probe: which levers make a layer's reconstructions more recognisable (VGG16 pool5 unless
--model and --layer say otherwise)? (QUALITY.md, "Levers for deep layers")

Runs each lever as a change to the defaults (128 px, one batch per lever) on the ten benchmark
photos and the six unseen ones, and shows every reconstruction to the judge (EfficientNet-Lite0,
featinv.nets.judge) against a gallery of all sixteen photos and the built-in distractors left
over. Levers (names on the command line):

- ``default``      the defaults as they are (dip, 200 steps, the transforms below from stride 32);
- ``no-transforms`` the defaults without transforms (the defaults before 2026-12-07);
- ``steps=N``      the defaults with N steps (the cosine schedule over N steps, not a cut-off run);
  any ``key=value`` sets that config value the same way (``tv=0.2``, ``param=pixel``);
- ``A+B``          levers A and B together (``transforms+steps=100``);
- ``transforms``   random jitter, scale and rotation each step (Olah et al. 2017), off for the
  last 20 steps (the default from stride 32 since 2026-12-07);
- ``strong-transforms`` twice the shift and zoom, twice the angle (jitter=8,scale=0.2,rotate=20);
- ``ensemble``     relu4_3 added to the objective at weight 0.1 (its normalised error);
- ``restarts``     two seeds of 100 steps each (the default's compute), the lower final loss kept;
- ``flat``         the photo's mean colour everywhere (the floor);
- ``pyramid``      the Laplacian pyramid with colour on an 8-pixel scale (the colour prior of the
  image parameterisations; what the defaults use when dip cannot run).

Writes a JSON file of rows (the quality benchmark's fields; a lever run again replaces its rows),
with ``--grids DIR`` a grid per lever there and ``grid_vgg16_offline_<layer>.png`` beside the JSON
with every lever's row so far (the form benchmarks/quality_report.py --levers reads); prints the
quality table and each photo's verdict per lever.

    python benchmarks/probes/deep_levers.py default steps=80 transforms --out /tmp/levers.json --grids /tmp/levers
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from featinv.config import from_dict
from featinv.experiments import bench, quality
from featinv.files import write_bytes, write_json
from featinv.nets.models import load_model
from featinv.optim.inversion import Inversion

UNSEEN = ("grace_hopper", "motorcycle", "hubble_deep_field", "retina", "coins", "gravel")
MODEL = "vgg16_offline"  # the default --model

LEVERS: dict[str, dict[str, Any]] = {
    "default": {},
    "no-transforms": {"transforms": "none", "jitter_off_last": 0},
    "transforms": {"transforms": "jitter=4,scale=0.1,rotate=10", "jitter_off_last": 20},
    "strong-transforms": {"transforms": "jitter=8,scale=0.2,rotate=20", "jitter_off_last": 20},
    "ensemble": {"layers": "{layer},relu4_3:0.1"},
    "restarts": {"restarts": 2, "steps": 100},
    "pyramid": {"param": "pyramid", "chroma_scale": 8},
}


def lever(name: str, layer: str) -> dict[str, Any]:
    """The config values lever ``name`` changes at ``layer``; ``a+b``: both (b's values win)."""
    if "+" in name:
        return {k: v for part in name.split("+") for k, v in lever(part, layer).items()}
    if "=" in name:  # a config value as the command line would give it (from_dict coerces it)
        key, _, value = name.partition("=")
        return {key.replace("-", "_"): value}
    return {k: v.format(layer=layer) if isinstance(v, str) else v for k, v in LEVERS[name].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("levers", nargs="+")
    parser.add_argument("--model", default=MODEL, help="the network inverted (its judge: featinv.nets.judge)")
    parser.add_argument("--layer", default="pool5")
    parser.add_argument("--photos", nargs="+", default=[*quality.PHOTOS, *UNSEEN])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--grids", type=Path)
    args = parser.parse_args()

    cache: dict = {(args.model, None): load_model(args.model)}
    old = json.loads(args.out.read_text())["rows"] if args.out.exists() else []
    rows = quality.from_json(old)
    for name in args.levers:
        if name == "flat":
            flat = quality.run_case(args.model, args.layer, "flat", args.photos, args.size, 0, cache)
            done, images, targets = [r for r, _, _ in flat], {name: [im for _, im, _ in flat]}, [t for _, _, t in flat]
        else:
            done, images, targets = run_lever(name, args.model, args.layer, args.photos, args.size, cache)
        done = quality.judge_rows(done, args.model, args.layer, images, targets, args.photos, args.size, cache)
        rows = [r for r in rows if r.method != name] + done
        print(quality._summary_line(f"{args.model}:{args.layer}", name, done), flush=True)
        if args.grids:
            quality.save_grid(targets, images, args.photos, f"{args.layer} {name}", args.grids / f"{name}.png")
            levers = list(dict.fromkeys(r.method for r in rows))
            combine_grids(
                [args.grids / f"{m}.png" for m in levers], args.out.with_name(f"grid_{args.model}_{args.layer}.png")
            )
        environment = bench.environment(torch.device("cpu"))
        data = {"environment": environment, "size": args.size, "steps": 200, "rows": quality.to_json(rows)}
        write_json(args.out, data)
    print(quality.table(rows))
    print(per_photo(rows))


def run_lever(name: str, model: str, layer: str, photos: list[str], size: int, cache: dict) -> tuple[list, dict, list]:
    """Every photo through the defaults changed by lever ``name``, as one batch: rows, images, targets."""
    options = [{**quality._config(p, model, layer, "default", size, 200), **lever(name, layer)} for p in photos]
    results = Inversion([from_dict(o) for o in options], cache[(model, None)]).run_all()
    rows = [
        quality._row(
            p,
            model,
            layer,
            name,
            r.steps,
            r.image,
            r.target,
            r.summary["feature_error_total"],
            r.summary["seconds_per_step"],
            False,
            r.config.param,
        )
        for p, r in zip(photos, results)
    ]
    return rows, {name: [r.image for r in results]}, [r.target for r in results]


def combine_grids(grids: list[Path], out: Path) -> None:
    """One grid from the per-lever ones (each: a title line, the targets' row, the lever's row): the
    first's title and targets, then every lever's row."""
    title, cell = 18, 96  # quality.save_grid's layout
    sheets = [Image.open(g) for g in grids if g.is_file()]
    combined = Image.new("RGB", (sheets[0].width, title + cell * (1 + len(sheets))), "white")
    combined.paste(sheets[0].crop((0, 0, sheets[0].width, title + cell)), (0, 0))
    for i, sheet in enumerate(sheets):
        combined.paste(sheet.crop((0, title + cell, sheet.width, title + 2 * cell)), (0, title + cell * (1 + i)))
    buffer = io.BytesIO()
    combined.save(buffer, format="PNG")
    write_bytes(out, buffer.getvalue())


def per_photo(rows: list[quality.Row]) -> str:
    """Rank, class agreement and cosine per photo and lever."""
    levers = list(dict.fromkeys(r.method for r in rows))
    photos = list(dict.fromkeys(r.photo for r in rows))
    lines = ["| photo | " + " | ".join(levers) + " |", "|---|" + "---|" * len(levers)]
    for p in photos:
        cells = []
        for m in levers:
            r = next((r for r in rows if (r.photo, r.method) == (p, m)), None)
            cells.append(
                "-" if r is None else f"{r.judge_rank} {'y' if r.class_agreement == 1 else 'n'} {r.judge_cosine:.2f}"
            )
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
