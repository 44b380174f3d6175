"""ResNet-18/34/50/101/152 and Plain-34: SPEC figures, keras.applications parity, I/O."""

import re

import keras
import numpy as np
import pytest

from keras_cnn.layers.residual import ResidualBlock
from keras_cnn.models import build_model, get_model_spec
from keras_cnn.models.resnet import (
    RESNET_DEPTHS,
    Plain34,
    ResNet18,
    ResNet34,
    ResNet50Custom,
    ResNet101Custom,
    ResNet152Custom,
    build_resnet,
)
from tests.conftest import assert_keras_roundtrip


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def _shape(model, layer):
    return tuple(model.get_layer(layer).output.shape[1:])


def _blocks(model):
    return [layer for layer in model.layers if isinstance(layer, ResidualBlock)]


def _pixels(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, size=shape).astype("float32")


# --- torchvision-layout ResNet-18/34 and Plain-34 ----------------------------------------


def test_resnet18_parameters_shapes_and_layout():
    model = ResNet18()
    # torchvision's figure counts BN scale/offset, not the 4,800 moving means + variances.
    assert _trainable(model) == 11689512
    assert model.count_params() == 11689512 + 2 * 4800
    assert _shape(model, "conv1_relu") == (112, 112, 64)
    assert _shape(model, "pool1_pool") == (56, 56, 64)
    for stage, (size, width) in zip((2, 3, 4, 5), ((56, 64), (28, 128), (14, 256), (7, 512))):
        assert _shape(model, f"conv{stage}_block2") == (size, size, width)
    blocks = _blocks(model)
    assert len(blocks) == 8 and all(b.kind == "basic" for b in blocks)
    # Projections exactly where the shape changes: first block of conv3, conv4, conv5.
    assert [b.name for b in blocks if b.use_projection] == ["conv3_block1", "conv4_block1", "conv5_block1"]
    assert not any(b.conv_bias for b in blocks) and not model.get_layer("conv1_conv").use_bias
    assert model.get_layer("conv1_bn").epsilon == pytest.approx(1e-5)


@pytest.mark.slow
def test_resnet34_and_plain34_differ_by_the_projection_shortcuts():
    resnet = ResNet34()
    plain = Plain34()
    assert _trainable(resnet) == 21797672
    assert [len(_blocks(m)) for m in (resnet, plain)] == [16, 16]
    shortcut = [w for w in resnet.weights if "_0_conv/" in w.path or "_0_bn/" in w.path]
    shortcut_params = sum(int(np.prod(w.shape)) for w in shortcut)
    shortcut_trainable = sum(int(np.prod(w.shape)) for w in shortcut if w.trainable)
    # Three projections: 1x1 convs 64->128, 128->256, 256->512 (no bias) + BN.
    assert shortcut_trainable == 64 * 128 + 128 * 256 + 256 * 512 + 2 * (128 + 256 + 512)
    assert plain.count_params() == resnet.count_params() - shortcut_params
    assert _trainable(plain) == 21797672 - shortcut_trainable == 21623848
    for block in _blocks(plain):
        assert block.shortcut == "none" and block.add is None and block.shortcut_conv is None
    assert plain.name == "plain34" and plain.output.shape == (None, 1000)


def test_plain_block_has_no_shortcut_numerically():
    # Zero the second conv of every plain block: the block output must be 0 (no "+ x").
    model = build_resnet(("basic", (1, 1)), shortcut="none", stem="small", width_multiplier=1 / 16,
                         include_top=False, input_shape=(8, 8, 3))
    block = model.get_layer("conv2_block1")
    block.conv2.kernel.assign(np.zeros(block.conv2.kernel.shape, "float32"))
    probe = keras.Model(model.input, block.output)
    assert np.abs(np.asarray(probe(_pixels((1, 8, 8, 3))))).max() == 0.0
    with pytest.raises(ValueError, match="shortcut"):
        Plain34(shortcut="auto")


# --- keras.applications twins ------------------------------------------------------------


_TWINS = [
    (ResNet50Custom, keras.applications.ResNet50, 25636712),
    (ResNet101Custom, keras.applications.ResNet101, 44707176),
    (ResNet152Custom, keras.applications.ResNet152, 60419944),
]


def _randomize_bn(model, seed=0):
    """Random BN statistics, scales and offsets (the kernels keep their random initial values)."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        if "_bn/" in w.path:
            low, high = (0.5, 1.5) if w.path.endswith(("moving_variance", "gamma")) else (-0.5, 0.5)
            w.assign(rng.uniform(low, high, w.shape).astype("float32"))


@pytest.mark.slow
@pytest.mark.parametrize("ours,theirs,params", _TWINS)
def test_resnet_twin_of_keras_applications(ours, theirs, params):
    reference = theirs(weights=None, classifier_activation=None)
    reference_shapes = [tuple(w.shape) for w in reference.weights]
    reference_layers = [layer.name for layer in reference.layers]
    assert reference.count_params() == params

    model = ours(classifier_activation=None)
    assert model.count_params() == params
    assert [tuple(w.shape) for w in model.weights] == reference_shapes
    # Stem and top are the same layers; every keras block "convS_blockI_*" is one ResidualBlock.
    # (Ours adds the identity marker after the input: a pass-through without weights.)
    names = [layer.name for layer in model.layers if layer.name != "keras_cnn_identity"]
    assert names[1:7] == reference_layers[1:7] == [
        "conv1_pad", "conv1_conv", "conv1_bn", "conv1_relu", "pool1_pad", "pool1_pool"
    ]
    assert names[-2:] == reference_layers[-2:] == ["avg_pool", "predictions"]
    blocks = sorted({re.match(r"conv\d_block\d+", n).group(0) for n in reference_layers if "_block" in n})
    assert sorted(b.name for b in _blocks(model)) == blocks
    kind, depths = RESNET_DEPTHS[int(model.name[len("resnet"):])]
    assert len(blocks) == sum(depths) and kind == "bottleneck"
    assert all(b.conv_bias and b.stride_in_1x1 and b.bn_epsilon == pytest.approx(1.001e-5) for b in _blocks(model))
    assert _shape(model, "conv5_block3") == (7, 7, 2048)

    # Weight for weight: keras' weights, in keras' order, give keras' logits.
    _randomize_bn(reference)
    model.set_weights(reference.get_weights())
    x = _pixels((1, 224, 224, 3)) / 255.0
    expected = np.asarray(reference(x))
    assert np.abs(np.asarray(model(x)) - expected).max() <= 1e-4 * np.abs(expected).max()
    del reference, model
    keras.backend.clear_session()

    notop = ours(include_top=False)
    assert [tuple(w.shape) for w in notop.weights] == reference_shapes[:-2]
    assert notop.output.shape == (None, None, None, 2048)
    assert notop.count_params() == params - (2048 + 1) * 1000


def test_torchvision_bottleneck_layout():
    model = build_resnet(("bottleneck", (1, 1)), width_multiplier=1 / 16, include_top=False, input_shape=(32, 32, 3))
    block = model.get_layer("conv3_block1")
    assert block.conv1.strides == (1, 1) and block.conv2.strides == (2, 2)
    assert not block.conv_bias and block.bn_epsilon == pytest.approx(1e-5)
    keras_style = build_resnet(("bottleneck", (1, 1)), width_multiplier=1 / 16, include_top=False,
                               input_shape=(32, 32, 3), keras_layout=True)
    kblock = keras_style.get_layer("conv3_block1")
    assert kblock.conv1.strides == (2, 2) and kblock.conv2.strides == (1, 1) and kblock.conv_bias
    assert _shape(model, "conv3_block1") == _shape(keras_style, "conv3_block1") == (4, 4, 32)


# --- small versions: forward passes and .keras round trips --------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(depth=("basic", (1, 1, 1, 1)), stem="small"),
        dict(depth=("bottleneck", (1, 2)), keras_layout=True, dropout=0.2),
        dict(depth=("basic", (2, 1)), shortcut="none", stem="small"),
        dict(depth=("basic", (1, 1, 1)), stem="small", shortcut="projection", weight_decay=1e-4),
    ],
)
def test_small_resnets_roundtrip(kwargs, tmp_path):
    depth = kwargs.pop("depth")
    model = build_resnet(depth, width_multiplier=1 / 16, input_shape=(32, 32, 3), classes=5, **kwargs)
    x = _pixels((2, 32, 32, 3)) / 255.0
    probs = np.asarray(model(x))
    assert probs.shape == (2, 5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert_keras_roundtrip(model, x, tmp_path)


def test_small_stem_keeps_32px_resolution():
    model = ResNet18(stem="small", include_top=False, input_shape=(32, 32, 3), width_multiplier=0.125)
    names = [layer.name for layer in model.layers]
    assert "pool1_pool" not in names and "conv1_pad" not in names
    assert model.get_layer("conv1_conv").kernel_size == (3, 3) and model.get_layer("conv1_conv").strides == (1, 1)
    assert _shape(model, "conv1_relu") == (32, 32, 8)
    assert [_shape(model, f"conv{s}_block2")[:2] for s in (2, 3, 4, 5)] == [(32, 32), (16, 16), (8, 8), (4, 4)]
    # 8x8 digits resized to 32 work; even 8x8 works with the small stem.
    tiny = ResNet18(stem="small", input_shape=(8, 8, 1), width_multiplier=0.125, classes=10)
    assert tiny(np.zeros((1, 8, 8, 1), "float32")).shape == (1, 10)


def test_stage_widths_and_width_multiplier():
    model = build_resnet(("basic", (1, 1, 1)), stage_widths=(16, 32, 64), stem="small", include_top=False,
                         input_shape=(32, 32, 3))
    assert _shape(model, "conv1_relu") == (32, 32, 16)
    assert _shape(model, "conv4_block1") == (8, 8, 64)
    half = build_resnet(("bottleneck", (1, 1)), width_multiplier=0.5, include_top=False, input_shape=(32, 32, 3))
    assert _shape(half, "conv3_block1") == (4, 4, 128 * 4 // 2)


def test_weight_decay_is_sgd_style_l2():
    model = build_resnet(("basic", (1, 1)), stem="small", width_multiplier=1 / 16, weight_decay=2e-4,
                         input_shape=(8, 8, 3), classes=3)
    kernels = [w for w in model.weights if w.path.endswith("kernel")]
    # stem + 2 + 2 + projection + predictions
    assert len(kernels) == 7
    model(np.zeros((1, 8, 8, 3), "float32"))
    expected = sum(1e-4 * float(np.sum(np.square(np.asarray(k)))) for k in kernels)
    assert float(sum(model.losses)) == pytest.approx(expected, rel=1e-4)
    assert build_resnet(("basic", (1,)), include_top=False, input_shape=(32, 32, 3)).losses == []


# --- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(depth=20), "depth"),
        (dict(depth=("wide", (1, 1))), "depth"),
        (dict(depth=("basic", (1, 0))), "depth"),
        (dict(depth=18, stem="cifar"), "stem"),
        (dict(depth=18, shortcut="identity"), "shortcut"),
        (dict(depth=18, stage_widths=(64, 128)), "stage_widths"),
        (dict(depth=18, weight_decay=-1.0), "weight_decay"),
        (dict(depth=18, width_multiplier=-0.5), "width_multiplier"),
        (dict(depth=18, keras_layout="yes"), "keras_layout"),
        (dict(depth=18, include_top=False, pooling="sum"), "pooling"),
        (dict(depth=18, classes=0), "classes"),
        (dict(depth=18, input_shape=(None, None, 3)), "input_shape"),
        (dict(depth=18, include_top=False, input_shape=(31, 31, 3)), "input_shape"),
        (dict(depth=18, stem="small", include_top=False, input_shape=(7, 7, 3)), "input_shape"),
        (dict(depth=18, weights="imagenet", stem="small"), "weights"),  # not timm's network (custom build)
        (dict(depth=50, keras_layout=False, weights="resnet50.keras_in1k"), "weights"),  # keras' file, tv layout
        (dict(depth=50, keras_layout=True, weights="imagenet", width_multiplier=0.5), "weights"),
        (dict(depth=50, keras_layout=True, weights="imagenet", classes=10), "classes"),
    ],
)
def test_validation_errors_name_the_argument(kwargs, match):
    depth = kwargs.pop("depth")
    with pytest.raises(ValueError, match=match):
        build_resnet(depth, **kwargs)


def test_named_builders_refuse_imagenet_without_a_twin():
    # ResNet18/34 take timm's torchvision weights for "imagenet" (tests/test_timm_weights.py).
    for builder in (Plain34,):
        with pytest.raises(ValueError, match="weights"):
            builder(weights="imagenet", include_top=False)


# --- registry ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,family,preprocessing,twin,builder",
    [
        ("plain34", "plain", "torch", None, Plain34),
        ("resnet18", "resnet", "torch", None, ResNet18),
        ("resnet34", "resnet", "torch", None, ResNet34),
        ("resnet50", "resnet", "caffe", "ResNet50", ResNet50Custom),
        ("resnet101", "resnet", "caffe", "ResNet101", ResNet101Custom),
        ("resnet152", "resnet", "caffe", "ResNet152", ResNet152Custom),
    ],
)
def test_registry_entries(name, family, preprocessing, twin, builder):
    entry = get_model_spec(name)
    assert (entry.family, entry.preprocessing, entry.twin, entry.builder) == (family, preprocessing, twin, builder)
    assert (entry.default_size, entry.min_size, entry.channels) == (224, 32, 3)
    depths = RESNET_DEPTHS[int(name[-3:] if name[-3:].isdigit() else name[-2:])][1]
    assert list(entry.stages) == ["stem", "conv2", "conv3", "conv4", "conv5"]
    assert [entry.stages[f"conv{s}"] for s in (2, 3, 4, 5)] == [f"conv{s}_block{n}" for s, n in zip((2, 3, 4, 5), depths)]


def test_registry_feature_taps_of_resnet18():
    entry = get_model_spec("resnet18")
    model = build_model("resnet18", include_top=False, input_shape=(None, None, 3), width_multiplier=1 / 16)
    taps = keras.Model(model.input, {k: model.get_layer(v).output for k, v in entry.stages.items()})
    outs = taps(np.zeros((1, 64, 64, 3), "float32"))
    assert {k: tuple(v.shape[1:]) for k, v in outs.items()} == {
        "stem": (32, 32, 4), "conv2": (16, 16, 4), "conv3": (8, 8, 8), "conv4": (4, 4, 16), "conv5": (2, 2, 32)
    }
