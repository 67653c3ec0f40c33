"""ONNX graphs as featinv reads them: channels-last inputs turned into NCHW, and paper-style layer
names found from the graph's shape, whatever its nodes are called.

A Keras or TensorFlow export takes ``[N, H, W, 3]``; featinv feeds ``[N, 3, H, W]``. Rather than
refusing it, :func:`to_nchw_input` puts a ``Transpose`` in front of the graph, so the converted
network is the file's own, node for node.

:func:`structure_aliases` walks the graph in order and names what it finds, as
:mod:`featinv.nets.layers` does for torchvision models:

- VGG-like (convolutions, ReLUs and max-pools in a chain, no residual ``Add``): ``conv{b}_{c}``,
  ``relu{b}_{c}``, ``pool{b}``, then ``fc6``, ``fc7``, ``fc8`` for the dense layers (``Gemm``, or
  ``MatMul`` followed by its bias ``Add``) and ``relu6``, ``relu7`` after them;
- ResNet-like (residual ``Add`` nodes): ``conv1``, ``stem`` (its ReLU), ``pool1``, ``res{k}`` the
  k-th block's output (the ReLU after its ``Add``), ``middle{k}`` the first ReLU inside block k,
  ``layer{n}`` the last block before the channel count changes, ``fc``.

The zoo's MXNet VGG16-BN (``vgg0_conv0_fwd``, ...), a torchvision export (``/features/features.0/Conv``)
and a Keras export (``block1_conv1``) get the same names.
"""

from __future__ import annotations

from typing import Any

CONV, RELU, POOL, ADD = "Conv", ("Relu", "Clip"), "MaxPool", "Add"
DENSE = ("Gemm", "MatMul")


def _graph_inputs(proto: Any) -> list[Any]:
    initializers = {t.name for t in proto.graph.initializer}
    return [i for i in proto.graph.input if i.name not in initializers]


def input_dims(proto: Any) -> list[int | None]:
    """The first input's declared shape (None for a symbolic dimension)."""
    inputs = _graph_inputs(proto)
    if not inputs:
        return []
    return [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]


def is_channels_last(proto: Any) -> bool:
    """Does the graph take ``[N, H, W, 3]`` images (a Keras / TensorFlow export)?"""
    dims = input_dims(proto)
    return len(dims) == 4 and dims[3] == 3 and dims[1] != 3


def to_nchw_input(proto: Any) -> None:
    """Give a channels-last graph an NCHW input: a new input ``[N, 3, H, W]`` and a ``Transpose`` to
    the old one, in place (the rest of the graph, and its node names, unchanged)."""
    import onnx
    from onnx import helper

    old = _graph_inputs(proto)[0]
    new_name = f"{old.name}__nchw"
    dims = old.type.tensor_type.shape.dim
    shape = [d.dim_param or (d.dim_value if d.HasField("dim_value") else None) for d in dims]
    nchw = [shape[0], shape[3], shape[1], shape[2]]
    new_input = helper.make_tensor_value_info(
        new_name, old.type.tensor_type.elem_type, [s if s else None for s in nchw]
    )
    transpose = helper.make_node("Transpose", [new_name], [old.name], name="featinv_nchw_to_nhwc", perm=[0, 2, 3, 1])
    proto.graph.input.remove(old)
    proto.graph.input.insert(0, new_input)
    proto.graph.node.insert(0, transpose)
    onnx.checker.check_model(proto)


def _consumers(proto: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for node in proto.graph.node:
        for name in node.input:
            out.setdefault(name, []).append(node)
    return out


def _next_of(node: Any, consumers: dict[str, list[Any]], ops: tuple[str, ...] | str, skip: int = 3) -> Any:
    """The first node of type ``ops`` that follows ``node`` within ``skip`` single-consumer hops
    (BatchNorm, a bias Add, a Transpose may sit between)."""
    ops = (ops,) if isinstance(ops, str) else ops
    current = node
    for _ in range(skip):
        following = consumers.get(current.output[0], [])
        if len(following) != 1:
            return None
        current = following[0]
        if current.op_type in ops:
            return current
    return None


def structure_aliases(proto: Any) -> dict[str, str]:
    """Alias -> ONNX node name for a VGG-like or ResNet-like graph; empty for anything else."""
    nodes = [n for n in proto.graph.node if n.name]
    if sum(n.op_type == CONV for n in nodes) < 4:
        return {}
    consumers = _consumers(proto)
    computed = {o for n in proto.graph.node for o in n.output}
    joins = [n for n in nodes if n.op_type == ADD and len(n.input) == 2 and all(i in computed for i in n.input)]
    if joins:  # a residual Add of two computed tensors (a bias Add has an initializer)
        weights = {t.name: list(t.dims) for t in proto.graph.initializer}
        widths = {
            n.name: weights[n.input[1]][0]
            for n in nodes
            if n.op_type == CONV and len(n.input) > 1 and n.input[1] in weights
        }
        return _resnet_like(nodes, consumers, joins, widths)
    return _vgg_like(nodes, consumers)


def _vgg_like(nodes: list[Any], consumers: dict[str, list[Any]]) -> dict[str, str]:
    aliases: dict[str, str] = {}
    block, conv, fc = 1, 0, 6
    for node in nodes:
        if node.op_type == CONV:
            conv += 1
            aliases[f"conv{block}_{conv}"] = node.name
            relu = _next_of(node, consumers, RELU)
            if relu is not None:
                aliases[f"relu{block}_{conv}"] = relu.name
        elif node.op_type == POOL and conv:
            aliases[f"pool{block}"] = node.name
            block, conv = block + 1, 0
        elif node.op_type in DENSE and block > 1:
            out = node
            if node.op_type == "MatMul":  # its bias comes in the Add after it
                out = _next_of(node, consumers, ADD, skip=1) or node
            aliases[f"fc{fc}"] = out.name
            relu = _next_of(out, consumers, RELU, skip=2)
            if relu is not None and fc < 8:
                aliases[f"relu{fc}"] = relu.name
            fc += 1
    return aliases


def _resnet_like(
    nodes: list[Any], consumers: dict[str, list[Any]], joins: list[Any], widths: dict[str, int]
) -> dict[str, str]:
    first_conv = next(n for n in nodes if n.op_type == CONV)
    aliases = {"conv1": first_conv.name}
    stem = _next_of(first_conv, consumers, RELU)
    if stem is not None:
        aliases["stem"] = stem.name
    pool = next((n for n in nodes if n.op_type == POOL), None)
    if pool is not None:
        aliases["pool1"] = pool.name
    position = {n.name: i for i, n in enumerate(nodes)}
    width, width_at = None, {}
    for n in nodes:  # each node's width: the output channels of the last convolution before it
        width = widths.get(n.name, width)
        width_at[n.name] = width
    end = position[(pool or stem or first_conv).name]
    outputs = []
    for k, add in enumerate(joins, start=1):
        out = _next_of(add, consumers, RELU, skip=1) or add
        aliases[f"res{k}"] = out.name
        inside = [n for n in nodes[end + 1 : position[add.name]] if n.op_type in RELU]
        if inside:
            aliases[f"middle{k}"] = inside[0].name
        outputs.append((out.name, width_at[add.name]))
        end = position[out.name]
    stage = 0
    for i, (name, channels) in enumerate(outputs):  # a stage ends where the width changes
        if i + 1 == len(outputs) or outputs[i + 1][1] != channels:
            stage += 1
            aliases[f"layer{stage}"] = name
    dense = [n for n in nodes if n.op_type in DENSE]
    if dense:
        aliases["fc"] = dense[-1].name
    return aliases
