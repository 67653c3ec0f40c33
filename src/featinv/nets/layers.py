"""Layer names: paper-style aliases <-> graph nodes; list, validate and suggest.

Every layer is a string. Aliases follow the papers; any torch.fx node name of the model
(as listed by torchvision's ``get_graph_node_names``) works too, and for ONNX models so do
the ONNX node names. Which tensor each alias is:

VGG (torchvision ``vgg*``, ``vgg*_bn`` and the offline VGG16), block ``b``, conv ``c``:
  ``conv{b}_{c}``  the convolution's output (before BatchNorm and ReLU)
  ``bn{b}_{c}``    after BatchNorm (``_bn`` models only)
  ``relu{b}_{c}``  after the ReLU (the conv's rectified response, as in the papers)
  ``pool{b}``      after the max-pool ending block ``b`` (``pool5`` is the last conv feature map)
  ``fc6``, ``fc7``, ``fc8``  the linear layers' outputs (before ReLU); ``relu6``, ``relu7`` after it
ResNet (torchvision ``resnet*``):
  ``conv1`` the stem convolution (before BN); ``stem`` after BN+ReLU; ``pool1`` after the max-pool
  ``res{k}``    the output of the k-th residual block, counted over all stages (resnet18: res1..res8)
  ``middle{k}`` the activation after the first conv (conv, BN, ReLU) inside block k
  ``layer1``..``layer4`` the output of each stage (= its last block), ``fc`` the logits
MobileNetV2 (torchvision ``mobilenet_v2``, the offline MobileNetV2):
  ``stem`` the first conv+BN+ReLU6; ``block1``..``block17`` each inverted residual block's output;
  ``stage1``..``stage5`` the last block at strides 2, 4, 8, 16, 32; ``head`` the 1x1 conv to 1280
Vision transformers (torchvision ``vit_*``, timm ViT/DeiT):
  ``patch_embed`` the patch embedding; ``block1``..``blockN`` each block's token outputs; ``norm``
  the final LayerNorm
Swin transformers (torchvision ``swin_*``, timm ``swin_*``): ``patch_embed``, ``block1``.. every
  block in order, ``stage1``..``stage4`` each stage's last block, ``norm``
timm models also get ``stage1``.. from their ``feature_info`` (where the family has no stages).
EfficientNet (timm ``efficientnet*``, the offline EfficientNet-Lite0):
  ``stem`` after the stem conv+BN+act; ``stage{k}`` the output of stage k (1..7); ``head`` after
  the 1x1 head conv+BN+act; ``classifier`` the logits
"""

from __future__ import annotations

import math
import re
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import LayerError, did_you_mean


@dataclass(frozen=True)
class LayerRequest:
    """A layer to match, with its weight in the objective.

    >>> LayerRequest.parse("conv3_1:0.5")
    LayerRequest(name='conv3_1', weight=0.5)
    """

    name: str
    weight: float = 1.0

    @classmethod
    def parse(cls, text: str) -> LayerRequest:
        """``NAME`` or ``NAME:WEIGHT`` (the node name itself may contain ':' only if weighted)."""
        name, sep, weight = text.strip().rpartition(":")
        if sep and _is_number(weight):
            return cls(name.strip(), float(weight))
        return cls(text.strip(), 1.0)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def parse_layers(spec: str | Sequence[str | LayerRequest]) -> tuple[LayerRequest, ...]:
    """``"conv3_1,fc6:2"`` or a list of names/requests -> a tuple of :class:`LayerRequest`."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out = tuple(i if isinstance(i, LayerRequest) else LayerRequest.parse(str(i)) for i in items)
    out = tuple(r for r in out if r.name)
    if not out:
        raise LayerError(f"no layer given: expected names like 'conv3_1' or 'res2', got {spec!r}")
    return out


def _last_under(prefix: str, nodes: Sequence[str]) -> str | None:
    """The last graph node produced inside module ``prefix`` (its output), if any."""
    hits = [n for n in nodes if n == prefix or n.startswith(prefix + ".")]
    return hits[-1] if hits else None


def _vgg_aliases(model: Any, nodes: Sequence[str]) -> dict[str, str]:
    aliases: dict[str, str] = {}
    block, conv = 1, 0
    for i, layer in enumerate(model.features):
        node = f"features.{i}"
        if isinstance(layer, nn.Conv2d):
            conv += 1
            aliases[f"conv{block}_{conv}"] = node
        elif isinstance(layer, nn.BatchNorm2d):
            aliases[f"bn{block}_{conv}"] = node
        elif isinstance(layer, nn.ReLU):
            aliases[f"relu{block}_{conv}"] = node
        elif isinstance(layer, nn.MaxPool2d):
            aliases[f"pool{block}"] = node
            block, conv = block + 1, 0
    classifier = getattr(model, "classifier", None)
    if isinstance(classifier, nn.Sequential):
        fc = 6
        for i, layer in enumerate(classifier):
            if isinstance(layer, nn.Linear):
                aliases[f"fc{fc}"] = f"classifier.{i}"
                fc += 1
            elif isinstance(layer, nn.ReLU):
                aliases[f"relu{fc - 1}"] = f"classifier.{i}"
    return aliases


def _resnet_aliases(model: Any, nodes: Sequence[str]) -> dict[str, str]:
    act = "relu" if hasattr(model, "relu") else "act1"  # torchvision's name, timm's
    aliases = {"conv1": "conv1", "stem": act, "pool1": "maxpool"}
    k = 0
    for stage in range(1, 5):
        layer = getattr(model, f"layer{stage}", None)
        if layer is None:
            continue
        for j in range(len(layer)):
            k += 1
            block = f"layer{stage}.{j}"
            aliases[f"res{k}"] = _last_under(block, nodes) or block
            aliases[f"middle{k}"] = f"{block}.{act}"  # first use of the block's ReLU
        aliases[f"layer{stage}"] = _last_under(f"layer{stage}", nodes) or f"layer{stage}"
    aliases["fc"] = "fc"
    return aliases


def _efficientnet_aliases(model: Any, nodes: Sequence[str]) -> dict[str, str]:
    aliases = {"stem": _last_under("bn1", nodes) or "bn1"}
    for k in range(len(model.blocks)):
        aliases[f"stage{k + 1}"] = _last_under(f"blocks.{k}", nodes) or f"blocks.{k}"
    aliases["head"] = _last_under("bn2", nodes) or "bn2"
    aliases["classifier"] = "classifier"
    return aliases


def _mobilenet_aliases(model: Any, nodes: Sequence[str]) -> dict[str, str]:
    """MobileNetV2 (torchvision layout): ``stem`` (conv+BN+ReLU6), ``block1``... each inverted
    residual block's output, ``stage1``... the last block at each resolution, ``head`` (1x1 conv)."""
    aliases: dict[str, str | None] = {}
    stride, block = 1, 0
    layers = list(model.features)
    for i, layer in enumerate(layers):
        node = _last_under(f"features.{i}", nodes)
        if i == 0:
            aliases["stem"], stride = node, 2
        elif hasattr(layer, "use_res_connect"):  # an InvertedResidual block
            block += 1
            stride *= layer.stride
            aliases[f"block{block}"] = node
            following: Any = layers[i + 1] if i + 1 < len(layers) else None
            if not (hasattr(following, "use_res_connect") and following.stride == 1):
                aliases[f"stage{int(math.log2(stride))}"] = node  # the last block at this resolution
        else:
            aliases["head"] = node
    return {a: n for a, n in aliases.items() if n}


def _vit_aliases(model: Any, nodes: Sequence[str]) -> dict[str, str]:
    """timm (``patch_embed``, ``blocks.i``, ``norm``) and torchvision (``conv_proj``,
    ``encoder.layers.encoder_layer_i``, ``encoder.ln``) vision transformers: the token outputs."""
    if hasattr(model, "blocks"):
        parts = {"patch_embed": "patch_embed", "norm": "norm"}
        blocks = [f"blocks.{i}" for i in range(len(model.blocks))]
    else:
        parts = {"patch_embed": "conv_proj", "norm": "encoder.ln"}
        blocks = [f"encoder.layers.encoder_layer_{i}" for i in range(len(model.encoder.layers))]
    aliases = {"patch_embed": _last_under(parts["patch_embed"], nodes)}
    aliases.update({f"block{i + 1}": _last_under(b, nodes) for i, b in enumerate(blocks)})
    aliases["norm"] = _last_under(parts["norm"], nodes)
    return {a: n for a, n in aliases.items() if n}


def _swin_aliases(model: Any, nodes: Sequence[str]) -> dict[str, str]:
    """Swin transformers, torchvision (``features`` = patch embedding, then stages and patch merging
    in turn) and timm (``patch_embed``, ``layers.i.blocks.j``): ``patch_embed``, ``block1``.. every
    block in order, ``stage1``..``stage4`` each stage's last block, ``norm``."""
    if hasattr(model, "layers"):  # timm
        stages = [[f"layers.{i}.blocks.{j}" for j in range(len(layer.blocks))] for i, layer in enumerate(model.layers)]
        embed = "patch_embed"
    else:
        stages = [
            [f"features.{i}.{j}" for j in range(len(stage))]
            for i, stage in enumerate(model.features)
            if i > 0 and isinstance(stage, nn.Sequential)
        ]
        embed = "features.0"
    aliases = {"patch_embed": _last_under(embed, nodes)}
    k = 0
    for s, blocks in enumerate(stages, start=1):
        for block in blocks:
            k += 1
            aliases[f"block{k}"] = _last_under(block, nodes)
        aliases[f"stage{s}"] = _last_under(blocks[-1], nodes) if blocks else None
    aliases["norm"] = _last_under("norm", nodes)
    return {a: n for a, n in aliases.items() if n}


def _timm_stage_aliases(model: Any, nodes: Sequence[str]) -> dict[str, str]:
    """``stage1`` ... from timm's ``feature_info`` (the outputs its features_only mode returns)."""
    info = getattr(model, "feature_info", None)
    if not isinstance(info, list):
        return {}
    modules = [str(i["module"]) for i in info if isinstance(i, dict) and i.get("module")]
    found = {f"stage{k + 1}": _last_under(m, nodes) for k, m in enumerate(modules)}
    return {a: n for a, n in found.items() if n}


def _onnx_aliases(model: Any, nodes: Sequence[str]) -> dict[str, str]:
    """ONNX node names (``/layer1/layer1.0/relu/Relu``) -> onnx2torch's graph nodes."""
    names: dict[str, str] = getattr(model, "featinv_onnx_names", {})
    aliases = {}
    by_structure = getattr(model, "featinv_structure_aliases", {})  # see featinv.nets.onnxgraph
    for alias, onnx_name in by_structure.items():
        node = _last_under(names.get(onnx_name, ""), nodes) if onnx_name in names else None
        if node is not None:
            aliases[alias] = node
    for onnx_name, module_name in names.items():
        node = _last_under(module_name, nodes)
        if node is not None:
            aliases.setdefault(onnx_name, node)
    return aliases


def family(model: nn.Module) -> str:
    """Which alias scheme fits the model: 'vgg', 'resnet', 'efficientnet', 'onnx' or 'graph'."""
    if hasattr(model, "featinv_onnx_names"):
        return "onnx"
    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential) and any(hasattr(m, "use_res_connect") for m in features):
        return "mobilenet"
    if isinstance(features, nn.Sequential) and any(isinstance(m, nn.Conv2d) for m in features):
        return "vgg"
    if all(hasattr(model, a) for a in ("conv1", "layer1", "fc")):
        return "resnet"
    if all(hasattr(model, a) for a in ("conv_stem", "blocks", "bn2")):
        return "efficientnet"
    if all(hasattr(model, a) for a in ("patch_embed", "blocks")) or all(
        hasattr(model, a) for a in ("conv_proj", "encoder")
    ):
        return "vit"
    if all(hasattr(model, a) for a in ("patch_embed", "layers", "norm")) or all(
        hasattr(model, a) for a in ("features", "norm", "permute")
    ):
        return "swin"
    return "graph"


_ALIASERS = {
    "vgg": _vgg_aliases,
    "resnet": _resnet_aliases,
    "mobilenet": _mobilenet_aliases,
    "efficientnet": _efficientnet_aliases,
    "vit": _vit_aliases,
    "swin": _swin_aliases,
    "onnx": _onnx_aliases,
}


def tracer_kwargs(model: nn.Module) -> dict:
    """Extra torch.fx tracer settings some model zoos need (timm's dynamic padding; onnx2torch's
    op modules, some of which branch on their inputs, e.g. Reshape: each is one node anyway)."""
    if hasattr(model, "featinv_onnx_names"):
        return {
            "leaf_modules": sorted(
                {type(m) for m in model.modules() if type(m).__module__.startswith("onnx2torch.node_converters")},
                key=lambda t: t.__name__,
            )
        }
    if type(model).__module__.startswith("timm."):
        from timm.models._features_fx import get_notrace_functions, get_notrace_modules

        return {"leaf_modules": list(get_notrace_modules()), "autowrap_functions": list(get_notrace_functions())}
    return {}


# Tracing is slow: each model's node names are kept while the model lives (beside it, not on it).
_NODES: weakref.WeakKeyDictionary[nn.Module, list[str]] = weakref.WeakKeyDictionary()


def graph_nodes(model: nn.Module) -> list[str]:
    """The model's graph node names in execution order (eval mode), input excluded."""
    from torchvision.models.feature_extraction import get_graph_node_names

    if model not in _NODES:
        try:
            _, nodes = get_graph_node_names(model, tracer_kwargs=tracer_kwargs(model))
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise LayerError(
                f"cannot list the layers of {type(model).__name__}: torch.fx cannot trace it "
                f"({type(exc).__name__}: {first}); featinv reaches layers through torch.fx, so "
                f"pass a traceable network (or wrap the part you want in a module that is)"
            ) from exc
        _NODES[model] = [n for n in nodes if n not in ("x", "input")]
    return _NODES[model]


def aliases(model: nn.Module) -> dict[str, str]:
    """Alias -> graph node for this model (empty for models without an alias scheme)."""
    nodes = graph_nodes(model)
    aliaser = _ALIASERS.get(family(model))
    found = aliaser(model, nodes) if aliaser else {}
    if family(model) not in ("vit", "swin"):  # a transformer's feature_info is its blocks again
        for alias, node in _timm_stage_aliases(model, nodes).items():  # a family's own names come first
            found.setdefault(alias, node)
    return {a: n for a, n in found.items() if n in nodes}


def resolve(model: nn.Module, names: Sequence[str]) -> dict[str, str]:
    """Map each requested name (alias or graph node) to its graph node, in request order.

    Fails before any work with a :class:`LayerError` that lists the valid names and the
    closest matches.
    """
    table = aliases(model)
    nodes = graph_nodes(model)
    resolved = {}
    for name in names:
        if name in table:
            resolved[name] = table[name]
        elif name in nodes:
            resolved[name] = name
        else:
            valid = list(table) + nodes
            hint = did_you_mean(name, valid)
            if getattr(model, "featinv_layer_hint", "") and name.startswith(("fc", "relu6", "relu7")):
                hint += f" Note: {model.featinv_layer_hint}."
            shown = ", ".join(list(table)[:40] or nodes[:40])
            raise LayerError(
                f"unknown layer {name!r} for this {family(model)} model.{hint} "
                f"Valid names include: {shown}{', ...' if len(valid) > 40 else ''} "
                f"(run `featinv layers MODEL` for all of them)"
            )
    return resolved


def natural_key(name: str) -> list:
    """Sort 'conv10' after 'conv9'."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def stride_of(size: int, shapes: Iterable[Sequence[int]]) -> int:
    """How far the deepest of these outputs has downsampled a ``size`` px input: input side / map
    side, or the input side for an output without a spatial map (fc, pooled vectors). What the
    layer-adaptive defaults and the paper recipes read.

    >>> stride_of(128, [(1, 64, 128, 128), (1, 512, 4, 4)]), stride_of(128, [(1, 1000)])
    (32, 128)
    """
    return max(max(size // shape[-1], 1) if len(shape) == 4 else size for shape in shapes)


def invertible(shape: tuple[int, ...] | None) -> bool:
    """Can a node of this output shape be inverted? Feature maps and token sequences can; plumbing
    (sizes, getattr/getitem of tuples, asserts, integer arithmetic) has no tensor shape."""
    return shape is not None and len(shape) >= 1


def check_invertible(model: nn.Module, features: dict[str, Any], size: int) -> None:
    """Refuse, with a :class:`LayerError` naming the nearest layer that can be, a requested layer
    whose output is not a float tensor with a feature axis (an ONNX file's integer shape
    arithmetic, a size, a tuple): there is nothing there to match."""
    for name, value in features.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dim() >= 2:
            continue
        what = (
            f"a tensor of {str(value.dtype).removeprefix('torch.')} with shape {list(value.shape)}"
            if isinstance(value, torch.Tensor)
            else f"a {type(value).__name__}, not a tensor"
        )
        raise LayerError(
            f"layer {name!r} cannot be inverted: its output is {what} (shape arithmetic or other "
            f"plumbing, not features); the nearest layer that can be is {nearest_invertible(model, name, size)!r} "
            f"(see `featinv layers MODEL`)"
        )


def nearest_invertible(model: nn.Module, name: str, size: int) -> str | None:
    """The first invertible node after ``name`` in graph order (what its plumbing feeds), else the
    last one before it, by its shortest alias."""
    node = resolve(model, [name])[name]
    nodes = graph_nodes(model)
    shapes = {n: shape for _, n, shape in describe_at(model, size, everything=True)[0]}
    here = nodes.index(node)
    candidates = [n for n in nodes if n != node and invertible(shapes.get(n))]
    if not candidates:
        return None
    after = [n for n in candidates if nodes.index(n) > here]
    best = after[0] if after else candidates[-1]
    names = [a for a, n in aliases(model).items() if n == best]
    return min(names, key=len) if names else best


def default_layer(model: nn.Module, size: int) -> str:
    """The layer a run inverts when none is given, for a model without its own default: the deepest
    alias still at stride 4 (VGG16's relu3_3, ResNet-18's res2 = layer1), else at stride 8, else the middle
    invertible layer (a transformer's middle block, a network without aliases' middle node).
    Shapes are taken at ``size``, or at 224 px for a network whose head takes only that.

    >>> from torchvision.models import resnet18
    >>> default_layer(resnet18(), 64)  # the end of layer1
    'res2'
    """
    rows, size = describe_at(model, size, everything=False)
    named = set(aliases(model))
    candidates = [row for row in rows if row[0] in named] or rows
    if not candidates:
        raise LayerError(f"{type(model).__name__} has no layer that can be inverted at {size} px")
    chosen = candidates[len(candidates) // 2]
    for stride in (4, 8):
        at = [row for row in candidates if row[2] and len(row[2]) == 3 and stride_of(size, [(1, *row[2])]) == stride]
        if at:
            chosen = at[-1]
            break
    return min((name for name, node, _ in candidates if node == chosen[1]), key=len)  # 'res2', not its ONNX name


def describe_at(
    model: nn.Module, size: int, everything: bool
) -> tuple[list[tuple[str, str, tuple[int, ...] | None]], int]:
    """:func:`describe` at ``size``, or at 224 px for a network whose head takes no other size
    (a layer's name holds at any size; a run checks its own); the rows and the size used."""
    try:
        return describe(model, size, everything=everything), size
    except (RuntimeError, ValueError, IndexError, AssertionError):
        return describe(model, 224, everything=everything), 224


@torch.no_grad()
def describe(
    model: nn.Module, size: int = 224, everything: bool = True, nodes_too: bool = True
) -> list[tuple[str, str, tuple[int, ...] | None]]:
    """Every alias and graph node with its output shape (without the batch) for a ``size x size`` input.

    Rows are ``(name, node, shape)``; aliases first (in network order), then, with ``nodes_too``,
    the nodes. ``everything=False`` keeps only the rows that can be inverted (see
    :func:`invertible`; the others' shape is None): an ONNX file's shape arithmetic has aliases
    too (its node names), and is hidden with the rest of the plumbing.
    """
    from torchvision.models.feature_extraction import create_feature_extractor

    nodes = graph_nodes(model)
    extractor = create_feature_extractor(model, {n: n for n in nodes}, tracer_kwargs=tracer_kwargs(model))
    was_training = model.training
    extractor.eval()
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        out = extractor(torch.zeros(1, 3, size, size, device=device))
    finally:
        model.train(was_training)
    shape = {
        n: tuple(v.shape[1:]) if isinstance(v, torch.Tensor) and v.is_floating_point() and v.dim() >= 2 else None
        for n, v in out.items()
    }
    order = {n: i for i, n in enumerate(nodes)}
    table = sorted(aliases(model).items(), key=lambda kv: order[kv[1]])
    rows = [(a, n, shape[n]) for a, n in table] + ([(n, n, shape[n]) for n in nodes] if nodes_too else [])
    return [row for row in rows if everything or invertible(row[2])]
