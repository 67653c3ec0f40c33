import time

import pytest
import torch

from featinv.errors import ModelError, WeightsUnavailableError
from featinv.files import load_target
from featinv.nets.models import load_model


def test_offline_vgg16_is_frozen_and_uses_caffe_preprocessing(offline_vgg):
    assert offline_vgg.pretrained and offline_vgg.default_layer == "relu3_3"
    assert offline_vgg.preprocess.bgr and offline_vgg.preprocess.scale == 255
    assert not offline_vgg.module.training
    assert not any(p.requires_grad for p in offline_vgg.module.parameters())
    # Trained, not initialised: trained filters are smooth (neighbouring taps correlate, about 0.55 for
    # conv1_1 and 0.6 for conv1_2); an initialisation draws every tap alone (about 0). A norm check passes both.
    for conv in (offline_vgg.module.features[0], offline_vgg.module.features[2]):
        w = conv.weight
        taps = torch.stack([w[..., :-1].flatten(), w[..., 1:].flatten()])
        assert torch.corrcoef(taps)[0, 1] > 0.3


def test_offline_efficientnet_classifies_a_cat():
    model = load_model("efficientnet_lite0_offline")
    x = model.preprocess(load_target("skimage:chelsea", 224)[None])
    with torch.no_grad():
        top3 = model.module(x).topk(3).indices[0].tolist()
    assert set(top3) & {281, 282, 285}  # tabby, tiger cat, Egyptian cat


def test_unknown_model_and_weights_are_clear_errors():
    with pytest.raises(ModelError, match="resnet18"):
        load_model("resnet_18")
    with pytest.raises(ModelError, match="IMAGENET1K_V1"):
        load_model("resnet18", weights="IMAGENET_V9")
    with pytest.raises(ModelError, match="not found"):
        load_model("resnet18", weights="/nowhere/weights.pth")


def test_download_fails_fast_with_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as err:
        load_model("resnet18", weights="DEFAULT")
    assert time.monotonic() - start < 30  # a generous bound: the point is it never hangs
    message = str(err.value)
    assert "resnet18-" in message and str(tmp_path / "checkpoints") in message


def test_cached_torchvision_weights_load_offline(tmp_path, monkeypatch):
    """With the file where torch.hub keeps it, the enum name works without a network."""
    from torchvision.models import ResNet18_Weights, resnet18

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    name = ResNet18_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[1]
    (tmp_path / "checkpoints").mkdir()
    reference = resnet18()
    torch.save(reference.state_dict(), tmp_path / "checkpoints" / name)
    loaded = load_model("resnet18", weights="IMAGENET1K_V1")
    assert loaded.pretrained and loaded.preprocess.std == pytest.approx((0.229, 0.224, 0.225))
    assert torch.equal(loaded.module.conv1.weight, reference.conv1.weight)


def test_local_weights_file(tmp_path):
    from torchvision.models import resnet18

    reference = resnet18()
    torch.save(reference.state_dict(), tmp_path / "r18.pth")
    loaded = load_model("resnet18", weights=str(tmp_path / "r18.pth"))
    assert torch.equal(loaded.module.fc.weight, reference.fc.weight)
    torch.save({"nope": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ModelError, match="cannot load"):
        load_model("resnet18", weights=str(tmp_path / "bad.pth"))


def test_random_weights_are_flagged():
    model = load_model("vgg16_bn", weights="none")
    assert not model.pretrained and model.label == "vgg16_bn (random init)"


def test_safetensors_weights_file(tmp_path):
    """A .safetensors file is read with safetensors (torch.load cannot read it)."""
    from safetensors.torch import save_file
    from torchvision.models import resnet18

    reference = resnet18()
    save_file(reference.state_dict(), str(tmp_path / "r18.safetensors"))
    loaded = load_model("resnet18", weights=str(tmp_path / "r18.safetensors"))
    assert torch.equal(loaded.module.fc.weight, reference.fc.weight)
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="cannot load"):
        load_model("resnet18", weights=str(tmp_path / "bad.safetensors"))


def test_reachability_goes_through_the_https_proxy(tmp_path, monkeypatch):
    """Behind a proxy the weights host is reached through HTTPS_PROXY, so the check asks the proxy."""
    import socket

    from featinv.nets.models import _cached_or_reachable

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    for name in ("https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as proxy:
        proxy.bind(("127.0.0.1", 0))
        proxy.listen()
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.getsockname()[1]}")
        url = "https://weights.invalid/resnet18-f37072fd.pth"
        assert _cached_or_reachable(url) == tmp_path / "checkpoints" / "resnet18-f37072fd.pth"
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    with pytest.raises(WeightsUnavailableError, match=f"through the proxy 127.0.0.1:{port}"):
        _cached_or_reachable(url)


def test_offline_mobilenet_v2_is_trained_and_has_stage_aliases():
    """Its weights tell a photo's mirror image from other photos far better than random init's do."""
    import torch.nn.functional as F

    from featinv.nets.layers import aliases
    from featinv.nets.models import MobileNetV2Features

    model = load_model("mobilenet_v2_offline")
    table = aliases(model.module)
    assert {"stem", "block1", "block17", "stage1", "stage5", "head"} <= set(table)
    assert table["stage2"] == table["block3"] and table["stage5"] == table["block17"]

    def margin(net):
        photos = [load_target(f"skimage:{n}", 160) for n in ("chelsea", "coffee", "astronaut", "rocket")]
        with torch.no_grad():
            f = net(model.preprocess(torch.stack([*photos, photos[0].flip(-1)]))).mean((2, 3))
        f = F.normalize(f - f.mean(0), dim=1)
        return (f[0] @ f[4] - max(f[0] @ f[k] for k in (1, 2, 3))).item()

    with torch.random.fork_rng():
        torch.manual_seed(0)
        random_net = MobileNetV2Features().eval()
    trained, random = margin(model.module), margin(random_net)
    assert trained > 1.2 and random < 1.0  # measured: 1.45 and 0.82
