"""The optimized serving graph: weights frozen to constants, BatchNormalization folded into convs.

In inference BatchNormalization is an affine map per channel, ``y = x * s + d`` with
``s = gamma / sqrt(moving_variance + epsilon)`` and ``d = beta - moving_mean * s`` (Ioffe & Szegedy,
2015, "Batch Normalization", Algorithm 2). When ``x`` is a convolution ``x = conv(u, W) + b``, the
map folds into it exactly (up to float rounding): ``y = conv(u, W * s) + (b * s + d)``, because
the convolution is linear in ``W`` and ``s`` scales whole output channels (Jacob et al., 2018,
"Quantization and Training of Integer-Arithmetic-Only Inference", section 3.2). The folded
convolution then ends in one ``BiasAdd``, which TensorFlow's grappler fuses with the following
activation into a single ``_FusedConv2D`` kernel; the separate per-element ``Mul`` and ``Add``
passes over every activation map disappear.

Steps (`optimized_inference_graph`):

1. trace ``model(images, training=False)`` and freeze it (variables -> ``Const``);
2. find every chain ``Conv2D | DepthwiseConv2dNative (NHWC, constant filter)`` -> optional bias
   add (constant) -> ``Mul`` (constant per-channel or scalar) -> optional ``Add``/``AddV2``/``Sub``
   (constant), where each intermediate result has exactly one consumer (nothing else sees the
   un-normalized values); Keras 3 lowers ``Conv2D(use_bias=...)`` + ``BatchNormalization`` to
   exactly that (``tf.nn.batch_normalization`` is ``x * inv + (offset - mean * inv)``);
3. evaluate the constant operands, write ``W * s`` as the filter and replace the chain's last
   node by ``BiasAdd(conv, b * s + d)`` under the same name (its consumers are unchanged);
4. prune what became unreachable.

The result is checked numerically by the exporter against the unfolded frozen graph, and by
``verify-export`` against the Keras model.
"""

from __future__ import annotations

import dataclasses

import numpy as np

_CONVS = ("Conv2D", "DepthwiseConv2dNative")
_ADDS = ("BiasAdd", "Add", "AddV2")


@dataclasses.dataclass
class OptimizedGraph:
    """A frozen, folded inference graph.

    Attributes:
        graph_def: the ``GraphDef`` (weights as ``Const`` nodes).
        input_name: the image batch placeholder's tensor name, e.g. ``"images:0"``.
        output_name: the scores tensor name.
        folded: number of convolution + affine chains folded (one per BatchNormalization).
        batch_norms_left: per-channel ``Mul`` nodes on activations left unfolded (a BN not right
            after a convolution, e.g. pre-activation networks).
    """

    graph_def: object
    input_name: str
    output_name: str
    folded: int
    batch_norms_left: int


def frozen_graph(model, input_shape):
    """Freeze ``model(images, training=False)`` -> ``(graph_def, input_name, output_name)``."""
    import tensorflow as tf

    from keras_cnn._compat.tensorflow_ import convert_variables_to_constants_v2

    function = tf.function(lambda images: model(images, training=False))
    concrete = function.get_concrete_function(tf.TensorSpec((None, *input_shape), tf.float32, name="images"))
    # Freezing exports the traced graph's collections for grappler and logs a harmless "Issue
    # encountered when serializing ..." warning for Keras' non-proto collection entries (TF's
    # message says as much); keep it off the user's terminal.
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        frozen = convert_variables_to_constants_v2(concrete)
    finally:
        logger.setLevel(level)
    (inp,) = frozen.inputs
    (out,) = frozen.outputs
    return frozen.graph.as_graph_def(), inp.name, out.name


def _variable_free(graph):
    """Names of the ops whose value does not depend on any Placeholder (constants)."""
    free = {}
    for op in graph.get_operations():  # iterative DFS in dependency order
        stack = [op]
        while stack:
            top = stack[-1]
            if top.name in free:
                stack.pop()
                continue
            pending = [t.op for t in top.inputs if t.op.name not in free] + [
                c for c in top.control_inputs if c.name not in free]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            free[top.name] = top.type != "Placeholder" and all(free[t.op.name] for t in top.inputs)
    return {name for name, ok in free.items() if ok}


def _channel_operand(op, x, constants, channels):
    """The constant operand of binary ``op`` whose other operand is ``x``, if per-channel."""
    if len(op.inputs) != 2:
        return None
    a, b = op.inputs
    if a.name == x.name and b.op.name in constants:
        other, x_first = b, True
    elif b.name == x.name and a.op.name in constants and op.type != "BiasAdd":
        other, x_first = a, False
    else:
        return None
    shape = other.shape
    if not shape.is_fully_defined() or other.dtype.name != "float32":
        return None
    dims = shape.as_list()
    if len(dims) > 4 or any(d != 1 for d in dims[:-1]) or (dims and dims[-1] not in (1, channels)):
        return None
    return other, x_first


def fold_batch_norms(graph_def, output_name):
    """Fold per-channel affine chains after convolutions into the convolutions (see module doc).

    Returns:
        ``(new_graph_def, folded_count, unfolded_muls)``; ``graph_def`` itself is edited.
    """
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    constants = _variable_free(graph)
    output_op = output_name.split(":")[0]
    plans = []
    for op in graph.get_operations():
        if op.type not in _CONVS or op.get_attr("data_format") != b"NHWC" or op.get_attr("T") != tf.float32:
            continue
        if op.inputs[1].op.name not in constants or not op.inputs[1].shape.is_fully_defined():
            continue
        x = op.outputs[0]
        channels = x.shape[-1]
        if channels is None:
            continue
        chain = {"conv": op, "bias": None, "scale": None, "offset": None, "last": None}
        stage = "bias"
        while True:
            consumers = x.consumers()
            if len(consumers) != 1 or x.op.name == output_op:
                break
            (nxt,) = consumers
            operand = _channel_operand(nxt, x, constants, channels)
            if operand is None:
                break
            other, x_first = operand
            if stage == "bias" and nxt.type in _ADDS:
                chain["bias"], stage = other, "scale"
            elif stage in ("bias", "scale") and nxt.type == "Mul":
                chain["scale"], stage = other, "offset"
            elif stage == "offset" and nxt.type in _ADDS:
                chain["offset"], stage = (other, 1.0), "done"
            elif stage == "offset" and nxt.type == "Sub" and x_first:
                chain["offset"], stage = (other, -1.0), "done"
            else:
                break
            chain["last"] = nxt
            x = nxt.outputs[0]
            if stage == "done":
                break
        if chain["scale"] is not None:
            plans.append(chain)

    if not plans:
        return graph_def, 0, _count_activation_muls(graph, constants)
    fetch = {}
    for plan in plans:
        fetch[plan["conv"].inputs[1].name] = plan["conv"].inputs[1]
        for key in ("bias", "scale"):
            if plan[key] is not None:
                fetch[plan[key].name] = plan[key]
        if plan["offset"] is not None:
            fetch[plan["offset"][0].name] = plan["offset"][0]
    with tf.compat.v1.Session(graph=graph) as session:
        values = dict(zip(fetch, session.run(list(fetch.values()))))

    activation_muls = _count_activation_muls(graph, constants)  # each plan folds exactly one of them
    new = graph_def  # edited in place: the caller's frozen graph is not used again
    by_name = {node.name: node for node in new.node}
    for plan in plans:
        conv = plan["conv"]
        channels = conv.outputs[0].shape[-1]
        weights = values[conv.inputs[1].name].astype("float64")
        scale = np.broadcast_to(values[plan["scale"].name].astype("float64").reshape(-1), (channels,))
        bias = np.zeros(channels) if plan["bias"] is None else np.broadcast_to(
            values[plan["bias"].name].astype("float64").reshape(-1), (channels,))
        offset = np.zeros(channels)
        if plan["offset"] is not None:
            tensor, sign = plan["offset"]
            offset = sign * np.broadcast_to(values[tensor.name].astype("float64").reshape(-1), (channels,))
        if conv.type == "Conv2D":
            folded_w = weights * scale
        else:  # depthwise: output channel = in_channel * multiplier + m
            _, _, cin, mult = weights.shape
            folded_w = weights * scale.reshape(cin, mult)
        folded_b = bias * scale + offset
        w_name, b_name = f"{conv.name}/bn_folded_filter", f"{conv.name}/bn_folded_bias"
        new.node.extend([
            _const_node(w_name, folded_w.astype("float32")),
            _const_node(b_name, folded_b.astype("float32")),
        ])
        conv_node = by_name[conv.name]
        conv_node.input[1] = w_name
        last = by_name[plan["last"].name]
        controls = [i for i in last.input if i.startswith("^")]
        last.op = "BiasAdd"
        del last.input[:]
        last.input.extend([conv.name, b_name, *controls])
        last.attr.clear()
        last.attr["T"].type = tf.float32.as_datatype_enum
        last.attr["data_format"].s = b"NHWC"
    # Freezing leaves control edges from the output to the old variable reads (now constants,
    # without side effects); drop them so that the unfolded weights are pruned with the rest.
    for node in new.node:
        keep = [i for i in node.input if not (i.startswith("^") and i[1:] in constants)]
        if len(keep) != len(node.input):
            del node.input[:]
            node.input.extend(keep)
    del graph
    pruned = _reachable(new, output_op)
    return pruned, len(plans), activation_muls - len(plans)


def _reachable(graph_def, output_op):
    """The nodes of graph_def that output_op reads, directly or not, in their order.

    What tf.compat.v1.graph_util.extract_sub_graph does, without its deprecation warning (it
    would print into every export).
    """
    import tensorflow as tf

    by_name = {node.name: node for node in graph_def.node}
    keep, pending = set(), [output_op]
    while pending:
        name = pending.pop()
        if name not in keep:
            keep.add(name)
            pending.extend(i.lstrip("^").split(":")[0] for i in by_name[name].input)
    pruned = tf.compat.v1.GraphDef()
    pruned.node.extend(node for node in graph_def.node if node.name in keep)
    pruned.library.CopyFrom(graph_def.library)
    pruned.versions.CopyFrom(graph_def.versions)
    return pruned


def _const_node(name, array):
    import tensorflow as tf

    node = tf.compat.v1.NodeDef(name=name, op="Const")
    node.attr["dtype"].type = tf.float32.as_datatype_enum
    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(array))
    return node


def _count_activation_muls(graph, constants):
    """Mul nodes scaling a 4-D activation map by a constant (BatchNormalizations left unfolded)."""
    return sum(
        1 for op in graph.get_operations()
        if op.type == "Mul" and op.name not in constants and op.outputs[0].shape.rank == 4
        and any(t.op.name in constants for t in op.inputs)
    )


def optimized_inference_graph(model, input_shape) -> OptimizedGraph:
    """Frozen and BN-folded inference graph of ``model`` for ``[batch, *input_shape]`` images."""
    graph_def, input_name, output_name = frozen_graph(model, input_shape)
    folded_def, folded, left = fold_batch_norms(graph_def, output_name)
    return OptimizedGraph(folded_def, input_name, output_name, folded, left)


def graph_function(optimized: OptimizedGraph, input_shape):
    """A ConcreteFunction images -> scores running ``optimized.graph_def``.

    One concrete function, called by both signatures, so the weights are stored once in the
    SavedModel's function library (grappler inlines the call when the server runs it).
    """
    import tensorflow as tf

    graph_def = optimized.graph_def

    @tf.function(input_signature=[tf.TensorSpec((None, *input_shape), tf.float32)])
    def network(images):
        (scores,) = tf.graph_util.import_graph_def(
            graph_def, input_map={optimized.input_name: images},
            return_elements=[optimized.output_name], name="network",
        )
        return scores

    return network.get_concrete_function()
