"""Convolution units shared by every family.

`ConvBN` is the "conv layer" of the lectures (convolution + bias, then activation), with the
batch normalisation that Inception-v2/v3 and ResNet add. `FactorizedConv` is the factorisation
of "Rethinking the Inception Architecture" (Szegedy et al., 2016, section 3): an n x n
convolution written as stacked 3x3 convolutions, as a 1 x n followed by an n x 1, or as a
1 x n beside an n x 1 (the expanded filter bank of Figure 7). Inception-v2 and Inception-v3
build their factorised branches from it (inside `keras_cnn.layers.InceptionBlock`).

`pair` and `ConvOptions` are the argument handling these layers (and the Inception layers)
share: one place that checks a kernel/stride pair, and one place that stores and serialises
the options every `ConvBN` takes.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_cnn._validation import check_choice, check_positive_int
from keras_cnn.layers.frozen import KeepsFrozenSublayers

PADDINGS = ("same", "valid")


def pair(value, arg):
    """``value`` as a ``(h, w)`` tuple of positive ints: an int n gives ``(n, n)``.

    Raises:
        ValueError: naming ``arg`` unless ``value`` is a positive int or a pair of them
            (booleans are refused).
    """
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return (value, value)
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        return (int(value[0]), int(value[1]))
    raise ValueError(f"`{arg}` must be a positive int or a pair of positive ints. Received: {arg}={value!r}")


def serialize_activation(activation):
    """An activation as it is written into a layer config (a name, a serialised object or None)."""
    if activation is None or isinstance(activation, str):
        return activation
    return keras.activations.serialize(keras.activations.get(activation))


# The options every `ConvBN` takes, with their defaults (documented on `ConvBN`).
CONV_OPTIONS = {
    "use_bn": True,
    "use_bias": None,
    "activation": "relu",
    "bn_epsilon": 1e-3,
    "bn_momentum": 0.99,
    "bn_scale": True,
    "kernel_initializer": "glorot_uniform",
    "kernel_regularizer": None,
}


def take_conv_options(kwargs, **defaults):
    """Remove the `CONV_OPTIONS` from the keyword arguments ``kwargs`` and return them.

    Missing options take ``defaults`` (a layer's own defaults, e.g. ``use_bn=False``), then
    `CONV_OPTIONS`. What is left in ``kwargs`` goes to `keras.layers.Layer`, which refuses
    unknown names.
    """
    options = dict(CONV_OPTIONS, **defaults)
    for key in CONV_OPTIONS:
        if key in kwargs:
            options[key] = kwargs.pop(key)
    return options


class ConvOptions(KeepsFrozenSublayers):
    """Mixin: the options of a `ConvBN`, stored on a layer and serialised in one place.

    (It also keeps the layer's frozen sub-layers frozen through saving: `KeepsFrozenSublayers`.)

    `ConvBN` itself and every layer that builds `ConvBN` s (`FactorizedConv`, the Inception
    layers) take them as keyword arguments: ``options = take_conv_options(kwargs)`` before
    ``super().__init__(**kwargs)``, then ``self._set_conv_options(**options)``; they pass
    `conv_options()` on to the units they create and add `_conv_options_config()` to their
    ``get_config()``.

    Options: ``use_bn``, ``use_bias`` (None = ``not use_bn``), ``activation``, ``bn_epsilon``,
    ``bn_momentum``, ``bn_scale``, ``kernel_initializer``, ``kernel_regularizer``; see `ConvBN`.
    """

    def _set_conv_options(
        self,
        *,
        use_bn,
        use_bias,
        activation,
        bn_epsilon,
        bn_momentum,
        bn_scale,
        kernel_initializer,
        kernel_regularizer,
    ):
        self.use_bn = bool(use_bn)
        self.use_bias = (not self.use_bn) if use_bias is None else bool(use_bias)
        self.activation = activation
        self.bn_epsilon = float(bn_epsilon)
        self.bn_momentum = float(bn_momentum)
        self.bn_scale = bool(bn_scale)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def conv_options(self):
        """The options as keyword arguments for a `ConvBN` (live initializer / regulariser)."""
        return {key: getattr(self, key) for key in CONV_OPTIONS}

    def _conv_options_config(self):
        """The options in config form (JSON-friendly)."""
        return dict(
            self.conv_options(),
            activation=serialize_activation(self.activation),
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer)
            if self.kernel_regularizer is not None
            else None,
        )


@keras.saving.register_keras_serializable(package="keras_cnn")
class ConvBN(ConvOptions, keras.layers.Layer):
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
            Default None.
        **kwargs: `keras.layers.Layer` arguments (``name``, ``dtype``, ...).

    The conv options (``use_bn`` ... ``kernel_regularizer``) are keyword-only, their defaults
    kept in `CONV_OPTIONS`.

    Example:
        >>> y = ConvBN(64, 3, name="conv1")(keras.Input((32, 32, 3)))  # (None, 32, 32, 64)
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="same",
        **kwargs,
    ):
        options = take_conv_options(kwargs)
        super().__init__(**kwargs)
        self.filters = check_positive_int("filters", filters)
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.strides = pair(strides, "strides")
        self.padding = check_choice("padding", padding, PADDINGS)
        self._set_conv_options(**options)
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
            keras.layers.Activation(self.activation, name=f"{self.name}_{_act_name(self.activation)}")
            if self.activation is not None
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
            **self._conv_options_config(),
        )
        return config


def _act_name(activation):
    return activation if isinstance(activation, str) else getattr(activation, "__name__", "act")


FACTORIZATIONS = ("none", "stacked", "asymmetric", "expanded")
FIRST_FACTORS = ("1xn", "nx1")


def factor_kernels(kernel_size, mode, first_factor="1xn"):
    """The kernels ``(kh, kw)`` of the factors of an n x n convolution, in creation order.

    Example:
        >>> factor_kernels(7, "asymmetric", first_factor="nx1")
        [(7, 1), (1, 7)]
    """
    n = kernel_size
    if mode == "none":
        return [(n, n)]
    if mode == "stacked":
        return [(3, 3)] * ((n - 1) // 2)
    row, col = (1, n), (n, 1)
    return [row, col] if first_factor == "1xn" else [col, row]


def _is_chain(mode, kernels):
    return mode != "expanded" and len(kernels) > 1


def check_factorization(filters, kernel_size, mode="stacked", intermediate_filters=None, first_factor="1xn"):
    """Check the arguments of a `FactorizedConv`; return them with ``intermediate_filters`` resolved.

    Returns:
        ``(filters, kernel_size, mode, intermediate_filters, first_factor)``.

    Raises:
        ValueError: naming the argument: ``filters`` / ``kernel_size`` / ``intermediate_filters``
            not positive ints, an unknown ``mode`` or ``first_factor``, an even or too small
            ``kernel_size`` for "stacked", or ``intermediate_filters`` where there is no chain of
            factors to put them between.
    """
    check_positive_int("filters", filters)
    check_positive_int("kernel_size", kernel_size)
    check_choice("mode", mode, FACTORIZATIONS)
    check_choice("first_factor", first_factor, FIRST_FACTORS)
    if mode == "stacked" and (kernel_size < 3 or kernel_size % 2 == 0):
        raise ValueError(
            f"`kernel_size` must be an odd int >= 3 for mode='stacked'. Received: kernel_size={kernel_size!r}"
        )
    if intermediate_filters is None:
        intermediate_filters = filters
    check_positive_int("intermediate_filters", intermediate_filters)
    if not _is_chain(mode, factor_kernels(kernel_size, mode, first_factor)) and intermediate_filters != filters:
        raise ValueError(
            f"`intermediate_filters` needs a chain of factors, but mode={mode!r} with "
            f"kernel_size={kernel_size} has none. Received: intermediate_filters={intermediate_filters!r}"
        )
    return int(filters), int(kernel_size), mode, int(intermediate_filters), first_factor


@keras.saving.register_keras_serializable(package="keras_cnn")
class FactorizedConv(ConvOptions, keras.layers.Layer):
    """An n x n convolution, optionally factorised (Szegedy et al., 2016, sections 3.1-3.2).

    * ``mode="none"``: one n x n `ConvBN`.
    * ``mode="stacked"``: (n - 1) / 2 stacked 3x3 `ConvBN` s (5x5 -> two 3x3, 7x7 -> three 3x3;
      Figure 5); same receptive field, 18 instead of 25 multiplies per position for n=5.
      n must be odd.
    * ``mode="asymmetric"``: a 1 x n followed by an n x 1 (Figure 6; cost n^2 -> 2n per output
      channel); ``first_factor="nx1"`` puts the n x 1 first (keras.applications' InceptionV3
      does so in the second 7x7 branch of mixed4-7).
    * ``mode="expanded"``: a 1 x n *beside* an n x 1, both on the input, concatenated in
      ``first_factor`` order (Figure 7, the expanded filter bank of the 8x8 grid). Each factor
      has ``filters`` outputs, so the layer outputs ``2 * filters`` channels.

    Each factor is a `ConvBN`, so BN + ReLU follow every factor; the paper found this beats a
    linear first factor, which ``factor_activation=None`` reproduces for comparison.
    Strides apply to the last factor (to both factors of "expanded").

    Sub-layers (and their weights) are created factor by factor and named ``{name}_1``,
    ``{name}_2``, ... (each a `ConvBN`, whose Conv2D is ``{name}_1_conv``).

    Args:
        filters: output channels (of each factor for "expanded").
        kernel_size: the n of the n x n being replaced (an odd n >= 3 for "stacked").
        mode: "none", "stacked", "asymmetric" or "expanded". Default "stacked".
        intermediate_filters: channels between chained factors. Default ``filters``. Only
            for a chain of two or more factors.
        strides: stride of the last factor. Default 1.
        padding: "same" or "valid" (applied to every factor). Default "same".
        factor_activation: activation of every chained factor but the last. Default "relu".
        first_factor: "1xn" or "nx1": which asymmetric factor comes first. Default "1xn".
        **kwargs: the conv options of `ConvBN` (use_bn, use_bias, activation, bn_epsilon,
            bn_momentum, bn_scale, kernel_initializer, kernel_regularizer) for every factor
            (``activation`` is the last factor's, both factors' for "expanded"), and
            `keras.layers.Layer` arguments (``name``, ``dtype``, ...).

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
        first_factor="1xn",
        **kwargs,
    ):
        options = take_conv_options(kwargs)
        super().__init__(**kwargs)
        (
            self.filters,
            self.kernel_size,
            self.mode,
            self.intermediate_filters,
            self.first_factor,
        ) = check_factorization(filters, kernel_size, mode, intermediate_filters, first_factor)
        kernels = factor_kernels(self.kernel_size, self.mode, self.first_factor)
        chained = _is_chain(self.mode, kernels)
        self.strides = check_positive_int("strides", strides)
        self.padding = check_choice("padding", padding, PADDINGS)
        self.factor_activation = factor_activation
        self._set_conv_options(**options)
        self.factors = []
        for i, k in enumerate(kernels):
            last = not chained or i == len(kernels) - 1
            options = self.conv_options()
            if not last:
                options["activation"] = factor_activation
            self.factors.append(
                ConvBN(
                    self.filters if last else self.intermediate_filters,
                    k,
                    strides=self.strides if last else 1,
                    padding=self.padding,
                    name=f"{self.name}_{i + 1}",
                    **options,
                )
            )

    @property
    def output_channels(self):
        """Channels of the output: ``filters``, or ``2 * filters`` for mode="expanded"."""
        return self.filters * (2 if self.mode == "expanded" else 1)

    def _chain(self, input_shape, build):
        shape = tuple(input_shape)
        if self.mode == "expanded":
            for layer in self.factors:
                if build:
                    layer.build(shape)
            shapes = [tuple(layer.compute_output_shape(shape)) for layer in self.factors]
            if len({s[1:3] for s in shapes}) > 1:
                raise ValueError(
                    f"FactorizedConv {self.name!r}: mode='expanded' with padding={self.padding!r} gives "
                    f"factors of different sizes {shapes} on input_shape={shape}; use padding='same'."
                )
            return shapes[0][:-1] + (self.output_channels,)
        for layer in self.factors:
            if build:
                layer.build(shape)
            shape = tuple(layer.compute_output_shape(shape))
        return shape

    def build(self, input_shape):
        self._chain(input_shape, build=True)
        self.built = True

    def call(self, inputs, training=None):
        if self.mode == "expanded":
            return ops.concatenate([layer(inputs, training=training) for layer in self.factors], axis=-1)
        x = inputs
        for layer in self.factors:
            x = layer(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return self._chain(input_shape, build=False)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            mode=self.mode,
            intermediate_filters=self.intermediate_filters,
            strides=self.strides,
            padding=self.padding,
            factor_activation=serialize_activation(self.factor_activation),
            first_factor=self.first_factor,
            **self._conv_options_config(),
        )
        return config
