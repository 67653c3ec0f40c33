import pytest
import torch
from torch import nn

from featinv.api import invert
from featinv.config import InvertConfig
from featinv.optim.callbacks import StopAfter
from featinv.optim.inversion import Inversion


@pytest.mark.slow
def test_offline_vgg16_reconstructs_chelsea_sharply(offline_vgg):
    """The real ImageNet VGG16 at relu3_3 keeps nearly everything: a near-photographic result."""
    result = invert("skimage:chelsea", model=offline_vgg, layers="relu3_3", size=128, steps=200, lr=0.05)
    assert result.status == "done" and result.steps == 200
    assert result.summary["psnr"] >= 20.0
    assert result.summary["feature_error"]["relu3_3"] < 0.05
    assert result.history[-1]["loss"] < 0.2 * result.history[0]["loss"]


def test_offline_efficientnet_gives_a_recognisable_reconstruction():
    start = invert("skimage:chelsea", model="efficientnet_lite0_offline", layers="stage2", size=128, steps=1, tv=2.0)
    result = invert("skimage:chelsea", model="efficientnet_lite0_offline", layers="stage2", size=128, steps=120, tv=2.0)
    assert result.summary["psnr"] >= 18.0 and result.summary["ssim"] >= 0.4
    assert result.summary["ssim"] > start.summary["ssim"] + 0.3


def test_same_seed_same_result_and_seeds_differ():
    options = dict(model="resnet18", weights="none", layers="res2", size=32, steps=5)
    a, b, c = invert(seed=1, **options), invert(seed=1, **options), invert(seed=2, **options)
    assert torch.equal(a.image, b.image) and not torch.equal(a.image, c.image)


@pytest.mark.parametrize(
    "optimizer,schedule", [("sgd", "step:every=2,gamma=0.5"), ("lbfgs", "constant"), ("adam", "cosine:warmup=2")]
)
def test_every_optimizer_lowers_the_loss(offline_vgg, optimizer, schedule):
    lr = {"sgd": 2.0, "lbfgs": 0.5, "adam": 0.05}[optimizer]
    result = invert(
        "skimage:chelsea",
        model=offline_vgg,
        layers="relu2_2",
        size=32,
        steps=8,
        optimizer=optimizer,
        lr=lr,
        schedule=schedule,
        momentum=0.9,
    )
    assert result.status == "done"
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_schedule_sets_the_logged_lr():
    result = invert(
        "skimage:chelsea",
        model="resnet18",
        weights="none",
        layers="res1",
        size=32,
        steps=4,
        lr=0.1,
        schedule="piecewise:2x1,2x0.1",
    )
    assert [round(r["lr"], 6) for r in result.history] == [0.1, 0.1, 0.01, 0.01]


def test_divergence_stops_and_keeps_the_last_good_image():
    result = invert(
        "skimage:chelsea",
        model="resnet18",
        weights="none",
        layers="res2",
        size=32,
        steps=50,
        optimizer="sgd",
        lr=1e30,
        momentum=0,
        clamp=False,
        tv=0,
        param="pixel",
    )
    assert result.status == "diverged" and result.steps < 50
    assert torch.isfinite(result.image).all()
    assert "learning rate" in result.summary["message"]


def test_multi_layer_weighted_loss_and_alpha_norm(offline_vgg):
    result = invert(
        "skimage:chelsea", model=offline_vgg, layers="conv1_1:0.5,pool2:2", size=32, steps=3, alpha_norm=1.0
    )
    assert set(result.summary["feature_error"]) == {"conv1_1", "pool2"}
    assert {"feat_conv1_1", "feat_pool2", "tv", "alpha"} <= set(result.history[0])
    assert result.config.layers == ("conv1_1:0.5", "pool2:2")
    c = result.config
    for row in result.history:  # the logged terms are unweighted; the loss weighs each layer as asked
        weighted = 0.5 * row["feat_conv1_1"] + 2 * row["feat_pool2"] + c.tv * row["tv"] + c.alpha_norm * row["alpha"]
        assert row["loss"] == pytest.approx(weighted, rel=1e-4)


def test_init_grey_and_from_image(tmp_path):
    from featinv.files import save_image

    save_image(torch.rand(3, 40, 40), tmp_path / "start.png")
    for init in ("grey", str(tmp_path / "start.png")):
        assert (
            invert(
                "skimage:coffee", model="resnet18", weights="none", layers="res1", size=32, steps=1, init=init
            ).status
            == "done"
        )


def test_model_mode_is_restored_after_a_run():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).train()
    invert("skimage:chelsea", model=net, layers="2", size=16, steps=2)
    assert net.training and net[1].training and all(p.requires_grad for p in net.parameters())


def test_stop_and_resume_in_memory_equals_uninterrupted():
    config = InvertConfig(
        image="skimage:chelsea", model="resnet18", weights="none", layers=("res2",), size=32, steps=12, lr=0.05
    )
    full = Inversion(config).run()
    first = Inversion(config)
    partial = first.run([StopAfter(5)])
    assert partial.status == "interrupted" and partial.steps == 5
    second = Inversion(config, first.problem.model)
    second.load_state_dict(first.state_dict())
    resumed = second.run()
    assert resumed.steps == 12 and torch.equal(resumed.image, full.image)
    assert len(resumed.history) == 12


def test_onnx_model_features_match_torch(tmp_path):
    from torchvision.models import resnet18

    from featinv.nets.extractor import FeatureExtractor
    from featinv.nets.models import load_model

    net = resnet18().eval()
    path = tmp_path / "r18.onnx"
    torch.onnx.export(net, torch.randn(1, 3, 64, 64), str(path), opset_version=17, dynamo=False)
    loaded = load_model(str(path))
    x = torch.rand(2, 3, 64, 64)
    onnx_features = FeatureExtractor(loaded.module, ["/layer1/layer1.0/relu_1/Relu"])(x)
    torch_features = FeatureExtractor(net, ["res1"])(x)
    assert torch.allclose(onnx_features["/layer1/layer1.0/relu_1/Relu"], torch_features["res1"], atol=1e-5)
    # Pixels: at stride 8 the default is dip, whose loss may rise in its first few steps.
    result = invert(
        "skimage:chelsea", model=str(path), layers="/layer2/layer2.0/relu/Relu", size=64, steps=3, param="pixel"
    )
    assert result.status == "done" and result.history[-1]["loss"] < result.history[0]["loss"]
    same = invert("skimage:chelsea", model=net, layers="layer2.0.relu", size=64, steps=3, param="pixel")  # torch twin
    assert (result.image - same.image).abs().mean() < 1e-3 and result.psnr == pytest.approx(same.psnr, abs=0.05)


def test_pixel_bound_caps_each_pixel_norm_in_network_space(offline_vgg):
    pre = offline_vgg.preprocess
    x = torch.rand(1, 3, 8, 8)
    bounded = pre.bound_pixel_norm(x, 50.0)
    norms = pre.centred(bounded).norm(dim=1)
    assert norms.max() <= 50.0 + 1e-3
    inside = pre.centred(x).norm(dim=1) <= 50.0
    assert torch.allclose(bounded[:, :, inside[0]], x[:, :, inside[0]], atol=1e-6)


def test_momentum_reset_changes_the_path():
    options = dict(
        image="skimage:chelsea",
        model="resnet18",
        weights="none",
        layers="res1",
        size=32,
        steps=8,
        optimizer="sgd",
        lr=0.5,
        schedule="piecewise:4x1,4x0.5",
    )
    kept, reset = invert(**options), invert(momentum_reset=True, **options)
    assert kept.history[3]["loss"] == reset.history[3]["loss"]  # same until the lr drops
    assert not torch.equal(kept.image, reset.image)


def test_jittered_run_resumes_to_the_same_image():
    config = InvertConfig(
        image="skimage:chelsea",
        model="resnet18",
        weights="none",
        layers=("res2",),
        size=32,
        steps=10,
        jitter=3,
        jitter_off_last=2,
    )
    full = Inversion(config).run()
    first = Inversion(config)
    first.run([StopAfter(4)])
    second = Inversion(config, first.problem.model)
    second.load_state_dict(first.state_dict())
    assert torch.equal(second.run().image, full.image)
    assert not torch.equal(full.image, Inversion(config.replace(jitter=0)).run().image)


def test_bf16_autocast_runs_and_stays_close_to_fp32():
    """Checked on CPU for correctness (speed: BENCHMARKS.md; bf16 is fast only on CPUs with native bf16)."""
    options = dict(image="skimage:chelsea", model="resnet18", weights="none", layers="res2", size=32, steps=5)
    full, half = invert(**options), invert(precision="bf16", **options)
    assert half.status == "done" and half.history[-1]["loss"] < half.history[0]["loss"]
    assert (full.image - half.image).abs().mean() < 0.05


def test_compiled_step_follows_the_eager_one(tiny_net):
    """Opt-in torch.compile: the same seeded batch of two trials, compiled, takes the same path
    (fused kernels may differ in the last bits); its mode is recorded and batches with its own.
    A cold inductor build costs about a minute on a 2-core CPU whatever the network, so one build."""
    from featinv.config import batch_key
    from featinv.nets.models import LoadedModel
    from featinv.nets.preprocess import PRESETS

    model = LoadedModel(tiny_net, PRESETS["imagenet"], "tiny", "test module", True)
    options = dict(image="skimage:astronaut", model="tiny", layers=("relu2",), size=32, steps=4, device="cpu")
    configs = [InvertConfig(seed=0, **options), InvertConfig(seed=1, tv=2.0, **options)]
    eager = Inversion(configs, model).run_all()
    compiled_configs = [c.replace(compile="default") for c in configs]
    compiled = Inversion(compiled_configs, model).run_all()
    for e, c in zip(eager, compiled):
        assert c.status == "done" and c.config.compile == "default"
        assert [r["loss"] for r in c.history] == pytest.approx([r["loss"] for r in e.history], rel=1e-4)
        assert (c.image - e.image).abs().max() < 1e-3
    assert batch_key(configs[0]) != batch_key(compiled_configs[0])


def test_trials_with_the_same_lr_course_share_an_optimizer_group():
    """One fused update per group, not per trial; each trial's checkpoint still has its own lr."""
    options = dict(image="skimage:chelsea", model="resnet18", weights="none", layers=("res1",), size=16, steps=3)
    configs = [
        InvertConfig(lr=0.05, seed=0, **options),
        InvertConfig(lr=0.1, seed=1, **options),
        InvertConfig(lr=0.05, seed=2, tv=2.0, **options),
    ]
    run = Inversion(configs)
    assert run.group_of == [0, 1, 0] and len(run.stepper.optimizer.param_groups) == 2
    batched = run.run_all()
    for i, (config, result) in enumerate(zip(configs, batched)):
        assert run.state_dict(i)["optimizer"]["param_groups"][0]["lr"] == config.lr
        alone = Inversion(config).run()
        assert result.history[-1]["loss"] == pytest.approx(alone.history[-1]["loss"], rel=1e-3)


def test_emulated_low_precision_warns(monkeypatch):
    import featinv.optim.problem

    monkeypatch.setattr(featinv.optim.problem, "native_precision", lambda device, precision: precision == "fp32")
    with pytest.warns(UserWarning, match="fp16 has no native kernels.*--precision fp32"):
        Inversion(
            InvertConfig(
                image="skimage:chelsea",
                model="resnet18",
                weights="none",
                layers=("res1",),
                size=16,
                steps=1,
                precision="fp16",
                device="cpu",
            )
        )


def test_a_failed_compile_is_a_clear_error(monkeypatch):
    """A real compile that fails: inductor is pointed at a C++ compiler that does not exist."""
    import torch._inductor.config as inductor

    from featinv.errors import ConfigError

    monkeypatch.setattr(inductor.cpp, "cxx", ("/nonexistent/c++",))
    run = Inversion(
        InvertConfig(
            image="skimage:chelsea",
            model="resnet18",
            weights="none",
            layers=("res1",),
            size=32,
            steps=3,
            compile="default",
        )
    )
    with pytest.raises(ConfigError, match="torch.compile .*'default'.*No working C\\+\\+ compiler.*without --compile"):
        run.run()


@pytest.mark.parametrize(
    "error",
    [  # what the CPU allocator and CUDA's caching allocator raise
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:121] DefaultCPUAllocator: can't allocate memory: "
            "you tried to allocate 999999999999 bytes"
        ),
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 139.8 GiB total capacity)"),
    ],
)
def test_out_of_memory_is_a_clear_error(monkeypatch, error):
    from featinv.errors import ResourceError

    run = Inversion(
        InvertConfig(image="skimage:chelsea", model="resnet18", weights="none", layers=("res1",), size=64, steps=3)
    )

    def no_memory():
        raise error

    monkeypatch.setattr(run, "step_once", no_memory)
    with pytest.raises(ResourceError, match="size 64.*size 40 needs about half"):
        run.run()
