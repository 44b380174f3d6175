"""Parameters, multiply-accumulates and output shapes, per layer and for the lecture's examples.

Lecture notes 001-004 and Szegedy et al., "Going Deeper with Convolutions" (2015), section 5 /
"Rethinking the Inception Architecture for Computer Vision" (2016), sections 3-4: the cost of a
convolution is counted in multiplications, ``h_out * w_out * c_out * f_h * f_w * c_in``; a 1x1
"bottleneck" in front of an expensive convolution, or factorising an n x n kernel, cuts it by
an order of magnitude. This module turns that arithmetic into functions and checks it against
real Keras layers:

* `profile` walks any Keras model (or layer) — descending into composite layers such as
  `ConvBN`, `FactorizedConv`, Inception and residual blocks, nested models — and reports each
  leaf layer's output shape, parameters and multiply-accumulates (MACs).
* `conv_output_size`, `conv_params`, `conv_macs` are the lecture's formulas.
* `compare_factorizations` builds a convolution and its factorised forms as real layers,
  profiles them and cross-checks the formulas; `plot_comparison` draws the result.

Counting conventions: one MAC is one multiplication (and its accumulate); bias additions,
batch normalisation, activations, pooling and element-wise adds are not counted (the notes count
only the multiplications of convolutions and fully connected layers). MACs are per example.

Example:
    >>> import keras
    >>> from keras_cnn.analysis import profile
    >>> inputs = keras.Input((28, 28, 192))
    >>> model = keras.Model(inputs, keras.layers.Conv2D(32, 5, padding="same")(inputs))
    >>> profile(model).total_macs
    120422400
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from keras_cnn._compat import keras_ as keras_compat
from keras_cnn._validation import check_non_negative_int, check_positive_int, parse_shape

__all__ = [
    "FactorizationRow",
    "FactorizationTable",
    "LayerRow",
    "Profile",
    "compare_factorizations",
    "conv_macs",
    "conv_output_size",
    "conv_params",
    "plot_comparison",
    "profile",
]


# ----------------------------------------------------------------------------------------------
# The lecture's formulas
# ----------------------------------------------------------------------------------------------


def _pair(arg, value):
    if isinstance(value, (tuple, list)):
        if len(value) == 2:
            return check_positive_int(arg, value[0]), check_positive_int(arg, value[1])
        raise ValueError(f"`{arg}` must be a positive int or a pair of positive ints. Received: {arg}={value!r}")
    check_positive_int(arg, value)
    return value, value


def conv_output_size(n, f, s=1, p=0):
    """Output height (or width) of a convolution or pooling: ``floor((n + 2p - f) / s) + 1``.

    Lecture note 003 ("Convolution over volumes"): 39x39 input, f=3, s=1, p=0 -> 37; the course
    ConvNet then goes 37 -> 17 -> 7 with 5x5 stride-2 convolutions.

    Args:
        n: input size.
        f: filter (kernel) size.
        s: stride. Default 1.
        p: zero padding on each side. Default 0 ("valid"); ``(f - 1) // 2`` is "same" for odd f
            and stride 1.

    Returns:
        The output size, an int >= 1.

    Raises:
        ValueError: a non-positive ``n``, ``f`` or ``s``, a negative ``p``, or a filter larger
            than the padded input.

    Example:
        >>> conv_output_size(39, 3), conv_output_size(37, 5, s=2), conv_output_size(17, 5, s=2)
        (37, 17, 7)
    """
    check_positive_int("n", n)
    check_positive_int("f", f)
    check_positive_int("s", s)
    check_non_negative_int("p", p)
    if n + 2 * p < f:
        raise ValueError(
            f"`f` must not exceed the padded input n + 2p = {n + 2 * p}. Received: f={f!r} (n={n}, p={p})"
        )
    return (n + 2 * p - f) // s + 1


def conv_params(f, c_in, c_out, bias=True):
    """Parameters of one convolution layer: ``(f_h * f_w * c_in + bias) * c_out``.

    Lecture note 003: ten 3x3 filters on a 3-channel input hold ``(3*3*3 + 1) * 10 = 280``
    parameters, whatever the size of the image (parameter sharing).

    Args:
        f: kernel size, an int or ``(f_h, f_w)``.
        c_in: input channels.
        c_out: number of filters.
        bias: one bias per filter. Default True.

    Example:
        >>> conv_params(3, 3, 10)
        280
    """
    f_h, f_w = _pair("f", f)
    check_positive_int("c_in", c_in)
    check_positive_int("c_out", c_out)
    return (f_h * f_w * c_in + (1 if bias else 0)) * c_out


def conv_macs(h_out, w_out, c_out, f_h, f_w, c_in, groups=1):
    """Multiply-accumulates of a convolution: ``h_out * w_out * c_out * f_h * f_w * c_in / groups``.

    Lecture note 001/002 (Inception, "the problem of computational cost"): each of the
    ``h_out * w_out * c_out`` outputs needs ``f_h * f_w * c_in`` multiplications, e.g.
    28x28x192 -> 28x28x32 with 5x5 filters: ``28*28*32 * 5*5*192 = 120,422,400``.

    Args:
        h_out, w_out, c_out: output height, width and channels.
        f_h, f_w: kernel height and width.
        c_in: input channels.
        groups: grouped convolution (each filter sees ``c_in / groups`` channels). Default 1.

    Example:
        >>> conv_macs(28, 28, 32, 5, 5, 192)
        120422400
    """
    for arg, value in (("h_out", h_out), ("w_out", w_out), ("c_out", c_out), ("f_h", f_h), ("f_w", f_w),
                       ("c_in", c_in), ("groups", groups)):
        check_positive_int(arg, value)
    if c_in % groups:
        raise ValueError(f"`groups` must divide `c_in` ({c_in}). Received: groups={groups!r}")
    return h_out * w_out * c_out * f_h * f_w * (c_in // groups)


# ----------------------------------------------------------------------------------------------
# profile()
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LayerRow:
    """One row of a `Profile`: a leaf layer call (or the own weights of a composite layer).

    Attributes:
        name: hierarchical name, the enclosing layers' names joined by "/", e.g.
            ``"inception_3a/inception_3a_b2_2/inception_3a_b2_2_conv"``.
        kind: class name of the layer ("Conv2D", "BatchNormalization", ...).
        output_shape: output shape with the batch dimension (None), a dict/list of shapes for a
            layer with several outputs, or None for a layer never called by the model.
        params: parameters owned by the layer (0 on the second call of a shared layer).
        trainable_params: the trainable part of ``params``.
        macs: multiply-accumulates of this call, per example.
        stage: the top-level layer this row belongs to (first component of ``name``).
    """

    name: str
    kind: str
    output_shape: Any
    params: int
    trainable_params: int
    macs: int
    stage: str

    @property
    def non_trainable_params(self):
        return self.params - self.trainable_params

    def to_dict(self):
        return {
            "name": self.name,
            "kind": self.kind,
            "output_shape": _shape_to_json(self.output_shape),
            "params": self.params,
            "trainable_params": self.trainable_params,
            "macs": self.macs,
            "stage": self.stage,
        }


@dataclasses.dataclass(frozen=True)
class Profile:
    """Per-layer parameters, output shapes and multiply-accumulates of a model.

    Attributes:
        model_name: the profiled model's name.
        input_shape: the traced input shape(s), without the batch dimension.
        output_shape: the model's output shape(s), with the batch dimension.
        rows: one `LayerRow` per leaf layer call, in call order.
        stages: one `LayerRow` per top-level layer (sums of its rows; ``kind`` is the top-level
            layer's class, ``output_shape`` its output).
        total_params, trainable_params, non_trainable_params: as ``model.count_params()`` and
            Keras' summary count them (each variable once).
        total_macs: multiply-accumulates of one forward pass, per example.
    """

    model_name: str
    input_shape: Any
    output_shape: Any
    rows: tuple
    stages: tuple
    total_params: int
    trainable_params: int
    non_trainable_params: int
    total_macs: int

    @property
    def gmacs(self):
        """``total_macs / 1e9``."""
        return self.total_macs / 1e9

    def per_stage(self):
        """Rows grouped by top-level layer (e.g. "conv1", "inception_3a", "predictions")."""
        return list(self.stages)

    def to_dict(self):
        """A JSON-serialisable dict: totals, ``layers`` (the rows) and ``stages``."""
        return {
            "model": self.model_name,
            "input_shape": _shape_to_json(self.input_shape),
            "output_shape": _shape_to_json(self.output_shape),
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "non_trainable_params": self.non_trainable_params,
            "total_macs": self.total_macs,
            "gmacs": self.gmacs,
            "layers": [row.to_dict() for row in self.rows],
            "stages": [row.to_dict() for row in self.stages],
        }

    def totals_text(self):
        """The totals as three lines of text."""
        return "\n".join(
            [
                f"Total params: {self.total_params:,} (trainable {self.trainable_params:,}, "
                f"non-trainable {self.non_trainable_params:,})",
                f"Total MACs: {self.total_macs:,} ({_format_gmacs(self.gmacs)} GMACs) per example",
                f"Input: {_format_shape(self.input_shape, batch=False)} -> output: "
                f"{_format_shape(self.output_shape)}",
            ]
        )

    def to_table(self, *, stages=False, skip_empty=False):
        """A plain-text table, one line per row, followed by the totals.

        Args:
            stages: one line per top-level layer instead of per leaf layer. Default False.
            skip_empty: leave out rows without parameters and MACs (activations, pooling, ...).
                Default False.
        """
        rows = self.stages if stages else self.rows
        if skip_empty:
            rows = [r for r in rows if r.params or r.macs]
        header = ("Layer", "Type", "Output shape", "Params", "MACs")
        body = [(r.name, r.kind, _format_shape(r.output_shape), f"{r.params:,}", f"{r.macs:,}") for r in rows]
        title = f'Model: "{self.model_name}"'
        return title + "\n" + _render_table(header, body, right=(3, 4)) + "\n" + self.totals_text()


def profile(model, input_shape=None):
    """Per-layer output shapes, parameters and multiply-accumulates of a Keras model.

    Lecture notes 001/002 (the cost of a convolution) and 003 (parameters of a conv layer): the
    figures of the notes, computed for every layer of a real model.

    The model is traced symbolically (placeholders in a scratch graph; nothing is computed and
    no weight changes) while every layer call is recorded, so composite layers (`ConvBN`,
    `FactorizedConv`, Inception and residual blocks, nested models — any `keras.layers.Layer`
    with sub-layers) are descended into generically and each leaf layer gets a row named by its
    path, e.g. ``"inception_3a/inception_3a_b2_2/inception_3a_b2_2_conv"``. Models with dict or
    list outputs (e.g. auxiliary heads) work. The parameters of the rows sum to
    ``model.count_params()``; a shared layer's weights are counted once, its MACs per call; a
    layer the model never calls still gets a row (without output shape or MACs).

    MACs are counted for Conv1D/2D/3D (grouped too), their transposes, DepthwiseConv1D/2D,
    SeparableConv1D/2D and Dense: one per multiplication, biases not counted. Other layers
    (BN, activations, pooling, adds, ...) count 0, and so do layers this module does not know
    (e.g. EinsumDense, attention) and any arithmetic a composite layer does outside its
    sub-layers.

    Args:
        model: a built `keras.Model`, or any `keras.layers.Layer` (then ``input_shape`` is
            needed unless it is a model with defined inputs).
        input_shape: shape without the batch dimension, e.g. ``(224, 224, 3)``, or a list of
            shapes in the order of ``model.inputs`` for several inputs. Needed when the model's
            input has unknown dimensions or the model has no inputs yet; it must agree with the
            dimensions the model fixes. Default None: the model's own input shape.

    Returns:
        A `Profile`.

    Raises:
        ValueError: not a Keras layer, or the input shape is unknown or incompatible.

    Example:
        >>> p = profile(keras_cnn.build_model("lenet5"))
        >>> p.total_params, p.total_macs
        (61706, 416520)
        >>> print(p.to_table())
    """
    import keras

    if not isinstance(model, keras.layers.Layer):
        raise ValueError(
            f"`model` must be a keras.Model or keras.layers.Layer. Received: model={type(model).__name__}"
        )
    inputs = _input_specs(model, input_shape)
    tracer = _Tracer(model)
    output_spec = tracer.trace(inputs)
    return tracer.result(
        input_shape=keras.tree.map_structure(lambda t: tuple(t.shape[1:]), inputs),
        output_shape=keras.tree.map_structure(lambda t: tuple(t.shape), output_spec),
    )


def _model_inputs(model):
    """The model's own symbolic inputs (structure as the model expects), or None."""
    import keras

    if not isinstance(model, keras.Model):
        return None
    struct = getattr(model, "_inputs_struct", None)
    if struct is not None:
        return struct
    try:
        inputs = model.inputs
    except (ValueError, AttributeError):
        return None
    if not inputs:
        return None
    return inputs[0] if len(inputs) == 1 else list(inputs)


def _is_shape(value):
    return isinstance(value, (tuple, list)) and all(v is None or isinstance(v, int) for v in value)


def _user_shapes(input_shape):
    """``input_shape`` as a list of shapes: one shape, or a list/tuple of shapes (several inputs)."""
    if _is_shape(input_shape):
        return [tuple(parse_shape("input_shape", input_shape, ndim=len(input_shape)))]
    if isinstance(input_shape, (list, tuple)) and input_shape and all(_is_shape(s) for s in input_shape):
        return [tuple(parse_shape("input_shape", s, ndim=len(s))) for s in input_shape]
    raise ValueError(
        "`input_shape` must be a shape like (224, 224, 3), or a list of shapes for several inputs. "
        f"Received: input_shape={input_shape!r}"
    )


def _input_specs(model, input_shape):
    import keras

    user = None if input_shape is None else _user_shapes(input_shape)
    own = _model_inputs(model)
    if own is None:
        if user is None:
            raise ValueError(
                f"`input_shape` is needed to profile {type(model).__name__} {model.name!r}: it has no "
                "defined inputs. Received: input_shape=None"
            )
        specs = [keras.KerasTensor((None,) + s) for s in user]
        specs = specs[0] if len(specs) == 1 else specs
        if not model.built:
            model(specs)  # a symbolic call builds the layer and its children
        return specs

    def merge(tensor, shape):
        known = tuple(tensor.shape[1:])
        if shape is not None:
            if len(shape) != len(known) or any(k is not None and k != s for k, s in zip(known, shape)):
                raise ValueError(
                    f"`input_shape` must agree with the input shape the model fixes, {known}. "
                    f"Received: input_shape={input_shape!r}"
                )
            known = tuple(shape)
        if any(d is None for d in known):
            raise ValueError(
                f"`input_shape` is needed: the input of {model.name!r} has unknown dimensions "
                f"{(None,) + known}. Received: input_shape={input_shape!r}"
            )
        return keras.KerasTensor((None,) + known, dtype=tensor.dtype)

    flat_own = keras.tree.flatten(own)
    if user is None:
        user = [None] * len(flat_own)
    if len(user) != len(flat_own):
        raise ValueError(
            f"`input_shape` must give {len(flat_own)} shape(s), one per model input. "
            f"Received: input_shape={input_shape!r}"
        )
    return keras.tree.pack_sequence_as(own, [merge(t, s) for t, s in zip(flat_own, user)])


def _children(layer):
    return keras_compat.flatten_layers(layer, recursive=False)


def _weight_size(variable):
    return int(math.prod(int(d) for d in variable.shape))


class _Tracer:
    """Records every layer call of one symbolic forward pass of ``root``."""

    def __init__(self, root):
        import keras

        self.root = root
        self.layers = []  # (ownership path, layer), depth-first
        self._seen = set()
        self._walk(root, ())
        self.top_kinds = {path[0]: type(layer).__name__ for path, layer in self.layers if len(path) == 1}
        self.trainable_ids = {id(v) for v in root.trainable_weights}
        self.own_vars = {}
        for _, layer in self.layers:
            child_ids = {id(v) for c in _children(layer) for v in c.weights}
            self.own_vars[id(layer)] = [v for v in layer.weights if id(v) not in child_ids]
        self.stack = []
        self.calls = []  # (call path, layer, output shapes, macs, is_leaf)
        self.top = {}  # top-level name -> (kind, output shape), first call
        self.done = False
        self._keras = keras

    def _walk(self, layer, path):
        import keras

        if id(layer) in self._seen:
            return
        self._seen.add(id(layer))
        self.layers.append((path, layer))
        for child in _children(layer):
            if isinstance(child, keras.layers.InputLayer):
                continue
            self._walk(child, path + (child.name,))

    def _wrap(self, layer):
        original = layer.call
        tracer = self

        def call(*args, **kwargs):
            tracer.stack.append(layer.name)
            try:
                outputs = original(*args, **kwargs)
            finally:
                tracer.stack.pop()
            if not tracer.done:
                tracer._record(layer, args, kwargs, outputs)
            if layer is tracer.root:
                tracer.done = True
            return outputs

        object.__setattr__(layer, "call", call)

    def _record(self, layer, args, kwargs, outputs):
        keras = self._keras
        shapes = keras.tree.map_structure(lambda t: tuple(t.shape) if hasattr(t, "shape") else None, outputs)
        is_leaf = not any(not isinstance(c, keras.layers.InputLayer) for c in _children(layer))
        if layer is self.root:
            rel = (layer.name,)  # a bare leaf layer, or the root's own weights
        else:
            rel = tuple(self.stack[1:]) + (layer.name,)  # drop the root's own name
            if len(rel) == 1 and rel[0] not in self.top:
                self.top[rel[0]] = (type(layer).__name__, shapes)
        if is_leaf or self.own_vars[id(layer)]:
            first = args[0] if args else next(iter(kwargs.values()), None)
            macs = _layer_macs(layer, first, outputs) if is_leaf else 0
            self.calls.append((rel, layer, shapes, macs, is_leaf))

    def trace(self, inputs):
        wrapped = [layer for _, layer in self.layers]
        try:
            for layer in wrapped:
                self._wrap(layer)
            return keras_compat.compute_output_spec(lambda x: self.root(x, training=False), inputs)
        finally:
            for layer in wrapped:
                if "call" in vars(layer):
                    object.__delattr__(layer, "call")

    def _params(self, layer, counted):
        total = trainable = 0
        for v in self.own_vars[id(layer)]:
            if id(v) in counted:
                continue
            counted.add(id(v))
            size = _weight_size(v)
            total += size
            if id(v) in self.trainable_ids:
                trainable += size
        return total, trainable

    def result(self, input_shape, output_shape):
        rows = []
        counted = set()
        called = set()
        for rel, layer, shapes, macs, is_leaf in self.calls:
            called.add(id(layer))
            params, trainable = self._params(layer, counted)
            name = "/".join(rel) if is_leaf else "/".join(rel) + " (own weights)"
            rows.append(LayerRow(name, type(layer).__name__, shapes, params, trainable, macs, rel[0]))
        # Layers the forward pass never reached still own weights: keep count_params() exact.
        for path, layer in self.layers:
            if id(layer) in called or layer is self.root:  # the root's own weights are a row already
                continue
            params, trainable = self._params(layer, counted)
            if params:
                rows.append(LayerRow("/".join(path), type(layer).__name__, None, params, trainable, 0, path[0]))
        stages = []
        order = []
        for row in rows:
            if row.stage not in order:
                order.append(row.stage)
        for stage in order:
            members = [r for r in rows if r.stage == stage]
            kind, shape = self.top.get(stage, (self.top_kinds.get(stage, members[0].kind), None))
            stages.append(
                LayerRow(
                    stage,
                    kind,
                    shape,
                    sum(r.params for r in members),
                    sum(r.trainable_params for r in members),
                    sum(r.macs for r in members),
                    stage,
                )
            )
        total = sum(r.params for r in rows)
        trainable = sum(r.trainable_params for r in rows)
        return Profile(
            model_name=self.root.name,
            input_shape=input_shape,
            output_shape=output_shape,
            rows=tuple(rows),
            stages=tuple(stages),
            total_params=total,
            trainable_params=trainable,
            non_trainable_params=total - trainable,
            total_macs=sum(r.macs for r in rows),
        )


def _shape_of(tensor):
    return tuple(tensor.shape) if hasattr(tensor, "shape") else None


def _layer_macs(layer, first_input, outputs):
    """Multiply-accumulates of one call of a leaf layer (0 for layers without a weight product)."""
    import keras

    L = keras.layers
    in_shape = _shape_of(keras.tree.flatten(first_input)[0]) if first_input is not None else None
    flat_out = keras.tree.flatten(outputs)
    out_shape = _shape_of(flat_out[0]) if flat_out else None
    if in_shape is None or out_shape is None:
        return 0

    def known(dims, what):
        dims = tuple(dims)
        if any(d is None for d in dims):
            raise ValueError(
                f"Cannot count the MACs of layer {layer.name!r}: its {what} shape has unknown dimensions "
                f"{dims}; pass a fully defined `input_shape`."
            )
        return math.prod(dims)

    channels_first = getattr(layer, "data_format", "channels_last") == "channels_first"

    def split(shape):  # (spatial dims, channels)
        return (shape[2:], shape[1]) if channels_first else (shape[1:-1], shape[-1])

    kernel = tuple(getattr(layer, "kernel_size", ()) or ())
    k = math.prod(kernel) if kernel else 1
    if isinstance(layer, (L.SeparableConv1D, L.SeparableConv2D)):
        out_sp, c_out = split(out_shape)
        _, c_in = split(in_shape)
        positions = known(out_sp, "output")
        mid = c_in * layer.depth_multiplier
        return positions * mid * k + positions * mid * c_out
    if isinstance(layer, (L.DepthwiseConv1D, L.DepthwiseConv2D)):
        out_sp, _ = split(out_shape)
        _, c_in = split(in_shape)
        return known(out_sp, "output") * c_in * layer.depth_multiplier * k
    transposes = tuple(getattr(L, n) for n in ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose") if hasattr(L, n))
    if isinstance(layer, transposes):
        in_sp, c_in = split(in_shape)
        _, c_out = split(out_shape)
        groups = getattr(layer, "groups", 1) or 1
        return known(in_sp, "input") * c_in * k * (c_out // groups)
    if isinstance(layer, (L.Conv1D, L.Conv2D, L.Conv3D)):
        out_sp, c_out = split(out_shape)
        _, c_in = split(in_shape)
        groups = getattr(layer, "groups", 1) or 1
        return known(out_sp, "output") * c_out * k * (c_in // groups)
    if isinstance(layer, L.Dense):
        return known(out_shape[1:-1], "output") * int(in_shape[-1]) * int(out_shape[-1])
    return 0


def _format_gmacs(gmacs):
    return f"{gmacs:,.3f}" if gmacs >= 0.01 else f"{gmacs:.6f}"


def _shape_to_json(shape):
    if shape is None:
        return None
    if isinstance(shape, dict):
        return {k: _shape_to_json(v) for k, v in shape.items()}
    if isinstance(shape, (list, tuple)) and shape and not _is_shape(shape):
        return [_shape_to_json(s) for s in shape]
    return [None if d is None else int(d) for d in shape]


def _format_shape(shape, batch=True):
    """(None, 28, 28, 32) -> "28x28x32"; dicts and lists element-wise."""
    if shape is None:
        return "-"
    if isinstance(shape, dict):
        return "{" + ", ".join(f"{k}: {_format_shape(v, batch)}" for k, v in shape.items()) + "}"
    if isinstance(shape, (list, tuple)) and shape and not _is_shape(shape):
        return "[" + ", ".join(_format_shape(s, batch) for s in shape) + "]"
    dims = tuple(shape)[1:] if batch else tuple(shape)
    return "x".join("?" if d is None else str(d) for d in dims) or "scalar"


def _render_table(header, body, right=()):
    widths = [len(h) for h in header]
    for line in body:
        widths = [max(w, len(c)) for w, c in zip(widths, line)]

    def fmt(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    return "\n".join([fmt(header), rule, *[fmt(line) for line in body], rule])


# ----------------------------------------------------------------------------------------------
# Factorisations (Szegedy et al. 2014 section 5; 2016 sections 3.1-3.2)
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FactorizationRow:
    """One form of the convolution in a `FactorizationTable`.

    Attributes:
        key: "plain", "stacked", "asymmetric", "bottleneck", "bottleneck_stacked",
            "bottleneck_asymmetric".
        label: human-readable description, e.g. "1x1 x16 -> 5x5 x32".
        output_shape: (H, W, C) of the output (the same for every form).
        params: parameters of the built layers (profiled).
        macs: multiply-accumulates of the built layers (profiled), per example.
        layer_macs: the MACs of each convolution in order, e.g. (2408448, 10035200).
        formula_params, formula_macs: the same from `conv_params` / `conv_macs`.
        relative_macs, relative_params: fraction of the plain n x n convolution's figure.
    """

    key: str
    label: str
    output_shape: tuple
    params: int
    macs: int
    layer_macs: tuple
    formula_params: int
    formula_macs: int
    relative_macs: float
    relative_params: float

    @property
    def macs_saving(self):
        """``1 - relative_macs``: the fraction of the plain convolution's MACs saved."""
        return 1.0 - self.relative_macs

    @property
    def formula_agrees(self):
        return self.params == self.formula_params and self.macs == self.formula_macs

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["output_shape"] = list(self.output_shape)
        d["layer_macs"] = list(self.layer_macs)
        d["macs_saving"] = self.macs_saving
        return d


@dataclasses.dataclass(frozen=True)
class FactorizationTable:
    """The result of `compare_factorizations`."""

    input_shape: tuple
    filters: int
    kernel_size: int
    bottleneck: int | None
    use_bias: bool
    rows: tuple

    def __getitem__(self, key):
        for row in self.rows:
            if row.key == key:
                return row
        raise KeyError(f"{key!r}; rows: {[r.key for r in self.rows]}")

    def keys(self):
        return [row.key for row in self.rows]

    def to_dict(self):
        return {
            "input_shape": list(self.input_shape),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "bottleneck": self.bottleneck,
            "use_bias": self.use_bias,
            "rows": [row.to_dict() for row in self.rows],
        }

    def to_table(self):
        """Plain-text table: parameters, MACs (with the per-layer breakdown) and % of plain."""
        h, w, c = self.input_shape
        title = (
            f"{h}x{w}x{c} -> {self.rows[0].output_shape[0]}x{self.rows[0].output_shape[1]}x{self.filters}, "
            f"{self.kernel_size}x{self.kernel_size} convolution and its factorisations "
            f"(stride 1, 'same', bias={'yes' if self.use_bias else 'no'}; MAC = one multiplication)"
        )
        header = ("Form", "Params", "MACs", "= per layer", "% of plain", "Formula")
        body = [
            (
                r.label,
                f"{r.params:,}",
                f"{r.macs:,}",
                " + ".join(f"{m:,}" for m in r.layer_macs),
                f"{100 * r.relative_macs:.1f}%",
                "ok" if r.formula_agrees else f"MISMATCH ({r.formula_params:,} / {r.formula_macs:,})",
            )
            for r in self.rows
        ]
        return title + "\n" + _render_table(header, body, right=(1, 2, 4))


def _convs_for(key, n, c_in, filters, bottleneck):
    """The convolutions of a form as (kernel (f_h, f_w), c_in, c_out) — the formula side."""
    if key == "plain":
        return [((n, n), c_in, filters)]
    if key == "stacked":
        if n == 3:
            return [((2, 2), c_in, filters), ((2, 2), filters, filters)]
        steps = (n - 1) // 2
        return [((3, 3), c_in if i == 0 else filters, filters) for i in range(steps)]
    if key == "asymmetric":
        return [((1, n), c_in, filters), ((n, 1), filters, filters)]
    if key == "bottleneck":
        return [((1, 1), c_in, bottleneck), ((n, n), bottleneck, filters)]
    if key == "bottleneck_stacked":
        return [((1, 1), c_in, bottleneck)] + _convs_for("stacked", n, bottleneck, filters, None)
    if key == "bottleneck_asymmetric":
        return [((1, 1), c_in, bottleneck), ((1, n), bottleneck, bottleneck), ((n, 1), bottleneck, filters)]
    raise AssertionError(key)


def _layers_for(key, n, filters, bottleneck, use_bias):
    """The same forms as real keras_cnn layers (no BN: the notes' conv + bias + ReLU)."""
    from keras_cnn.layers import ConvBN, FactorizedConv

    common = dict(use_bn=False, use_bias=use_bias)

    def stacked(name):
        if n == 3:  # 3x3 -> two 2x2 (Szegedy et al. 2016, section 3.2)
            return [ConvBN(filters, 2, name=f"{name}_1", **common), ConvBN(filters, 2, name=f"{name}_2", **common)]
        return [FactorizedConv(filters, n, mode="stacked", name=name, **common)]

    reduce = [ConvBN(bottleneck, 1, name="reduce", **common)] if bottleneck else []
    if key == "plain":
        return [ConvBN(filters, n, name="conv", **common)]
    if key == "stacked":
        return stacked("stacked")
    if key == "asymmetric":
        return [FactorizedConv(filters, n, mode="asymmetric", name="asym", **common)]
    if key == "bottleneck":
        return reduce + [ConvBN(filters, n, name="conv", **common)]
    if key == "bottleneck_stacked":
        return reduce + stacked("stacked")
    if key == "bottleneck_asymmetric":
        return reduce + [
            FactorizedConv(filters, n, mode="asymmetric", intermediate_filters=bottleneck, name="asym", **common)
        ]
    raise AssertionError(key)


_LABELS = {
    "plain": "{n}x{n}",
    "stacked": "{stack}",
    "asymmetric": "1x{n} + {n}x1",
    "bottleneck": "1x1 x{b} -> {n}x{n}",
    "bottleneck_stacked": "1x1 x{b} -> {stack}",
    "bottleneck_asymmetric": "1x1 x{b} -> 1x{n} + {n}x1",
}


def compare_factorizations(input_shape=(28, 28, 192), filters=32, kernel_size=5, bottleneck=16, *,
                           use_bias=True, combined=True):
    """Parameters and MACs of an n x n convolution and of its factorised forms.

    Lecture notes 001/002 and Szegedy et al., "Going Deeper with Convolutions" (2015), section 5
    (1x1 bottleneck: 28x28x192 -> 32 maps by 5x5 costs 120,422,400 multiplications, 12,443,648
    with a 1x1 reduction to 16 first), and "Rethinking the Inception Architecture" (2016),
    sections 3.1-3.2 (5x5 -> two stacked 3x3; n x n -> 1 x n + n x 1, so 3x3 -> 1x3 + 3x1 saves
    33% where two 2x2 save only 11%).

    Every form is built from real keras_cnn layers (`ConvBN`, `FactorizedConv`, without batch
    normalisation: the notes' conv + bias + ReLU), profiled with `profile`, and cross-checked
    against `conv_params` / `conv_macs`. All forms use stride 1 and "same" padding, so they map
    the same input to the same output shape. Forms:

    * "plain": one n x n convolution;
    * "stacked": (n - 1) / 2 stacked 3x3 for odd n >= 5, two 2x2 for n = 3 (skipped for even n);
      intermediate width ``filters``;
    * "asymmetric": 1 x n then n x 1, intermediate width ``filters``;
    * "bottleneck": 1x1 to ``bottleneck`` channels, then the n x n (GoogLeNet);
    * with ``combined``: "bottleneck_stacked" (the Inception-v2 35x35 branch: 1x1, then the
      stacked 3x3s at width ``filters``) and "bottleneck_asymmetric" (the Inception-v3 17x17
      branch: 1x1, 1 x n at width ``bottleneck``, n x 1 to ``filters``).

    Args:
        input_shape: (H, W, C_in). Default (28, 28, 192), GoogLeNet's inception (3a) input.
        filters: output channels. Default 32.
        kernel_size: the n of the n x n convolution, >= 2. Default 5.
        bottleneck: channels of the 1x1 reduction, or None / 0 for no bottleneck forms.
            Default 16.
        use_bias: convolutions have biases (they change parameters, not MACs). Default True.
        combined: also the bottleneck + factorised forms. Default True.

    Returns:
        A `FactorizationTable` (``table["bottleneck"].macs``, ``table.to_table()``, ...).

    Example:
        >>> t = compare_factorizations()
        >>> t["plain"].macs, t["bottleneck"].macs, t["bottleneck"].layer_macs
        (120422400, 12443648, (2408448, 10035200))
    """
    import keras

    shape = parse_shape("input_shape", input_shape, ndim=3)
    check_positive_int("filters", filters)
    check_positive_int("kernel_size", kernel_size)
    if kernel_size < 2:
        raise ValueError(f"`kernel_size` must be an int >= 2. Received: kernel_size={kernel_size!r}")
    if bottleneck is not None and bottleneck != 0:
        check_positive_int("bottleneck", bottleneck)
    bottleneck = bottleneck or None
    n = kernel_size
    keys = ["plain"]
    if n % 2 == 1:
        keys.append("stacked")
    keys.append("asymmetric")
    if bottleneck:
        keys.append("bottleneck")
        if combined:
            if n % 2 == 1:
                keys.append("bottleneck_stacked")
            keys.append("bottleneck_asymmetric")

    h, w, c_in = shape
    count = (n - 1) // 2
    stack_label = "two 2x2" if n == 3 else f"{ {2: 'two', 3: 'three', 4: 'four'}.get(count, count)} 3x3"
    rows = []
    plain_macs = plain_params = None
    for key in keys:
        inputs = keras.Input(shape, name="input")
        x = inputs
        for layer in _layers_for(key, n, filters, bottleneck, use_bias):
            x = layer(x)
        model = keras.Model(inputs, x, name=key)
        prof = profile(model)
        layer_macs = tuple(r.macs for r in prof.rows if r.macs)
        out_h, out_w = tuple(prof.output_shape)[1:3]
        formula_params = formula_macs = 0
        for (f_h, f_w), ci, co in _convs_for(key, n, c_in, filters, bottleneck):
            formula_params += conv_params((f_h, f_w), ci, co, bias=use_bias)
            formula_macs += conv_macs(out_h, out_w, co, f_h, f_w, ci)
        if key == "plain":
            plain_macs, plain_params = prof.total_macs, prof.total_params
        rows.append(
            FactorizationRow(
                key=key,
                label=_LABELS[key].format(n=n, b=bottleneck, stack=stack_label) + f" x{filters}",
                output_shape=tuple(prof.output_shape)[1:],
                params=prof.total_params,
                macs=prof.total_macs,
                layer_macs=layer_macs,
                formula_params=formula_params,
                formula_macs=formula_macs,
                relative_macs=prof.total_macs / plain_macs,
                relative_params=prof.total_params / plain_params,
            )
        )
    return FactorizationTable(tuple(shape), filters, kernel_size, bottleneck, bool(use_bias), tuple(rows))


def plot_comparison(table, path, *, title=None):
    """Save a bar chart of a `FactorizationTable` (MACs and parameters per form) as a PNG.

    Szegedy et al. (2015, section 5; 2016, section 3): the bars show how much a 1x1 bottleneck
    and factorised kernels save against the plain n x n convolution. The file is written
    atomically (a temporary sibling, then renamed); matplotlib's Agg backend is used without
    touching pyplot's global state.

    Args:
        table: a `FactorizationTable` from `compare_factorizations`.
        path: where to write the PNG; parent directories are created.
        title: figure title. Default: describes the convolution.

    Returns:
        The `Path` written.

    Example:
        >>> plot_comparison(compare_factorizations(), "cost.png")
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from keras_cnn._io import atomic_file

    if not isinstance(table, FactorizationTable):
        raise ValueError(
            f"`table` must be a FactorizationTable from compare_factorizations(). Received: table={type(table).__name__}"
        )
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"`path` must be a file path, not a directory. Received: path={str(path)!r}")
    labels = [r.label for r in table.rows]
    h, w, c = table.input_shape
    fig = Figure(figsize=(10, 1.2 + 0.55 * len(labels)), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, values, rel, name in (
        (axes[0], [r.macs / 1e6 for r in table.rows], [r.relative_macs for r in table.rows], "MACs (millions)"),
        (axes[1], [r.params / 1e3 for r in table.rows], [r.relative_params for r in table.rows], "Parameters (thousands)"),
    ):
        ypos = list(range(len(labels)))
        bars = ax.barh(ypos, values, color=["#888888"] + ["#3b75af"] * (len(values) - 1))
        ax.set_yticks(ypos, labels)
        ax.set_xlabel(name)
        ax.margins(x=0.25)
        for bar, value, fraction in zip(bars, values, rel):
            ax.annotate(f"{value:,.2f} ({100 * fraction:.0f}%)", (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                        xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    axes[0].invert_yaxis()  # shared y axis: plain form on top, once for both panels
    fig.suptitle(title or f"{h}x{w}x{c} -> {table.filters} maps, {table.kernel_size}x{table.kernel_size}: cost of each form")
    fig.tight_layout()
    with atomic_file(path, "wb") as handle:
        fig.savefig(handle, format="png")
    return path
