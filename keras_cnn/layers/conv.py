"""Convolution units shared by every family.

`ConvBN` is the "conv layer" of the lectures (convolution + bias, then activation), with the
batch normalisation that Inception-v2/v3 and ResNet add. `FactorizedConv` is the factorisation
of "Rethinking the Inception Architecture" (Szegedy et al., 2016, section 3): an n x n
convolution written as stacked 3x3 convolutions or as a 1 x n followed by an n x 1.
"""

from __future__ import annotations

import keras

from keras_cnn._validation import check_choice, check_positive_int

_PADDINGS = ("same", "valid")


def _pair(value, arg):
    if isinstance(value, int):
        check_positive_int(arg, value)
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value):
        return tuple(value)
    raise ValueError(f"`{arg}` must be a positive int or a pair of positive ints. Received: {arg}={value!r}")


@keras.saving.register_keras_serializable(package="keras_cnn")
class ConvBN(keras.layers.Layer):
    """Convolution, optional batch normalisation, then activation.

    The unit every family is built from. With ``use_bn=False`` it is the lecture's conv layer
    (conv + bias + activation; LeNet, AlexNet, VGG, GoogLeNet); with ``use_bn=True`` it is the
    conv + BN + ReLU unit of Inception-v2/v3 and ResNet (Ioffe & Szegedy, 2015).

    Parameters of the convolution: ``(kh * kw * c_in + bias) * filters``, e.g. ten 3x3 filters on
    a 3-channel input hold ``(3*3*3 + 1) * 10 = 280`` parameters.

    Args:
        filters: number of output channels.
        kernel_size: int or (kh, kw).
        strides: int or (sh, sw). Default 1.
        padding: "same" or "valid". Default "same".
        use_bn: add BatchNormalization after the convolution. Default True.
        use_bias: convolution bias; default ``not use_bn`` (a bias before BN is redundant, but
            keras.applications' ResNet keeps it, so it can be forced on).
        activation: activation after BN, or None for a linear unit. Default "relu".
        bn_epsilon: BatchNormalization epsilon. Default 1e-3 (Keras' default).
        bn_momentum: BatchNormalization momentum. Default 0.99.
        bn_scale: learn the BN gamma. Default True (Inception-v3 uses False: ReLU follows).
        kernel_initializer: Default "glorot_uniform".
        kernel_regularizer: optional regulariser (e.g. ``keras.regularizers.L2(1e-4)``).

    Example:
        >>> y = ConvBN(64, 3, name="conv1")(keras.Input((32, 32, 3)))  # (None, 32, 32, 64)
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="same",
        use_bn=True,
        use_bias=None,
        activation="relu",
        bn_epsilon=1e-3,
        bn_momentum=0.99,
        bn_scale=True,
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_int("filters", filters)
        self.filters = int(filters)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.padding = check_choice("padding", padding, _PADDINGS)
        self.use_bn = bool(use_bn)
        self.use_bias = (not self.use_bn) if use_bias is None else bool(use_bias)
        self.activation = activation
        self.bn_epsilon = float(bn_epsilon)
        self.bn_momentum = float(bn_momentum)
        self.bn_scale = bool(bn_scale)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.conv = keras.layers.Conv2D(
            self.filters,
            self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer,
            kernel_regularizer=self.kernel_regularizer,
            name=f"{self.name}_conv",
        )
        self.bn = (
            keras.layers.BatchNormalization(
                axis=-1,
                epsilon=self.bn_epsilon,
                momentum=self.bn_momentum,
                scale=self.bn_scale,
                name=f"{self.name}_bn",
            )
            if self.use_bn
            else None
        )
        self.act = (
            keras.layers.Activation(activation, name=f"{self.name}_{_act_name(activation)}")
            if activation is not None
            else None
        )

    def build(self, input_shape):
        self.conv.build(input_shape)
        if self.bn is not None:
            self.bn.build(self.conv.compute_output_shape(input_shape))
        self.built = True

    def call(self, inputs, training=None):
        x = self.conv(inputs)
        if self.bn is not None:
            x = self.bn(x, training=training)
        if self.act is not None:
            x = self.act(x)
        return x

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            use_bn=self.use_bn,
            use_bias=self.use_bias,
            activation=keras.activations.serialize(keras.activations.get(self.activation))
            if not isinstance(self.activation, str) and self.activation is not None
            else self.activation,
            bn_epsilon=self.bn_epsilon,
            bn_momentum=self.bn_momentum,
            bn_scale=self.bn_scale,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer)
            if self.kernel_regularizer is not None
            else None,
        )
        return config


def _act_name(activation):
    return activation if isinstance(activation, str) else getattr(activation, "__name__", "act")


FACTORIZATIONS = ("none", "stacked", "asymmetric")


@keras.saving.register_keras_serializable(package="keras_cnn")
class FactorizedConv(keras.layers.Layer):
    """An n x n convolution, optionally factorised (Szegedy et al., 2016, sections 3.1-3.2).

    * ``mode="none"``: one n x n `ConvBN`.
    * ``mode="stacked"``: (n - 1) / 2 stacked 3x3 `ConvBN` s (5x5 -> two 3x3, 7x7 -> three 3x3);
      same receptive field, 18 instead of 25 multiplies per position for n=5. n must be odd.
    * ``mode="asymmetric"``: a 1 x n followed by an n x 1 (cost n^2 -> 2n per output channel).

    Each factor is a `ConvBN`, so BN + ReLU follow every factor; the paper found this beats a
    linear first factor, which ``factor_activation=None`` reproduces for comparison.
    Strides apply to the last factor.

    Args:
        filters: output channels.
        kernel_size: the odd n of the n x n being replaced.
        mode: "none", "stacked" or "asymmetric". Default "stacked".
        intermediate_filters: channels between factors. Default ``filters``.
        strides: stride of the last factor. Default 1.
        padding: "same" or "valid" (applied to every factor). Default "same".
        factor_activation: activation of every factor but the last. Default "relu".
        **conv_kwargs: passed to every `ConvBN` (use_bn, activation, bn_epsilon, ...).

    Example:
        >>> FactorizedConv(64, 7, mode="asymmetric")(keras.Input((17, 17, 128))).shape
        (None, 17, 17, 64)
    """

    def __init__(
        self,
        filters,
        kernel_size,
        mode="stacked",
        intermediate_filters=None,
        strides=1,
        padding="same",
        factor_activation="relu",
        use_bn=True,
        use_bias=None,
        activation="relu",
        bn_epsilon=1e-3,
        bn_momentum=0.99,
        bn_scale=True,
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_int("filters", filters)
        check_positive_int("kernel_size", kernel_size)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.mode = check_choice("mode", mode, FACTORIZATIONS)
        if self.mode == "stacked" and (self.kernel_size < 3 or self.kernel_size % 2 == 0):
            raise ValueError(
                "`kernel_size` must be an odd int >= 3 for mode='stacked'. "
                f"Received: kernel_size={kernel_size!r}"
            )
        self.intermediate_filters = int(intermediate_filters or filters)
        self.strides = int(strides)
        self.padding = check_choice("padding", padding, _PADDINGS)
        self.factor_activation = factor_activation
        self.conv_kwargs = dict(
            use_bn=use_bn,
            use_bias=use_bias,
            bn_epsilon=bn_epsilon,
            bn_momentum=bn_momentum,
            bn_scale=bn_scale,
            kernel_regularizer=kernel_regularizer,
        )
        self.activation = activation
        n = self.kernel_size
        if self.mode == "none":
            kernels = [(n, n)]
        elif self.mode == "stacked":
            kernels = [(3, 3)] * ((n - 1) // 2)
        else:
            kernels = [(1, n), (n, 1)]
        self.factors = []
        for i, k in enumerate(kernels):
            last = i == len(kernels) - 1
            self.factors.append(
                ConvBN(
                    self.filters if last else self.intermediate_filters,
                    k,
                    strides=self.strides if last else 1,
                    padding=self.padding,
                    activation=activation if last else factor_activation,
                    name=f"{self.name}_{i + 1}",
                    **self.conv_kwargs,
                )
            )

    def build(self, input_shape):
        shape = input_shape
        for layer in self.factors:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.built = True

    def call(self, inputs, training=None):
        x = inputs
        for layer in self.factors:
            x = layer(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        shape = input_shape
        for layer in self.factors:
            shape = layer.compute_output_shape(shape)
        return shape

    def get_config(self):
        config = super().get_config()
        kwargs = dict(self.conv_kwargs)
        if kwargs["kernel_regularizer"] is not None:
            kwargs["kernel_regularizer"] = keras.regularizers.serialize(
                keras.regularizers.get(kwargs["kernel_regularizer"])
            )
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            mode=self.mode,
            intermediate_filters=self.intermediate_filters,
            strides=self.strides,
            padding=self.padding,
            factor_activation=self.factor_activation,
            activation=self.activation,
            **kwargs,
        )
        return config
