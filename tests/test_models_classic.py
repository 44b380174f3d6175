"""The course ConvNet, LeNet-5, AlexNet and VGG: SPEC figures, keras.applications parity, I/O."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cnn.layers import ModelIdentity
from keras_cnn.models import build_model, get_model_spec
from keras_cnn.models.alexnet import AlexNet, LocalResponseNormalization
from keras_cnn.models.course import CourseConvNet
from keras_cnn.models.lenet import LeNet5
from keras_cnn.models.vgg import VGG16Custom, VGG19Custom, build_vgg
from tests.conftest import assert_keras_roundtrip


def _shape(model, layer):
    return tuple(model.get_layer(layer).output.shape[1:])


def _params(layer):
    return sum(int(np.prod(w.shape)) for w in layer.weights)


def _random_pixels(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, size=shape).astype("float32")


# --- course ConvNet (SPEC 1) -------------------------------------------------------------


def test_course_convnet_shapes_and_parameters():
    model = CourseConvNet()
    assert _shape(model, "conv1") == (37, 37, 10)
    assert _shape(model, "conv2") == (17, 17, 20)
    assert _shape(model, "conv3") == (7, 7, 40)
    assert _shape(model, "flatten") == (1960,)
    assert _params(model.get_layer("conv1")) == (3 * 3 * 3 + 1) * 10 == 280
    assert _params(model.get_layer("conv2")) == (5 * 5 * 10 + 1) * 20
    assert _params(model.get_layer("conv3")) == (5 * 5 * 20 + 1) * 40
    assert model.count_params() == 280 + 5020 + 20040 + (1960 + 1) * 10
    assert model.output.shape == (None, 10)


def test_course_convnet_roundtrip_and_softmax(tmp_path):
    model = CourseConvNet(classes=3, width_multiplier=0.5, dropout=0.2)
    x = _random_pixels((2, 39, 39, 3))
    probs = np.asarray(model(x))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert _shape(model, "conv3") == (7, 7, 20)
    assert_keras_roundtrip(model, x, tmp_path)


# --- LeNet-5 (SPEC 2) --------------------------------------------------------------------


def test_lenet5_61706_parameters_and_shapes():
    model = LeNet5()
    assert model.count_params() == 61706
    assert model.input.shape == (None, 32, 32, 1)
    assert _shape(model, "conv1") == (28, 28, 6)
    assert _shape(model, "pool1") == (14, 14, 6)
    assert _shape(model, "conv2") == (10, 10, 16)
    assert _shape(model, "pool2") == (5, 5, 16)
    assert _shape(model, "flatten") == (400,)
    assert _shape(model, "fc1") == (120,) and _shape(model, "fc2") == (84,)
    assert model.output.shape == (None, 10)
    assert isinstance(model.get_layer("pool1"), keras.layers.AveragePooling2D)


def test_lenet5_accepts_three_channels():
    model = LeNet5(input_shape=(32, 32, 3))
    # Only C1 grows: 5*5*(3-1)*6 more weights.
    assert model.count_params() == 61706 + 5 * 5 * 2 * 6


def test_lenet5_activation_option():
    x = 255 * _random_pixels((2, 32, 32, 1))
    tanh = LeNet5()
    relu = LeNet5(activation="relu")
    relu.set_weights(tanh.get_weights())
    t = np.asarray(keras.Model(tanh.input, tanh.get_layer("conv1").output)(x))
    r = np.asarray(keras.Model(relu.input, relu.get_layer("conv1").output)(x))
    assert np.abs(t).max() <= 1.0 and t.min() < 0
    assert r.min() >= 0 and r.max() > 1.0
    np.testing.assert_allclose(np.tanh(np.where(r > 0, r, 0)), np.where(r > 0, t, 0), atol=1e-5)
    with pytest.raises(ValueError, match="activation"):
        LeNet5(activation="swish")


def test_lenet5_roundtrip(tmp_path):
    model = LeNet5(classes=4, dropout=0.1, width_multiplier=0.5)
    assert_keras_roundtrip(model, _random_pixels((2, 32, 32, 1)), tmp_path)


# --- AlexNet (SPEC 2) --------------------------------------------------------------------


def test_alexnet_62378344_parameters_and_shapes():
    model = AlexNet()
    assert model.count_params() == 62378344
    assert model.input.shape == (None, 227, 227, 3)
    assert _shape(model, "conv1") == (55, 55, 96)
    assert _shape(model, "pool1") == (27, 27, 96)
    assert _shape(model, "conv2") == (27, 27, 256)
    assert _shape(model, "pool2") == (13, 13, 256)
    assert _shape(model, "conv3") == (13, 13, 384)
    assert _shape(model, "conv4") == (13, 13, 384)
    assert _shape(model, "conv5") == (13, 13, 256)
    assert _shape(model, "pool5") == (6, 6, 256)
    assert _shape(model, "flatten") == (9216,)
    assert [model.get_layer(n).rate for n in ("fc6_dropout", "fc7_dropout")] == [0.5, 0.5]
    assert not any(isinstance(layer, LocalResponseNormalization) for layer in model.layers)


def test_local_response_normalization_matches_tensorflow():
    x = np.random.default_rng(0).normal(scale=30.0, size=(2, 3, 3, 9)).astype("float32")
    ours = np.asarray(LocalResponseNormalization()(x))
    ref = tf.nn.local_response_normalization(x, depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75).numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-5)
    assert not np.allclose(ours, x / 2.0**0.75)  # the neighbours matter
    with pytest.raises(ValueError, match="depth"):
        LocalResponseNormalization(depth=4)


def test_small_alexnet_with_lrn_roundtrip(tmp_path):
    model = AlexNet(input_shape=(67, 67, 3), classes=5, width_multiplier=1 / 16, lrn=True)
    assert [layer.name for layer in model.layers if isinstance(layer, LocalResponseNormalization)] == [
        "conv1_lrn",
        "conv2_lrn",
    ]
    assert _shape(model, "pool5") == (1, 1, 16)
    assert_keras_roundtrip(model, 255 * _random_pixels((2, 67, 67, 3)), tmp_path)


# --- VGG (SPEC 2) ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "ours,theirs,params,convs",
    [
        (VGG16Custom, keras.applications.VGG16, 138357544, (2, 2, 3, 3, 3)),
        (VGG19Custom, keras.applications.VGG19, 143667240, (2, 2, 4, 4, 4)),
    ],
)
def test_vgg_twin_of_keras_applications(ours, theirs, params, convs):
    model = ours()
    reference = theirs(weights=None)
    assert model.count_params() == reference.count_params() == params
    assert [tuple(w.shape) for w in model.weights] == [tuple(w.shape) for w in reference.weights]
    # Same top-level layers (names) apart from the paper's dropout, which has no weights.
    ours_names = [layer.name for layer in model.layers if not isinstance(layer, (keras.layers.Dropout, ModelIdentity))]
    assert ours_names[1:] == [layer.name for layer in reference.layers][1:]
    for b, (n, width) in enumerate(zip(convs, (64, 128, 256, 512, 512)), start=1):
        assert _shape(model, f"block{b}_conv{n}") == (224 >> (b - 1), 224 >> (b - 1), width)
        assert _shape(model, f"block{b}_pool") == (224 >> b, 224 >> b, width)
    assert _shape(model, "block5_pool") == (7, 7, 512)
    assert _shape(model, "flatten") == (25088,)
    assert [model.get_layer(n).rate for n in ("fc1_dropout", "fc2_dropout")] == [0.5, 0.5]


@pytest.mark.slow
@pytest.mark.parametrize("ours,theirs", [(VGG16Custom, keras.applications.VGG16), (VGG19Custom, keras.applications.VGG19)])
def test_vgg_without_top_ports_keras_weights(ours, theirs):
    model = ours(include_top=False, input_shape=(32, 32, 3))
    reference = theirs(include_top=False, weights=None, input_shape=(32, 32, 3))
    assert [tuple(w.shape) for w in model.weights] == [tuple(w.shape) for w in reference.weights]
    assert model.count_params() == reference.count_params()
    rng = np.random.default_rng(0)
    reference.set_weights([rng.normal(scale=0.05, size=w.shape).astype("float32") for w in reference.weights])
    model.set_weights(reference.get_weights())
    x = 255 * _random_pixels((2, 32, 32, 3))
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(reference(x)), rtol=1e-4, atol=1e-4)


def test_vgg_small_config_shapes_and_roundtrip(tmp_path):
    model = build_vgg(((1, 8), (2, 16), (1, 16)), fc_units=(32,), input_shape=(32, 32, 3), classes=10, dropout=0.3)
    assert _shape(model, "block1_pool") == (16, 16, 8)
    assert _shape(model, "block2_conv2") == (16, 16, 16)
    assert _shape(model, "block3_pool") == (4, 4, 16)
    assert _shape(model, "fc1") == (32,)
    assert model.name == "vgg_custom"
    assert_keras_roundtrip(model, 255 * _random_pixels((2, 32, 32, 3)), tmp_path)


def test_vgg_batch_norm_and_width_multiplier():
    plain = build_vgg(11, include_top=False, input_shape=(32, 32, 3), width_multiplier=0.25)
    bn = build_vgg(11, include_top=False, input_shape=(32, 32, 3), width_multiplier=0.25, batch_norm=True)
    assert _shape(plain, "block5_pool") == (1, 1, 128)
    convs = [layer for layer in plain.layers if layer.name.startswith("block") and "conv" in layer.name]
    assert len(convs) == 8  # configuration A
    widths = [layer.filters for layer in convs]
    # BN: 4 per channel instead of the conv bias (1 per channel).
    assert bn.count_params() - plain.count_params() == 3 * sum(widths)


@pytest.mark.parametrize("config", [12, ((2, 0),), "16", ()])
def test_vgg_bad_config_names_the_argument(config):
    with pytest.raises(ValueError, match="config"):
        build_vgg(config, include_top=False)


# --- validation shared by the builders ---------------------------------------------------


@pytest.mark.parametrize("builder", [CourseConvNet, LeNet5, AlexNet, VGG16Custom])
def test_validation_errors_name_the_argument(builder):
    with pytest.raises(ValueError, match="pooling"):
        builder(include_top=False, pooling="mean")
    with pytest.raises(ValueError, match="classes"):
        builder(classes=0)
    with pytest.raises(ValueError, match="input_shape"):
        builder(include_top=True, input_shape=(None, None, 3))
    with pytest.raises(ValueError, match=r"Input size must be at least .*input_shape"):
        builder(include_top=False, input_shape=(8, 8, 3))
    with pytest.raises(ValueError, match="dropout"):
        builder(dropout=1.5)
    with pytest.raises(ValueError, match="width_multiplier"):
        builder(width_multiplier=0)


@pytest.mark.parametrize("builder", [CourseConvNet, LeNet5, AlexNet])
def test_imagenet_weights_refused_without_a_twin(builder):
    with pytest.raises(ValueError, match="weights"):
        builder(weights="imagenet")


def test_imagenet_weights_refused_for_a_non_twin_vgg():
    with pytest.raises(ValueError, match="weights"):
        build_vgg(16, weights="imagenet", width_multiplier=0.5, include_top=False)
    with pytest.raises(ValueError, match="classes"):
        VGG16Custom(weights="imagenet", classes=10)


# --- registry ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,family,preprocessing,twin,channels",
    [
        ("course_convnet", "course", "unit", None, 3),
        ("lenet5", "lenet", "unit", None, 1),
        ("alexnet", "alexnet", "caffe", None, 3),
        ("vgg16", "vgg", "caffe", "VGG16", 3),
        ("vgg19", "vgg", "caffe", "VGG19", 3),
    ],
)
def test_registry_entries_and_feature_taps(name, family, preprocessing, twin, channels):
    entry = get_model_spec(name)
    assert (entry.family, entry.preprocessing, entry.twin, entry.channels) == (family, preprocessing, twin, channels)
    kwargs = dict(include_top=False, input_shape=(None, None, channels))
    if name in ("alexnet", "vgg16", "vgg19"):
        kwargs["width_multiplier"] = 1 / 16
    model = build_model(name, **kwargs)
    size = entry.min_size
    taps = keras.Model(model.input, [model.get_layer(layer).output for layer in entry.stages.values()])
    outs = taps(np.zeros((1, size, size, channels), "float32"))
    # Every stage is reachable at the minimum size and none is empty.
    assert all(min(o.shape[1:3]) >= 1 for o in outs)
    with pytest.raises(ValueError, match="input_shape"):
        build_model(name, include_top=False, input_shape=(size - 1, size - 1, channels))


def test_alexnet_description_says_what_the_default_build_has():
    # `keras-cnn list` shows the spec's description: it must not promise LRN the default build lacks.
    import inspect

    description = get_model_spec("alexnet").description
    assert inspect.signature(AlexNet).parameters["lrn"].default is False
    assert "local response normalisation off (lrn=True adds it)" in description
    model = AlexNet(input_shape=(67, 67, 3), classes=3, width_multiplier=0.0625)
    assert not [layer for layer in model.layers if isinstance(layer, LocalResponseNormalization)]
    assert [layer.name for layer in AlexNet(input_shape=(67, 67, 3), classes=3, width_multiplier=0.0625,
                                            lrn=True).layers if isinstance(layer, LocalResponseNormalization)] == [
        "conv1_lrn", "conv2_lrn"]
