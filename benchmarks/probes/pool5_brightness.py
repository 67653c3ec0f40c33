"""Probe: does VGG16 pool5 pin down a photo's brightness and colour? (QUALITY.md, "pool5 and
the flat image")

Inverts the quality benchmark's ten photos at pool5 with the defaults (dip, 128 px, 200 steps,
one batch), with dip's starting image moved to START: a mean level (0.5 is dip's own start: its
output layer's bias gets logit(START)) or ``imagenet``, ImageNet's mean colour (0.485, 0.456,
0.406; about the offline VGG16's zero input, where the papers start). ``--seed`` picks the seed of every
photo's run (the benchmark's is 0). ``--colour decorrelated`` makes dip's output layer draw in
the decorrelated colour space of the other parameterisations (ImageNet's colour correlation,
then the sigmoid), starting at the same colour. For each photo it prints the PSNR, the PSNR
with the reconstruction's mean colour replaced by the photo's and by ImageNet's, the flat
image's PSNR, the feature error of the reconstruction and of the mean-corrected one, and the
mean colours; then the means over the photos.

    python benchmarks/probes/pool5_brightness.py 0.3                  # about 5 min on 2 CPU cores
    python benchmarks/probes/pool5_brightness.py imagenet --seed 1

The changes to dip are made by wrapping DIPParam here, in the probe only.
"""

import argparse
import statistics

import torch

from featinv import metrics
from featinv.experiments import quality
from featinv.nets.models import load_model
from featinv.nets.preprocess import preset
from featinv.optim import params

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("start", nargs="?", default="0.5", help="dip's starting mean level, or 'imagenet'")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--colour", choices=("rgb", "decorrelated"), default="rgb")
args = parser.parse_args()

LAYER = "pool5"
IMAGENET_MEAN = torch.tensor(preset("imagenet").mean)
START = IMAGENET_MEAN if args.start == "imagenet" else torch.full((3,), float(args.start))
_dip_init, _dip_forward = params.DIPParam.__init__, params.DIPParam.forward


def _dip_starting_at(self, *a, **k):
    _dip_init(self, *a, **k)
    with torch.no_grad():
        if args.colour == "decorrelated":  # the output layer draws decorrelated logits (bias replaced)
            self.net.out.bias.copy_(params.rgb_to_decorrelated(START.view(1, 3, 1, 1)).view(3))
        else:
            self.net.out.bias += torch.logit(START)  # sigmoid(0 + b) = START


def _dip_decorrelated(self):
    rgb = _dip_forward(self)  # sigmoid(out); undo it and mix the logits as the other params do
    return params.decorrelated_to_rgb(torch.logit(rgb.clamp(1e-6, 1 - 1e-6)))


params.DIPParam.__init__ = _dip_starting_at
if args.colour == "decorrelated":
    params.DIPParam.forward = _dip_decorrelated


def _seeded(*a, **k):
    return {**config_of(*a, **k), "seed": args.seed}


config_of, quality._config = quality._config, _seeded  # every photo's run gets --seed
cache = {("vgg16_offline", None): load_model("vgg16_offline")}
rows = quality.run_case("vgg16_offline", LAYER, "default", quality.PHOTOS, 128, 200, cache)
columns: dict[str, list[float]] = {}
for row, image, target in rows:
    problem = quality.photo_problem(row.photo, "vgg16_offline", LAYER, 128, cache)
    mean, own = target.mean((1, 2), keepdim=True), image.mean((1, 2), keepdim=True)
    corrected = (image - own + mean).clamp(0, 1)
    numbers = {
        "psnr": row.psnr,
        "photo_mean": metrics.psnr(corrected, target),
        "imagenet_mean": metrics.psnr((image - own + IMAGENET_MEAN.view(3, 1, 1)).clamp(0, 1), target),
        "flat": metrics.psnr(mean.expand_as(target), target),
        "error": quality.feature_error(problem, image),
        "corrected_error": quality.feature_error(problem, corrected),
    }
    for name, value in numbers.items():
        columns.setdefault(name, []).append(value)
    print(
        f"{row.photo:21s} PSNR {row.psnr:5.2f}  mean colour -> photo's {numbers['photo_mean']:5.2f}  "
        f"-> ImageNet's {numbers['imagenet_mean']:5.2f}  flat {numbers['flat']:5.2f} | feature error "
        f"{numbers['error']:.3f}  mean-corrected {numbers['corrected_error']:.3f} | mean colour "
        f"{[round(v, 2) for v in own.flatten().tolist()]} (photo {[round(v, 2) for v in mean.flatten().tolist()]})",
        flush=True,
    )
mean_of = {name: statistics.mean(values) for name, values in columns.items()}
held_out = statistics.mean(r.psnr for r, _, _ in rows if r.photo in quality.HELD_OUT)
print(
    f"start {args.start}, seed {args.seed}, colour {args.colour}: PSNR {mean_of['psnr']:.2f} "
    f"(worst {min(columns['psnr']):.2f}, held-out {held_out:.2f}), SSIM "
    f"{statistics.mean(r.ssim for r, _, _ in rows):.3f}; with the photo's mean colour "
    f"{mean_of['photo_mean']:.2f}, with ImageNet's {mean_of['imagenet_mean']:.2f}, flat {mean_of['flat']:.2f}; "
    f"feature error {mean_of['error']:.4f}"
)
