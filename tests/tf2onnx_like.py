"""A small ResNet-like ONNX graph built as tf2onnx exports a Keras model: NHWC input, a Transpose to
NCHW, and shape arithmetic (Shape -> Slice -> Gather -> Add/Sub -> Unsqueeze -> Concat) computing the pads
of Keras' ZeroPadding2D and the Reshape before the dense layer. Its integer ``Add`` nodes take two
computed inputs, as a residual ``Add`` does; they come before the stem, as in the real exports.

Layout (at a 32 px input): pad 1 -> conv 3->8 (3x3) -> relu -> max-pool 2 (16 px) -> block 1
(two 3x3 convs at 8 channels, identity shortcut) -> block 2 (8->16, stride 2, 1x1 shortcut; 8 px)
-> global average pool -> reshape [N, 16] -> dense 16->10.
"""

from __future__ import annotations

import numpy as np


def build(path, size=32, seed=0):
    """Write the graph to ``path`` and return it (an ``onnx.ModelProto``)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits, nodes = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def weight(name, *shape):
        return const(name, (rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[1:]))).astype(np.float32))

    def node(op, inputs, name, **attrs):
        nodes.append(helper.make_node(op, inputs, [f"{name}:0"], name=name, **attrs))
        return f"{name}:0"

    x = node("Transpose", ["input_1"], "model/transpose_nchw", perm=[0, 3, 1, 2])
    # Keras' padding sizes, as tf2onnx computes them: integer arithmetic on the input's shape
    hw = node(
        "Slice",
        [node("Shape", [x], "model/Shape"), *(const(k, np.array([v], np.int64)) for k, v in (("s2", 2), ("s4", 4)))],
        "model/strided_slice",
    )
    side = node("Gather", [hw, const("zero_i", np.array(0, np.int64))], "model/Gather")
    twice = node("Add", [side, side], "model/Add")  # two computed inputs, like a residual Add
    more = node("Add", [twice, side], "model/Add_1")
    most = node("Add", [more, side], "model/Add_2")
    zero = node("Sub", [most, most], "model/Sub")
    one = node("Add", [zero, const("one", np.array(1, np.int64))], "model/Add_3")
    axes = const("axes0", np.array([0], np.int64))
    z, o = (node("Unsqueeze", [v, axes], f"model/Unsqueeze_{i}") for i, v in enumerate((zero, one)))
    pads = node("Concat", [z, z, o, o, z, z, o, o], "model/pads", axis=0)
    x = node("Pad", [x, pads], "model/zero_padding2d/Pad")

    def conv(x, name, cin, cout, k, stride=1, pad=0):
        return node(
            "Conv",
            [x, weight(f"{name}/kernel", cout, cin, k, k), const(f"{name}/bias", np.zeros(cout, np.float32))],
            f"model/{name}/Conv2D",
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=[pad] * 4,
        )

    x = node("Relu", [conv(x, "conv1_conv", 3, 8, 3)], "model/conv1_relu/Relu")
    x = node("MaxPool", [x], "model/pool1_pool/MaxPool", kernel_shape=[2, 2], strides=[2, 2])
    h = node("Relu", [conv(x, "conv2_block1_1_conv", 8, 8, 3, pad=1)], "model/conv2_block1_1_relu/Relu")
    h = conv(h, "conv2_block1_2_conv", 8, 8, 3, pad=1)
    x = node("Relu", [node("Add", [x, h], "model/conv2_block1_add/add")], "model/conv2_block1_out/Relu")
    h = node("Relu", [conv(x, "conv3_block1_1_conv", 8, 16, 3, 2, 1)], "model/conv3_block1_1_relu/Relu")
    h = conv(h, "conv3_block1_2_conv", 16, 16, 3, pad=1)
    short = conv(x, "conv3_block1_0_conv", 8, 16, 1, 2)
    x = node("Relu", [node("Add", [short, h], "model/conv3_block1_add/add")], "model/conv3_block1_out/Relu")
    x = node("GlobalAveragePool", [x], "model/avg_pool/Mean")
    # Keras' Flatten, as tf2onnx writes it: the batch size read from the shape, then [N, -1]
    batch = node("Gather", [node("Shape", [x], "model/Shape_1"), "zero_i"], "model/Gather_1")
    shape = node(
        "Concat",
        [node("Unsqueeze", [batch, axes], "model/Unsqueeze_2"), const("minus1", np.array([-1], np.int64))],
        "model/flat_shape",
        axis=0,
    )
    x = node("Reshape", [x, shape], "model/flatten/Reshape")
    node(
        "Gemm",
        [x, weight("predictions/kernel", 10, 16), const("predictions/bias", np.zeros(10, np.float32))],
        "model/predictions/MatMul",
        transB=1,
    )

    graph = helper.make_graph(
        nodes,
        "tf2onnx_like_resnet",
        [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["N", size, size, 3])],
        [helper.make_tensor_value_info("model/predictions/MatMul:0", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="tf2onnx")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return model
