"""Inception building blocks: the module, the efficient grid reduction and the side classifier.

References:
    * Szegedy et al., "Going Deeper with Convolutions" (GoogLeNet / Inception-v1), CVPR 2015:
      the naive module, the module with 1x1 reductions, the auxiliary classifiers.
    * Szegedy et al., "Rethinking the Inception Architecture for Computer Vision"
      (Inception-v2/v3), CVPR 2016: 5x5 factorised into two 3x3 (Figure 5), asymmetric
      n x n -> 1xn + nx1 (Figure 6), the expanded filter bank (Figure 7), the efficient grid-size
      reduction (Figure 10) and the auxiliary classifier with batch normalisation.

One class, `InceptionBlock`, covers every module kind. A module is *data*: a list of branches,
each branch a list of steps applied in order, and the branch outputs concatenated on the channel
axis, in branch order. A step is one of

* conv:  ``{"type": "conv", "filters": 64, "kernel_size": [1, 7], "strides": [1, 1],
  "padding": "same"}`` -- a `ConvBN` (conv, optional BN, ReLU). Shorthand: a tuple
  ``(filters, kernel_size[, strides[, padding]])``, e.g. ``(64, 1)`` or ``(192, (1, 7))``.
* pool:  ``{"type": "pool", "pool": "max"|"avg", "pool_size": [3, 3], "strides": [1, 1],
  "padding": "same", "count_include_pad": false}``. Shorthand: the string ``"max"`` or ``"avg"``
  (3x3, stride 1, same, padding not counted as Keras does; ``count_include_pad`` counts it as
  PyTorch does).
  A pool branch without a conv keeps its input's channels.
* factorized: ``{"type": "factorized", "filters": 96, "kernel_size": 5, "mode": "stacked",
  "intermediate_filters": 96, "first_factor": "1xn"}`` -- a `FactorizedConv`: an n x n
  convolution as stacked 3x3s (Figure 5), as 1xn -> nx1 (Figure 6), or as 1xn | nx1 side by
  side (``mode="expanded"``, Figure 7; ``2 * filters`` output channels). Built with
  `factorized_step`; Inception-v2 and Inception-v3 write every factorised branch this way.

The helpers `conv_step`, `pool_step` and `factorized_step` build canonical steps, and the
branch factories (`naive_branches`, `v1_branches`, `factorized_branches`,
`asymmetric_branches`, `expanded_branches`) build the modules of the papers. ``get_config()``
always holds the canonical form (plain lists and dicts), so a saved module is readable JSON.

Sub-layer names are ``{block}_branch{b}_{s}`` for step ``s`` of branch ``b`` (both from 1),
``{block}_branch{b}_{s}_{f}`` for factor ``f`` of a factorized step (from 1, in
`FactorizedConv` order), and ``{block}_concat`` for the output concatenation. The leaf Conv2D /
BatchNormalization layers are created -- and their weights listed -- in branch order, then
step order, then factor order.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras
from keras import ops

from keras_cnn._validation import check_choice, check_fraction, check_positive_int
from keras_cnn.layers.conv import (
    PADDINGS,
    ConvBN,
    ConvOptions,
    FactorizedConv,
    check_factorization,
    pair,
    take_conv_options,
)

POOLS = ("max", "avg")
STEP_TYPES = ("conv", "pool", "factorized")
FIVE_BY_FIVE = ("plain", "stacked", "asymmetric")


# --------------------------------------------------------------------------------------------
# Branch specification
# --------------------------------------------------------------------------------------------


def _pairlist(value, arg):
    return list(pair(value, arg))


def conv_step(filters, kernel_size=1, strides=1, padding="same"):
    """A canonical conv step: a `ConvBN` with ``filters`` outputs.

    Example:
        >>> conv_step(192, (1, 7))["kernel_size"]
        [1, 7]
    """
    check_positive_int("filters", filters)
    return {
        "type": "conv",
        "filters": int(filters),
        "kernel_size": _pairlist(kernel_size, "kernel_size"),
        "strides": _pairlist(strides, "strides"),
        "padding": check_choice("padding", padding, PADDINGS),
    }


def pool_step(pool="max", pool_size=3, strides=1, padding="same", count_include_pad=False):
    """A canonical pool step (no weights; channels unchanged).

    ``count_include_pad=True`` (average pools only, "same" padding, stride 1, odd window) divides
    every window by its full size, the zero padding included, as PyTorch's ``avg_pool2d`` does by
    default (torchvision's Inception-v3); Keras' "same" average excludes the padding, which
    changes the border values.

    Example:
        >>> pool_step("avg", count_include_pad=True)["count_include_pad"]
        True
    """
    if not isinstance(count_include_pad, bool):
        raise ValueError(f"`count_include_pad` must be True or False. Received: count_include_pad={count_include_pad!r}")
    step = {
        "type": "pool",
        "pool": check_choice("pool", pool, POOLS),
        "pool_size": _pairlist(pool_size, "pool_size"),
        "strides": _pairlist(strides, "strides"),
        "padding": check_choice("padding", padding, PADDINGS),
        "count_include_pad": count_include_pad,
    }
    if count_include_pad:
        odd = all(k % 2 == 1 for k in step["pool_size"])
        if step["pool"] != "avg" or step["padding"] != "same" or step["strides"] != [1, 1] or not odd:
            raise ValueError(
                "`count_include_pad=True` applies to an average pool with padding='same', strides 1 and an "
                f"odd pool_size (a symmetric zero padding). Received: pool={pool!r}, pool_size={pool_size!r}, "
                f"strides={strides!r}, padding={padding!r}"
            )
    return step


def factorized_step(filters, kernel_size, mode="stacked", intermediate_filters=None, first_factor="1xn"):
    """A canonical factorized step: a `FactorizedConv` (see it for the modes).

    Example:
        >>> factorized_step(192, 7, "asymmetric", intermediate_filters=128)["intermediate_filters"]
        128
    """
    filters, kernel_size, mode, intermediate_filters, first_factor = check_factorization(
        filters, kernel_size, mode, intermediate_filters, first_factor
    )
    return {
        "type": "factorized",
        "filters": filters,
        "kernel_size": kernel_size,
        "mode": mode,
        "intermediate_filters": intermediate_filters,
        "first_factor": first_factor,
    }


def _normalize_conv(step, where):
    step = _normalize_step(step, where)
    if step["type"] != "conv":
        raise ValueError(f"`convs` holds conv steps only. Received: {where}={step!r}")
    return step


def _normalize_step(step, where="step"):
    """Return the canonical dict form of a step given in any accepted form."""
    try:
        if isinstance(step, str):
            return pool_step(step)
        if isinstance(step, Mapping):
            kind = step.get("type")
            fields = {k: v for k, v in step.items() if k != "type"}
            if kind == "conv":
                return conv_step(**fields)
            if kind == "pool":
                return pool_step(**fields)
            if kind == "factorized":
                return factorized_step(**fields)
            if kind == "split":
                raise ValueError(
                    "the 'split' step of earlier keras_cnn versions is now a factorized step with "
                    "mode='expanded' (see `factorized_step`); rebuild a model saved with it"
                )
            raise ValueError(f"unknown step type {kind!r}; expected one of {list(STEP_TYPES)}")
        if isinstance(step, (tuple, list)) and 2 <= len(step) <= 4 and isinstance(step[0], int):
            return conv_step(*step)
    except (TypeError, ValueError) as err:
        raise ValueError(f"`branches`: invalid step ({err}). Received: {where}={step!r}") from None
    raise ValueError(
        "`branches`: a step is a conv tuple (filters, kernel_size[, strides[, padding]]), "
        f"'max' / 'avg', or a dict with 'type' in {list(STEP_TYPES)}. "
        f"Received: {where}={step!r}"
    )


def normalize_branches(branches, arg="branches"):
    """Canonical form of a branch specification (a list of lists of step dicts)."""
    if not isinstance(branches, (list, tuple)) or len(branches) == 0:
        raise ValueError(f"`{arg}` must be a non-empty list of branches. Received: {arg}={branches!r}")
    out = []
    for b, branch in enumerate(branches):
        if not isinstance(branch, (list, tuple)) or len(branch) == 0 or isinstance(branch, str):
            raise ValueError(
                f"`{arg}`: every branch must be a non-empty list of steps. Received: {arg}[{b}]={branch!r}"
            )
        # A bare conv tuple like (64, 1) is a one-step branch written without its list.
        if isinstance(branch[0], int):
            branch = [branch]
        out.append([_normalize_step(step, f"{arg}[{b}][{s}]") for s, step in enumerate(branch)])
    return out


def _plain(obj):
    """Tracked containers / tuples -> plain dicts and lists (JSON-friendly config)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _scale(channels, multiplier):
    return max(1, int(round(channels * multiplier)))


def naive_branches(c1=64, c3=128, c5=32, pool="max"):
    """The naive module (GoogLeNet Figure 2a): 1x1 | 3x3 | 5x5 | 3x3 pool, no reductions.

    The pool branch keeps its input's channels, so on 28x28x192 the defaults give
    64 + 128 + 32 + 192 = 416 channels.
    """
    return normalize_branches([[(c1, 1)], [(c3, 3)], [(c5, 5)], [pool]])


def _five_by_five(filters, mode):
    check_choice("five_by_five", mode, FIVE_BY_FIVE)
    if mode == "plain":
        return [(filters, 5)]
    # "stacked": Rethinking... Figure 5, two 3x3 have the 5x5's receptive field;
    # "asymmetric": 1x5 then 5x1.
    return [factorized_step(filters, 5, mode)]


def v1_branches(c1, r3, c3, r5, c5, pool_proj, *, five_by_five="plain", pool="max"):
    """GoogLeNet's module with 1x1 reductions (Figure 2b), from the paper's table columns.

    ``(c1, r3, c3, r5, c5, pool_proj)``: 1x1 | 1x1 r3 -> 3x3 c3 | 1x1 r5 -> 5x5 c5 |
    3x3 pool -> 1x1 pool_proj. Output channels ``c1 + c3 + c5 + pool_proj``.
    ``five_by_five`` replaces the 5x5 by a `FactorizedConv`: two stacked 3x3 ("stacked") or
    1x5 + 5x1 ("asymmetric").
    """
    return normalize_branches(
        [
            [(c1, 1)],
            [(r3, 1), (c3, 3)],
            [(r5, 1)] + _five_by_five(c5, five_by_five),
            [pool, (pool_proj, 1)],
        ]
    )


def factorized_branches(c1, r3, c3, r5, c5, pool_proj, *, pool="avg"):
    """"Rethinking" Figure 5: the 5x5 branch as two stacked 3x3 (35x35 grid of Inception-v2)."""
    return v1_branches(c1, r3, c3, r5, c5, pool_proj, five_by_five="stacked", pool=pool)


def asymmetric_branches(c1, r7, c7, rd7, cd7, pool_proj, *, n=7, pool="avg"):
    """"Rethinking" Figure 6: n x n convolutions as 1xn -> nx1 chains (17x17 grid, n=7).

    1x1 c1 | 1x1 r7 -> [1xn r7 -> nx1 c7] | 1x1 rd7 -> [1xn -> nx1 (rd7)] -> [1xn (rd7) -> nx1 cd7] |
    pool -> 1x1 pool_proj; every bracket is one asymmetric `FactorizedConv`.
    """
    check_positive_int("n", n)
    return normalize_branches(
        [
            [(c1, 1)],
            [(r7, 1), factorized_step(c7, n, "asymmetric", intermediate_filters=r7)],
            [
                (rd7, 1),
                factorized_step(rd7, n, "asymmetric"),
                factorized_step(cd7, n, "asymmetric", intermediate_filters=rd7),
            ],
            [pool, (pool_proj, 1)],
        ]
    )


def expanded_branches(c1, r3, c3, rd3, md3, cd3, pool_proj, *, pool="avg"):
    """"Rethinking" Figure 7: the expanded filter bank of the 8x8 grid.

    1x1 c1 | 1x1 r3 -> [1x3 c3 | 3x1 c3] | 1x1 rd3 -> 3x3 md3 -> [1x3 cd3 | 3x1 cd3] |
    pool -> 1x1 pool_proj, each ``[1x3 | 3x1]`` an expanded `FactorizedConv`. Output
    ``c1 + 2*c3 + 2*cd3 + pool_proj`` channels.
    """
    return normalize_branches(
        [
            [(c1, 1)],
            [(r3, 1), factorized_step(c3, 3, "expanded")],
            [(rd3, 1), (md3, 3), factorized_step(cd3, 3, "expanded")],
            [pool, (pool_proj, 1)],
        ]
    )


def scale_branches(branches, width_multiplier=1.0):
    """The same branches with every conv's (and factorisation's) filters scaled (rounded, at least 1)."""
    out = []
    for branch in normalize_branches(branches):
        new = []
        for step in branch:
            step = dict(step)
            for key in ("filters", "intermediate_filters"):
                if key in step:
                    step[key] = _scale(step[key], width_multiplier)
            new.append(step)
        out.append(new)
    return out


def apply_conv_stem(x, table, *, width_multiplier=1.0, **conv_kwargs):
    """Apply a plain stem table to the tensor ``x`` (Functional API helper).

    ``table`` holds conv rows ``(filters, kernel_size, strides, padding)`` and the string
    ``"pool"`` (max-pool 3x3 stride 2, valid). Layers are named ``stem_conv{i}`` and
    ``stem_pool{j}`` (from 1); ``conv_kwargs`` go to every `ConvBN`.

    Example:
        >>> y = apply_conv_stem(keras.Input((299, 299, 3)), [(32, 3, 2, "valid"), "pool"])
        >>> y.shape
        (None, 74, 74, 32)
    """
    n_conv = n_pool = 0
    for row in table:
        if row == "pool":
            n_pool += 1
            x = keras.layers.MaxPooling2D(3, strides=2, name=f"stem_pool{n_pool}")(x)
        else:
            n_conv += 1
            filters, kernel_size, strides, padding = row
            x = ConvBN(
                _scale(filters, width_multiplier),
                kernel_size,
                strides=strides,
                padding=padding,
                name=f"stem_conv{n_conv}",
                **conv_kwargs,
            )(x)
    return x


# --------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------


def _conv_out(size, kernel, stride, padding):
    if size is None:
        return None
    if padding == "same":
        return -(-size // stride)
    out = (size - kernel) // stride + 1
    return out


@keras.saving.register_keras_serializable(package="keras_cnn")
class InceptionBlock(ConvOptions, keras.layers.Layer):
    """Parallel branches concatenated on channels: every Inception module, as data.

    Szegedy et al., "Going Deeper with Convolutions", 2015 (modules of Figure 2), and
    "Rethinking the Inception Architecture for Computer Vision", 2016 (Figures 5, 6, 7).
    The branches are described by a specification (see the module docstring); the class
    methods build the papers' modules from their table columns.

    Every conv step is a `ConvBN` (every factorized step a `FactorizedConv` of them); the conv
    options ``use_bn``, ``use_bias``, ``bn_scale``, ``bn_epsilon`` ... apply to all of them, so
    GoogLeNet (bias, no BN) and Inception-v3 (no bias, BN with ``scale=False``, epsilon 1e-3)
    are both expressed.

    Args:
        branches: the branch specification: a list of branches, each a list of steps.
        **kwargs: the conv options of `ConvBN` for every conv (``use_bn``, ``use_bias``,
            ``activation``, ``bn_scale``, ``bn_epsilon``, ``bn_momentum``,
            ``kernel_initializer``, ``kernel_regularizer``; defaults as `ConvBN`: BN, no bias,
            ReLU), and `keras.layers.Layer` arguments (``name``, ``dtype``, ...).

    Example:
        >>> block = InceptionBlock.v1(64, 96, 128, 16, 32, 32, use_bn=False, name="inception_3a")
        >>> block(keras.Input((28, 28, 192))).shape
        (None, 28, 28, 256)
    """

    def __init__(
        self,
        branches,
        **kwargs,
    ):
        options = take_conv_options(kwargs)
        super().__init__(**kwargs)
        spec = normalize_branches(branches)
        self._set_conv_options(**options)
        layers, plan = [], []
        for b, branch in enumerate(spec, start=1):
            indices = []
            for s, step in enumerate(branch, start=1):
                layers.append(self._make_step(step, f"{self.name}_branch{b}_{s}"))
                indices.append(len(layers) - 1)
            plan.append(tuple(indices))
        self._spec = tuple(spec)
        self._plan = tuple(plan)
        self.step_layers = layers
        self.concat = keras.layers.Concatenate(axis=-1, name=f"{self.name}_concat")

    # -- construction helpers ---------------------------------------------------------------

    def _make_step(self, step, name):
        """The layer of one canonical step."""
        if step["type"] == "pool":
            if step.get("count_include_pad"):
                # PyTorch's avg_pool2d(k, stride=1, padding=k // 2): zero-pad, then a "valid" average.
                pads = tuple((k // 2, k // 2) for k in step["pool_size"])
                return keras.Sequential(
                    [
                        keras.layers.ZeroPadding2D(pads, name=f"{name}_pad"),
                        keras.layers.AveragePooling2D(tuple(step["pool_size"]), strides=1, padding="valid",
                                                      name=f"{name}_avg"),
                    ],
                    name=name,
                )
            pool_cls = keras.layers.MaxPooling2D if step["pool"] == "max" else keras.layers.AveragePooling2D
            return pool_cls(tuple(step["pool_size"]), strides=tuple(step["strides"]), padding=step["padding"], name=name)
        if step["type"] == "factorized":
            fields = {k: v for k, v in step.items() if k != "type"}
            # The block's activation follows every conv, factors included.
            return FactorizedConv(**fields, name=name, factor_activation=self.activation, **self.conv_options())
        return ConvBN(
            step["filters"],
            tuple(step["kernel_size"]),
            strides=tuple(step["strides"]),
            padding=step["padding"],
            name=name,
            **self.conv_options(),
        )

    @classmethod
    def naive(cls, c1=64, c3=128, c5=32, pool="max", **kwargs):
        """The naive module (1x1 | 3x3 | 5x5 | 3x3 pool, stride 1, same)."""
        return cls(naive_branches(c1, c3, c5, pool=pool), **kwargs)

    @classmethod
    def v1(cls, c1, r3, c3, r5, c5, pool_proj, five_by_five="plain", pool="max", **kwargs):
        """GoogLeNet's module from its table row ``(c1, r3, c3, r5, c5, pool_proj)``."""
        return cls(v1_branches(c1, r3, c3, r5, c5, pool_proj, five_by_five=five_by_five, pool=pool), **kwargs)

    @classmethod
    def factorized(cls, c1, r3, c3, r5, c5, pool_proj, pool="avg", **kwargs):
        """"Rethinking" Figure 5 (5x5 as two 3x3)."""
        return cls(factorized_branches(c1, r3, c3, r5, c5, pool_proj, pool=pool), **kwargs)

    @classmethod
    def asymmetric(cls, c1, r7, c7, rd7, cd7, pool_proj, n=7, pool="avg", **kwargs):
        """"Rethinking" Figure 6 (n x n as 1xn + nx1)."""
        return cls(asymmetric_branches(c1, r7, c7, rd7, cd7, pool_proj, n=n, pool=pool), **kwargs)

    @classmethod
    def expanded(cls, c1, r3, c3, rd3, md3, cd3, pool_proj, pool="avg", **kwargs):
        """"Rethinking" Figure 7 (expanded filter bank: 1x3 and 3x1 side by side)."""
        return cls(expanded_branches(c1, r3, c3, rd3, md3, cd3, pool_proj, pool=pool), **kwargs)

    # -- Layer API -------------------------------------------------------------------------

    @property
    def branches(self):
        """The canonical branch specification (plain lists and dicts)."""
        return _plain(self._spec)

    def _walk(self, input_shape, build):
        """Output shape of every branch; builds the sub-layers on the way if ``build``."""
        input_shape = tuple(input_shape)
        shapes = []
        for indices in self._plan:
            shape = input_shape
            for i in indices:
                layer = self.step_layers[i]
                if build:
                    layer.build(shape)
                shape = tuple(layer.compute_output_shape(shape))
            shapes.append(shape)
        if len({s[1:3] for s in shapes}) > 1:
            raise ValueError(
                f"`branches` of {self.name!r}: every branch must give the same height and width "
                f"to be concatenated. Received branch output shapes {shapes} "
                f"(branches={self.branches!r})"
            )
        return shapes

    def build(self, input_shape):
        shapes = self._walk(input_shape, build=True)
        self.concat.build(shapes)
        self.built = True

    def call(self, inputs, training=None):
        outputs = []
        for indices in self._plan:
            x = inputs
            for i in indices:
                x = self.step_layers[i](x, training=training)
            outputs.append(x)
        return self.concat(outputs)

    def compute_output_shape(self, input_shape):
        return tuple(self.concat.compute_output_shape(self._walk(input_shape, build=False)))

    def get_config(self):
        config = super().get_config()
        config.update(branches=self.branches, **self._conv_options_config())
        return config


@keras.saving.register_keras_serializable(package="keras_cnn")
class GridReduction(InceptionBlock):
    """Efficient grid-size reduction: stride-2 conv branches beside a stride-2 pool branch.

    Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", 2016,
    section 5 and Figure 10: instead of pooling first (a representational bottleneck) or
    convolving at full resolution first (3x the cost), conv branches and a pool branch both
    with stride 2 run in parallel and are concatenated. keras.applications' InceptionV3 uses it
    as ``mixed3`` (35 -> 17) and ``mixed8`` (17 -> 8).

    The last conv of every conv branch gets ``strides`` and ``padding``; earlier convs stay
    stride 1, "same" (unless given otherwise). The pool branch (``pool`` 3x3, ``strides``,
    ``padding``; optional 1x1 ``pool_proj``) is appended last, as in keras.

    Args:
        branches: conv branches (same step forms as `InceptionBlock`), each ending in a conv.
        pool: "max", "avg" or None (no pool branch). Default "max".
        pool_size: Default 3.
        strides: stride of the reducing step of every branch. Default 2.
        padding: padding of the reducing step of every branch. Default "valid".
        pool_proj: channels of an optional 1x1 conv after the pool. Default None.
        **kwargs: as `InceptionBlock` (use_bn, use_bias, bn_scale, bn_epsilon, name, ...).

    Example:
        >>> red = GridReduction([[(384, 3)], [(64, 1), (96, 3), (96, 3)]], name="mixed3")
        >>> red(keras.Input((35, 35, 288))).shape   # 384 + 96 + 288 channels
        (None, 17, 17, 768)
    """

    def __init__(self, branches, pool="max", pool_size=3, strides=2, padding="valid", pool_proj=None, **kwargs):
        conv_branches = normalize_branches(branches)
        for b, branch in enumerate(conv_branches):
            if branch[-1]["type"] != "conv":
                raise ValueError(
                    "`branches` of a GridReduction must each end in a conv step (the pool branch is "
                    f"added by `pool`). Received: branches[{b}]={branch!r}"
                )
        pool = check_choice("pool", pool, POOLS + (None,))
        pool_size = _pairlist(pool_size, "pool_size")
        strides = _pairlist(strides, "strides")
        padding = check_choice("padding", padding, PADDINGS)
        if pool_proj is not None:
            check_positive_int("pool_proj", pool_proj)
            if pool is None:
                raise ValueError(f"`pool_proj` needs a pool branch. Received: pool_proj={pool_proj!r} with pool=None")
        full = []
        for branch in conv_branches:
            last = dict(branch[-1], strides=list(strides), padding=padding)
            full.append(branch[:-1] + [last])
        if pool is not None:
            pool_branch = [pool_step(pool, pool_size, strides, padding)]
            if pool_proj is not None:
                pool_branch.append(conv_step(pool_proj, 1))
            full.append(pool_branch)
        super().__init__(full, **kwargs)
        self.pool = pool
        self.pool_size = pool_size
        self.reduction_strides = strides
        self.reduction_padding = padding
        self.pool_proj = pool_proj
        self._conv_branches = tuple(conv_branches)

    def get_config(self):
        config = super().get_config()
        config.update(
            branches=_plain(self._conv_branches),
            pool=self.pool,
            pool_size=list(self.pool_size),
            strides=list(self.reduction_strides),
            padding=self.reduction_padding,
            pool_proj=self.pool_proj,
        )
        return config


@keras.saving.register_keras_serializable(package="keras_cnn")
class AuxiliaryClassifier(ConvOptions, keras.layers.Layer):
    """A side classifier on an intermediate feature map (its output: class probabilities).

    Szegedy et al., "Going Deeper with Convolutions", 2015, section 5: on 4a and 4d,
    avg-pool 5x5 stride 3 -> 1x1 conv x128 -> FC 1024 (ReLU) -> dropout 0.7 -> softmax; its loss
    is added with weight 0.3 during training, and it is dropped at inference.
    "Rethinking the Inception Architecture", 2016, section 7: the head on the last 17x17 grid
    acts as a regulariser, better with batch normalisation; keras/torchvision shape: avg-pool
    5x5/3 -> 1x1 conv 128 + BN -> 5x5 conv 768 + BN -> FC to classes.
    `googlenet` and `inception_v3` build these two.

    Flow: average pool (``pool_size``, ``pool_strides``, valid) -> ``convs`` (`ConvBN` s) ->
    flatten (``flatten=True``) or global average pool -> ``fc_units`` dense ReLU layers ->
    dropout -> ``Dense(classes, activation)``.

    Deviation for small inputs: when the incoming grid is smaller than the pooling window the
    window is clipped to the grid, and a "valid" conv whose kernel exceeds its input is
    zero-padded up to the kernel, so the head builds at any input size. At the papers' sizes
    (14x14 / 17x17 grids) both are no-ops.

    Args:
        classes: output units. Default 1000.
        pool_size: Default 5.
        pool_strides: Default 3.
        convs: conv steps (same forms as `InceptionBlock` steps). Default ``((128, 1),)``.
        fc_units: hidden dense layers. Default ``(1024,)``.
        dropout: rate before the output layer. Default 0.7.
        flatten: flatten the conv output (GoogLeNet: 4x4x128 = 2048 features) rather than
            global-average-pool it. Default True.
        activation: output activation, e.g. "softmax" or None for logits. Default "softmax".
        **kwargs: the conv options of `ConvBN` for the convs (``use_bn`` -- here default
            False --, ``use_bias``, ``bn_scale``, ``bn_epsilon``, ``bn_momentum``,
            ``kernel_initializer``, ``kernel_regularizer``; the convs' activation is ReLU), and
            `keras.layers.Layer` arguments.

    Example:
        >>> head = AuxiliaryClassifier.googlenet(10, name="aux1")
        >>> head(keras.Input((14, 14, 512))).shape
        (None, 10)
    """

    def __init__(
        self,
        classes=1000,
        pool_size=5,
        pool_strides=3,
        convs=((128, 1),),
        fc_units=(1024,),
        dropout=0.7,
        flatten=True,
        activation="softmax",
        **kwargs,
    ):
        options = take_conv_options(kwargs, use_bn=False, activation=activation)
        super().__init__(**kwargs)
        self.classes = check_positive_int("classes", classes)
        self.pool_size = _pairlist(pool_size, "pool_size")
        self.pool_strides = _pairlist(pool_strides, "pool_strides")
        if not isinstance(convs, (list, tuple)):
            raise ValueError(f"`convs` must be a list of conv steps. Received: convs={convs!r}")
        self._convs = tuple(_normalize_conv(c, f"convs[{i}]") for i, c in enumerate(convs))
        if not isinstance(fc_units, (list, tuple)):
            raise ValueError(f"`fc_units` must be a list of positive ints. Received: fc_units={fc_units!r}")
        self.fc_units = [check_positive_int("fc_units", u) for u in fc_units]
        self.dropout = check_fraction("dropout", dropout)
        self.flatten = bool(flatten)
        # ``activation`` is the classifier's; the convs keep ReLU.
        self._set_conv_options(**options)
        conv_options = dict(self.conv_options(), activation="relu")
        self.conv_layers = [
            ConvBN(
                c["filters"],
                tuple(c["kernel_size"]),
                strides=tuple(c["strides"]),
                padding=c["padding"],
                name=f"{self.name}_conv{i + 1}",
                **conv_options,
            )
            for i, c in enumerate(self._convs)
        ]
        self.reduce = (
            keras.layers.Flatten(name=f"{self.name}_flatten")
            if self.flatten
            else keras.layers.GlobalAveragePooling2D(name=f"{self.name}_gap")
        )
        self.fc_layers = [
            keras.layers.Dense(
                u,
                activation="relu",
                kernel_initializer=self.kernel_initializer,
                kernel_regularizer=self.kernel_regularizer,
                name=f"{self.name}_fc{i + 1}",
            )
            for i, u in enumerate(self.fc_units)
        ]
        self.dropout_layer = keras.layers.Dropout(self.dropout, name=f"{self.name}_dropout") if self.dropout else None
        self.classifier = keras.layers.Dense(
            self.classes,
            activation=activation,
            kernel_initializer=self.kernel_initializer,
            kernel_regularizer=self.kernel_regularizer,
            name=f"{self.name}_predictions",
        )

    @classmethod
    def googlenet(cls, classes=1000, activation="softmax", **kwargs):
        """GoogLeNet's side head: avg-pool 5x5/3, 1x1 x128, FC 1024, dropout 0.7, softmax."""
        return cls(classes, activation=activation, **kwargs)

    @classmethod
    def inception_v3(cls, classes=1000, activation="softmax", **kwargs):
        """Inception-v3's BN head: avg-pool 5x5/3, 1x1 x128 + BN, 5x5 x768 + BN, FC to classes."""
        defaults = dict(
            convs=((128, 1), (768, 5, 1, "valid")),
            fc_units=(),
            dropout=0.0,
            flatten=False,
            use_bn=True,
            bn_scale=False,
            bn_epsilon=1e-3,
        )
        defaults.update(kwargs)
        return cls(classes, activation=activation, **defaults)

    @property
    def convs(self):
        return _plain(self._convs)

    # -- shape arithmetic shared by build / call / compute_output_shape ---------------------

    def _pool_window(self, shape):
        return [p if s is None else max(1, min(p, s)) for p, s in zip(self.pool_size, shape[1:3])]

    @staticmethod
    def _conv_padding(step, shape):
        """Zero padding ((top, bottom), (left, right)) that lets a valid conv fit its input."""
        if step["padding"] != "valid":
            return None
        pads = []
        for k, s in zip(step["kernel_size"], shape[1:3]):
            total = 0 if s is None else max(0, k - s)
            pads.append((total // 2, total - total // 2))
        return pads if any(sum(p) for p in pads) else None

    def _shapes(self, input_shape, build):
        shape = tuple(input_shape)
        window = self._pool_window(shape)
        shape = (
            shape[0],
            _conv_out(shape[1], window[0], self.pool_strides[0], "valid"),
            _conv_out(shape[2], window[1], self.pool_strides[1], "valid"),
            shape[3],
        )
        for step, layer in zip(self._convs, self.conv_layers):
            pads = self._conv_padding(step, shape)
            if pads is not None:
                shape = (shape[0], shape[1] + sum(pads[0]), shape[2] + sum(pads[1]), shape[3])
            if build:
                layer.build(shape)
            shape = tuple(layer.compute_output_shape(shape))
        if build:
            self.reduce.build(shape)
        shape = tuple(self.reduce.compute_output_shape(shape))
        for layer in self.fc_layers:
            if build:
                layer.build(shape)
            shape = tuple(layer.compute_output_shape(shape))
        if build:
            self.classifier.build(shape)
        return tuple(self.classifier.compute_output_shape(shape))

    def build(self, input_shape):
        self._shapes(input_shape, build=True)
        self.built = True

    def call(self, inputs, training=None):
        window = self._pool_window(tuple(inputs.shape))
        x = ops.average_pool(inputs, tuple(window), strides=tuple(self.pool_strides), padding="valid")
        for step, layer in zip(self._convs, self.conv_layers):
            pads = self._conv_padding(step, tuple(x.shape))
            if pads is not None:
                x = ops.pad(x, [(0, 0), pads[0], pads[1], (0, 0)])
            x = layer(x, training=training)
        x = self.reduce(x)
        for layer in self.fc_layers:
            x = layer(x)
        if self.dropout_layer is not None:
            x = self.dropout_layer(x, training=training)
        return self.classifier(x)

    def compute_output_shape(self, input_shape):
        return self._shapes(input_shape, build=False)

    def get_config(self):
        config = super().get_config()
        config.update(
            classes=self.classes,
            pool_size=list(self.pool_size),
            pool_strides=list(self.pool_strides),
            convs=self.convs,
            fc_units=list(self.fc_units),
            dropout=self.dropout,
            flatten=self.flatten,
            **self._conv_options_config(),
        )
        return config
