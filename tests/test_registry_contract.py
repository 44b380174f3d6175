"""The contract every registry network keeps, checked for each `list_models()` entry.

Adding a network = a `ModelSpec` + a builder decorated with `registered_builder`; this module
then checks it with no edit: default build and parameter count, minimum size, forward pass,
`.keras` round trip and clone with the same identity, stage taps, preprocessing, auxiliary
heads, and refusal below the minimum input size.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_cnn import applications
from keras_cnn.models import build_model, get_model_spec, list_models, model_identity
from keras_cnn.transfer import build_transfer_model
from keras_cnn.weights import with_preprocessing

NAMES = list_models()
# Big networks: building one at full size takes more than 5 s on a 2-core CPU (their round trip
# writes 100+ MB); marked slow, still run by the README's test command. The unmarked suite keeps
# the contract for lenet5, course_convnet, resnet18 and googlenet.
HEAVY = {"vgg16", "vgg19", "resnet34", "plain34", "resnet50", "resnet101", "resnet152", "alexnet",
         "inception_v2", "inception_v3"}


def _param(name):
    return pytest.param(name, marks=pytest.mark.slow) if name in HEAVY else name


def _small_side(spec):
    """A forward-pass size: the minimum, but at least 32 px (cheap on a CPU)."""
    return max(spec.min_size, 32)


def _images(side, channels, n=2, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, side, side, channels)).astype("float32")


def test_every_spec_names_an_importable_builder_and_unique_taps():
    assert len(NAMES) == len(set(NAMES)) >= 14
    for name in NAMES:
        spec = get_model_spec(name)
        assert callable(spec.builder), name
        assert getattr(spec.builder, "registry_name", None) == name, f"{name}: builder not decorated"
        assert len(set(spec.stages.values())) == len(spec.stages), name
        assert spec.paper and spec.num_params and spec.trainable_params, name


@pytest.mark.parametrize("name", [_param(n) for n in NAMES])
def test_default_build_matches_spec(name):
    spec = get_model_spec(name)
    model = build_model(name)
    assert tuple(model.input_shape[1:]) == spec.default_input_shape
    assert model.count_params() == spec.num_params
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == spec.trainable_params
    identity = model_identity(model)
    assert identity.arch == name and identity.preprocessing == spec.preprocessing
    assert identity.build_args["input_shape"] == list(spec.default_input_shape)
    if spec.aux_heads:
        aux = build_model(name, aux_logits=True)
        assert isinstance(aux.output, dict)
        assert sorted(aux.output) == sorted(["predictions"] + [f"aux{i}" for i in range(1, spec.aux_heads + 1)])
        assert model_identity(aux).build_args["aux_logits"] is True


@pytest.mark.parametrize("name", [_param(n) for n in NAMES])
def test_forward_round_trip_and_clone_keep_function_and_identity(name, tmp_path):
    spec = get_model_spec(name)
    side = _small_side(spec)
    model = build_model(name, include_top=False, input_shape=(side, side, spec.channels), pooling="avg")
    x = _images(side, spec.channels)
    y = np.asarray(model(x, training=False))
    assert y.ndim == 2 and np.all(np.isfinite(y))
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), y, rtol=1e-5, atol=1e-5)
    assert model_identity(loaded) == model_identity(model)
    clone = keras.models.clone_model(model)
    assert model_identity(clone) == model_identity(model)
    # A model cut from the graph and a model nesting it keep the identity too.
    cut = keras.Model(model.inputs, model.get_layer(list(spec.stages.values())[0]).output)
    assert model_identity(cut).arch == name
    nested = keras.Sequential([keras.Input((side, side, spec.channels)), model])
    assert model_identity(nested).arch == name


@pytest.mark.parametrize("name", [_param(n) for n in NAMES])
def test_stage_taps_exist_and_shrink(name):
    spec = get_model_spec(name)
    side = max(_small_side(spec), 2 * spec.min_size if spec.min_size < 64 else spec.min_size)
    extractor = applications.feature_extractor(name, input_shape=(side, side, spec.channels))
    assert list(extractor.output) == list(spec.stages)
    shapes = [tuple(extractor.output[s].shape[1:3]) for s in spec.stages]
    assert all(a[0] >= b[0] and a[1] >= b[1] for a, b in zip(shapes, shapes[1:])), shapes
    assert shapes[-1][0] < shapes[0][0] or len(shapes) == 1, shapes
    # A built model finds its own taps: no arch= needed.
    built = build_model(name, include_top=False, input_shape=(side, side, spec.channels))
    assert list(applications.feature_extractor(built).output) == list(spec.stages)


@pytest.mark.parametrize("name", [_param(n) for n in NAMES])
def test_input_below_minimum_is_refused_naming_input_shape(name):
    spec = get_model_spec(name)
    small = spec.min_size - 1
    with pytest.raises(ValueError, match="input_shape|Input size must be at least"):
        build_model(name, include_top=False, input_shape=(small, small, spec.channels))
    # The minimum itself builds.
    build_model(name, include_top=False, input_shape=(spec.min_size, spec.min_size, spec.channels))


@pytest.mark.parametrize("name", [_param(n) for n in NAMES])
def test_preprocessing_is_read_from_the_built_model(name):
    spec = get_model_spec(name)
    model = build_model(name)
    assert with_preprocessing(model).get_layer("preprocess").mode == spec.preprocessing


# keras.applications' preprocess_input mode for each twin (what its ImageNet weights expect).
KERAS_MODES = {"VGG16": "caffe", "VGG19": "caffe", "ResNet50": "caffe", "ResNet101": "caffe",
               "ResNet152": "caffe", "InceptionV3": "tf"}


@pytest.mark.parametrize("name", [_param(n) for n in NAMES if get_model_spec(n).twin])
def test_twins_use_keras_applications_preprocessing_on_built_models(name):
    """The bug this design fixes: a built ResNet-50 once got "torch" from a layer-name guess."""
    spec = get_model_spec(name)
    side = max(spec.min_size, 32)
    model = build_model(name, include_top=False, input_shape=(side, side, 3))
    assert with_preprocessing(model).get_layer("preprocess").mode == KERAS_MODES[spec.twin]
    transfer = build_transfer_model(model, 3, "small")
    assert transfer.get_layer("preprocess").mode == KERAS_MODES[spec.twin]


def test_model_not_built_by_keras_cnn_needs_arch():
    foreign = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match="not built by keras_cnn.*arch="):
        with_preprocessing(foreign)
    with pytest.raises(ValueError, match="not built by keras_cnn.*arch="):
        applications.feature_extractor(foreign)
    assert with_preprocessing(foreign, arch="resnet50").get_layer("preprocess").mode == "caffe"
