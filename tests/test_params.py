"""Image parameterisations, transforms, restarts and the layer-adaptive defaults."""

import pytest
import torch

from featinv.api import invert
from featinv.config import InvertConfig
from featinv.errors import ConfigError
from featinv.optim.callbacks import StopAfter
from featinv.optim.inversion import Inversion
from featinv.optim.params import PARAMS, decorrelated_to_rgb, fit_error, make_param, rgb_to_decorrelated
from featinv.optim.transforms import Transforms


def _photo(size: int) -> torch.Tensor:
    from featinv.files import load_target

    return load_target("skimage:astronaut", size)[None]


@pytest.mark.parametrize("kind", PARAMS)
def test_gradients_reach_every_parameter_and_the_image_is_in_range(kind):
    param = make_param(kind, 16, seed=3)
    image = param()
    assert image.shape == (1, 3, 16, 16) and image.min() >= 0 and image.max() <= 1
    (image * torch.randn_like(image)).sum().backward()
    grads = [p.grad for p in param.parameters()]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("kind", PARAMS)
def test_same_seed_same_start_and_seeds_differ(kind):
    a, b, c = make_param(kind, 16, seed=1)(), make_param(kind, 16, seed=1)(), make_param(kind, 16, seed=2)()
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("kind", ["pixel", "fourier", "pyramid"])
def test_a_start_image_is_represented_exactly(kind):
    start = _photo(32).clamp(0.01, 0.99)
    assert (make_param(kind, 32, start=start)() - start).abs().max() < 1e-4


def test_colour_decorrelation_round_trips():
    image = torch.rand(2, 3, 5, 5) * 0.9 + 0.05
    assert torch.allclose(decorrelated_to_rgb(rgb_to_decorrelated(image)), image, atol=1e-5)


@pytest.mark.parametrize("kind,bound", [("pixel", 1e-4), ("fourier", 1e-3), ("pyramid", 1e-3), ("dip", 0.02)])
def test_fitting_an_image_directly_reproduces_it(kind, bound):
    """No network: can the parameterisation express a photo? Exactly (pixel, fourier, pyramid)
    or approximately (dip, a network that fits natural images before noise)."""
    target = _photo(32)
    start_error = torch.nn.functional.mse_loss(make_param(kind, 32, seed=0)(), target).item()
    error = fit_error(make_param(kind, 32, seed=0), target, steps=300, lr=0.01 if kind == "dip" else 0.05)
    assert error < bound and error < start_error / 5


@pytest.mark.parametrize("kind", ["fourier", "pyramid"])
def test_chroma_scale_keeps_colour_coarse_and_brightness_fine(kind):
    """Fitting directly (no network): a fine pattern of brightness is reproduced with or without
    chroma_scale, a fine pattern of colour at even brightness only without it, and an even
    colour with it too."""
    size = 32
    checker = ((torch.arange(size)[:, None] // 4 + torch.arange(size)[None, :] // 4) % 2).float() - 0.5  # 4 px
    grey = torch.full((size, size), 0.5)
    brightness = torch.stack([grey + 0.3 * checker] * 3)[None]
    colour = torch.stack([grey + 0.2 * checker, grey - 0.2 * checker, grey])[None]
    even_colour = torch.stack([grey + 0.2, grey - 0.1, grey])[None]

    def error(target, chroma_scale):
        return fit_error(
            make_param(kind, size, start=torch.full((1, 3, size, size), 0.5), chroma_scale=chroma_scale),
            target,
            steps=300,
        )

    assert error(brightness, 1) < 1e-3 and error(brightness, 8) < 1e-3
    assert error(colour, 1) < 1e-3 and error(colour, 8) > 5e-3
    assert error(even_colour, 8) < 1e-4


def test_chroma_scale_is_checked_and_left_to_the_layer():
    with pytest.raises(ConfigError, match="chroma_scale 4 needs param fourier or pyramid, got param 'pixel'"):
        InvertConfig(param="pixel", chroma_scale=4)
    with pytest.raises(ConfigError, match="chroma_scale must be a positive integer"):
        InvertConfig(chroma_scale=0)
    with pytest.raises(ConfigError, match="chroma_scale must be a whole number of pixels from 1 to the image size"):
        make_param("pyramid", 16, chroma_scale=32)
    from featinv.optim.defaults import resolve_defaults

    assert resolve_defaults(InvertConfig(param="pixel"), stride=32).chroma_scale == 1
    asked = resolve_defaults(InvertConfig(chroma_scale=2), stride=32)  # dip has no colour scale: the pyramid
    assert (asked.param, asked.chroma_scale) == ("pyramid", 2)


@pytest.mark.parametrize("kind,chroma_scale", [(k, 1) for k in PARAMS] + [("pyramid", 4), ("fourier", 4)])
def test_resume_is_bit_identical(kind, chroma_scale):
    config = InvertConfig(
        image="skimage:chelsea",
        model="resnet18",
        weights="none",
        layers=("res1",),
        size=32,
        steps=8,
        param=kind,
        transforms="jitter=2,scale,rotate",
        chroma_scale=chroma_scale,
    )
    full = Inversion(config).run()
    first = Inversion(config)
    first.run([StopAfter(3)])
    second = Inversion(config, first.problem.model)
    second.load_state_dict(first.state_dict())
    resumed = second.run()
    assert resumed.steps == 8 and torch.equal(resumed.image, full.image)


def test_transforms_are_seeded_and_change_the_image():
    x = torch.rand(1, 3, 16, 16)
    a, b, c = (Transforms.parse("jitter=3,scale=0.2,rotate=20", seed=s) for s in (0, 0, 1))
    ya, yb, yc = a(x), b(x), c(x)
    assert torch.equal(ya, yb) and not torch.equal(ya, yc) and not torch.equal(ya, x)
    assert not Transforms.parse("none") and Transforms.parse("jitter=0,rotate=5")


def test_bad_param_and_transform_names_are_clear_errors():
    with pytest.raises(
        ConfigError, match="param must be one of pixel, fourier.*got 'fourrier'. Did you mean 'fourier'"
    ):
        InvertConfig(param="fourrier")
    with pytest.raises(ConfigError, match="unknown transform 'rotation'.*Did you mean 'rotate'"):
        InvertConfig(transforms="jitter,rotation")
    with pytest.raises(ConfigError, match="jitter is a whole number"):
        InvertConfig(transforms="jitter=1.5")


def test_restarts_run_as_one_batch_and_keep_the_lowest_loss():
    options = dict(
        image="skimage:chelsea", model="resnet18", weights="none", layers="res1", size=32, steps=6, param="pixel"
    )
    result = invert(restarts=3, seed=5, **options)
    restarts = result.summary["restarts"]
    assert [r["seed"] for r in restarts] == [5, 6, 7] and result.summary["batch_size"] == 3
    losses = [r["final_loss"] for r in restarts]
    assert result.summary["final_loss"] == min(losses)
    best = result.summary["best_seed"]
    alone = invert(seed=best, **options)
    assert alone.history[-1]["loss"] == pytest.approx(min(losses), rel=1e-4)


def test_lbfgs_divergence_keeps_the_image_before_the_bad_step():
    """The last good image is the one the last finite loss was measured on, as on the Adam path:
    L-BFGS used to save it after its update, so a NaN step 'restored' NaN pixels."""
    result = invert(
        "skimage:chelsea",
        model="resnet18",
        weights="none",
        layers="res2",
        size=32,
        steps=30,
        optimizer="lbfgs",
        lr=1e30,
        clamp=False,
        tv=0,
        param="pixel",
    )
    assert result.status == "diverged"
    assert torch.isfinite(result.image).all()


def test_defaults_follow_the_layer_depth(offline_vgg):
    shallow = Inversion(InvertConfig(image="skimage:coffee", layers=("relu1_2",), size=32, steps=1), offline_vgg)
    deep = Inversion(InvertConfig(image="skimage:coffee", layers=("pool5",), size=32, steps=1), offline_vgg)
    assert shallow.problem.stride == 1 and deep.problem.stride == 32
    assert shallow.config.param == "pixel" and deep.config.param != "pixel"
    assert None not in (deep.config.lr, deep.config.tv, deep.config.transforms)
    pinned = Inversion(
        InvertConfig(image="skimage:coffee", layers=("pool5",), size=32, steps=1, param="pixel", tv=3.0), offline_vgg
    )
    assert pinned.config.param == "pixel" and pinned.config.tv == 3.0


def _pixel_scale_colour(image: torch.Tensor) -> float:
    """Mean square of an image's colour detail at the pixel scale (what a 2 x 2 box blur removes,
    less its brightness): where the rainbow textures of a deep pixel reconstruction live."""
    x = image[None]
    detail = x - torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(x, 2), scale_factor=2)
    return (detail - detail.mean(1, keepdim=True)).square().mean().item()


def test_deep_defaults_draw_with_the_deep_image_prior_not_rainbow_textures(offline_vgg):
    """At pool5 the defaults are the Deep Image Prior; pixels with the same objective put far more
    colour into pixel-scale detail (where the rainbow textures of QUALITY.md's grids live). A run
    that starts from an image (``init``) gets the pyramid instead, with colour held to an 8-pixel
    scale: dip cannot start from an image (test_chroma_scale_keeps_colour_coarse_and_brightness_fine
    checks what that scale does)."""
    options = dict(image="skimage:coffee", model=offline_vgg, layers="pool5", size=64, steps=40)
    deep = invert(**options)
    assert (deep.config.param, deep.config.lr, deep.config.chroma_scale, deep.config.alpha_norm) == (
        "dip",
        0.01,
        1,
        0.0,
    )
    pixels = invert(**options, param="pixel")
    assert (pixels.config.lr, pixels.config.chroma_scale) == (0.05, 1)
    # Measured 0.25x here (0.18x on astronaut). The check this replaces (colour's share of the
    # 8-pixel detail < 0.3x pixels') passed on one machine and gave 0.9x on another: at 64 px
    # there is too little such detail for a share of it to be stable.
    assert _pixel_scale_colour(deep.image) < 0.5 * _pixel_scale_colour(pixels.image)
    from featinv.optim.defaults import resolve_defaults

    grey = resolve_defaults(InvertConfig(layers=("pool5",), init="grey"), stride=32)  # no run: only the choice
    assert (grey.param, grey.lr, grey.chroma_scale) == ("pyramid", 0.05, 8)


def test_stride_8_defaults_are_dip_with_light_tv():
    """From stride 8 (VGG16 conv4_*, relu4_3) the defaults are dip with the light TV of the
    middle layers (on ten photos at relu4_3: 21.5 dB / SSIM 0.54 against the pyramid's 17.9 /
    0.33); stride 4 keeps the pyramid; a run that starts from an image gets the pyramid."""
    from featinv.optim.defaults import resolve_defaults

    eight = resolve_defaults(InvertConfig(layers=("relu4_3",)), stride=8)
    assert (eight.param, eight.lr, eight.tv, eight.chroma_scale) == ("dip", 0.01, 0.5, 1)
    four = resolve_defaults(InvertConfig(layers=("relu3_3",)), stride=4)
    assert (four.param, four.lr, four.tv) == ("pyramid", 0.05, 0.5)
    started = resolve_defaults(InvertConfig(layers=("relu4_3",), init="grey"), stride=8)
    assert (started.param, started.lr, started.tv, started.chroma_scale) == ("pyramid", 0.05, 0.5, 1)


def test_from_stride_32_the_network_sees_transformed_copies_but_not_in_the_last_steps():
    """From stride 32 (VGG16 pool5) dip's image is jittered, scaled and rotated each step, off for
    the last 20 (the judge: 16/16 photos found first, 15/16 without); stride 16 does not, nor
    another parameterisation; a value the user sets stays."""
    from featinv.optim.defaults import resolve_defaults

    deep = resolve_defaults(InvertConfig(layers=("pool5",)), stride=32)
    assert (deep.transforms, deep.jitter_off_last) == ("jitter=4,scale=0.1,rotate=10", 20)
    sixteen = resolve_defaults(InvertConfig(layers=("relu5_3",)), stride=16)
    assert (sixteen.param, sixteen.tv, sixteen.transforms, sixteen.jitter_off_last) == ("dip", 50.0, "none", 0)
    mine = resolve_defaults(InvertConfig(layers=("pool5",), transforms="none", jitter_off_last=5), stride=32)
    assert (mine.transforms, mine.jitter_off_last) == ("none", 5)
    for other in (InvertConfig(layers=("pool5",), param="pyramid"), InvertConfig(layers=("pool5",), init="grey")):
        chosen = resolve_defaults(other, stride=32)  # chosen for dip: the others keep none
        assert (chosen.param, chosen.transforms, chosen.jitter_off_last) == ("pyramid", "none", 0)
    asked = resolve_defaults(InvertConfig(layers=("pool5",), param="pixel", transforms="jitter=2"), stride=32)
    assert (asked.transforms, asked.jitter_off_last) == ("jitter=2", 0)


def test_dip_refuses_a_start_image():
    with pytest.raises(ConfigError, match="init 'grey' needs param pixel, fourier or pyramid, got param 'dip'"):
        InvertConfig(param="dip", init="grey")


def test_restarts_resume_bit_identical_and_are_written(tmp_path):
    options = dict(
        image="skimage:chelsea",
        model="resnet18",
        weights="none",
        layers="res1",
        size=32,
        steps=6,
        restarts=2,
        param="fourier",
    )
    full = invert(**options)
    partial = invert(out=tmp_path / "run", callbacks=[StopAfter(2)], **options)
    assert partial.status == "interrupted"
    resumed = invert(out=tmp_path / "run", resume=True, **options)
    assert torch.equal(resumed.image, full.image) and resumed.summary["restarts"] == full.summary["restarts"]
    import json

    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert [r["seed"] for r in summary["restarts"]] == [0, 1] and "restarts: 2" in (
        tmp_path / "run" / "config.yaml"
    ).read_text()


@pytest.mark.slow
@pytest.mark.parametrize("photo", ["astronaut", "coffee"])
def test_defaults_reconstruct_relu3_3_of_photos_they_were_not_tuned_on(offline_vgg, photo):
    """The issue's bar: with nothing set, relu3_3 of the offline ImageNet VGG16 gives >= 20 dB
    on photos other than chelsea (flat regions no longer keep the starting noise)."""
    result = invert(f"skimage:{photo}", model=offline_vgg, layers="relu3_3", size=128, steps=200)
    assert result.config.param == "pyramid"
    assert result.summary["psnr"] >= 20.0 and result.summary["feature_error"]["relu3_3"] < 0.05
