"""Inception-v3, layer for layer the twin of ``keras.applications.InceptionV3``.

Reference: Szegedy et al., "Rethinking the Inception Architecture for Computer Vision",
CVPR 2016 (https://arxiv.org/abs/1512.00567); the architecture is keras.applications'
(itself a port of the TF-slim / released checkpoint), not the paper's Table 1 (for that see
`keras_cnn.models.inception_v2`).

keras writes mixed0..mixed10 out by hand; here they are a table (`INCEPTION_V3_BLOCKS`) of
`InceptionBlock` / `GridReduction` specifications that one loop walks. Every factorised branch
is a `FactorizedConv` step: the double 3x3 of mixed0-2 (a stacked 5x5, Figure 5), the 1x7 / 7x1
chains of mixed4-8 (asymmetric 7x7s, Figure 6) and the 1x3 | 3x1 banks of mixed9-10 (expanded,
Figure 7). With 1000 classes the model has 23,851,784 parameters with the top (21,802,784
without), the same as keras.

Weight-porting contract (`keras_cnn.weights.port_weights` pairs the leaves by order, kind by
kind; no Inception-specific table):
    * Every keras ``conv2d_bn(x, filters, rows, cols, ...)`` call is one `ConvBN` here (a step
      of a block, or a factor of a `FactorizedConv` step): Conv2D (no bias) ->
      BatchNormalization(scale=False, epsilon=1e-3) -> ReLU.
    * Inside each block the leaf layers are created in keras' ``conv2d_bn`` call order
      (branch by branch, top to bottom, factor by factor; the second 7x7 of mixed4-7 starts
      with the 7x1, ``first_factor="nx1"``; in mixed9/mixed10 the 1x3 before the 3x1), and the
      branches are concatenated in keras' order. So the n-th Conv2D (BatchNormalization)
      of this model, in ``model.weights`` order, is the n-th Conv2D (BatchNormalization)
      that keras' ``InceptionV3`` *creates* -- keras' auto names conv2d, conv2d_1, ...,
      conv2d_93 (batch_normalization, ..._93), which `port_weights` reads as creation order
      (keras' own ``model.layers`` are in topological order, which differs inside a block).
    * ``predictions`` (Dense) is the same layer; there is no other weighted layer.
    * Names here: stem_conv1..stem_conv5, stem_pool1/2, mixed0..mixed10 (the blocks; keras'
      concatenations of the same names), avg_pool, predictions. Step ``s`` of branch ``b`` of
      block ``mixedK`` is ``mixedK_branch{b}_{s}`` (a `ConvBN`: Conv2D ``..._conv``, BN
      ``..._bn``; or a `FactorizedConv` whose factors are ``mixedK_branch{b}_{s}_1``, ``_2``).

Additions over keras: ``aux_logits`` (the BN auxiliary head of the paper on mixed7, the last
17x17 grid: avg-pool 5x5/3, 1x1 conv 128, 5x5 conv 768, FC; as torchvision's ``InceptionAux``),
``dropout`` before the classifier (default 0.0 = keras; it adds no parameters), and
``keras_layout=False``: torchvision's / timm's ``inception_v3``, the same layers with BN gamma
(momentum 0.9, PyTorch's 0.1) and branch average pools that count the zero padding
(``pool_step("avg", count_include_pad=True)``), into which timm's ImageNet weights load
(`keras_cnn.weights.timm`; torchvision's file has the auxiliary head too).
"""

from __future__ import annotations

from keras_cnn.layers.inception import (
    AuxiliaryClassifier,
    GridReduction,
    InceptionBlock,
    apply_conv_stem,
    expanded_branches,
    factorized_step,
    pool_step,
)
from keras_cnn.models import _common
from keras_cnn.models.identity import registered_builder
from keras_cnn.models.specs import get_model_spec

SPEC = get_model_spec("inception_v3")
DEFAULT_SIZE = SPEC.default_size
MIN_SIZE = SPEC.min_size

# The two layouts of the same network (`InceptionV3Custom`'s ``keras_layout``):
# keras.applications' conv2d_bn: no conv bias, BN without gamma (scale=False), epsilon 1e-3, Keras'
# momentum; its branch average pools do not count the zero padding ("same").
# torchvision's / timm's BasicConv2d: no conv bias, BN with gamma, epsilon 1e-3, momentum 0.9 (PyTorch's
# 0.1); its avg_pool2d(3, stride=1, padding=1) counts the padding.
KERAS_BN = dict(use_bn=True, use_bias=False, bn_scale=False, bn_epsilon=1e-3)
TORCHVISION_BN = dict(use_bn=True, use_bias=False, bn_scale=True, bn_epsilon=1e-3, bn_momentum=0.9)

# Stem (`apply_conv_stem`): (filters, kernel, strides, padding) convs and "pool" (max 3x3/2 valid).
# 299x299x3 -> 149x149x32 -> 147x147x32 -> 147x147x64 -> 73x73x64 -> 73x73x80 -> 71x71x192
# -> 35x35x192.
INCEPTION_V3_STEM = (
    (32, 3, 2, "valid"),
    (32, 3, 1, "valid"),
    (64, 3, 1, "same"),
    "pool",
    (80, 1, 1, "valid"),
    (192, 3, 1, "valid"),
    "pool",
)


def _block_35(pool_proj, avg):
    """mixed0-2 (35x35): 1x1 64 | 1x1 48 -> 5x5 64 | 1x1 64 -> [3x3 96 -> 3x3 96] | avg -> 1x1.

    The bracket is a 5x5 factorised into two stacked 3x3 (keras' ``branch3x3dbl``).
    """
    return [[(64, 1)], [(48, 1), (64, 5)], [(64, 1), factorized_step(96, 5, "stacked")], [avg, (pool_proj, 1)]]


def _block_17(c7, avg):
    """mixed4-7 (17x17): keras' 7x7 factorisations, each an asymmetric `FactorizedConv`.

    1x1 192 | 1x1 c7 -> [1x7 c7 -> 7x1 192] | 1x1 c7 -> [7x1 c7 -> 1x7 c7] -> [7x1 c7 -> 1x7 192]
    | avg -> 1x1 192: keras starts the double branch's factorisations with the 7x1.
    """
    return [
        [(192, 1)],
        [(c7, 1), factorized_step(192, 7, "asymmetric", intermediate_filters=c7)],
        [
            (c7, 1),
            factorized_step(c7, 7, "asymmetric", first_factor="nx1"),
            factorized_step(192, 7, "asymmetric", intermediate_filters=c7, first_factor="nx1"),
        ],
        [avg, (192, 1)],
    ]


def _block_8(avg):
    """mixed9-10 (8x8): expanded filter bank, 320 + 2x384 + 2x384 + 192 = 2048 channels."""
    return expanded_branches(320, 384, 384, 448, 384, 384, 192, pool=avg)


# Grid reductions (stride-2 last convs, valid padding; max-pool branch appended last).
_REDUCTION_35_TO_17 = [[(384, 3)], [(64, 1), (96, 3), (96, 3)]]  # + pool: 384 + 96 + 288 = 768
_REDUCTION_17_TO_8 = [  # + pool: 320 + 192 + 768 = 1280
    [(192, 1), (320, 3)],
    [(192, 1), factorized_step(192, 7, "asymmetric"), (192, 3)],
]


def inception_v3_blocks(keras_layout=True):
    """name -> (kind, branches) of mixed0..mixed10; the layouts differ only in the average pools.

    Output shapes at 299 px in the comments.
    """
    avg = "avg" if keras_layout else pool_step("avg", count_include_pad=True)
    return {
        "mixed0": ("block", _block_35(32, avg)),  # 35x35x256
        "mixed1": ("block", _block_35(64, avg)),  # 35x35x288
        "mixed2": ("block", _block_35(64, avg)),  # 35x35x288
        "mixed3": ("reduction", _REDUCTION_35_TO_17),  # 17x17x768
        "mixed4": ("block", _block_17(128, avg)),  # 17x17x768
        "mixed5": ("block", _block_17(160, avg)),
        "mixed6": ("block", _block_17(160, avg)),
        "mixed7": ("block", _block_17(192, avg)),  # 17x17x768 (auxiliary head here)
        "mixed8": ("reduction", _REDUCTION_17_TO_8),  # 8x8x1280
        "mixed9": ("block", _block_8(avg)),  # 8x8x2048
        "mixed10": ("block", _block_8(avg)),  # 8x8x2048
    }


INCEPTION_V3_BLOCKS = inception_v3_blocks()
AUX_AFTER = "mixed7"


@registered_builder("inception_v3")
def InceptionV3Custom(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="inception_v3",
    dropout=0.0,
    aux_logits=False,
    keras_layout=True,
):
    """Inception-v3, the same network as ``keras.applications.InceptionV3`` (or torchvision's).

    Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", CVPR 2016.
    Same layers, parameter count (23,851,784 with the top), BN settings (no conv bias,
    ``scale=False``, epsilon 1e-3), branch and concatenation order, and block names
    "mixed0".."mixed10" as keras, so keras' weights port one to one with
    `keras_cnn.weights.port_weights` (see the module docstring for the mapping). Default input
    299x299x3, minimum 75.

    Args:
        include_top: include the classifier. Default True.
        weights: None, "imagenet" (keras' file; timm's torchvision file with ``keras_layout=False``), a
            weights name (`keras_cnn.models.list_weights("inception_v3")`), or a file path.
            Default None.
        input_tensor: optional Keras tensor to use as the input. Default None.
        input_shape: optional (H, W, C), at least 75x75; default (299, 299, 3).
        pooling: None, "avg" or "max" when ``include_top=False``. Default None.
        classes: classifier units. Default 1000.
        classifier_activation: activation of the classifier (and auxiliary head).
            Default "softmax".
        name: model name. Default "inception_v3".
        dropout: dropout before the classifier; keras has none. Default 0.0.
        aux_logits: add the BN auxiliary classifier on mixed7; the model then returns
            ``{"predictions", "aux1"}``. Requires ``include_top``. Default False.
        keras_layout: True: keras.applications' layout (BN without gamma, branch average pools
            that exclude the zero padding), the twin of ``keras.applications.InceptionV3``.
            False: torchvision's / timm's ``inception_v3`` (BN with gamma, momentum 0.9 as
            PyTorch's 0.1, average pools that count the padding), which timm's ImageNet weights
            (``weights="timm:inception_v3.tv_in1k"``, aux head included; ``"imagenet"`` means
            those) need: 23,834,568 trainable parameters with the top, 27,161,264 with
            ``aux_logits``, as timm counts them. Default True.

    Returns:
        A `keras.Model`.

    Example:
        >>> model = InceptionV3Custom(include_top=False, input_shape=(75, 75, 3), pooling="avg")
        >>> model.output.shape
        (None, 2048)
    """
    if not isinstance(keras_layout, bool):
        raise ValueError(f"`keras_layout` must be True or False. Received: keras_layout={keras_layout!r}")
    build, x = _common.start("inception_v3", locals(), twin="InceptionV3" if keras_layout else None)
    _common.check_aux(aux_logits, include_top, "InceptionV3Custom")
    bn = KERAS_BN if keras_layout else TORCHVISION_BN

    x = apply_conv_stem(x, INCEPTION_V3_STEM, **bn)  # 35x35x192
    aux_outputs = {}
    for block_name, (kind, branches) in inception_v3_blocks(keras_layout).items():
        if kind == "reduction":
            x = GridReduction(branches, pool="max", name=block_name, **bn)(x)
        else:
            x = InceptionBlock(branches, name=block_name, **bn)(x)
        if aux_logits and block_name == AUX_AFTER:
            aux_outputs["aux1"] = AuxiliaryClassifier.inception_v3(
                classes, activation=classifier_activation, name="aux1", **bn
            )(x)
    # 8x8x2048 at 299 px

    x = build.classifier(x)
    return build.finish(x, aux_outputs)
