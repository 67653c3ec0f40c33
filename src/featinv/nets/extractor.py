"""FeatureExtractor: a network cut after the deepest requested layer, returning named features."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from . import layers as layer_names


class FeatureExtractor(nn.Module):
    """Run ``model`` only as far as needed and return ``{layer name: feature}``.

    Layer names are aliases (``conv3_1``, ``res2``) or graph node names, checked here, before
    any work. The graph is built with torchvision's ``create_feature_extractor``, which drops
    every node the requested outputs do not depend on, so later layers never execute.

    Input ``[B, 3, H, W]`` (already preprocessed); output ``dict[str, Tensor[B, ...]]``.

    >>> from torchvision.models import vgg16
    >>> fx = FeatureExtractor(vgg16().eval(), ["conv1_1", "pool1"])
    >>> {k: tuple(v.shape) for k, v in fx(torch.zeros(1, 3, 32, 32)).items()}
    {'conv1_1': (1, 64, 32, 32), 'pool1': (1, 64, 16, 16)}
    """

    def __init__(self, model: nn.Module, names: Sequence[str], fold_batchnorm: bool = True) -> None:
        super().__init__()
        from torchvision.models.feature_extraction import create_feature_extractor

        self.names = list(dict.fromkeys(names))
        self.nodes = layer_names.resolve(model, self.names)  # raises LayerError early
        unique_nodes = list(dict.fromkeys(self.nodes.values()))
        self.graph = create_feature_extractor(
            model, return_nodes={n: n for n in unique_nodes}, tracer_kwargs=layer_names.tracer_kwargs(model)
        )
        self.graph.train(model.training)
        self.folded = fold_conv_batchnorm(self.graph) if fold_batchnorm and not model.training else 0

    def own_weights(self, memory_format: torch.memory_format) -> None:
        """Give the extractor its own frozen, eval-mode copy of the weights it uses, in
        ``memory_format`` (channels-last pays on CPU), so the user's model keeps its own layout."""
        self.graph = copy.deepcopy(self.graph).eval().requires_grad_(False).to(memory_format=memory_format)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.graph(x)
        return {name: out[node] for name, node in self.nodes.items()}


def fold_conv_batchnorm(graph_module: torch.fx.GraphModule) -> int:
    """Fold each eval-mode BatchNorm into the convolution before it, in the extractor's own graph.

    A conv whose output is requested, or used by anything but its BatchNorm, is left alone (its
    pre-BN output is needed). The model itself is untouched: the folded conv is a new module set
    on the extractor's copy of the module tree. A BatchNorm that applies more after normalising
    (timm's ``BatchNormAct2d``: dropout and activation) keeps its node, now running only that
    rest; an unknown BatchNorm subclass is not folded. Returns how many pairs were folded.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = 0
    for bn_node in list(graph_module.graph.nodes):
        if bn_node.op != "call_module" or not isinstance(
            graph_module.get_submodule(str(bn_node.target)), nn.BatchNorm2d
        ):
            continue
        conv_node = bn_node.args[0]
        if (
            not isinstance(conv_node, torch.fx.Node)
            or conv_node.op != "call_module"
            or len(conv_node.users) != 1
            or type(graph_module.get_submodule(str(conv_node.target))) is not nn.Conv2d
        ):
            continue
        conv: Any = graph_module.get_submodule(str(conv_node.target))
        bn: Any = graph_module.get_submodule(str(bn_node.target))
        rest = _after_normalising(bn)
        if bn.training or not bn.track_running_stats or rest is None:
            continue
        fused = fuse_conv_bn_eval(conv, bn).requires_grad_(False)  # inference only, like the model
        _set_submodule(graph_module, str(conv_node.target), fused)
        if isinstance(rest, nn.Identity):
            bn_node.replace_all_uses_with(conv_node)
            graph_module.graph.erase_node(bn_node)
        else:  # the node stays, now running what the BatchNorm did after normalising
            _set_submodule(graph_module, str(bn_node.target), rest)
        folded += 1
    if folded:
        graph_module.graph.lint()
        graph_module.recompile()
    return folded


def _after_normalising(bn: Any) -> nn.Module | None:
    """What a BatchNorm2d module does after normalising: nothing (``Identity``) for torch's own;
    its dropout and activation for timm's ``BatchNormAct2d``, which subclasses BatchNorm2d to
    apply both in the same module; None, so it is not folded, for any other subclass."""
    if type(bn) is nn.BatchNorm2d:
        return nn.Identity()
    if type(bn).__name__ == "BatchNormAct2d" and type(bn).__module__.startswith("timm."):
        return nn.Sequential(bn.drop, bn.act)
    return None


def _set_submodule(root: nn.Module, target: str, module: nn.Module) -> None:
    parent, _, leaf = target.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and no weight gradients inside; the model's own settings restored after."""
    was_training = model.training
    modes = {m: m.training for m in model.modules()}
    grads = {p: p.requires_grad for p in model.parameters()}
    model.eval().requires_grad_(False)
    try:
        yield model
    finally:
        for m, mode in modes.items():
            m.training = mode
        for p, flag in grads.items():
            p.requires_grad_(flag)
        model.training = was_training
