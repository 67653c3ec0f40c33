"""The paper recipes: settings as the authors' released MATLAB code had them.

Sources (see shared notes ``paper-recipes.md``): CVPR 2015 = aravindhm/deep-goggle
(core/invert_nn.m, experiments/experiment_cnn.m); IJCV 2016 = aravindhm/nnpreimage
(core/get_defaults.m, core/nnpreimage.m, experiments/get_preimage_opts.m).

Both papers put the priors on the network's mean-subtracted 0-255 image (``prior_space:
network``, per-pixel colour vectors, ``tv_kind: vector``) and optimise that image; featinv
optimises RGB [0, 1], so the learning rates are translated (``x255 = 255 * x``):

- IJCV: the objective is already a per-pixel mean, so its terms are used as they are. Their
  step is momentum with an AdaGrad-like normalisation, which plain SGD with the translated lr
  does not survive (lr x TV curvature ~ 2.8 at any size: it oscillates), so the recipe uses
  Adam -- momentum plus a per-pixel RMS normalisation -- with lr 0.02 (about 5 grey levels a
  step), restarted at the lr drop where the jitter stops: featinv choices, not values from the
  source. Without the restart the moments gathered under jitter slow the last 50 steps (ten
  photos, 128 px: worst relu3_3 feature error 0.066 -> 0.043, pool5 0.143 -> 0.091).
- CVPR: their objective is a sum over pixels scaled by 1/sigma_img^2 (the image norm); writing
  sigma_img^2 = H*W*sigma^2 with sigma the average *pixel* norm (80, the IJCV default -- the CVPR
  value of x0_sigma is not in the notes, so this is an assumption) turns it into per-pixel means
  with weights lambda/sigma^2, and their lr into ``lr * H * W * sigma^2 / 255^2`` on ours.

Not reproduced: the IJCV AdaGrad-like step itself (Adam stands in for it), the 4 parallel
restarts of the CVPR code, and the CVPR noise initialisation rescaled to norm sigma (we start
from featinv's seeded noise). Measured here (64 px, chelsea, offline VGG16): mahendran2016
converges at relu3_3 and pool5 (about 16 dB); mahendran2015 converges at relu3_3 but diverges
at pool5, where lambda_TV = 100 makes the translated SGD step unstable -- a sign that the
assumed sigma is off for that code; pass a smaller --lr there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..errors import ConfigError, did_you_mean
from ..nets.layers import LayerRequest, default_layer
from ..specs import RECIPES

SIGMA = 80.0  # average pixel norm in 0-255 space (nnpreimage get_defaults.m)
# The IJCV data-term weight C for layers given without a weight. The paper varies C over
# {1, 20, 100, 300} without the notes saying which it used where; with C = 1 the TV prior wins
# (normalised feature error 0.53-0.61 at relu3_3 after 350 steps, astronaut and coffee at
# 128 px), with 100 it is 0.05-0.07, with 300 0.025-0.036: 300 is the smallest of their values
# at which the recipe converges, so it is the default. Pass relu3_3:1 for C = 1.
IJCV_DATA_WEIGHT = 300.0


def _depth_and_stride(model: Any, layers: Sequence[str], size: int) -> tuple[float, int]:
    """Relative depth (0..1) of the deepest layer among the model's aliases, and its stride."""
    from ..nets.extractor import FeatureExtractor
    from ..nets.layers import aliases, graph_nodes, resolve, stride_of

    names = [layer.split(":")[0] for layer in layers]
    nodes = graph_nodes(model)
    resolved = resolve(model, names)
    deepest = max(resolved, key=lambda n: nodes.index(resolved[n]))
    table = list(aliases(model).values()) or nodes
    order = sorted(set(table), key=nodes.index)
    position = next(
        (i for i, n in enumerate(order) if nodes.index(n) >= nodes.index(resolved[deepest])), len(order) - 1
    )
    depth = position / max(len(order) - 1, 1)
    with torch.no_grad():
        param = next(model.parameters())
        out = FeatureExtractor(model, [deepest])(torch.zeros(1, 3, size, size, device=param.device))[deepest]
    return depth, stride_of(size, [out.shape])


def recipe_values(name: str, model: Any, layers: Sequence[str], size: int) -> tuple[dict[str, Any], str]:
    """Config values of recipe ``name`` for these layers and size, and a YAML comment citing sources."""
    if name not in RECIPES:
        raise ConfigError(
            f"unknown recipe {name!r}: expected one of {', '.join(RECIPES)}.{did_you_mean(name, RECIPES)}"
        )
    depth, stride = _depth_and_stride(model, layers, size)
    pixels = size * size
    if name == "mahendran2015":
        # lambda_TV 1 / 10 / 100 for the first / middle / last third of CaffeNet's 20 layers
        lam_tv = 1.0 if depth < 1 / 3 else 10.0 if depth < 2 / 3 else 100.0
        values = {
            "optimizer": "sgd",
            "momentum": 0.9,
            "momentum_reset": True,
            "lr": 0.004 * pixels * SIGMA**2 / 255**2,
            "schedule": "piecewise:100x1,200x0.1,100x0.01",
            "steps": 400,
            "prior_space": "network",
            "tv_kind": "vector",
            "tv_beta": 2.0,
            "tv": lam_tv / SIGMA**2,
            "alpha": 6.0,
            "alpha_norm": 8e-10 / SIGMA**2,
            "clamp": False,
            "jitter": 0,
            "param": "pixel",
            "transforms": "none",
            "recipe": name,
        }
        header = (
            f"# recipe mahendran2015 (CVPR 2015, aravindhm/deep-goggle core/invert_nn.m, "
            f"experiments/experiment_cnn.m):\n"
            f"#   SGD momentum 0.9 reset at each lr drop; lr 0.004 x [1 (100), 0.1 (200), 0.01 (100)]\n"
            f"#   translated to RGB [0,1] as 0.004 * H*W * sigma^2 / 255^2 (sigma = {SIGMA:g}, assumed);\n"
            f"#   TV^2 with lambda {lam_tv:g} (layer depth {depth:.2f}: 1 / 10 / 100 by thirds) / sigma^2;\n"
            f"#   alpha-norm alpha 6, lambda 8e-10 / sigma^2; priors on the mean-subtracted 0-255 image.\n"
        )
    else:
        jitter = max(round(stride / 4), 1)
        # Adam restarts at the lr drop, where the jitter stops: the moments it gathered under
        # jitter describe a noisier problem (clock, relu3_3: feature error 0.066 -> 0.043).
        values = {
            "optimizer": "adam",
            "momentum_reset": True,
            "lr": 0.02,
            "schedule": "piecewise:300x1,50x0.1",
            "steps": 350,
            "prior_space": "network",
            "tv_kind": "vector",
            "tv_beta": 2.0,
            "tv": (6.5 / SIGMA) ** 2,
            "alpha": 6.0,
            "alpha_norm": (1 / SIGMA) ** 6,
            "pixel_bound": 2 * SIGMA,
            "jitter": jitter,
            "jitter_off_last": 50,
            "clamp": True,
            "param": "pixel",
            "transforms": "none",
            "recipe": name,
        }
        header = (
            f"# recipe mahendran2016 (IJCV 2016, aravindhm/nnpreimage core/get_defaults.m, "
            f"core/nnpreimage.m, experiments/get_preimage_opts.m):\n"
            f"#   sigma {SIGMA:g}, alpha 6 with lambda (1/sigma)^6, TV^2 with lambda (6.5/sigma)^2, pixel bound "
            f"B = {2 * SIGMA:g};\n"
            f"#   300 steps then 50 at 0.1x the lr; their AdaGrad-like momentum step is stood in for by\n"
            f"#   Adam with lr 0.02, restarted at the lr drop (featinv choices: plain SGD with their lr\n"
            f"#   oscillates; Adam's moments from the jittered steps slow the last 50);\n"
            f"#   jitter max(round(stride/4), 1) = {jitter} (stride {stride}), off for the last 50 steps;\n"
            f"#   data term C * ||phi - phi0||^2 / ||phi0||^2 with C the layer weight: {IJCV_DATA_WEIGHT:g} where\n"
            f"#   none is given (the largest of the paper's 1/20/100/300: smaller ones do not converge here).\n"
            f"#   Not reproduced: their exact AdaGrad-like step (see featinv.optim.recipes).\n"
        )
    return values, header


def with_recipe(
    low: dict[str, Any], high: dict[str, Any], where: str = "config", models: dict | None = None
) -> tuple[Any, str]:
    """The config of ``low < recipe values < high`` (the recipe named in either), and its header.

    ``models`` caches loaded networks across calls (sweeps expand many trials).
    """
    from ..config import from_dict
    from ..nets.models import load_model

    config = from_dict({**low, **high}, where=where)
    if not config.recipe:
        return config, ""
    key = (config.model, config.weights)
    cache = models if models is not None else {}
    if key not in cache:
        cache[key] = load_model(config.model, config.weights)
    model = cache[key]
    layers = config.layers or (model.default_layer or default_layer(model.module, config.size),)
    values, header = recipe_values(config.recipe, model.module, layers, config.size)
    merged = {**low, **values, **high}
    if config.recipe == "mahendran2016":  # C on each layer given without a weight (see IJCV_DATA_WEIGHT)
        merged["layers"] = [
            spec if spec.endswith(":1") or LayerRequest.parse(spec).weight != 1 else f"{spec}:{IJCV_DATA_WEIGHT:g}"
            for spec in layers
        ]
    return from_dict(merged, where=where), header
