import keras
import numpy as np
import pytest

from keras_cnn.layers import ConvBN, FactorizedConv, Preprocess
from keras_cnn.layers.conv import pair
from tests.conftest import assert_keras_roundtrip


def _count(layer, shape):
    layer.build((None, *shape))
    return sum(int(np.prod(w.shape)) for w in layer.weights if w.trainable)


def test_convbn_lecture_280_parameters_and_output_size():
    # SPEC 1: ten 3x3 filters on a 3-channel input: (3*3*3+1)*10 = 280; 39 -> 37.
    layer = ConvBN(10, 3, padding="valid", use_bn=False, name="c")
    assert layer.compute_output_shape((None, 39, 39, 3)) == (None, 37, 37, 10)
    assert _count(layer, (39, 39, 3)) == 280


def test_convbn_bias_defaults_follow_bn():
    with_bn = ConvBN(8, 3, name="a")
    with_bn.build((None, 8, 8, 4))
    assert not with_bn.conv.use_bias and with_bn.bn is not None
    forced = ConvBN(8, 3, use_bias=True, bn_epsilon=1.001e-5, name="b")
    forced.build((None, 8, 8, 4))
    assert forced.conv.use_bias and forced.bn.epsilon == pytest.approx(1.001e-5)


def test_convbn_linear_and_relu_outputs():
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype("float32")
    relu = ConvBN(4, 1, use_bn=False, name="r")
    linear = ConvBN(4, 1, use_bn=False, activation=None, name="l")
    relu.build(x.shape)
    linear.build(x.shape)
    linear.set_weights(relu.get_weights())
    np.testing.assert_allclose(np.asarray(relu(x)), np.maximum(np.asarray(linear(x)), 0), atol=1e-6)
    assert np.asarray(linear(x)).min() < 0


def test_convbn_bn_uses_inference_stats_when_frozen():
    layer = ConvBN(4, 3, name="f")
    x = np.random.default_rng(1).normal(size=(4, 8, 8, 3)).astype("float32")
    layer(x)
    layer.trainable = False
    before = [np.array(w) for w in layer.bn.non_trainable_weights]
    out_train = np.asarray(layer(x, training=True))
    out_infer = np.asarray(layer(x, training=False))
    np.testing.assert_allclose(out_train, out_infer, atol=1e-6)
    for b, w in zip(before, layer.bn.non_trainable_weights):
        np.testing.assert_array_equal(b, np.asarray(w))


@pytest.mark.parametrize(
    "mode,expected_kernels",
    [("none", [(5, 5)]), ("stacked", [(3, 3), (3, 3)]), ("asymmetric", [(1, 5), (5, 1)])],
)
def test_factorized_conv_structure(mode, expected_kernels):
    layer = FactorizedConv(16, 5, mode=mode, use_bn=False, name=f"f_{mode}")
    assert [f.kernel_size for f in layer.factors] == expected_kernels
    assert layer.compute_output_shape((None, 17, 17, 8)) == (None, 17, 17, 16)


def test_factorized_conv_seven_is_three_3x3_and_cost_ratio():
    stacked = FactorizedConv(32, 7, mode="stacked", use_bn=False, name="s7")
    assert len(stacked.factors) == 3
    plain = FactorizedConv(32, 7, mode="none", use_bn=False, name="p7")
    asym = FactorizedConv(32, 7, mode="asymmetric", use_bn=False, name="a7")
    n_plain, n_asym = _count(plain, (17, 17, 32)), _count(asym, (17, 17, 32))
    # n x n -> 1 x n + n x 1: weights 49 -> 14 per (c_in, c_out) pair (biases aside).
    assert n_plain == 7 * 7 * 32 * 32 + 32
    assert n_asym == 2 * (7 * 32 * 32 + 32)


def test_factorized_conv_stride_on_last_factor():
    layer = FactorizedConv(8, 5, mode="stacked", strides=2, padding="valid", name="sv")
    assert [f.strides for f in layer.factors] == [(1, 1), (2, 2)]
    # 35 -> 33 (3x3 valid) -> floor((33 - 3) / 2) + 1 = 16
    assert layer.compute_output_shape((None, 35, 35, 4)) == (None, 16, 16, 8)


@pytest.mark.parametrize(
    "kwargs,arg",
    [({"filters": 0, "kernel_size": 3}, "filters"), ({"filters": 4, "kernel_size": 3, "padding": "full"}, "padding")],
)
def test_convbn_rejects_bad_arguments(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        ConvBN(**kwargs)


def test_factorized_conv_rejects_even_stacked_kernel():
    with pytest.raises(ValueError, match="kernel_size"):
        FactorizedConv(8, 4, mode="stacked")
    with pytest.raises(ValueError, match="mode"):
        FactorizedConv(8, 5, mode="diagonal")


def test_factorized_conv_first_factor_and_intermediate_filters():
    layer = FactorizedConv(6, 7, mode="asymmetric", intermediate_filters=3, first_factor="nx1", name="a")
    assert [(f.kernel_size, f.filters) for f in layer.factors] == [((7, 1), 3), ((1, 7), 6)]
    assert [f.name for f in layer.factors] == ["a_1", "a_2"]
    # Only a chain of factors has channels between them; anything else is refused, not ignored.
    for kwargs in (dict(mode="none"), dict(mode="expanded"), dict(mode="stacked", kernel_size=3)):
        kwargs = {"kernel_size": 5, **kwargs}
        with pytest.raises(ValueError, match="intermediate_filters"):
            FactorizedConv(6, intermediate_filters=3, **kwargs)
    with pytest.raises(ValueError, match="first_factor"):
        FactorizedConv(6, 7, mode="asymmetric", first_factor="7x1")
    with pytest.raises(ValueError, match="intermediate_filters"):
        FactorizedConv(6, 7, mode="asymmetric", intermediate_filters=0)


def test_factorized_conv_expanded_bank():
    # "Rethinking" Figure 7: a 1x3 beside a 3x1 on the same input, outputs concatenated.
    x = np.random.default_rng(4).normal(size=(2, 8, 8, 5)).astype("float32")
    layer = FactorizedConv(4, 3, mode="expanded", use_bn=False, name="bank")
    out = np.asarray(layer(x))
    assert out.shape == (2, 8, 8, 8) and layer.output_channels == 8
    assert layer.compute_output_shape((None, 8, 8, 5)) == (None, 8, 8, 8)
    assert [f.kernel_size for f in layer.factors] == [(1, 3), (3, 1)]
    np.testing.assert_allclose(out[..., :4], np.asarray(layer.factors[0](x)), atol=1e-6)
    np.testing.assert_allclose(out[..., 4:], np.asarray(layer.factors[1](x)), atol=1e-6)
    swapped = FactorizedConv(4, 3, mode="expanded", first_factor="nx1", use_bn=False, name="bank2")
    assert [f.kernel_size for f in swapped.factors] == [(3, 1), (1, 3)]
    assert _count(FactorizedConv(4, 3, mode="expanded", use_bn=False, name="b3"), (8, 8, 5)) == 2 * (3 * 5 * 4 + 4)
    with pytest.raises(ValueError, match="padding='same'"):
        FactorizedConv(4, 3, mode="expanded", padding="valid", name="bad").compute_output_shape((None, 8, 8, 5))


@pytest.mark.parametrize("value, expected", [(3, (3, 3)), ((1, 7), (1, 7)), ([2, 4], (2, 4))])
def test_pair_accepts(value, expected):
    assert pair(value, "kernel_size") == expected


@pytest.mark.parametrize("value", [0, -1, True, (3,), (3, 0), (True, 3), "3", 2.0])
def test_pair_rejects_naming_the_argument(value):
    with pytest.raises(ValueError, match="`strides` must be a positive int or a pair"):
        pair(value, "strides")
    with pytest.raises(ValueError, match="kernel_size"):
        ConvBN(4, value)


def test_conv_layers_share_one_config_form():
    """ConvBN and FactorizedConv write the shared conv options the same way."""
    options = dict(
        use_bn=False, activation="elu", bn_epsilon=1e-5, bn_momentum=0.9, bn_scale=False,
        kernel_initializer="he_normal", kernel_regularizer=keras.regularizers.L2(1e-4),
    )
    conv = ConvBN(4, 3, name="c", **options).get_config()
    fact = FactorizedConv(4, 5, mode="asymmetric", name="f", **options).get_config()
    shared = ("use_bn", "use_bias", "activation", "bn_epsilon", "bn_momentum", "bn_scale",
              "kernel_initializer", "kernel_regularizer")
    assert {k: conv[k] for k in shared} == {k: fact[k] for k in shared}
    assert conv["use_bias"] is True and conv["kernel_initializer"]["class_name"] == "HeNormal"
    clone = FactorizedConv.from_config(fact)
    assert clone.get_config() == fact
    assert all(f.kernel_initializer.__class__.__name__ == "HeNormal" for f in clone.factors)


def test_conv_layers_keras_roundtrip(tmp_path):
    inputs = keras.Input((12, 12, 3))
    x = ConvBN(6, 3, kernel_regularizer=keras.regularizers.L2(1e-4), name="c1")(inputs)
    x = FactorizedConv(8, 5, mode="asymmetric", name="f1")(x)
    x = FactorizedConv(8, 5, mode="stacked", factor_activation=None, name="f2")(x)
    x = FactorizedConv(3, 3, mode="expanded", first_factor="nx1", name="f3")(x)
    x = FactorizedConv(4, 7, mode="asymmetric", intermediate_filters=2, first_factor="nx1", name="f4")(x)
    model = keras.Model(inputs, x)
    xs = np.random.default_rng(2).uniform(size=(2, 12, 12, 3)).astype("float32")
    loaded = assert_keras_roundtrip(model, xs, tmp_path)
    assert loaded.get_layer("f2").factor_activation is None
    assert loaded.get_layer("c1").kernel_regularizer is not None
    for name in ("f1", "f2", "f3", "f4"):
        assert loaded.get_layer(name).get_config() == model.get_layer(name).get_config()
        assert [w.path for w in loaded.get_layer(name).weights] == [w.path for w in model.get_layer(name).weights]


@pytest.mark.parametrize("mode", ["tf", "caffe", "torch"])
def test_preprocess_matches_keras_applications(mode):
    from keras.src.applications.imagenet_utils import preprocess_input

    x = np.random.default_rng(3).uniform(0, 255, size=(2, 4, 4, 3)).astype("float32")
    expected = preprocess_input(x.copy(), mode=mode)
    np.testing.assert_allclose(np.asarray(Preprocess(mode)(x)), expected, rtol=1e-5, atol=1e-4)


def test_preprocess_unit_and_validation(tmp_path):
    x = np.full((1, 2, 2, 1), 255.0, "float32")
    np.testing.assert_allclose(np.asarray(Preprocess("unit")(x)), 1.0)
    with pytest.raises(ValueError, match="mode"):
        Preprocess("imagenet")
    inputs = keras.Input((2, 2, 3))
    model = keras.Model(inputs, Preprocess("caffe")(inputs))
    assert_keras_roundtrip(model, np.ones((1, 2, 2, 3), "float32") * 7, tmp_path)
