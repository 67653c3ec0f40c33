"""Write QUALITY.md from a `featinv bench --quality` folder: machine, versions, date, command,
the issue's targets checked against the numbers, the table and the image grids.

    featinv bench --quality --out runs/quality          # the benchmark (about an hour on 2 CPU cores)
    python benchmarks/quality_report.py runs/quality     # -> QUALITY.md, docs/quality/*.png

An interrupted benchmark resumes case by case when run again with the same --out. A ``notes.md``
in the folder (how the run went: a resumed case, a busy machine) goes under the header.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMAND = ("featinv bench --quality --quality-cases vgg16_offline:pool5 vgg16_offline:relu3_3 "
           "efficientnet_lite0_offline:stage5 efficientnet_lite0_offline:stage2 vgg16_offline:conv1_2 "
           "--methods flat default pixel fourier pyramid peer mahendran2016 mahendran2015 dip --out runs/quality")


def _rows(data: dict, layer: str, method: str, equal_time: bool = False) -> list[dict]:
    return [r for r in data["rows"] if r["layer"] == layer and r["method"] == method and r["equal_time"] == equal_time]


def _mean(rows: list[dict], key: str) -> float:
    return sum(r[key] for r in rows) / len(rows) if rows else float("nan")


def targets(data: dict) -> list[str]:
    """The natural pre-images issue's bars, each with the measured numbers and met / not met."""
    lines = []

    def check(text: str, ok: bool) -> None:
        lines.append(f"- {'met' if ok else '**not met**'}: {text}")

    relu = _rows(data, "relu3_3", "default")
    if relu:
        worst, mean = min(r["psnr"] for r in relu), _mean(relu, "psnr")
        check(f"relu3_3 with the defaults >= 20 dB on every photo (worst {worst:.2f} dB)", worst >= 20)
        check(f"relu3_3 with the defaults, mean >= 23 dB ({mean:.2f} dB)", mean >= 23)
    pool = {m: _rows(data, "pool5", m) for m in ("default", "pixel", "fourier", "pyramid", "dip", "flat")}
    if pool["default"]:
        best = max(("pixel", "fourier", "pyramid", "dip"), key=lambda m: _mean(pool[m], "psnr") if pool[m] else -1)
        b = pool[best]
        check(f"pool5, best param ({best}) >= 10.5 dB and SSIM >= 0.2 ({_mean(b, 'psnr'):.2f} dB, "
              f"SSIM {_mean(b, 'ssim'):.3f}; the flat mean-colour image: {_mean(pool['flat'], 'psnr'):.2f} dB, "
              f"SSIM {_mean(pool['flat'], 'ssim'):.3f})", _mean(b, "psnr") >= 10.5 and _mean(b, "ssim") >= 0.2)
        check(f"pool5, best param beats the flat image in PSNR ({_mean(b, 'psnr'):.2f} vs "
              f"{_mean(pool['flat'], 'psnr'):.2f} dB)", _mean(b, "psnr") > _mean(pool["flat"], "psnr"))
        d = pool["default"]
        check(f"pool5 with the defaults >= 9.5 dB and SSIM >= 0.15 ({_mean(d, 'psnr'):.2f} dB, "
              f"SSIM {_mean(d, 'ssim'):.3f})", _mean(d, "psnr") >= 9.5 and _mean(d, "ssim") >= 0.15)
    for layer in dict.fromkeys(r["layer"] for r in data["rows"]):
        d = _rows(data, layer, "default")
        for peer in ("peer", "mahendran2016"):
            p = _rows(data, layer, peer)
            if d and p:
                check(f"{layer}: default not worse than {peer} in PSNR and SSIM ({_mean(d, 'psnr'):.2f} / "
                      f"{_mean(d, 'ssim'):.3f} vs {_mean(p, 'psnr'):.2f} / {_mean(p, 'ssim'):.3f})",
                      _mean(d, "psnr") >= _mean(p, "psnr") and _mean(d, "ssim") >= _mean(p, "ssim"))
    for layer, bar in (("relu3_3", 0.05), ("pool5", 0.2)):
        p = _rows(data, layer, "mahendran2016")
        if p:
            worst = max(r["feature_error"] for r in p)
            check(f"mahendran2016 at {layer}: normalised feature error < {bar} on every photo (worst {worst:.4f})",
                  worst < bar)
    return lines


def main(folder: Path) -> None:
    data = json.loads((folder / "quality.json").read_text())
    env = data["environment"]
    grids = sorted(folder.glob("grid_*.png"))
    (ROOT / "docs" / "quality").mkdir(parents=True, exist_ok=True)
    for grid in grids:
        shutil.copyfile(grid, ROOT / "docs" / "quality" / grid.name)
    photos = sorted({r["photo"] for r in data["rows"]})
    from featinv.quality import CASES, HELD_OUT
    held = [p for p in photos if p in HELD_OUT]
    tuned = [p for p in photos if p not in HELD_OUT]
    ran = {f"{r['model']}:{r['layer']}" for r in data["rows"]}
    missing = [c for c in CASES if c not in ran]
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
        f"Machine: {env.get('processor')}, {env.get('threads')} threads, device {env.get('device')}; "
        f"Python {env.get('python')}, torch {env.get('torch')}, torchvision {env.get('torchvision')}; "
        f"{env.get('date')}.",
        "",
        f"Command: `{COMMAND}`, then `python benchmarks/quality_report.py runs/quality`.",
        "",
        *([f"Not in this run (the notes below say why): {', '.join(missing)}.", ""] if missing else []),
        *([(folder / "notes.md").read_text().strip(), ""] if (folder / "notes.md").is_file() else []),
        "## The natural pre-images issue's targets",
        "",
        *targets(data),
        "",
        "## Table",
        "",
        (folder / "quality.md").read_text().strip(),
        "",
        "## Grids (rows: target, then each method; columns: the photos)",
        "",
        *[f"![{g.stem}](docs/quality/{g.name})" for g in grids],
        "",
    ]
    (ROOT / "QUALITY.md").write_text("\n".join(text))
    print("\n".join(targets(data)))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "runs" / "quality")
