import torch
from torch import nn
from torchvision.models import resnet18, vgg16

from featinv.nets.extractor import FeatureExtractor, frozen


def count_calls(modules):
    calls = {id(m): 0 for m in modules}

    def hook(module, inputs, output):
        calls[id(module)] += 1

    handles = [m.register_forward_hook(hook) for m in modules]
    return calls, handles


def test_layers_after_the_deepest_requested_one_never_run():
    model = vgg16().eval()
    before, after = list(model.features[:10]), list(model.features[10:]) + list(model.classifier)
    extractor = FeatureExtractor(model, ["conv2_1", "relu2_2"])  # relu2_2 = features.8
    calls, _ = count_calls(before + after)  # after tracing: count real calls only
    extractor(torch.zeros(1, 3, 32, 32))
    assert all(calls[id(m)] == 1 for m in before[:9])
    assert all(calls[id(m)] == 0 for m in before[9:] + after)


def test_resnet_truncation_skips_later_stages():
    model = resnet18().eval()
    extractor = FeatureExtractor(model, ["res3"], fold_batchnorm=False)  # count the original modules
    ran = [model.layer1[0].conv1, model.layer2[0].conv2]  # res3 = the first block of layer2
    skipped = [model.layer2[1].conv1, model.layer3[0].conv1, model.layer4[1].conv2, model.fc]
    calls, _ = count_calls(ran + skipped)
    extractor(torch.zeros(1, 3, 32, 32))
    assert [calls[id(m)] for m in ran] == [1, 1]
    assert [calls[id(m)] for m in skipped] == [0, 0, 0, 0]


def test_features_match_the_plain_model():
    model = vgg16().eval()
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(FeatureExtractor(model, ["pool2"])(x)["pool2"], model.features[:10](x))


def test_two_names_for_one_node():
    out = FeatureExtractor(resnet18().eval(), ["res2", "layer1"])(torch.zeros(1, 3, 32, 32))
    assert torch.equal(out["res2"], out["layer1"])


def test_frozen_restores_mode_and_grad_flags():
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)).train()
    model[0].weight.requires_grad_(False)
    with frozen(model):
        assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert model.training and model[1].training
    assert [p.requires_grad for p in model.parameters()] == [False, True, True, True]


def test_batchnorm_folds_into_convs_without_touching_the_model():
    from torchvision.models import vgg16_bn

    model = vgg16_bn().eval()
    with torch.no_grad():  # non-trivial running statistics
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    x = torch.rand(2, 3, 32, 32)
    for layers, folded in ((["relu2_1"], 3), (["conv2_1", "bn2_2"], 3), (["pool5"], 13)):
        plain = FeatureExtractor(model, layers, fold_batchnorm=False)(x)
        fast = FeatureExtractor(model, layers)
        assert fast.folded == folded
        for name, value in fast(x).items():
            assert torch.allclose(value, plain[name], rtol=1e-4, atol=1e-5)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 13
    assert not any(p.requires_grad is False for p in model.parameters())  # the model's flags untouched


def test_batchnorm_with_its_own_activation_keeps_the_activation_when_folded():
    """timm's BatchNormAct2d is a BatchNorm2d that also applies its activation: folding it into
    the conv must leave the activation in place (dropping it made EfficientNet-Lite0's features
    grow without bound: logits of norm 1e10)."""
    import timm
    from timm.layers import BatchNormAct2d

    model = timm.create_model("mobilenetv3_small_050", pretrained=False).eval()
    with torch.no_grad():  # non-trivial running statistics
        for m in model.modules():
            if isinstance(m, BatchNormAct2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 3, 64, 64)
    plain = FeatureExtractor(model, ["stage3"], fold_batchnorm=False)(x)["stage3"]
    fast = FeatureExtractor(model, ["stage3"])
    assert fast.folded == 9
    assert torch.allclose(fast(x)["stage3"], plain, rtol=1e-4, atol=1e-5)
    assert sum(isinstance(m, BatchNormAct2d) for m in model.modules()) == 34  # the model untouched


def test_offline_efficientnet_features_are_the_networks_own():
    """featinv's (folded) extractor gives the real network's stage outputs and logits: chelsea is a cat."""
    import skimage.data

    from featinv.nets.models import load_model

    loaded = load_model("efficientnet_lite0_offline")
    net = loaded.module.eval()
    photo = torch.tensor(skimage.data.chelsea()).permute(2, 0, 1)[None].float() / 255
    x = loaded.preprocess(nn.functional.interpolate(photo, size=(224, 224), mode="bilinear", antialias=True))
    layers = ["stage3", "stage5", "classifier"]
    with torch.no_grad():
        fast = FeatureExtractor(net, layers)(x)
        plain = FeatureExtractor(net, layers, fold_batchnorm=False)(x)
        logits = net(x)
    for name in layers:
        assert torch.allclose(fast[name], plain[name], rtol=1e-3, atol=1e-3), name
    assert torch.allclose(fast["classifier"], logits, rtol=1e-3, atol=1e-3)
    assert int(fast["classifier"].argmax()) in (281, 282, 285)  # tabby, tiger cat, Egyptian cat
