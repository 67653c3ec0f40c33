import math

import pytest

from featinv.api import invert
from featinv.errors import ConfigError
from featinv.optim.recipes import recipe_values, with_recipe
from featinv.runs.sweep import expand


def test_ijcv_recipe_values_follow_the_sources(offline_vgg):
    values, header = recipe_values("mahendran2016", offline_vgg.module, ["relu3_3"], 128)
    assert values["tv"] == pytest.approx((6.5 / 80) ** 2) and values["alpha_norm"] == pytest.approx(80**-6)
    assert values["alpha"] == 6 and values["tv_beta"] == 2 and values["pixel_bound"] == 160
    assert values["schedule"] == "piecewise:300x1,50x0.1" and values["steps"] == 350
    assert values["jitter"] == 1 and values["jitter_off_last"] == 50  # relu3_3 has stride 4: round(4/4)
    assert values["optimizer"] == "adam"  # stands in for the AdaGrad-like step (see the module doc)
    assert values["momentum_reset"]  # Adam starts afresh when the jitter stops (see recipe_values)
    assert "nnpreimage" in header and "get_defaults.m" in header
    deep, _ = recipe_values("mahendran2016", offline_vgg.module, ["pool5"], 128)
    assert deep["jitter"] == 8  # stride 32


def test_cvpr_recipe_gives_deeper_layers_stronger_tv(offline_vgg):
    tvs = [
        recipe_values("mahendran2015", offline_vgg.module, [layer], 64)[0]["tv"] * 80**2
        for layer in ("conv1_1", "relu3_3", "pool5")
    ]
    assert tvs == [1, 10, 100]
    values, header = recipe_values("mahendran2015", offline_vgg.module, ["conv1_1"], 64)
    assert values["optimizer"] == "sgd" and values["momentum"] == 0.9 and values["momentum_reset"]
    assert values["lr"] == pytest.approx(0.004 * 64 * 64 * 80**2 / 255**2)
    assert values["schedule"] == "piecewise:100x1,200x0.1,100x0.01" and values["alpha_norm"] * 80**2 == pytest.approx(
        8e-10
    )
    assert "deep-goggle" in header


def test_options_override_the_recipe_and_bad_names_fail():
    config, _ = with_recipe({"recipe": "mahendran2016", "layers": "relu2_2", "size": 32}, {"steps": 7})
    assert config.steps == 7 and config.prior_space == "network" and config.recipe == "mahendran2016"
    with pytest.raises(ConfigError, match="Did you mean 'mahendran2016'"):
        with_recipe({"recipe": "mahendran2061"}, {})


@pytest.mark.parametrize("recipe", ["mahendran2015", "mahendran2016"])
def test_recipes_run_and_lower_the_loss(offline_vgg, recipe):
    result = invert(
        "skimage:chelsea", model=offline_vgg, recipe=recipe, layers="relu2_2", size=32, steps=40, jitter_off_last=5
    )
    assert result.status == "done" and math.isfinite(result.summary["ijcv_error"]["relu2_2"])
    assert result.history[-1]["loss"] < 0.5 * result.history[0]["loss"]
    assert result.history[-1]["lr"] == pytest.approx(result.config.lr)  # 40 steps: the first segment


def test_sweeps_apply_recipes_per_trial():
    trials = expand({"base": {"recipe": "mahendran2015", "size": 32}, "grid": {"layers": ["conv1_1", "pool5"]}})
    assert [round(t.config.tv * 80**2) for t in trials] == [1, 100]


def test_ijcv_recipe_weights_unweighted_layers_with_its_data_weight():
    """C = 300 where no weight is given (C = 1 does not converge: see featinv.optim.recipes); an
    explicit weight, 1 included, is kept."""
    from featinv.optim.recipes import IJCV_DATA_WEIGHT

    config, header = with_recipe({"recipe": "mahendran2016", "size": 32}, {"layers": "relu2_2,pool2:20,conv1_1:1"})
    assert config.layers == (f"relu2_2:{IJCV_DATA_WEIGHT:g}", "pool2:20", "conv1_1:1")
    assert config.param == "pixel" and "C the layer weight" in header
    default_layer, _ = with_recipe({"recipe": "mahendran2016", "size": 32}, {})
    assert default_layer.layers == (f"relu3_3:{IJCV_DATA_WEIGHT:g}",)
