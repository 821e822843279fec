"""Tiny ONNX graphs for the tests, built with onnx.helper (nothing downloaded)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper


def constant_graph(path, values: np.ndarray, input_shape=(1, 3, 64, 64), extra_outputs=()):
    """An ONNX model with one image input whose output is ``values`` plus 0 x (the input's
    mean): a constant that still reads the input."""
    values = np.asarray(values, dtype=np.float32)
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["values", "nothing"], ["out"]),
    ]
    inits = [helper.make_tensor("values", TensorProto.FLOAT, values.shape, values.ravel()),
             helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])]
    outputs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, values.shape)]
    for name, shape in extra_outputs:
        nodes.append(helper.make_node("Identity", ["out"], [name]))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
    graph = helper.make_graph(nodes, "detector", [helper.make_tensor_value_info(
        "image", TensorProto.FLOAT, list(input_shape))], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
