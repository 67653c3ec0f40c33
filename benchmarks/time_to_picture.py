"""Time to a good picture: PSNR and the judge's eye against wall seconds, one run at a time.

For the offline VGG16 at relu3_3 and pool5 (128 px), each of default, pixel, peer and the IJCV
recipe (mahendran2016) runs on each photo on its own (one image, as a user waits for it), and every
``--every`` steps its image is kept with the wall time. Afterwards each kept image is scored: PSNR
against the photo, and EfficientNet-Lite0's verdict (featinv.nets.judge: the cosine of its pooled
features with the photo's, and the rank of the photo among itself and the 21 built-in photos). The
numbers go to a JSON file, the curves (mean over the photos) to a PNG.

    python benchmarks/time_to_picture.py --out benchmarks/results/quality/2026-12-08-time-to-picture.json \\
        --plot docs/quality/time_to_picture.png
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from featinv import metrics
from featinv.experiments import quality
from featinv.files import SAMPLES, load_target
from featinv.nets.judge import Judge
from featinv.nets.models import load_model
from featinv.optim.inversion import Inversion
from featinv.optim.recipes import with_recipe

METHODS = ("default", "pixel", "peer", "mahendran2016")


class Keep:
    """A callback: the image every ``every`` steps (and the last), with seconds since the start."""

    def __init__(self, every: int) -> None:
        self.every, self.kept, self.start = every, [], 0.0

    def on_start(self, run) -> None:
        self.start = time.perf_counter()

    def on_step(self, run, rows) -> None:
        if run.step % self.every == 0:
            self.kept.append((run.step, time.perf_counter() - self.start, run.image(0).clone()))


def run_one(photo: str, layer: str, method: str, size: int, steps: int, every: int, cache: dict):
    if method == "peer":
        problem = quality.photo_problem(photo, "vgg16_offline", layer, size, cache)
        kept, start = [], time.perf_counter()

        def keep(step, image):
            if step % every == 0 or step == 201:
                kept.append((step, time.perf_counter() - start, image.clone()))

        quality.peer_inversion(problem, 201, on_step=keep)
        return kept, problem.target[0].cpu()
    options = quality._config(photo, "vgg16_offline", layer, method, size, steps)
    config, _ = with_recipe({}, options, models=cache)
    keeper = Keep(every)
    result = Inversion(config, cache[("vgg16_offline", None)]).run([keeper])
    if not keeper.kept or keeper.kept[-1][0] != result.steps:
        keeper.kept.append((result.steps, time.perf_counter() - keeper.start, result.image.clone()))
    return keeper.kept, result.target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", nargs="+", default=["coffee", "chelsea", "astronaut"])
    parser.add_argument("--layers", nargs="+", default=["relu3_3", "pool5"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()

    cache = {("vgg16_offline", None): load_model("vgg16_offline")}
    runs = []
    for layer in args.layers:
        for method in args.methods:
            for photo in args.photos:
                kept, target = run_one(photo, layer, method, args.size, args.steps, args.every, cache)
                runs.append({"layer": layer, "method": method, "photo": photo, "kept": kept, "target": target})
                print(f"{layer} {method} {photo}: {kept[-1][0]} steps in {kept[-1][1]:.1f} s", flush=True)
    judge = Judge("efficientnet_lite0_offline")
    builtins = torch.stack(
        [load_target(prefix + name, args.size) for prefix, names in SAMPLES.items() for name in names]
    )
    gallery = judge.look(builtins)[0]
    rows = []
    for r in runs:
        images = torch.stack([im for _, _, im in r["kept"]])
        seen = judge.look(images)[0]
        own = judge.look(r["target"][None])[0]
        cos = (seen @ own.T)[:, 0]
        # the photo's rank among itself and the built-in photos (its own twin there does not count)
        others = seen @ gallery.T
        ranks = 1 + (others > cos[:, None] + 1e-6).sum(1)
        for (step, seconds, image), c, rank in zip(r["kept"], cos.tolist(), ranks.tolist()):
            rows.append(
                {
                    "layer": r["layer"],
                    "method": r["method"],
                    "photo": r["photo"],
                    "step": step,
                    "seconds": round(seconds, 3),
                    "psnr": round(metrics.psnr(image, r["target"]), 3),
                    "judge_cosine": round(c, 4),
                    "judge_rank": int(rank),
                }
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "rows": rows}, indent=1
        )
    )
    print(summary(rows))
    if args.plot:
        plot(rows, args.plot)


def curves(rows, layer, method):
    """Mean over the photos at each kept step: (seconds, psnr, cosine, photos at rank 1)."""
    steps = sorted({r["step"] for r in rows if (r["layer"], r["method"]) == (layer, method)})
    out = []
    for step in steps:
        at = [r for r in rows if (r["layer"], r["method"], r["step"]) == (layer, method, step)]
        n = len(at)
        out.append(
            (
                sum(r["seconds"] for r in at) / n,
                sum(r["psnr"] for r in at) / n,
                sum(r["judge_cosine"] for r in at) / n,
                sum(r["judge_rank"] == 1 for r in at),
                n,
            )
        )
    return out


def summary(rows) -> str:
    """A markdown table: per layer and method, the final numbers and when the picture first became
    recognisable (every photo at rank 1, and the mean cosine within 0.05 of its final value)."""
    lines = [
        "| layer | method | steps | seconds | PSNR | judge cosine | own photo first "
        "| every photo first after | cosine within 0.05 of final after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for layer in dict.fromkeys(r["layer"] for r in rows):
        for method in dict.fromkeys(r["method"] for r in rows):
            c = curves(rows, layer, method)
            if not c:
                continue
            last = c[-1]
            steps = max(r["step"] for r in rows if (r["layer"], r["method"]) == (layer, method))
            all_first = next((f"{s:.1f} s" for s, _, _, k, n in c if k == n), "never")
            near = next((f"{s:.1f} s" for s, _, cos, _, _ in c if cos >= last[2] - 0.05), "-")
            lines.append(
                f"| {layer} | {method} | {steps} | {last[0]:.1f} | {last[1]:.2f} | {last[2]:.3f} | "
                f"{last[3]}/{last[4]} | {all_first} | {near} |"
            )
    return "\n".join(lines)


def plot(rows, path: Path) -> None:
    from matplotlib.figure import Figure

    layers = list(dict.fromkeys(r["layer"] for r in rows))
    fig = Figure(figsize=(11, 3.6 * len(layers)))
    axes = fig.subplots(len(layers), 2, squeeze=False)
    for i, layer in enumerate(layers):
        for method in dict.fromkeys(r["method"] for r in rows):
            c = curves(rows, layer, method)
            axes[i][0].plot([x[0] for x in c], [x[1] for x in c], label=method)
            axes[i][1].plot([x[0] for x in c], [x[2] for x in c], label=method)
        axes[i][0].set(title=f"{layer}: PSNR (dB)", xlabel="wall seconds (one photo, this CPU)")
        axes[i][1].set(title=f"{layer}: judge cosine (EfficientNet-Lite0)", xlabel="wall seconds (one photo, this CPU)")
        axes[i][1].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    main()
