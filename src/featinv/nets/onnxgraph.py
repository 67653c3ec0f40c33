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

Only float tensors count: a tf2onnx export computes its pads and reshapes with integer arithmetic
on the input's shape (``Shape -> Gather -> Add -> Concat -> Pad``), and those ``Add`` nodes take two
computed inputs, just as a residual one does. :func:`tensor_info` tells them apart (ONNX's type
and shape inference, and, where it knows nothing, what the tensor is computed from), and each
alias found is checked: a float map, 4-D (2-D for the dense layers), its side never growing
along the network.
"""

from __future__ import annotations

from typing import Any

CONV, RELU, POOL, ADD = "Conv", ("Relu", "Clip"), "MaxPool", "Add"
DENSE = ("Gemm", "MatMul")
NCHW_TRANSPOSE = "featinv_nchw_to_nhwc"  # the node :func:`to_nchw_input` adds (featinv's, not the file's)
FLOAT_TYPES = {1, 10, 11, 16}  # ONNX's FLOAT, FLOAT16, DOUBLE, BFLOAT16
SHAPE_OPS = ("Shape", "Size")  # their outputs are integers whatever the input


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
    transpose = helper.make_node("Transpose", [new_name], [old.name], name=NCHW_TRANSPOSE, perm=[0, 2, 3, 1])
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


def tensor_info(proto: Any) -> dict[str, tuple[bool, tuple[int | None, ...] | None]]:
    """Each computed tensor: ``(is float, shape)``, the shape None where unknown.

    ONNX's inference gives types and shapes; a tensor it cannot type is float unless it is
    computed only from integer tensors (shape arithmetic) or by ``Shape``/``Size``.
    """
    from onnx import shape_inference

    inferred: dict[str, tuple[bool, tuple[int | None, ...] | None]] = {}
    try:
        typed = shape_inference.infer_shapes(proto)
    except Exception:  # an op inference does not know: fall back on the graph itself
        typed = proto
    for value in [*typed.graph.input, *typed.graph.value_info, *typed.graph.output]:
        tensor = value.type.tensor_type
        if not tensor.elem_type:
            continue
        shape = (
            tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim)
            if tensor.HasField("shape")
            else None
        )
        inferred[value.name] = (tensor.elem_type in FLOAT_TYPES, shape)
    for init in proto.graph.initializer:
        inferred.setdefault(init.name, (init.data_type in FLOAT_TYPES, tuple(init.dims)))
    info = {}
    for node in proto.graph.node:  # in order: a node's inputs are known before it
        for out in node.output:
            if out in inferred:
                info[out] = inferred[out]
            else:
                sources = [i for i in node.input if i]
                is_float = node.op_type not in SHAPE_OPS and (
                    not sources or any(info.get(i, inferred.get(i, (True, None)))[0] for i in sources)
                )
                info[out] = (is_float, None)
    return info


def structure_aliases(proto: Any) -> dict[str, str]:
    """Alias -> ONNX node name for a VGG-like or ResNet-like graph; empty for anything else."""
    info = tensor_info(proto)
    nodes = [n for n in proto.graph.node if n.name and info.get(n.output[0], (True, None))[0]]
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
        found = _resnet_like(nodes, consumers, joins, widths)
    else:
        found = _vgg_like(nodes, consumers)
    return _checked(found, {n.name: info.get(n.output[0], (True, None))[1] for n in nodes})


def _checked(found: dict[str, str], shapes: dict[str, tuple[int | None, ...] | None]) -> dict[str, str]:
    """The aliases whose tensors look like what they claim: 4-D maps whose side never grows along
    the network (``shapes`` is in graph order), 2-D for the dense ``fc*`` layers; a shape
    inference left unknown passes.

    >>> shapes = {"a": (1, 8, 16, 16), "b": (1, 8, 32, 32), "c": (), "d": (1, 10), "e": None}
    >>> _checked({"pool1": "a", "res1": "b", "res2": "c", "fc": "d", "res3": "e", "layer1": "a"}, shapes)
    {'pool1': 'a', 'fc': 'd', 'res3': 'e', 'layer1': 'a'}
    """
    grown, side = set(), None
    for name, shape in shapes.items():  # a map wider than one before it is not where it claims
        if shape is not None and len(shape) == 4 and shape[2] is not None:
            if side is not None and shape[2] > side:
                grown.add(name)
            side = shape[2] if side is None else min(side, shape[2])
    kept = {}
    for alias, name in found.items():
        shape = shapes.get(name)
        dense = alias.startswith("fc") or alias in ("relu6", "relu7")
        if name in grown or (shape is not None and len(shape) != (2 if dense else 4)):
            continue
        kept[alias] = name
    return kept


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
