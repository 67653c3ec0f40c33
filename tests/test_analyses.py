"""What a layer keeps: diversity over restarts, channel masks, windows and their receptive fields."""

import functools
import json

import pytest
import torch
from torchvision.models import resnet18, vgg16

from featinv.api import invert
from featinv.config import InvertConfig
from featinv.errors import ConfigError
from featinv.nets.receptive import receptive_field
from featinv.optim.inversion import Inversion
from featinv.optim.masks import channel_mask

SMALL = {"model": "resnet18", "weights": "none", "size": 32}


@pytest.mark.parametrize(
    "model,layer,size",
    [
        (vgg16, "conv1_1", 3),
        (vgg16, "conv1_2", 5),
        (vgg16, "pool1", 6),
        (vgg16, "conv3_3", 40),
        (vgg16, "pool5", 212),
        (resnet18, "conv1", 7),
        (resnet18, "pool1", 11),
        (resnet18, "layer1", 43),
        (resnet18, "layer2", 99),
        (resnet18, "layer4", 435),
    ],
)
def test_receptive_fields_match_the_analytic_values(model, layer, size):
    assert receptive_field(_network(model), layer, 224).size == size


@functools.cache
def _network(make):
    return make()


def test_the_loss_ignores_masked_channels():
    """The gradient reaches the image only through the kept channels."""
    config = InvertConfig(image="skimage:coffee", layers=("res1",), channels="0:8", **SMALL, steps=1)
    run = Inversion(config)
    mask = run.problem.masks["res1"]
    assert mask.shape[1] == 64 and mask[0, :8].eq(1).all() and mask[0, 8:].eq(0).all()
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    features = run.problem.features(x)
    loss = run.problem.objective.terms[0](x, run.problem.kept(features))
    (grad,) = torch.autograd.grad(loss.sum(), features["res1"])
    assert grad[:, 8:].abs().max() == 0 and grad[:, :8].abs().max() > 0  # no gradient from the others


def test_top_k_picks_the_channels_with_the_most_energy():
    target = torch.zeros(2, 6, 3, 3)
    target[0, 4] = 2.0
    target[0, 1] = 1.0
    target[1, 0] = -3.0  # energy is squared: negative responses count
    mask = channel_mask("top:2", target)[:, :, 0, 0]
    assert mask[0].nonzero().flatten().tolist() == [1, 4] and mask[1, 0] == 1 and mask[1].sum() == 2
    tokens = channel_mask("top:1", torch.tensor([[[0.0, 5.0, 1.0]]]))  # [B, N, C]: channels last
    assert tokens.flatten().tolist() == [0.0, 1.0, 0.0]
    with pytest.raises(ConfigError, match="more channels than the layer has"):
        channel_mask("top:9", target)


def test_bad_channel_and_window_specs_are_clear_errors():
    for spec, match in (("channels", "0:x"), ("channels", "top:0"), ("window", "1:2"), ("window", "3:1,0:2")):
        with pytest.raises(ConfigError):
            InvertConfig(**{spec: match})
    with pytest.raises(ConfigError, match="window rows '0:99' is outside 0:8"):
        Inversion(InvertConfig(image="skimage:coffee", layers=("res1",), window="0:99,0:2", **SMALL, steps=1))


def test_a_window_is_inverted_alone_and_its_pixels_shown(tmp_path):
    r = invert("skimage:astronaut", layers="res2", window="2:4,2:4", steps=3, out=tmp_path / "w", **SMALL)
    window = json.loads((tmp_path / "w" / "summary.json").read_text())["window"]
    assert window["receptive_field_px"] == 43 and window["cell_stride_px"] == 4
    # cells 2..3 are centred on pixels 8 and 12: 8 - 21 = -13 (clipped to 0) to 12 + 21 = 33 (clipped to 31)
    assert window["pixels"] == [0, 0, 31, 31] and (tmp_path / "w" / "window.png").is_file()
    small = invert("skimage:astronaut", layers="conv1", window="4:5,6:7", steps=1, **SMALL).summary["window"]
    assert small["pixels"] == [5, 9, 11, 15]  # cell (4, 6) of a 7x7 stride-2 conv: centred on (8, 12)
    assert r.status == "done"


def test_diversity_keeps_every_restart(tmp_path):
    """N restarts in one batch are N single runs; the spread is what the layer leaves open."""
    common = {"layers": "res2", "steps": 4, **SMALL}
    r = invert("skimage:chelsea", restarts=3, diversity=True, out=tmp_path / "d", **common)
    singles = [invert("skimage:chelsea", seed=s, **common).image for s in range(3)]
    for kept, single in zip(r.restarts, singles):
        assert torch.allclose(kept, single, atol=1e-5)
    spread = r.summary["diversity"]
    assert spread["pixel_std_mean"] > 0 and spread["mean_pairwise_rmse"] > 0
    folder = tmp_path / "d"
    assert sorted(p.name for p in (folder / "restarts").iterdir()) == ["seed_0.png", "seed_1.png", "seed_2.png"]
    from PIL import Image

    with Image.open(folder / "diversity.png") as img:
        assert img.size == (5 * 32 + 4 * 4, 32)  # three restarts, their mean, the std map
    with pytest.raises(ConfigError, match="restarts >= 2"):
        InvertConfig(diversity=True)


@pytest.mark.slow
def test_deep_layers_leave_more_open_than_shallow_ones(offline_vgg):
    """On a real photo the restarts agree at conv1_2 and differ at pool5."""

    def spread(layer):
        r = invert("skimage:coffee", model=offline_vgg, layers=layer, size=64, steps=60, restarts=3, diversity=True)
        return r.summary["diversity"]["pixel_std_mean"]

    shallow, deep = spread("conv1_2"), spread("pool5")
    assert deep > 3 * shallow


def _in_chromium(html_path):
    import re

    from featinv.reports.report import chromium

    dom = chromium(html_path, "--dump-dom", "--virtual-time-budget=5000", "--window-size=1200,1000")
    total = int(re.search(r'data-images="(\d+)"', dom).group(1))
    ok = int(re.search(r'data-images-ok="(\d+)"', dom).group(1))
    return dom, total, ok


def test_diversity_and_window_appear_in_the_run_report(tmp_path, chromium_installed):
    from featinv.reports.report import report

    invert(
        "skimage:chelsea",
        layers="res2",
        steps=3,
        restarts=2,
        diversity=True,
        window="1:3,2:5",
        out=tmp_path / "run",
        **SMALL,
    )
    dom, total, ok = _in_chromium(report(tmp_path / "run"))
    assert ok == total and 'alt="run_diversity"' in dom and 'alt="run_window"' in dom
    assert "Diversity: the restarts (seeds 0, 1)" in dom and "Window 1:3,2:5 of res2" in dom


def test_compare_puts_runs_side_by_side(tmp_path, chromium_installed):
    from conftest import run_cli

    for name, layer in (("shallow", "conv1"), ("deep", "res4")):
        invert("skimage:coffee", layers=layer, steps=3, out=tmp_path / name, **SMALL)
    proc = run_cli("compare", str(tmp_path / "shallow"), str(tmp_path / "deep"), "--out", str(tmp_path / "cmp"))
    assert proc.returncode == 0, proc.stderr
    dom, total, ok = _in_chromium(tmp_path / "cmp" / "report.html")
    assert total == ok and total >= 1 and dom.count("<tr>") == 3  # header + the two runs
    summaries = [json.loads((tmp_path / n / "summary.json").read_text()) for n in ("shallow", "deep")]
    best = max(zip(("conv1", "res4"), summaries), key=lambda p: p[1]["psnr"])
    assert f"resnet18 {best[0]} keeps the most ({best[1]['psnr']:.1f} dB" in dom
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 1000
    refused = run_cli("compare", str(tmp_path / "shallow"), str(tmp_path / "deep"), "--out", str(tmp_path / "deep"))
    assert refused.returncode == 2 and "nothing was overwritten" in refused.stderr
    alone = run_cli("compare", str(tmp_path / "shallow"), "--out", str(tmp_path / "cmp2"))
    assert alone.returncode == 2 and "at least two runs" in alone.stderr


def test_compare_takes_a_sweep_folder_for_its_trials(tmp_path):
    from featinv.reports.compare import compare, run_folders
    from featinv.runs.sweep import expand, run_sweep

    trials = expand({"base": {"image": "skimage:coffee", "steps": 2, **SMALL}, "grid": {"layers": ["conv1", "res2"]}})
    run_sweep(trials, tmp_path / "sweep")
    assert [f.name for f in run_folders([tmp_path / "sweep"])] == [t.name for t in trials]
    page = compare([tmp_path / "sweep"], tmp_path / "cmp").read_text()
    assert all(f"sweep/{t.name}" in page for t in trials)
