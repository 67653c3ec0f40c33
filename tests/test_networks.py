"""Networks users bring: timm models, vision transformers (tokens), and the layer list."""
import pytest

from conftest import run_cli
from featinv.api import invert
from featinv.errors import ConfigError, ModelError
from featinv.layers import aliases, describe
from featinv.models import load_model


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
