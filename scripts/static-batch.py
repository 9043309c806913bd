#!/usr/bin/env python3
"""Re-exports a static batch-1 ONNX detector with a static batch of N.

    python3 scripts/static-batch.py IN.onnx OUT.onnx N

Ultralytics' static exports (the demo YOLOv12n among them) bake the batch
of 1 into the shape constants of their Reshape nodes, so ONNX Runtime
refuses any other batch even where the input's first dimension is edited.
This multiplies the leading element of every constant Reshape shape by N
(in these graphs it is the batch, or the batch times the attention's
area count), sets the first dimension of the inputs and outputs to N, and
checks the result with onnx's checker and shape inference. It is a graph
edit, not a re-export: run `scripts/fetch-models.sh`'s venv python, and
compare a batch run against N batch-1 runs before trusting it (the note in
docs/benchmarks.md says how it was checked for YOLOv12n).

Needs the `onnx` package (scripts/fetch-models.sh makes a venv with it).
"""
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def constant_arrays(graph):
    """Constant node outputs and initializers by name, with a setter each."""
    found = {}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    found[node.output[0]] = attr
    for init in graph.initializer:
        found[init.name] = init
    return found


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: static-batch.py IN.onnx OUT.onnx N")
    source, target, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if batch < 1:
        sys.exit("static-batch: N must be at least 1")
    model = onnx.load(source)
    graph = model.graph
    for value in list(graph.input) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        if not dims or dims[0].dim_param or dims[0].dim_value != 1:
            sys.exit(f"static-batch: {value.name} has no static batch of 1 (first dimension {dims[0] if dims else 'none'}); "
                     "this edit is for static batch-1 exports")
        dims[0].dim_value = batch
    constants = constant_arrays(graph)
    edited = set()
    for node in graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2:
            continue
        name = node.input[1]
        holder = constants.get(name)
        if holder is None:
            sys.exit(f"static-batch: Reshape {node.name} takes a computed shape ({name}); cannot edit it safely")
        if name in edited:
            continue
        tensor = holder.t if isinstance(holder, onnx.AttributeProto) else holder
        shape = numpy_helper.to_array(tensor).copy()
        if shape.size == 0 or shape[0] <= 0:
            sys.exit(f"static-batch: Reshape {node.name} has shape {shape.tolist()}; its leading element is not a batch")
        shape[0] *= batch
        replacement = numpy_helper.from_array(shape.astype(np.int64), tensor.name)
        tensor.CopyFrom(replacement)
        edited.add(name)
    # Stale intermediate shapes would disagree with the new batch.
    del graph.value_info[:]
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model)
    onnx.save(model, target)
    print(f"static-batch: {target}: batch {batch}, {len(edited)} Reshape shapes edited", file=sys.stderr)


if __name__ == "__main__":
    main()
