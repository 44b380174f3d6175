"""Inception-v2 as laid out in Table 1 of "Rethinking the Inception Architecture".

Reference: Szegedy et al., "Rethinking the Inception Architecture for Computer Vision",
CVPR 2016 (https://arxiv.org/abs/1512.00567), Table 1 and Figures 5, 6, 7, 10.

Layout (299x299x3 input, shapes after each row)::

    stem   conv 3x3/2 32 (valid)   149x149x32     conv 3x3/1 32 (valid)  147x147x32
           conv 3x3/1 64 (same)    147x147x64     max-pool 3x3/2          73x73x64
           conv 3x3/1 80 (valid)    71x71x80      conv 3x3/2 192 (valid)  35x35x192
           conv 3x3/1 288 (same)    35x35x288
    3 x Figure 5 modules (5x5 as two 3x3)          35x35x288   inception_a1..a3
    grid reduction (Figure 10)                     17x17x768   reduction_a
    5 x Figure 6 modules (7x7 as 1x7 + 7x1)        17x17x768   inception_b1..b5
    grid reduction                                  8x8x1280   reduction_b
    2 x Figure 7 modules (expanded filter bank)     8x8x2048   inception_c1..c2
    global average pool, dropout, linear, softmax

Every factorised branch is a `keras_cnn.layers.FactorizedConv` step of its `InceptionBlock`:
the 5x5 of the 35x35 modules ("stacked"), each 7x7 of the 17x17 modules and of reduction_b
("asymmetric", 1x7 then 7x1), and the 1x3 | 3x1 banks of the 8x8 modules ("expanded"). The
stride-2 convs of the grid reductions stay plain convs.

Channel choices and deviations (the paper gives the grid sizes and block kinds, not the
branch widths):
    * Branch widths follow keras.applications' Inception-v3 (the released network of the same
      paper): 35x35 modules 64 | 48->64 | 64->96->96 | pool->64 = 288 channels; 17x17 modules
      192 | c7->c7->192 | c7 x4 -> 192 | pool->192 = 768 with c7 = 128, 160, 160, 160, 192;
      8x8 modules 320 | 384->(384|384) | 448->384->(384|384) | pool->192 = 2048.
    * Table 1 feeds 35x35x288 into the 35x35 modules and 17x17x768 / 8x8x1280 into the next
      groups, while Figure 10's reduction example goes 35x35x320 -> 17x17x640; we follow
      Table 1: every module keeps its grid's width (288 / 768 / 2048), and the reductions
      output 384 + 96 + 288 = 768 and 320 + 192 + 768 = 1280 (keras' mixed3 and mixed8).
    * Unlike keras' v3 (which keeps a true 5x5 branch next to the double 3x3 in mixed0-2),
      the 35x35 modules are Figure 5 exactly: the 5x5 is two 3x3 (``five_by_five`` changes it).
      The 7x7 factorisations are 1x7 then 7x1 throughout (keras starts some with 7x1).
    * Pool branches use average pooling, reductions max pooling (as keras); BN (no conv
      bias, ``scale=False``, epsilon 1e-3) after every conv, as the v3 release.
    * Dropout 0.2 before the classifier (TF-slim's keep probability 0.8); the paper's table
      has none. One auxiliary head (BN, on the last 17x17 module) when ``aux_logits``.
"""

from __future__ import annotations

from keras_cnn._validation import check_choice
from keras_cnn.layers.inception import (
    FIVE_BY_FIVE,
    AuxiliaryClassifier,
    GridReduction,
    InceptionBlock,
    apply_conv_stem,
    asymmetric_branches,
    expanded_branches,
    factorized_step,
    scale_branches,
    v1_branches,
)
from keras_cnn.models import _common
from keras_cnn.models.identity import registered_builder
from keras_cnn.models.specs import get_model_spec

SPEC = get_model_spec("inception_v2")
DEFAULT_SIZE = SPEC.default_size
MIN_SIZE = SPEC.min_size  # the two valid 3x3/2 reductions need a 35-grid of at least 7
MIN_SIZE_SMALL_STEM = 7

BN = dict(use_bn=True, use_bias=False, bn_scale=False, bn_epsilon=1e-3)

STEMS = {
    # Table 1. 299x299x3 -> 35x35x288
    "imagenet": ((32, 3, 2, "valid"), (32, 3, 1, "valid"), (64, 3, 1, "same"), "pool",
                 (80, 3, 1, "valid"), (192, 3, 2, "valid"), (288, 3, 1, "same")),
    # CIFAR-style: full resolution into the first grid. HxWx3 -> HxWx288
    "small": ((32, 3, 1, "same"), (64, 3, 1, "same"), (288, 3, 1, "same")),
}

# Grid -> (name prefix, module kind, one width row per module, reduction before the grid).
# Rows: "factorized" (c1, r3, c3, r5, c5, pool_proj); "asymmetric" (c1, r7, c7, rd7, cd7,
# pool_proj); "expanded" (c1, r3, c3, rd3, md3, cd3, pool_proj).
INCEPTION_V2_GRIDS = (
    ("a", "factorized", ((64, 48, 64, 64, 96, 64),) * 3, None),  # 35x35x288
    (
        "b",
        "asymmetric",
        tuple((192, c7, 192, c7, 192, 192) for c7 in (128, 160, 160, 160, 192)),
        [[(384, 3)], [(64, 1), (96, 3), (96, 3)]],  # 35x35x288 -> 17x17x768
    ),  # 17x17x768
    (
        "c",
        "expanded",
        ((320, 384, 384, 448, 384, 384, 192),) * 2,
        [[(192, 1), (320, 3)], [(192, 1), factorized_step(192, 7, "asymmetric"), (192, 3)]],  # -> 8x8x1280
    ),  # 8x8x2048
)


def _module_branches(kind, row, five_by_five):
    if kind == "factorized":
        return v1_branches(*row, five_by_five=five_by_five, pool="avg")
    if kind == "asymmetric":
        return asymmetric_branches(*row, n=7, pool="avg")
    return expanded_branches(*row, pool="avg")


def _check_modules_per_stage(value):
    ok = isinstance(value, (list, tuple)) and len(value) == 3
    ok = ok and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    if not ok:
        raise ValueError(
            "`modules_per_stage` must be three positive ints (modules at the 35, 17 and 8 px grids; "
            f"the paper has (3, 5, 2)). Received: modules_per_stage={value!r}"
        )
    return tuple(value)


@registered_builder("inception_v2")
def InceptionV2(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="inception_v2",
    dropout=0.2,
    aux_logits=False,
    width_multiplier=1.0,
    modules_per_stage=None,
    five_by_five="stacked",
    stem="imagenet",
):
    """Inception-v2 of "Rethinking the Inception Architecture for Computer Vision" (Table 1).

    Szegedy et al., CVPR 2016. Stem, 3 Figure-5 modules at 35x35, a grid reduction, 5
    asymmetric (n=7) Figure-6 modules at 17x17, a grid reduction, 2 expanded Figure-7 modules
    at 8x8, global average pool and classifier; batch normalisation after every conv. See the
    module docstring for the channel choices and the deviations.

    Args:
        include_top: include the classifier. Default True.
        weights: None or the path to a weights file. Default None.
        input_tensor: optional Keras tensor to use as the input. Default None.
        input_shape: optional (H, W, C); default (299, 299, 3). At least 75x75 with
            ``stem="imagenet"``, 7x7 with ``stem="small"``.
        pooling: None, "avg" or "max" when ``include_top=False``. Default None.
        classes: classifier units. Default 1000.
        classifier_activation: activation of the classifier (and auxiliary head).
            Default "softmax".
        name: model name. Default "inception_v2".
        dropout: dropout before the classifier. Default 0.2.
        aux_logits: add the BN auxiliary head on the last 17x17 module; the model then returns
            ``{"predictions", "aux1"}``. Requires ``include_top``. Default False.
        width_multiplier: scales every conv's channels (rounded, at least 1). Default 1.0.
        modules_per_stage: modules at the 35 / 17 / 8 px grids. Default None = (3, 5, 2);
            extra modules repeat the grid's last width row.
        five_by_five: the 5x5 branch of the 35x35 modules: "stacked" (two 3x3, Figure 5),
            "plain" (one 5x5, GoogLeNet) or "asymmetric" (1x5 then 5x1). Default "stacked".
        stem: "imagenet" (Table 1, stride 8) or "small" (three 3x3 convs at stride 1, for
            32x32 inputs). Default "imagenet".

    Returns:
        A `keras.Model`.

    Example:
        >>> model = InceptionV2(input_shape=(32, 32, 3), classes=10, stem="small",
        ...                     width_multiplier=0.125)
    """
    build, x = _common.start("inception_v2", locals(), min_size=MIN_SIZE if stem == "imagenet" else MIN_SIZE_SMALL_STEM)
    _common.check_aux(aux_logits, include_top, "InceptionV2")
    width_multiplier = _common.check_width_multiplier(width_multiplier)
    modules_per_stage = _check_modules_per_stage((3, 5, 2) if modules_per_stage is None else modules_per_stage)
    check_choice("five_by_five", five_by_five, FIVE_BY_FIVE)
    check_choice("stem", stem, tuple(STEMS))

    def w(channels):
        return _common.scale_width(channels, width_multiplier)

    x = apply_conv_stem(x, STEMS[stem], width_multiplier=width_multiplier, **BN)  # 35x35x288 at 299 px
    aux_outputs = {}
    for (grid, kind, rows, reduction), n in zip(INCEPTION_V2_GRIDS, modules_per_stage):
        if reduction is not None:
            # 35 -> 17 (reduction_a), 17 -> 8 (reduction_b); the max-pool keeps the channels
            x = GridReduction(
                scale_branches(reduction, width_multiplier), pool="max", name=f"reduction_{chr(ord(grid) - 1)}", **BN
            )(x)
        for i in range(n):
            row = rows[min(i, len(rows) - 1)]
            branches = scale_branches(_module_branches(kind, row, five_by_five), width_multiplier)
            x = InceptionBlock(branches, name=f"inception_{grid}{i + 1}", **BN)(x)
        if aux_logits and grid == "b":
            aux_outputs["aux1"] = AuxiliaryClassifier.inception_v3(
                classes,
                activation=classifier_activation,
                convs=((w(128), 1), (w(768), 5, 1, "valid")),
                name="aux1",
                **BN,
            )(x)
    # 8x8x2048 at 299 px

    x = build.classifier(x)
    return build.finish(x, aux_outputs)
