import pytest
import torch
from torchvision.models import resnet18, vgg16, vgg16_bn

from featinv.errors import LayerError
from featinv.nets.extractor import FeatureExtractor
from featinv.nets.layers import LayerRequest, aliases, parse_layers, resolve


def shapes(model, names, size=64):
    out = FeatureExtractor(model.eval(), names)(torch.zeros(1, 3, size, size))
    return {k: tuple(v.shape[1:]) for k, v in out.items()}


def test_vgg16_aliases_have_the_right_shapes():
    got = shapes(vgg16(), ["conv1_1", "relu1_2", "pool1", "conv3_1", "relu3_3", "pool5", "fc6", "relu7", "fc8"])
    assert got == {
        "conv1_1": (64, 64, 64),
        "relu1_2": (64, 64, 64),
        "pool1": (64, 32, 32),
        "conv3_1": (256, 16, 16),
        "relu3_3": (256, 16, 16),
        "pool5": (512, 2, 2),
        "fc6": (4096,),
        "relu7": (4096,),
        "fc8": (1000,),
    }


def test_vgg16_bn_aliases_point_before_and_after_batchnorm():
    table = aliases(vgg16_bn())
    assert (table["conv1_1"], table["bn1_1"], table["relu1_1"]) == ("features.0", "features.1", "features.2")
    assert table["pool1"] == "features.6" and table["conv2_1"] == "features.7"
    assert table["fc6"] == "classifier.0" and table["fc7"] == "classifier.3"
    assert shapes(vgg16_bn(), ["conv3_1", "pool5"]) == {"conv3_1": (256, 16, 16), "pool5": (512, 2, 2)}


def test_resnet18_aliases():
    table = aliases(resnet18())
    assert [table[f"res{k}"] for k in (1, 2, 3, 8)] == [
        "layer1.0.relu_1",
        "layer1.1.relu_1",
        "layer2.0.relu_1",
        "layer4.1.relu_1",
    ]
    assert table["middle1"] == "layer1.0.relu" and table["layer2"] == table["res4"]
    got = shapes(resnet18(), ["conv1", "res2", "middle3", "res8", "fc"])
    assert got == {
        "conv1": (64, 32, 32),
        "res2": (64, 16, 16),
        "middle3": (128, 8, 8),
        "res8": (512, 2, 2),
        "fc": (1000,),
    }


def test_graph_node_names_work_too():
    assert resolve(resnet18(), ["layer3.0.conv2"]) == {"layer3.0.conv2": "layer3.0.conv2"}


@pytest.mark.parametrize(
    "model,bad,suggestion",
    [
        (vgg16, "conv3-1", "conv3_1"),
        (vgg16, "Pool5", "pool5"),
        (resnet18, "res_2", "res2"),
        (resnet18, "midle1", "middle1"),
    ],
)
def test_unknown_layer_names_suggest_the_closest(model, bad, suggestion):
    with pytest.raises(LayerError) as err:
        resolve(model(), [bad])
    message = str(err.value)
    assert bad in message and f"Did you mean '{suggestion}'" in message and "Valid names include" in message


def test_offline_vgg_has_no_fc_layers_and_says_why(offline_vgg):
    with pytest.raises(LayerError, match="conv layers only"):
        resolve(offline_vgg.module, ["fc6"])


def test_layer_requests_with_weights():
    assert parse_layers("conv3_1, fc6:2") == (LayerRequest("conv3_1"), LayerRequest("fc6", 2.0))
    assert parse_layers(["a:b"]) == (LayerRequest("a:b"),)  # not a number: part of the name
    with pytest.raises(LayerError):
        parse_layers(" , ")
