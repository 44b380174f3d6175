"""The residual block of ResNet (He et al., 2016, "Deep Residual Learning for Image Recognition").

A residual block computes ``a[l+2] = g(z[l+2] + a[l])``: the shortcut is added after the last
batch normalisation and *before* the final ReLU, so the stacked layers learn the residual
``F(x) = H(x) - x``. Identity shortcuts where shapes match; a 1x1 projection ``W_s`` (with the
block's stride, plus BN) where the block changes width or resolution (the paper's option B).
"""

from __future__ import annotations

import keras

from keras_cnn._compat import keras_ as keras_compat
from keras_cnn._validation import check_choice, check_positive_int
from keras_cnn.layers.frozen import KeepsFrozenSublayers

BLOCK_KINDS = ("basic", "bottleneck")
SHORTCUTS = ("auto", "identity", "projection", "none")
_DEFAULT_EXPANSION = {"basic": 1, "bottleneck": 4}


@keras.saving.register_keras_serializable(package="keras_cnn")
class ResidualBlock(KeepsFrozenSublayers, keras.layers.Layer):
    """Residual block, basic or bottleneck (He et al., 2016, figure 5).

    * ``kind="basic"``: 3x3 -> 3x3 (ResNet-18/34); output channels ``filters * expansion``
      (expansion 1 by default).
    * ``kind="bottleneck"``: 1x1 reduce -> 3x3 -> 1x1 expand (ResNet-50/101/152); ``filters`` is
      the bottleneck width, the output has ``filters * expansion`` channels (expansion 4).

    Every convolution is followed by BN; ReLU follows every BN but the last, whose output is
    added to the shortcut before the block's final ReLU (``a[l+2] = g(z[l+2] + a[l])``).

    Shortcut (``shortcut``):

    * ``"auto"``: identity when the block keeps width and resolution, else a 1x1 projection conv
      with the block's stride followed by BN (decided in ``build`` from the input channels);
    * ``"identity"``: always identity (ValueError if the shapes differ);
    * ``"projection"``: always a projection (the paper's option C);
    * ``"none"``: no shortcut at all: the plain block of the paper's Plain-34 baseline.

    Layouts: keras.applications' ResNet50/101/152 use ``conv_bias=True``,
    ``bn_epsilon=1.001e-5`` and ``stride_in_1x1=True`` (the stride on the first 1x1 of a
    bottleneck, as in the original Caffe model); torchvision (ResNet "v1.5") uses no conv bias,
    ``bn_epsilon=1e-5`` and the stride on the 3x3. A strided 3x3 is padded by one pixel on every
    side (``ZeroPadding2D`` + "valid", like torchvision) rather than with Keras' asymmetric
    "same" padding; output shapes are the same.

    Sub-layer names mirror keras.applications: for a block named ``"conv2_block1"``:
    ``conv2_block1_0_conv`` / ``_0_bn`` (projection shortcut), ``_1_conv``, ``_1_bn``,
    ``_1_relu``, ``_2_conv``, ``_2_bn``, (``_2_relu``, ``_3_conv``, ``_3_bn`` for a
    bottleneck), ``_add`` and ``_out`` (``_1_pad``/``_2_pad`` before a strided 3x3).
    The sub-layers are created in the order in which keras.applications' *Functional* ResNet
    lists their weights (``_1``, ``_2``, then ``_0_conv``, last conv, ``_0_bn``, last BN), so
    ``block.weights`` lines up one to one with keras' weights and ``set_weights`` ports them.

    Args:
        filters: width of the block (bottleneck width for ``kind="bottleneck"``).
        kind: "basic" or "bottleneck". Default "basic".
        strides: stride of the block (1 or 2 in ResNet). Default 1.
        shortcut: "auto", "identity", "projection" or "none". Default "auto".
        expansion: output channels = ``filters * expansion``. Default 1 (basic) / 4 (bottleneck).
        conv_bias: biases on the convolutions (keras.applications: True). Default False.
        bn_epsilon: BatchNormalization epsilon (keras.applications: 1.001e-5). Default 1e-5.
        bn_momentum: BatchNormalization momentum (Keras convention; torchvision's 0.1 is 0.9
            here). Default 0.99.
        stride_in_1x1: bottleneck only: put the stride on the first 1x1 (keras.applications,
            Caffe) instead of on the 3x3 (torchvision). Default False.
        kernel_initializer: Default "he_normal" (He et al., 2015, as in the paper).
        kernel_regularizer: optional regulariser on every kernel (weight decay).
        **kwargs: `keras.layers.Layer` arguments (``name``, ``dtype``, ...).

    Example:
        >>> block = ResidualBlock(64, kind="bottleneck", name="conv2_block1")
        >>> block(keras.Input((56, 56, 64))).shape  # projection 64 -> 256
        (None, 56, 56, 256)
    """

    def __init__(
        self,
        filters,
        kind="basic",
        strides=1,
        shortcut="auto",
        expansion=None,
        conv_bias=False,
        bn_epsilon=1e-5,
        bn_momentum=0.99,
        stride_in_1x1=False,
        kernel_initializer="he_normal",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = check_positive_int("filters", filters)
        self.kind = check_choice("kind", kind, BLOCK_KINDS)
        self.strides = check_positive_int("strides", strides)
        self.shortcut = check_choice("shortcut", shortcut, SHORTCUTS)
        self.expansion = check_positive_int(
            "expansion", _DEFAULT_EXPANSION[kind] if expansion is None else expansion
        )
        self.conv_bias = bool(conv_bias)
        self.bn_epsilon = float(bn_epsilon)
        self.bn_momentum = float(bn_momentum)
        self.stride_in_1x1 = bool(stride_in_1x1)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.out_channels = self.filters * self.expansion
        self.use_projection = None  # resolved in build() for shortcut="auto"

        n = self.name
        if self.kind == "basic":
            # (kernel, filters, stride) of each conv of the residual branch.
            spec = [(3, self.filters, self.strides), (3, self.out_channels, 1)]
        else:
            s1, s3 = (self.strides, 1) if self.stride_in_1x1 else (1, self.strides)
            spec = [(1, self.filters, s1), (3, self.filters, s3), (1, self.out_channels, 1)]
        last = len(spec)

        # Creation order = keras.applications' Functional weight order (see the class docstring).
        for i, (k, f, s) in enumerate(spec[:-1], start=1):
            pad = keras.layers.ZeroPadding2D(1, dtype=self.dtype_policy, name=f"{n}_{i}_pad") if (k > 1 and s > 1) else None
            conv = self._conv(f, k, s, pad is None, f"{n}_{i}_conv")
            bn = self._bn(f"{n}_{i}_bn")
            relu = keras.layers.Activation("relu", dtype=self.dtype_policy, name=f"{n}_{i}_relu")
            setattr(self, f"pad{i}", pad)
            setattr(self, f"conv{i}", conv)
            setattr(self, f"bn{i}", bn)
            setattr(self, f"relu{i}", relu)
        k, f, s = spec[-1]
        wants_projection = self.shortcut in ("auto", "projection")
        self.shortcut_conv = (
            self._conv(self.out_channels, 1, self.strides, True, f"{n}_0_conv") if wants_projection else None
        )
        setattr(self, f"conv{last}", self._conv(f, k, s, True, f"{n}_{last}_conv"))
        self.shortcut_bn = self._bn(f"{n}_0_bn") if wants_projection else None
        setattr(self, f"bn{last}", self._bn(f"{n}_{last}_bn"))
        self.add = keras.layers.Add(dtype=self.dtype_policy, name=f"{n}_add") if self.shortcut != "none" else None
        self.out = keras.layers.Activation("relu", dtype=self.dtype_policy, name=f"{n}_out")
        self._num_convs = last

    def _conv(self, filters, kernel, strides, same, name):
        return keras.layers.Conv2D(
            filters,
            kernel,
            strides=strides,
            padding="same" if same else "valid",
            use_bias=self.conv_bias,
            kernel_initializer=self.kernel_initializer,
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name=name,
        )

    def _bn(self, name):
        return keras.layers.BatchNormalization(
            axis=-1, epsilon=self.bn_epsilon, momentum=self.bn_momentum, dtype=self.dtype_policy, name=name
        )

    def _branch_layers(self):
        """The residual branch in call order: (pad or None, conv, bn, relu or None) per conv."""
        layers = []
        for i in range(1, self._num_convs + 1):
            last = i == self._num_convs
            layers.append(
                (
                    None if last else getattr(self, f"pad{i}"),
                    getattr(self, f"conv{i}"),
                    getattr(self, f"bn{i}"),
                    None if last else getattr(self, f"relu{i}"),
                )
            )
        return layers

    def _resolve_shortcut(self, input_shape):
        in_channels = input_shape[-1]
        if in_channels is None:
            raise ValueError(
                f"ResidualBlock {self.name!r} needs a known number of input channels. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        changes_shape = self.strides != 1 or in_channels != self.out_channels
        if self.shortcut == "identity" and changes_shape:
            raise ValueError(
                "`shortcut`='identity' needs a block that keeps its input shape, but this one maps "
                f"{in_channels} -> {self.out_channels} channels with strides={self.strides}; use "
                f"'auto' or 'projection'. Received: shortcut={self.shortcut!r}"
            )
        if self.shortcut == "auto":
            return changes_shape
        return self.shortcut == "projection"

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        use_projection = self._resolve_shortcut(input_shape)
        if self.shortcut_conv is not None and not use_projection:
            # "auto" resolved to identity: drop the candidate projection before the state locks.
            keras_compat.untrack(self, self.shortcut_conv, self.shortcut_bn)
            self.shortcut_conv = None
            self.shortcut_bn = None
        self.use_projection = use_projection
        shape = input_shape
        for pad, conv, bn, relu in self._branch_layers():
            if pad is not None:
                pad.build(shape)
                shape = pad.compute_output_shape(shape)
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
            bn.build(shape)
            if relu is not None:
                relu.build(shape)
        if self.use_projection:
            self.shortcut_conv.build(input_shape)
            self.shortcut_bn.build(self.shortcut_conv.compute_output_shape(input_shape))
        if self.add is not None:
            self.add.build([shape, shape])
        self.out.build(shape)
        self.built = True

    def call(self, inputs, training=None):
        x = inputs
        for pad, conv, bn, relu in self._branch_layers():
            if pad is not None:
                x = pad(x)
            x = bn(conv(x), training=training)
            if relu is not None:
                x = relu(x)
        if self.shortcut != "none":
            if self.use_projection:
                shortcut = self.shortcut_bn(self.shortcut_conv(inputs), training=training)
            else:
                shortcut = inputs
            x = self.add([x, shortcut])  # z[l+2] + a[l], before the final ReLU
        return self.out(x)

    def compute_output_shape(self, input_shape):
        def down(n):
            return None if n is None else (n - 1) // self.strides + 1

        return (input_shape[0], down(input_shape[1]), down(input_shape[2]), self.out_channels)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kind=self.kind,
            strides=self.strides,
            shortcut=self.shortcut,
            expansion=self.expansion,
            conv_bias=self.conv_bias,
            bn_epsilon=self.bn_epsilon,
            bn_momentum=self.bn_momentum,
            stride_in_1x1=self.stride_in_1x1,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer)
            if self.kernel_regularizer is not None
            else None,
        )
        return config
