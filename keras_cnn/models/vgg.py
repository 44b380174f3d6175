"""VGG (Simonyan & Zisserman, 2015, "Very Deep Convolutional Networks for Large-Scale Image
Recognition").

All convolutions 3x3, stride 1, "same"; all pools 2x2, stride 2; widths double per block
64-128-256-512-512. 224x224x3 -> 112 -> 56 -> 28 -> 14 -> 7x7x512 -> FC 4096 -> FC 4096 ->
softmax 1000. VGG-16 = blocks of [2, 2, 3, 3, 3] convs (138,357,544 parameters), VGG-19 =
[2, 2, 4, 4, 4] (143,667,240).
"""

from __future__ import annotations

import keras

from keras_cnn.layers.conv import ConvBN
from keras_cnn.models._common import check_width_multiplier, scale_width, start
from keras_cnn.models.identity import registered_builder
from keras_cnn.models.specs import VGG_DEPTHS, VGG_FC, VGG_WIDTHS, get_model_spec

_TWINS = {16: "VGG16", 19: "VGG19"}

SPEC = get_model_spec("vgg16")  # the family's input size (vgg16)


def _parse_config(config):
    """Return ``(blocks, depth)``: blocks = ((num_convs, width), ...); depth = int key or None."""
    if isinstance(config, int) and not isinstance(config, bool) and config in VGG_DEPTHS:
        return tuple(zip(VGG_DEPTHS[config], VGG_WIDTHS)), config
    try:
        blocks = tuple((int(n), int(w)) for n, w in config)
        ok = len(blocks) > 0 and all(
            n > 0 and w > 0 and (n, w) == tuple(b) for (n, w), b in zip(blocks, config)
        )
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(
            f"`config` must be one of {sorted(VGG_DEPTHS)} or a non-empty sequence of "
            f"(num_convs, width) pairs of positive ints, e.g. ((2, 32), (2, 64)). Received: config={config!r}"
        )
    return blocks, None


def build_vgg(
    config=16,
    *,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
    dropout=0.5,
    width_multiplier=1.0,
    fc_units=VGG_FC,
    batch_norm=False,
):
    """A VGG network from a configuration table (Simonyan & Zisserman, 2015, table 1).

    Each block is ``num_convs`` 3x3 "same" convolutions (conv + bias + ReLU; a `ConvBN` named
    ``block{b}_conv{i}``) and a 2x2/2 max-pool ``block{b}_pool``; the top is ``flatten``,
    ``fc1``, ``fc2`` (ReLU, dropout after each) and ``predictions``. For configs 16 and 19
    with the default widths the layers and weights are those of keras.applications' VGG16 /
    VGG19, in the same order (``model.set_weights(keras_vgg.get_weights())`` ports them).

    Deviations: dropout after fc1 and fc2 (the paper's 0.5) is not in keras.applications (no
    weights, so it does not change porting or inference). ``batch_norm=True`` (VGG-BN, not
    in the paper) puts BN between each conv and its ReLU and drops the conv bias.

    Args:
        config: 11, 13, 16 or 19 (the paper's configurations A, B, D, E), or a sequence of
            ``(num_convs, width)`` per block for a small VGG-style net, e.g.
            ``((1, 16), (2, 32), (2, 64))``. Default 16.
        include_top: flatten + hidden FC layers + classifier. Default True.
        weights: None, "imagenet" (configs 16/19 with default widths only) or a path. Default None.
        input_tensor: optional Keras tensor to use as the input. Default None.
        input_shape: optional (H, W, C); default (224, 224, 3); at least ``2 ** num_blocks``.
        pooling: None, "avg" or "max" global pooling when ``include_top=False``. Default None.
        classes: number of classes. Default 1000.
        classifier_activation: activation of the output layer. Default "softmax".
        name: model name. Default "vgg{config}" or "vgg_custom".
        dropout: dropout rate after each hidden FC layer. Default 0.5 (paper).
        width_multiplier: scales the conv widths and hidden FC widths. Default 1.0.
        fc_units: widths of the hidden FC layers (``fc1``, ``fc2``, ...). Default (4096, 4096).
        batch_norm: BN after every conv. Default False.

    Returns:
        A `keras.Model`.

    Example:
        >>> small = build_vgg(((1, 16), (2, 32)), fc_units=(64,), input_shape=(32, 32, 3), classes=10)
        >>> small.get_layer("block2_pool").output.shape
        (None, 8, 8, 32)
    """
    blocks, depth = _parse_config(config)
    wm = check_width_multiplier(width_multiplier)
    try:
        fc_units = tuple(int(u) for u in fc_units)
        fc_ok = all(u > 0 for u in fc_units)
    except (TypeError, ValueError):
        fc_ok = False
    if not fc_ok:
        raise ValueError(f"`fc_units` must be a sequence of positive ints. Received: fc_units={fc_units!r}")
    if not isinstance(batch_norm, bool):
        raise ValueError(f"`batch_norm` must be True or False. Received: batch_norm={batch_norm!r}")
    is_twin = depth in _TWINS and wm == 1.0 and fc_units == VGG_FC and not batch_norm
    arch = f"vgg{depth}" if depth is not None else "vgg_custom"
    build, x = start(arch, locals(), twin=_TWINS[depth] if is_twin else None, default_size=SPEC.default_size,
                     min_size=2 ** len(blocks))
    # 224x224x3
    for b, (num_convs, width) in enumerate(blocks, start=1):
        for i in range(1, num_convs + 1):
            x = ConvBN(scale_width(width, wm), 3, padding="same", use_bn=batch_norm, name=f"block{b}_conv{i}")(x)
        x = keras.layers.MaxPooling2D(2, strides=2, name=f"block{b}_pool")(x)
        # VGG-16/19 at 224: block1 112x112x64, block2 56x56x128, block3 28x28x256,
        # block4 14x14x512, block5 7x7x512
    fc = [(f"fc{i}", scale_width(units, wm)) for i, units in enumerate(fc_units, start=1)]
    x = build.classifier(x, fc=fc)  # 25088 features into fc1 for VGG-16/19 at 224
    return build.finish(x)


@registered_builder("vgg16")
def VGG16Custom(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="vgg16",
    dropout=0.5,
    **kwargs,
):
    """VGG-16, configuration D (Simonyan & Zisserman, 2015): keras.applications.VGG16's twin.

    Blocks of [2, 2, 3, 3, 3] 3x3 convs, widths 64-128-256-512-512; 138,357,544 parameters.
    See `build_vgg` for the arguments (``width_multiplier``, ``fc_units``, ``batch_norm``
    pass through ``**kwargs``; changing them makes a non-twin network).

    Example:
        >>> VGG16Custom().count_params()
        138357544
    """
    return build_vgg(
        16, include_top=include_top, weights=weights, input_tensor=input_tensor, input_shape=input_shape,
        pooling=pooling, classes=classes, classifier_activation=classifier_activation, name=name,
        dropout=dropout, **kwargs,
    )


@registered_builder("vgg19")
def VGG19Custom(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="vgg19",
    dropout=0.5,
    **kwargs,
):
    """VGG-19, configuration E (Simonyan & Zisserman, 2015): keras.applications.VGG19's twin.

    Blocks of [2, 2, 4, 4, 4] 3x3 convs, widths 64-128-256-512-512; 143,667,240 parameters.
    (Note 004's table labelled "VGG16" with 16 convs is this layout.) See `build_vgg`.

    Example:
        >>> VGG19Custom().count_params()
        143667240
    """
    return build_vgg(
        19, include_top=include_top, weights=weights, input_tensor=input_tensor, input_shape=input_shape,
        pooling=pooling, classes=classes, classifier_activation=classifier_activation, name=name,
        dropout=dropout, **kwargs,
    )
