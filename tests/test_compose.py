"""Parts passed from Python: a parameterisation of one's own and objectives composed with + and *."""

import pytest
import torch

from featinv.api import invert
from featinv.errors import ConfigError
from featinv.objectives import alpha_norm, channel, features, neuron, tv
from featinv.optim.callbacks import StopAfter

SMALL = {"model": "resnet18", "weights": "none", "size": 32, "steps": 6}


class Sigmoid(torch.nn.Module):
    """The image as a sigmoid over a free tensor: the four lines a user writes."""

    def __init__(self, size: int = 32, seed: int = 0) -> None:
        super().__init__()
        self.logits = torch.nn.Parameter(torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed)))

    def forward(self) -> torch.Tensor:
        return torch.sigmoid(self.logits)


def test_your_own_parameterisation_and_objective_run_and_resume_bit_identically(tmp_path):
    objective = features("res1") + 0.5 * tv()
    run = {**SMALL, "objective": objective, "out": tmp_path / "cut"}
    cut = invert("skimage:astronaut", param=Sigmoid(seed=0), callbacks=[StopAfter(3)], **run)
    assert cut.status == "interrupted" and cut.steps == 3
    stored = (tmp_path / "cut" / "config.yaml").read_text()
    assert "param: custom" in stored and "layers:\n- res1" in stored
    # resumed with a module drawn differently: the checkpoint's state_dict is what continues
    resumed = invert("skimage:astronaut", param=Sigmoid(seed=99), resume=True, **run)
    whole = invert("skimage:astronaut", param=Sigmoid(seed=0), **{**run, "out": tmp_path / "whole"})
    assert resumed.status == "done" and resumed.steps == 6
    assert torch.equal(resumed.image, whole.image)
    assert whole.summary["objective"] == "features('res1') + 0.5 * tv()"
    assert whole.summary["param_module"] == "Sigmoid" and set(whole.history[0]) >= {"feat_res1", "tv"}


@pytest.mark.parametrize("extra", [{}, {"channels": "top:8"}, {"window": "1:5,2:6"}])
def test_the_options_build_the_same_objective_as_the_terms(extra):
    """--layers / --tv / --alpha-norm / --channels / --window are the composed terms: same run, bit for bit."""
    common = {**SMALL, "param": "pixel", "seed": 3}
    from_options = invert("skimage:coffee", layers="res1", tv=0.5, alpha_norm=0.1, alpha=4, **extra, **common)
    composed = features("res1", **extra) + 0.5 * tv() + 0.1 * alpha_norm(4)
    from_terms = invert("skimage:coffee", objective=composed, **common)
    untimed = [
        [{k: v for k, v in row.items() if k != "seconds"} for row in r.history] for r in (from_options, from_terms)
    ]
    assert untimed[0] == untimed[1]
    assert torch.equal(from_options.image, from_terms.image)


def test_channel_maximisation_raises_that_channels_activation(offline_vgg):
    from featinv.nets.extractor import FeatureExtractor

    def mean_activation(image):
        extractor = FeatureExtractor(offline_vgg.module, ["relu4_3"])
        with torch.no_grad():
            return extractor(offline_vgg.preprocess(image[None]))["relu4_3"][0, 12].mean().item()

    result = invert(
        "skimage:chelsea",
        model=offline_vgg,
        objective=channel("relu4_3", 12) + 0.1 * tv(),
        size=64,
        steps=20,
        param="pixel",
    )
    start = -result.history[0]["channel_relu4_3_12"]  # the term is minus the mean, measured before step 1
    assert mean_activation(result.image) > 10 * max(start, mean_activation(result.target)) > 0


def test_a_neuron_is_one_cell_of_the_channel(offline_vgg):
    result = invert(
        "skimage:coffee", model=offline_vgg, objective=neuron("relu3_3", 7, 2, 3), param="pixel", size=32, steps=10
    )
    assert -result.history[-1]["neuron_relu3_3_7"] > 2 * -result.history[0]["neuron_relu3_3_7"] > 0
    with pytest.raises(ConfigError, match=r"neuron \(9, 0\) is outside relu3_3's 8x8 map"):
        invert("skimage:coffee", model=offline_vgg, objective=neuron("relu3_3", 7, 9, 0), size=32, steps=1)


def test_terms_compose():
    assert sum([features("a"), tv()]).parts == (features("a") + tv()).parts
    assert repr(features("a") - 2 * tv(beta=1)) == "features('a') + -2 * tv(beta=1)"
    assert (3 * (features("a") + channel("b", 1))).layers == ("a", "b")
    weights = torch.tensor([1.0, 2.0])
    assert torch.equal((weights * tv()).parts[0][0], weights)
    with pytest.raises(TypeError):
        features("a") + 1
    with pytest.raises(TypeError):
        features("a") * "2"


@pytest.mark.parametrize(
    "options, message",
    [
        ({"objective": tv()}, "names no layer"),
        ({"objective": "features('res1')"}, "must be built from featinv.objectives"),
        ({"objective": channel("res1", 999)}, "channel 999 of res1 does not exist: the layer has 64"),
        ({"objective": features("res1"), "layers": "res2"}, "names res1, which the run does not extract"),
        (
            {"param": Sigmoid(size=16)},
            r"must return an image \[1, 3, 32, 32\] in \[0, 1\] \(size 32\), got \(1, 3, 16, 16\)",
        ),
        ({"param": Sigmoid(), "restarts": 2}, "one trial without restarts"),
        ({"param": Sigmoid(), "init": "grey"}, "cannot start your own parameterisation"),
    ],
)
def test_bad_parts_are_clear_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        invert(
            "skimage:coffee",
            **{**SMALL, "layers": "res1", **options}
            if "objective" not in options or "layers" in options
            else {**SMALL, **options},
        )


def test_bad_term_options_fail_when_written():
    for make, message in (
        (lambda: features("a", channels="x"), "channels must be"),
        (lambda: features("a", window="1:2"), "window must be"),
        (lambda: tv(kind="l3"), "tv kind must be"),
        (lambda: alpha_norm(0), "alpha must be > 0"),
        (lambda: tv(space="lab"), "space is 'rgb' or 'network'"),
    ):
        with pytest.raises(ConfigError, match=message):
            make()


def test_param_custom_from_the_command_line_says_what_it_is(tmp_path):
    from conftest import run_cli

    proc = run_cli(
        "invert",
        "skimage:coffee",
        "--model",
        "resnet18",
        "--weights",
        "none",
        "--layers",
        "res1",
        "--size",
        "32",
        "--steps",
        "1",
        "--param",
        "custom",
        "--out",
        str(tmp_path / "r"),
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "nn.Module of your own" in proc.stderr
