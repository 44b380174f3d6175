import keras
import numpy as np
import pytest
from keras.src.applications.resnet import residual_block_v1

from keras_cnn.layers.residual import ResidualBlock
from tests.conftest import assert_keras_roundtrip


def _leaf_names(layer):
    """Leaf layer names in the order the block's weights are listed (one per layer)."""
    names = []
    for w in layer.weights:
        leaf = w.path.split("/")[-2]
        if leaf not in names:
            names.append(leaf)
    return names


def _randomize(weights, seed=0):
    """Random values for a weight list, with positive BN variances (so BN is not identity)."""
    rng = np.random.default_rng(seed)
    out = []
    for w in weights:
        shape = tuple(w.shape)
        if w.path.endswith("moving_variance"):
            out.append(rng.uniform(0.5, 1.5, shape).astype("float32"))
        else:
            fan_in = max(1, int(np.prod(shape[:-1])))
            out.append((rng.normal(size=shape) / np.sqrt(fan_in)).astype("float32"))
    return out


@pytest.mark.parametrize(
    "kind,filters,in_channels,strides,shortcut,projection",
    [
        ("basic", 8, 8, 1, "auto", False),  # same shape -> identity
        ("basic", 8, 4, 1, "auto", True),  # width changes -> projection
        ("basic", 8, 8, 2, "auto", True),  # resolution changes -> projection
        ("bottleneck", 4, 16, 1, "auto", False),  # 4 * 4 = 16 out -> identity
        ("bottleneck", 4, 4, 1, "auto", True),  # keras' conv2_block1 case: 4 -> 16
        ("basic", 8, 8, 1, "projection", True),  # forced (option C)
        ("basic", 8, 4, 2, "none", False),  # plain block
    ],
)
def test_shortcut_selection(kind, filters, in_channels, strides, shortcut, projection):
    block = ResidualBlock(filters, kind=kind, strides=strides, shortcut=shortcut, name="b")
    block.build((None, 8, 8, in_channels))
    assert block.use_projection is projection
    names = [layer.name for layer in block._flatten_layers(include_self=False)]
    assert ("b_0_conv" in names) is projection and ("b_0_bn" in names) is projection
    assert ("b_add" in names) is (shortcut != "none")
    # With identity the dropped candidate projection leaves no weights behind.
    assert not any("_0_" in w.path for w in block.weights) or projection


def test_identity_shortcut_refuses_shape_change():
    block = ResidualBlock(8, shortcut="identity", strides=2, name="b")
    with pytest.raises(ValueError, match="shortcut"):
        block.build((None, 8, 8, 8))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(filters=0), "filters"),
        (dict(filters=8, kind="wide"), "kind"),
        (dict(filters=8, shortcut="zero_pad"), "shortcut"),
        (dict(filters=8, strides=0), "strides"),
    ],
)
def test_arguments_are_validated(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ResidualBlock(**kwargs)


def test_shortcut_is_added_before_the_final_relu():
    # With every conv kernel zero, F(x) = BN(0) = beta = 0, so g(F(x) + x) = relu(x): the
    # negative inputs are clipped. "relu(F(x)) + x" would keep them; no shortcut would give 0.
    block = ResidualBlock(4, name="b")
    x = np.random.default_rng(0).normal(size=(2, 5, 5, 4)).astype("float32")
    block.build(x.shape)
    block.set_weights([np.zeros_like(w) if w.path.endswith("kernel") else np.asarray(w) for w in block.weights])
    y = np.asarray(block(x, training=False))
    np.testing.assert_allclose(y, np.maximum(x, 0.0), atol=1e-5)
    assert (x < 0).any() and (x > 0).any()


def _basic_reference(filters, strides, in_channels, name="r"):
    """A Functional basic block from stock Keras layers: g(BN(W2 g(BN(W1 x))) + BN(Ws x))."""
    inp = keras.Input((9, 9, in_channels))
    x = keras.layers.ZeroPadding2D(1)(inp) if strides > 1 else inp
    x = keras.layers.Conv2D(filters, 3, strides, padding="valid" if strides > 1 else "same",
                            use_bias=False, name=f"{name}_1_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=1e-5, name=f"{name}_1_bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=1e-5, name=f"{name}_2_bn")(x)
    s = keras.layers.Conv2D(filters, 1, strides, use_bias=False, name=f"{name}_0_conv")(inp)
    s = keras.layers.BatchNormalization(epsilon=1e-5, name=f"{name}_0_bn")(s)
    out = keras.layers.ReLU()(keras.layers.Add()([x, s]))
    return keras.Model(inp, out)


def test_basic_projection_block_matches_a_stock_keras_graph():
    ref = _basic_reference(6, 2, 3)
    block = ResidualBlock(6, strides=2, name="r")
    x = np.random.default_rng(1).normal(size=(2, 9, 9, 3)).astype("float32")
    y_shape = block.compute_output_shape(x.shape)
    block.build(x.shape)
    ref.set_weights(_randomize(ref.weights, seed=2))
    by_name = {w.path.split("/")[-2] + "/" + w.name: np.asarray(w) for w in ref.weights}
    block.set_weights([by_name[w.path.split("/")[-2] + "/" + w.name] for w in block.weights])
    y = np.asarray(block(x, training=False))
    assert y.shape == y_shape == (2, 5, 5, 6)
    np.testing.assert_allclose(y, np.asarray(ref(x, training=False)), atol=1e-5)
    # The strided 3x3 pads one pixel on every side, as torchvision does.
    assert "r_1_pad" in [layer.name for layer in block._flatten_layers(include_self=False)]


@pytest.mark.parametrize("conv_shortcut,in_channels,stride", [(True, 8, 2), (False, 16, 1)])
def test_bottleneck_keras_layout_equals_keras_applications_block(conv_shortcut, in_channels, stride):
    # keras.applications' own residual_block_v1: its weight list (in Functional order) ports
    # one to one onto ours, and the outputs agree.
    inp = keras.Input((8, 8, in_channels))
    ref = keras.Model(inp, residual_block_v1(inp, 4, stride=stride, conv_shortcut=conv_shortcut, name="k"))
    block = ResidualBlock(
        4, kind="bottleneck", strides=stride, conv_bias=True, bn_epsilon=1.001e-5, stride_in_1x1=True, name="k"
    )
    out = block(inp)
    ours = keras.Model(inp, out)
    assert [w.shape for w in ours.weights] == [w.shape for w in ref.weights]
    ref_leaves = [w.path.split("/")[-2] for w in ref.weights]
    assert [w.path.split("/")[-2] for w in ours.weights] == ref_leaves
    assert block.count_params() == ref.count_params()
    ref.set_weights(_randomize(ref.weights, seed=3))
    ours.set_weights(ref.get_weights())
    x = np.random.default_rng(4).normal(size=(2, 8, 8, in_channels)).astype("float32")
    np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(ref(x)), rtol=1e-5, atol=1e-5)


def test_keras_conv2_block1_parameter_count_and_names():
    block = ResidualBlock(64, kind="bottleneck", conv_bias=True, stride_in_1x1=True, name="conv2_block1")
    assert block(keras.Input((56, 56, 64))).shape == (None, 56, 56, 256)
    # 1x1 4,160 + 3x3 36,928 + 1x1 16,640 + projection 16,640, and 4 per BN channel (64+64+256+256).
    assert block.count_params() == 4160 + 36928 + 16640 + 16640 + 4 * (64 + 64 + 256 + 256) == 76928
    assert _leaf_names(block) == [
        "conv2_block1_1_conv", "conv2_block1_1_bn", "conv2_block1_2_conv", "conv2_block1_2_bn",
        "conv2_block1_0_conv", "conv2_block1_3_conv", "conv2_block1_0_bn", "conv2_block1_3_bn",
    ]


def test_stride_placement():
    torch_style = ResidualBlock(4, kind="bottleneck", strides=2, name="t")
    keras_style = ResidualBlock(4, kind="bottleneck", strides=2, stride_in_1x1=True, name="k")
    for block in (torch_style, keras_style):
        block.build((None, 8, 8, 8))
    assert torch_style.conv1.strides == (1, 1) and torch_style.conv2.strides == (2, 2)
    assert keras_style.conv1.strides == (2, 2) and keras_style.conv2.strides == (1, 1)
    assert torch_style.pad2 is not None and keras_style.pad2 is None
    assert torch_style.shortcut_conv.strides == (2, 2)


@pytest.mark.parametrize("size,strides", [(8, 1), (9, 2), (7, 2), (8, 2)])
def test_compute_output_shape_matches_call(size, strides):
    for kind in ("basic", "bottleneck"):
        block = ResidualBlock(3, kind=kind, strides=strides, name=f"b_{kind}")
        x = np.zeros((1, size, size, 5), "float32")
        assert tuple(block(x).shape) == block.compute_output_shape(x.shape)
    assert block.compute_output_shape((None, None, None, 5)) == (None, None, None, 12)


def test_kernel_regularizer_adds_one_loss_per_kernel():
    block = ResidualBlock(4, strides=2, kernel_regularizer=keras.regularizers.L2(0.1), name="b")
    block(np.ones((1, 4, 4, 2), "float32"))
    kernels = [w for w in block.weights if w.path.endswith("kernel")]
    assert len(kernels) == 3 and len(block.losses) == 3
    expected = sum(0.1 * float(np.sum(np.square(np.asarray(k)))) for k in kernels)
    assert float(sum(block.losses)) == pytest.approx(expected, rel=1e-4)


def test_get_config_round_trip():
    block = ResidualBlock(
        4, kind="bottleneck", strides=2, shortcut="projection", expansion=2, conv_bias=True, bn_epsilon=1.001e-5,
        bn_momentum=0.9, stride_in_1x1=True, kernel_regularizer=keras.regularizers.L2(1e-4), name="b",
    )
    config = block.get_config()
    clone = ResidualBlock.from_config(config)
    assert clone.get_config() == config
    assert clone.out_channels == 8 and clone.stride_in_1x1 and clone.kernel_regularizer is not None


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(filters=4),  # auto -> identity
        dict(filters=3, kind="bottleneck", strides=2),  # auto -> projection
        dict(filters=4, shortcut="none", strides=2),  # plain
    ],
)
def test_keras_roundtrip(kwargs, tmp_path):
    inp = keras.Input((6, 6, 4))
    model = keras.Model(inp, ResidualBlock(name="blk", **kwargs)(inp))
    model.set_weights(_randomize(model.weights, seed=5))
    x = np.random.default_rng(6).normal(size=(2, 6, 6, 4)).astype("float32")
    loaded = assert_keras_roundtrip(model, x, tmp_path)
    original, restored = model.get_layer("blk"), loaded.get_layer("blk")
    assert restored.use_projection == original.use_projection
    assert [w.path for w in restored.weights] == [w.path for w in original.weights]


def test_sub_layers_follow_the_block_dtype_policy():
    block = ResidualBlock(4, strides=2, dtype="mixed_float16", name="b")
    y = block(np.ones((1, 6, 6, 2), "float32"))
    assert y.dtype == "float16"
    leaves = block._flatten_layers(include_self=False)
    assert leaves and all(layer.dtype_policy.name == "mixed_float16" for layer in leaves)
    assert all(w.dtype == "float32" for w in block.weights)  # variables stay float32
