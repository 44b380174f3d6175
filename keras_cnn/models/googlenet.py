"""GoogLeNet (Inception-v1).

Reference: Szegedy et al., "Going Deeper with Convolutions", CVPR 2015
(https://arxiv.org/abs/1409.4842), Table 1 and Figure 3.

The network is a table: `GOOGLENET_MODULES` holds every module's
``(c1, r3, c3, r5, c5, pool_proj)`` row and `GOOGLENET_STAGES` groups them by grid size;
`GoogLeNet` walks the table. With the defaults (224x224 input, true 5x5 convolutions,
conv biases, no batch normalisation) the model has exactly 6,998,552 parameters without the
auxiliary heads.

Deviations from the paper:
    * Local response normalisation (after conv1 and conv2) is omitted, as in torchvision and
      most re-implementations; it has no parameters and was dropped by the later Inception
      papers. ``use_bn=True`` puts batch normalisation after every conv instead.
    * Max-pools use "same" padding so the grid is exactly 112 / 56 / 28 / 14 / 7 at 224 px.
    * The final 7x7 average pool is a global average pool (identical at 224 px, and it lets
      other input sizes work).
    * The auxiliary heads clip their 5x5 pooling window to the grid at small inputs
      (see `keras_cnn.layers.AuxiliaryClassifier`).
"""

from __future__ import annotations

import keras

from keras_cnn._validation import check_choice
from keras_cnn.layers.conv import ConvBN
from keras_cnn.layers.inception import FIVE_BY_FIVE, AuxiliaryClassifier, InceptionBlock
from keras_cnn.models import _common
from keras_cnn.models.identity import registered_builder
from keras_cnn.models.specs import get_model_spec

# (c1, r3, c3, r5, c5, pool_proj): 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | 3x3 max-pool -> 1x1.
GOOGLENET_MODULES = {
    "3a": (64, 96, 128, 16, 32, 32),  # 28x28x192 -> 28x28x256
    "3b": (128, 128, 192, 32, 96, 64),  # -> 28x28x480
    "4a": (192, 96, 208, 16, 48, 64),  # 14x14x480 -> 14x14x512
    "4b": (160, 112, 224, 24, 64, 64),  # -> 512
    "4c": (128, 128, 256, 24, 64, 64),  # -> 512
    "4d": (112, 144, 288, 32, 64, 64),  # -> 528
    "4e": (256, 160, 320, 32, 128, 128),  # -> 832
    "5a": (256, 160, 320, 32, 128, 128),  # 7x7x832 -> 7x7x832
    "5b": (384, 192, 384, 48, 128, 128),  # -> 7x7x1024
}

# Stage (grid) -> the table's modules, in order. A max-pool 3x3/2 separates stages.
GOOGLENET_STAGES = {"3": ("3a", "3b"), "4": ("4a", "4b", "4c", "4d", "4e"), "5": ("5a", "5b")}

STEMS = ("imagenet", "small")
SPEC = get_model_spec("googlenet")
DEFAULT_SIZE = SPEC.default_size
# Total stride 32: 32 px is the smallest input whose last grid is a genuine 1x1 (with "same"
# padding smaller inputs would still run, but every later stage would see a single pixel).
MIN_SIZE = SPEC.min_size
# The "small" stem has total stride 4 (two max-pools between stages); 8x8 digits still give a
# 2x2 last grid.
MIN_SIZE_SMALL_STEM = 8

# Feature taps (registry): stage -> layer whose output ends it (grid at 224 px in comments).

def _module_rows(modules_per_stage):
    """[(stage, [(key, row), ...]), ...] for the requested number of modules per stage.

    A stage with fewer modules than the paper takes its first ones; more modules repeat the
    stage's last row (named on with the next letters: 4f, 4g, ...).
    """
    out = []
    for (stage, keys), n in zip(GOOGLENET_STAGES.items(), modules_per_stage):
        rows = []
        for i in range(n):
            key = f"{stage}{chr(ord('a') + i)}"
            rows.append((key, GOOGLENET_MODULES[keys[min(i, len(keys) - 1)]]))
        out.append((stage, rows))
    return out


def _check_modules_per_stage(value):
    ok = isinstance(value, (list, tuple)) and len(value) == 3
    ok = ok and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 26 for v in value)
    if not ok:
        raise ValueError(
            "`modules_per_stage` must be three ints in [1, 26] (modules at the 28, 14 and 7 px grids; "
            f"the paper has (2, 5, 2)). Received: modules_per_stage={value!r}"
        )
    return tuple(value)


def _check_positive_number(arg, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"`{arg}` must be a number > 0. Received: {arg}={value!r}")
    return float(value)


@registered_builder("googlenet")
def GoogLeNet(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="googlenet",
    *,
    dropout=0.4,
    aux_logits=False,
    width_multiplier=1.0,
    modules_per_stage=None,
    five_by_five="plain",
    reduction_ratio=1.0,
    use_bn=False,
    stem="imagenet",
):
    """GoogLeNet (Inception-v1) as in the paper, keras.applications-style, with the structure
    knobs used for tuning (their defaults build the paper's network: 224x224x3 input, 6,998,552
    parameters for 1000 classes without auxiliary heads; no LRN, see the module docstring).

    Szegedy et al., "Going Deeper with Convolutions", CVPR 2015. Stem (7x7/2 conv, max-pool,
    1x1 + 3x3 convs, max-pool), then 2 / 5 / 2 Inception modules at the 28 / 14 / 7 px grids
    with max-pools between, global average pool, dropout 0.4 and a softmax classifier.
    Auxiliary classifiers sit on the first module of stage 4 and on its second-to-last
    (4a and 4d in the paper).

    Args:
        include_top: include the classifier. Default True.
        weights: None or the path to a weights file (no ImageNet weights exist for
            GoogLeNet in keras.applications). Default None.
        input_tensor: optional Keras tensor to use as the input. Default None.
        input_shape: optional (H, W, C); default (224, 224, 3). At least 32x32 with
            ``stem="imagenet"``, 8x8 with ``stem="small"``.
        pooling: None, "avg" or "max" when ``include_top=False``. Default None.
        classes: classifier units. Default 1000.
        classifier_activation: activation of the classifier (and auxiliary heads).
            Default "softmax".
        name: model name. Default "googlenet".
        dropout: dropout rate before the classifier. Default 0.4 (paper).
        aux_logits: add the two auxiliary heads; the model then returns
            ``{"predictions", "aux1", "aux2"}``. Requires ``include_top``. Default False.
        width_multiplier: scales every conv's channels (rounded, at least 1). Default 1.0.
        modules_per_stage: modules at the 28 / 14 / 7 px grids. Default None = (2, 5, 2).
        five_by_five: "plain" (5x5 conv, paper), "stacked" (two 3x3) or "asymmetric"
            (1x5 then 5x1). Default "plain".
        reduction_ratio: scales the 1x1 reductions r3 and r5. Default 1.0.
        use_bn: batch normalisation after every conv (then no conv bias). Default False.
        stem: "imagenet" (paper) or "small" (one 3x3 conv to 192 channels at stride 1, for
            32x32 inputs). Default "imagenet".

    Returns:
        A `keras.Model`.

    Example:
        >>> model = GoogLeNet(input_shape=(32, 32, 3), classes=10, stem="small",
        ...                   width_multiplier=0.25)
    """
    build, x = _common.start("googlenet", locals(), min_size=MIN_SIZE if stem == "imagenet" else MIN_SIZE_SMALL_STEM)
    _common.check_aux(aux_logits, include_top, "GoogLeNet")
    width_multiplier = _common.check_width_multiplier(width_multiplier)
    reduction_ratio = _check_positive_number("reduction_ratio", reduction_ratio)
    modules_per_stage = _check_modules_per_stage((2, 5, 2) if modules_per_stage is None else modules_per_stage)
    check_choice("five_by_five", five_by_five, FIVE_BY_FIVE)
    check_choice("stem", stem, STEMS)
    if not isinstance(use_bn, bool):
        raise ValueError(f"`use_bn` must be True or False. Received: use_bn={use_bn!r}")

    conv = dict(use_bn=use_bn)

    def w(channels):
        return _common.scale_width(channels, width_multiplier)

    def r(channels):
        return _common.scale_width(channels, width_multiplier * reduction_ratio)

    # Stem: 224x224x3 -> 28x28x192 (imagenet) or HxWx3 -> HxWx192 (small).
    if stem == "imagenet":
        x = ConvBN(w(64), 7, strides=2, name="conv1", **conv)(x)  # 112x112x64
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)  # 56x56x64
        x = ConvBN(w(64), 1, name="conv2_reduce", **conv)(x)
        x = ConvBN(w(192), 3, name="conv2", **conv)(x)  # 56x56x192
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool2")(x)  # 28x28x192
    else:
        x = ConvBN(w(192), 3, name="conv1", **conv)(x)  # HxWx192

    aux_outputs = {}
    stages = _module_rows(modules_per_stage)
    for index, (stage, rows) in enumerate(stages):
        if index > 0:
            # 28 -> 14 (pool3), 14 -> 7 (pool4)
            x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool{int(stage) - 1}")(x)
        for i, (key, (c1, r3, c3, r5, c5, pool_proj)) in enumerate(rows):
            x = InceptionBlock.v1(
                w(c1), r(r3), w(c3), r(r5), w(c5), w(pool_proj),
                five_by_five=five_by_five, name=f"inception_{key}", **conv,
            )(x)
            if aux_logits and stage == "4":
                # Paper: heads on 4a and 4d (first and second-to-last of stage 4).
                targets = [("aux1", 0), ("aux2", max(len(rows) - 2, 0))]
                for aux_name, position in targets:
                    if i == position:
                        aux_outputs[aux_name] = AuxiliaryClassifier.googlenet(
                            classes,
                            activation=classifier_activation,
                            convs=((w(128), 1),),
                            fc_units=(w(1024),),
                            name=aux_name,
                            **conv,
                        )(x)
    # 7x7x1024 at 224 px

    x = build.classifier(x)
    aux_outputs = {k: aux_outputs[k] for k in sorted(aux_outputs)}
    return build.finish(x, aux_outputs)
