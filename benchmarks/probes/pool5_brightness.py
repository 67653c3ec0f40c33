"""Probe: does VGG16 pool5 pin down a photo's brightness? (QUALITY.md, "pool5 and the flat image")

Inverts the quality benchmark's ten photos at pool5 with the defaults (dip, 128 px, 200 steps,
one batch), with dip's starting image shifted to a mean level of START (0.5 is dip's own start:
its output layer's bias gets logit(START)). For each photo it prints the PSNR, the PSNR with the
reconstruction's mean colour replaced by the photo's, the flat image's PSNR, and the feature
error of the reconstruction and of the mean-corrected reconstruction.

    python benchmarks/probes/pool5_brightness.py 0.3     # about 5 min on 2 CPU cores

The shift is applied by wrapping DIPParam's constructor here, in the probe only.
"""
import sys

import torch

from featinv import metrics, params
from featinv.models import load_model
from featinv.quality import PHOTOS, feature_error, photo_problem, run_case

START = float(sys.argv[1]) if len(sys.argv) > 1 else 0.5
LAYER = "pool5"
_dip_init = params.DIPParam.__init__


def _dip_starting_at(self, *args, **kwargs):
    _dip_init(self, *args, **kwargs)
    with torch.no_grad():
        self.net.out.bias += torch.logit(torch.tensor(START))  # sigmoid(0 + b) = START


params.DIPParam.__init__ = _dip_starting_at
cache = {("vgg16_offline", None): load_model("vgg16_offline")}
rows = run_case("vgg16_offline", LAYER, "default", PHOTOS, 128, 200, cache)
for row, image, target in rows:
    problem = photo_problem(row.photo, "vgg16_offline", LAYER, 128, cache)
    mean = target.mean((1, 2), keepdim=True)
    corrected = (image - image.mean((1, 2), keepdim=True) + mean).clamp(0, 1)
    print(f"{row.photo:21s} PSNR {row.psnr:5.2f}  mean-corrected {metrics.psnr(corrected, target):5.2f}  "
          f"flat {metrics.psnr(mean.expand_as(target), target):5.2f} | feature error {feature_error(problem, image):.3f}  "
          f"mean-corrected {feature_error(problem, corrected):.3f} | mean level {image.mean():.2f} (photo {target.mean():.2f})",
          flush=True)
