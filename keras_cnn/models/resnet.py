"""ResNet and its plain baseline (He, Zhang, Ren & Sun, 2016, "Deep Residual Learning for Image
Recognition").

A stem (7x7/2 conv + BN + ReLU, 3x3/2 max-pool), four stages of residual blocks (widths
64-128-256-512; the first block of stages 3-5 halves the resolution), global average pool and
the classifier. 224 -> stem 112 -> pool 56 -> conv2 56 -> conv3 28 -> conv4 14 -> conv5 7.
The blocks are `keras_cnn.layers.ResidualBlock`: ``a[l+2] = g(z[l+2] + a[l])``.
"""

from __future__ import annotations

import keras

from keras_cnn._validation import check_choice, check_fraction
from keras_cnn.layers.residual import BLOCK_KINDS, ResidualBlock
from keras_cnn.models._common import check_width_multiplier, scale_width, start
from keras_cnn.models.identity import registered_builder
from keras_cnn.models.specs import RESNET_DEPTHS, RESNET_WIDTHS, get_model_spec

# depth -> (block kind, blocks per stage conv2..conv5) (He et al., 2016, table 1).
STEMS = ("imagenet", "small")
MODEL_SHORTCUTS = ("auto", "projection", "none")
_TWINS = {50: "ResNet50", 101: "ResNet101", 152: "ResNet152"}

SPEC = get_model_spec("resnet50")  # the family's input size (resnet50)

# Per-layout settings of the convolutions, BN and the bottleneck's stride placement.
_LAYOUTS = {
    # keras.applications ResNet50/101/152 (the original Caffe model).
    True: dict(conv_bias=True, bn_epsilon=1.001e-5, bn_momentum=0.99, stride_in_1x1=True,
               kernel_initializer="glorot_uniform"),
    # torchvision ("ResNet v1.5"): no bias before BN, stride on the 3x3, He initialisation.
    False: dict(conv_bias=False, bn_epsilon=1e-5, bn_momentum=0.9, stride_in_1x1=False,
                kernel_initializer="he_normal"),
}


def _parse_depth(depth):
    """Return ``(kind, stage_depths, key)``; key is the RESNET_DEPTHS key or None."""
    if isinstance(depth, int) and not isinstance(depth, bool) and depth in RESNET_DEPTHS:
        kind, stages = RESNET_DEPTHS[depth]
        return kind, stages, depth
    ok = isinstance(depth, (tuple, list)) and len(depth) == 2 and depth[0] in BLOCK_KINDS
    if ok:
        stages = depth[1]
        ok = isinstance(stages, (tuple, list)) and len(stages) > 0 and all(
            isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in stages
        )
    if not ok:
        raise ValueError(
            f"`depth` must be one of {sorted(RESNET_DEPTHS)} or a (kind, stage_depths) pair with kind in "
            f"{list(BLOCK_KINDS)} and stage_depths positive ints, e.g. ('basic', (1, 1, 1)). Received: depth={depth!r}"
        )
    return depth[0], tuple(depth[1]), None


def build_resnet(
    depth=50,
    *,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
    dropout=0.0,
    width_multiplier=1.0,
    stem="imagenet",
    weight_decay=0.0,
    keras_layout=False,
    shortcut="auto",
    stage_widths=None,
):
    """A ResNet from its depth table (He et al., 2016, table 1).

    Layer names follow keras.applications: ``conv1_pad``, ``conv1_conv``, ``conv1_bn``,
    ``conv1_relu``, ``pool1_pad``, ``pool1_pool``, blocks ``conv{stage}_block{i}`` (a
    `ResidualBlock` each, whose sub-layers are ``conv{stage}_block{i}_1_conv`` ...),
    ``avg_pool`` and ``predictions``. With ``keras_layout=True`` and depth 50/101/152 the
    network is keras.applications' ResNet50/101/152 layer for layer and weight for weight, in
    the same order (``model.set_weights(keras_resnet.get_weights())`` ports them).

    Layouts: ``keras_layout=True``: conv biases, BN epsilon 1.001e-5, the stride of a bottleneck
    on its first 1x1, Glorot initialisation (the original Caffe model, as keras.applications).
    ``keras_layout=False`` (torchvision): no conv bias, BN epsilon 1e-5 (momentum 0.9, i.e.
    torchvision's 0.1), the stride on the 3x3 ("ResNet v1.5"), He initialisation.

    Deviations from the paper: projection shortcuts only where the shape changes (the paper's
    option B), done as 1x1 conv + BN; ``shortcut="projection"`` gives option C; option A
    (zero-padded identity) is not provided. ``stem="small"`` (CIFAR-style: one 3x3/1 conv, no
    max-pool, so 32x32 inputs keep 32 -> 32 -> 16 -> 8 -> 4) is not the paper's CIFAR net
    (which has 3 stages of 16-32-64); pass ``("basic", (n, n, n))`` and
    ``stage_widths=(16, 32, 64)`` for that.

    Args:
        depth: 18, 34, 50, 101 or 152, or ``(kind, stage_depths)`` with kind "basic" or
            "bottleneck", e.g. ``("basic", (1, 1, 1, 1))``. Default 50.
        include_top: global average pool + classifier. Default True.
        weights: None, "imagenet" (keras-layout 50/101/152 twins only) or a path. Default None.
        input_tensor: optional Keras tensor to use as the input. Default None.
        input_shape: optional (H, W, C); default (224, 224, 3) for the ImageNet stem,
            (32, 32, 3) for the small stem. At least 32 (ImageNet stem) or 8 (small stem) for
            four stages.
        pooling: None, "avg" or "max" global pooling when ``include_top=False``. Default None.
        classes: number of classes. Default 1000.
        classifier_activation: activation of the output layer. Default "softmax".
        name: model name. Default "resnet{depth}" ("plain34" is `Plain34`'s), or "resnet_custom".
        dropout: dropout rate before the classifier (not in the paper). Default 0.0.
        width_multiplier: scales every width (stem and stages). Default 1.0.
        stem: "imagenet" (7x7/2 conv + 3x3/2 max-pool) or "small" (3x3/1 conv). Default "imagenet".
        weight_decay: SGD-style weight decay lambda on every conv and dense kernel, added as
            ``keras.regularizers.L2(lambda / 2)`` (gradient ``lambda * w``; the paper: 1e-4).
            Default 0.0 (none). Do not combine with an optimizer's own weight decay.
        keras_layout: see Layouts. Default False.
        shortcut: "auto" (identity, or projection where the shape changes), "projection" (always)
            or "none" (plain network: no shortcuts). Default "auto".
        stage_widths: block widths per stage (bottleneck width for bottleneck blocks).
            Default 64, 128, 256, 512 (doubling per stage).

    Returns:
        A `keras.Model`.

    Example:
        >>> model = build_resnet(("basic", (1, 1, 1, 1)), stem="small", width_multiplier=0.25,
        ...                      input_shape=(32, 32, 3), classes=10)
        >>> model.get_layer("conv5_block1").output.shape
        (None, 4, 4, 128)
    """
    kind, stage_depths, key = _parse_depth(depth)
    wm = check_width_multiplier(width_multiplier)
    check_choice("stem", stem, STEMS)
    check_choice("shortcut", shortcut, MODEL_SHORTCUTS)
    weight_decay = check_fraction("weight_decay", weight_decay)
    if not isinstance(keras_layout, bool):
        raise ValueError(f"`keras_layout` must be True or False. Received: keras_layout={keras_layout!r}")
    if stage_widths is None:
        stage_widths = tuple(64 * 2**i for i in range(len(stage_depths)))
        default_widths = True
    else:
        ok = isinstance(stage_widths, (tuple, list)) and len(stage_widths) == len(stage_depths) and all(
            isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in stage_widths
        )
        if not ok:
            raise ValueError(
                f"`stage_widths` must be {len(stage_depths)} positive ints, one per stage. "
                f"Received: stage_widths={stage_widths!r}"
            )
        stage_widths = tuple(stage_widths)
        default_widths = stage_widths == RESNET_WIDTHS
    is_twin = (
        key in _TWINS and keras_layout and wm == 1.0 and stem == "imagenet" and shortcut == "auto" and default_widths
    )
    if key is None:
        arch = "resnet_custom"
    elif key == 34 and shortcut == "none":
        arch = "plain34"
    else:
        arch = f"resnet{key}"
    strided_stages = len(stage_depths) - 1
    default_size, min_size = (SPEC.default_size, 4 * 2**strided_stages) if stem == "imagenet" else (32, 2**strided_stages)
    build, x = start(arch, locals(), twin=_TWINS[key] if is_twin else None, default_size=default_size, min_size=min_size)
    layout = _LAYOUTS[keras_layout]
    regularizer = keras.regularizers.L2(weight_decay / 2) if weight_decay else None
    stem_width = scale_width(stage_widths[0], wm)

    # Stem. ImageNet: 224 -> conv1 112x112x64 -> pool1 56x56x64. Small: 32 -> 32x32x64.
    if stem == "imagenet":
        x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(x)
        kernel, strides, padding = 7, 2, "valid"
    else:
        kernel, strides, padding = 3, 1, "same"
    x = keras.layers.Conv2D(
        stem_width, kernel, strides=strides, padding=padding, use_bias=layout["conv_bias"],
        kernel_initializer=layout["kernel_initializer"], kernel_regularizer=regularizer, name="conv1_conv",
    )(x)
    x = keras.layers.BatchNormalization(
        epsilon=layout["bn_epsilon"], momentum=layout["bn_momentum"], name="conv1_bn"
    )(x)
    x = keras.layers.Activation("relu", name="conv1_relu")(x)
    if stem == "imagenet":
        x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
        x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)

    # Stages conv2..conv5; the first block of every stage but conv2 has stride 2.
    # ImageNet stem at 224: conv2 56x56, conv3 28x28, conv4 14x14, conv5 7x7
    # (x64/128/256/512 basic, x256/512/1024/2048 bottleneck).
    for s, (blocks, width) in enumerate(zip(stage_depths, stage_widths), start=2):
        for i in range(1, blocks + 1):
            x = ResidualBlock(
                scale_width(width, wm),
                kind=kind,
                strides=2 if (i == 1 and s > 2) else 1,
                shortcut=shortcut,
                kernel_regularizer=regularizer,
                name=f"conv{s}_block{i}",
                **layout,
            )(x)

    x = build.classifier(x, regularizer=regularizer)
    return build.finish(x)


def _variant(depth, include_top, weights, input_tensor, input_shape, pooling, classes,
             classifier_activation, name, dropout, kwargs, **fixed):
    for key, value in fixed.items():
        if key in kwargs and kwargs[key] != value:
            raise ValueError(f"`{key}` is fixed to {value!r} for {name}. Received: {key}={kwargs[key]!r}")
        kwargs[key] = value
    return build_resnet(
        depth, include_top=include_top, weights=weights, input_tensor=input_tensor, input_shape=input_shape,
        pooling=pooling, classes=classes, classifier_activation=classifier_activation, name=name,
        dropout=dropout, **kwargs,
    )


@registered_builder("resnet18")
def ResNet18(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None, classes=1000,
             classifier_activation="softmax", name="resnet18", dropout=0.0, **kwargs):
    """ResNet-18 (He et al., 2016), torchvision layout: 11,689,512 trainable parameters.

    Basic blocks [2, 2, 2, 2], no conv bias, BN epsilon 1e-5. (The parameter figure is
    torchvision's, which counts the BN scale and offset but not the moving statistics;
    `count_params()` adds 9,600 non-trainable moving means and variances.) ``**kwargs`` go to
    `build_resnet` (``width_multiplier``, ``stem``, ``weight_decay``, ``keras_layout``, ...).

    Example:
        >>> model = ResNet18(include_top=False, input_shape=(64, 64, 3), pooling="avg")
    """
    kwargs.setdefault("keras_layout", False)
    return _variant(18, include_top, weights, input_tensor, input_shape, pooling, classes,
                    classifier_activation, name, dropout, kwargs)


@registered_builder("resnet34")
def ResNet34(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None, classes=1000,
             classifier_activation="softmax", name="resnet34", dropout=0.0, **kwargs):
    """ResNet-34 (He et al., 2016), torchvision layout: 21,797,672 trainable parameters.

    Basic blocks [3, 4, 6, 3], no conv bias, BN epsilon 1e-5. ``**kwargs`` go to `build_resnet`.

    Example:
        >>> model = ResNet34(include_top=False, input_shape=(64, 64, 3))
    """
    kwargs.setdefault("keras_layout", False)
    return _variant(34, include_top, weights, input_tensor, input_shape, pooling, classes,
                    classifier_activation, name, dropout, kwargs)


@registered_builder("plain34")
def Plain34(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None, classes=1000,
            classifier_activation="softmax", name="plain34", dropout=0.0, **kwargs):
    """The 34-layer plain network of He et al. (2016, figure 3 middle; table 2 "plain").

    ResNet-34 without any shortcut (``shortcut="none"``): the same 3x3 stacks and strided first
    convs, no identity additions and no projections; the degradation-problem baseline of the
    paper (deeper plain nets train worse). Parameters: ResNet-34's minus its three projection
    shortcuts (21,623,848 trainable). ``**kwargs`` go to `build_resnet`.

    Example:
        >>> model = Plain34(include_top=False, input_shape=(64, 64, 3))
    """
    kwargs.setdefault("keras_layout", False)
    return _variant(34, include_top, weights, input_tensor, input_shape, pooling, classes,
                    classifier_activation, name, dropout, kwargs, shortcut="none")


@registered_builder("resnet50")
def ResNet50Custom(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                   classes=1000, classifier_activation="softmax", name="resnet50", dropout=0.0, **kwargs):
    """ResNet-50 (He et al., 2016): keras.applications.ResNet50's twin, 25,636,712 parameters.

    Bottleneck blocks [3, 4, 6, 3], conv biases, BN epsilon 1.001e-5, stride on the first 1x1.
    ``keras_layout=False`` gives torchvision's ResNet-50 instead. ``**kwargs`` go to `build_resnet`.

    Example:
        >>> ResNet50Custom().count_params()
        25636712
    """
    kwargs.setdefault("keras_layout", True)
    return _variant(50, include_top, weights, input_tensor, input_shape, pooling, classes,
                    classifier_activation, name, dropout, kwargs)


@registered_builder("resnet101")
def ResNet101Custom(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                    classes=1000, classifier_activation="softmax", name="resnet101", dropout=0.0, **kwargs):
    """ResNet-101 (He et al., 2016): keras.applications.ResNet101's twin, 44,707,176 parameters.

    Bottleneck blocks [3, 4, 23, 3]; keras layout (see `ResNet50Custom`).

    Example:
        >>> ResNet101Custom().count_params()
        44707176
    """
    kwargs.setdefault("keras_layout", True)
    return _variant(101, include_top, weights, input_tensor, input_shape, pooling, classes,
                    classifier_activation, name, dropout, kwargs)


@registered_builder("resnet152")
def ResNet152Custom(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                    classes=1000, classifier_activation="softmax", name="resnet152", dropout=0.0, **kwargs):
    """ResNet-152 (He et al., 2016): keras.applications.ResNet152's twin, 60,419,944 parameters.

    Bottleneck blocks [3, 8, 36, 3]; keras layout (see `ResNet50Custom`).

    Example:
        >>> ResNet152Custom().count_params()
        60419944
    """
    kwargs.setdefault("keras_layout", True)
    return _variant(152, include_top, weights, input_tensor, input_shape, pooling, classes,
                    classifier_activation, name, dropout, kwargs)
