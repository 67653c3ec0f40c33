"""Which pixels a feature-map cell sees: the receptive field of a layer, computed from the network's
graph (kernel, stride, padding and dilation of every convolution and pooling on the way).

Each tensor on the way is described by ``Field(size, jump, start)``: a cell sees ``size`` pixels,
neighbouring cells are ``jump`` pixels apart, and cell 0 is centred on pixel ``start``. Branches
that meet (a residual ``add``) keep the wider field; a global pooling or a linear layer sees the
whole image.

>>> from torchvision.models import vgg16
>>> receptive_field(vgg16(), "conv3_3", 224)  # 40 pixels a side, cells 4 pixels apart
Field(size=40.0, jump=4.0, start=1.5)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Field:
    size: float  # pixels one cell sees, per side
    jump: float  # pixels between neighbouring cells
    start: float  # the pixel cell 0 is centred on

    def through(self, kernel: int, stride: int, padding: int, dilation: int = 1) -> Field:
        span = (kernel - 1) * dilation
        return Field(self.size + span * self.jump, self.jump * stride, self.start + (span / 2 - padding) * self.jump)


def _pair(value: int | tuple[int, ...]) -> int:
    return value[0] if isinstance(value, tuple) else value


def _module_field(module: nn.Module, field: Field, image: int) -> Field:
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        kernel = _pair(module.kernel_size)
        stride = _pair(module.stride) if module.stride is not None else kernel
        dilation = _pair(getattr(module, "dilation", 1))
        padding = _pair(module.padding)  # type: ignore[arg-type]  # a string ('same') is not traced
        return field.through(kernel, stride, padding, dilation)
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Linear)):
        return Field(float(2 * image), float(image), (image - 1) / 2)  # every pixel
    return field


def receptive_field(model: nn.Module, layer: str, image: int) -> Field:
    """The receptive field of graph node or alias ``layer`` for ``image x image`` inputs."""
    from torchvision.models.feature_extraction import create_feature_extractor

    from .layers import resolve, tracer_kwargs

    node_name = resolve(model, [layer])[layer]
    graph = create_feature_extractor(model, {node_name: "out"}, tracer_kwargs=tracer_kwargs(model))
    modules = dict(graph.named_modules())
    fields: dict[str, Field] = {}
    for node in graph.graph.nodes:
        inputs = [fields[a.name] for a in node.all_input_nodes if a.name in fields]
        if node.op == "placeholder":
            fields[node.name] = Field(1.0, 1.0, 0.0)
            continue
        if not inputs:
            continue
        widest = max(inputs, key=lambda f: f.size)
        if node.op == "call_module":
            fields[node.name] = _module_field(modules[node.target], widest, image)
        elif node.op == "call_function" and getattr(node.target, "__name__", "") in (
            "adaptive_avg_pool2d",
            "adaptive_max_pool2d",
            "linear",
            "mean",
        ):
            fields[node.name] = Field(float(2 * image), float(image), (image - 1) / 2)
        else:
            fields[node.name] = widest
    output = next(n for n in graph.graph.nodes if n.op == "output")
    source = output.all_input_nodes[0]
    return fields[source.name]


def window_pixels(field: Field, rows: tuple[int, int], cols: tuple[int, int], image: int) -> tuple[int, int, int, int]:
    """The pixels ``(top, left, bottom, right)`` (inclusive, clipped to the image) that the cells
    ``rows`` x ``cols`` (ends excluded) see."""
    half = (field.size - 1) / 2

    def span(lo: int, hi: int) -> tuple[int, int]:
        first = field.start + lo * field.jump - half
        last = field.start + (hi - 1) * field.jump + half
        return max(0, int(round(first))), min(image - 1, int(round(last)))

    (top, bottom), (left, right) = span(*rows), span(*cols)
    return top, left, bottom, right


def draw_window(target: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
    """``target`` ``[3, H, W]`` dimmed outside ``box`` with the box outlined in orange."""
    top, left, bottom, right = box
    out = target.clone() * 0.35
    out[:, top : bottom + 1, left : right + 1] = target[:, top : bottom + 1, left : right + 1]
    orange = torch.tensor([1.0, 0.55, 0.0])[:, None]
    out[:, top, left : right + 1] = orange
    out[:, bottom, left : right + 1] = orange
    out[:, top : bottom + 1, left] = orange
    out[:, top : bottom + 1, right] = orange
    return out
