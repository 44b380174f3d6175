import keras
import numpy as np
import pytest

from keras_cnn import applications
from keras_cnn.models import build_model, get_model_spec, list_models, register_model

EXPECTED = [
    "course_convnet", "lenet5", "alexnet", "vgg16", "vgg19", "plain34", "resnet18", "resnet34",
    "resnet50", "resnet101", "resnet152", "googlenet", "inception_v2", "inception_v3",
]


def test_registry_lists_every_network():
    assert list_models() == EXPECTED
    assert list_models(family="resnet") == ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]


def test_registry_entries_know_size_and_preprocessing():
    for name in EXPECTED:
        entry = get_model_spec(name)
        assert entry.min_size <= entry.default_size
        assert entry.preprocessing in ("tf", "caffe", "torch", "unit")
        assert entry.stages, name
    assert get_model_spec("inception_v3").twin == "InceptionV3"
    assert get_model_spec("inception_v3").default_size == 299
    assert get_model_spec("inception_v3").min_size == 75
    assert get_model_spec("resnet50").twin == "ResNet50"
    assert get_model_spec("googlenet").aux_heads == 2


def test_registry_rejects_duplicates_and_unknown_names():
    with pytest.raises(ValueError, match="already registered"):
        register_model("resnet50", lambda **kw: None, family="resnet", default_size=224, min_size=32)
    with pytest.raises(ValueError, match="Received: name='resnet51'"):
        build_model("resnet51")


@pytest.mark.parametrize(
    "fn,registry_name",
    [
        pytest.param(applications.InceptionV3Custom, "inception_v3", marks=pytest.mark.slow),
        pytest.param(applications.ResNet50Custom, "resnet50", marks=pytest.mark.slow),
        (applications.VGG16Custom, "vgg16"),
        (applications.GoogLeNet, "googlenet"),
        (applications.LeNet5, "lenet5"),
    ],
)
def test_facade_and_registry_build_the_same_network(fn, registry_name):
    a = fn(include_top=False, input_shape=None if registry_name == "lenet5" else (96, 96, 3))
    b = build_model(registry_name, include_top=False, input_shape=None if registry_name == "lenet5" else (96, 96, 3))
    assert a.count_params() == b.count_params()
    assert [w.shape for w in a.weights] == [w.shape for w in b.weights]


def test_facade_keras_validation_messages():
    with pytest.raises(FileNotFoundError, match="`weights` file does not exist: '/no/such/file.h5'"):
        applications.ResNet18(weights="/no/such/file.h5")
    with pytest.raises(ValueError, match="`weights` argument should be either"):
        applications.ResNet18(weights=3)
    with pytest.raises(ValueError, match="classes"):
        applications.ResNet50Custom(weights="imagenet", classes=10)
    with pytest.raises(ValueError, match="pooling"):
        applications.ResNet18(include_top=False, pooling="mean")
    with pytest.raises(ValueError, match="Input size must be at least 75x75"):
        applications.InceptionV3Custom(include_top=False, input_shape=(64, 64, 3))


def test_feature_extractor_by_name_any_input_size():
    fx = applications.feature_extractor("resnet18", stem="small")
    assert list(fx.output) == applications.stage_names("resnet18")
    for size in (32, 48):
        feats = fx(np.zeros((1, size, size, 3), "float32"))
        assert feats["conv5"].shape[-1] == 512
        assert feats["conv5"].shape[1] == size // 8


def test_feature_extractor_on_built_model_and_subset():
    model = applications.VGG16Custom(include_top=False, input_shape=(32, 32, 3))
    fx = applications.feature_extractor(model, stages=["block3", "block5"])
    out = fx(np.zeros((2, 32, 32, 3), "float32"))
    assert out["block3"].shape == (2, 4, 4, 256)
    assert out["block5"].shape == (2, 1, 1, 512)
    # Shares weights with the base model.
    assert fx.get_layer("block1_conv1") is model.get_layer("block1_conv1")
    with pytest.raises(ValueError, match="stages"):
        applications.feature_extractor(model, stages=["block9"])


def test_feature_extractor_custom_taps_and_bad_model():
    model = applications.LeNet5(include_top=False)
    layer = model.layers[2].name
    fx = applications.feature_extractor(model, stages={"first": layer})
    assert set(fx.output) == {"first"}
    with pytest.raises(ValueError, match="model"):
        applications.feature_extractor(42)
    assert isinstance(fx, keras.Model)
