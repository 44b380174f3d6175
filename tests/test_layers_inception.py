"""InceptionBlock, GridReduction and AuxiliaryClassifier: shapes, parameter counts, specs, I/O."""

import keras
import numpy as np
import pytest

from keras_cnn.layers.conv import ConvBN, FactorizedConv
from keras_cnn.layers.inception import (
    AuxiliaryClassifier,
    GridReduction,
    InceptionBlock,
    apply_conv_stem,
    conv_step,
    expanded_branches,
    factorized_step,
    normalize_branches,
    pool_step,
    scale_branches,
)
from tests.conftest import assert_keras_roundtrip


def _conv_params(k, c_in, c_out, bias=True):
    kh, kw = (k, k) if isinstance(k, int) else k
    return (kh * kw * c_in + int(bias)) * c_out


def _kernels(layer, prefix=""):
    """(kh, kw) of every Conv2D under ``layer`` whose name starts with ``prefix``, in weight order."""
    return [
        tuple(w.shape[:2]) for w in layer.weights if w.path.endswith("kernel") and w.path.split("/")[-2].startswith(prefix)
    ]


def _random_bn_stats(layer, seed=0):
    """Non-trivial BN statistics, so that a mix-up of BN layers changes the outputs."""
    rng = np.random.RandomState(seed)
    for sub in layer._flatten_layers():
        if isinstance(sub, keras.layers.BatchNormalization):
            sub.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in sub.get_weights()])


# ------------------------------------------------------------------------------------ module 3a


def test_googlenet_3a_shape_and_parameters():
    # SPEC 5: 28x28x192 -> 28x28x256; conv + bias, no BN.
    block = InceptionBlock.v1(64, 96, 128, 16, 32, 32, use_bn=False, name="inception_3a")
    y = block(keras.Input((28, 28, 192)))
    assert tuple(y.shape) == (None, 28, 28, 256)
    expected = (
        _conv_params(1, 192, 64)
        + _conv_params(1, 192, 96) + _conv_params(3, 96, 128)
        + _conv_params(1, 192, 16) + _conv_params(5, 16, 32)
        + _conv_params(1, 192, 32)
    )
    assert block.count_params() == expected == 163_696
    # Readable, deterministic names, in creation order.
    assert [layer.name for layer in block.step_layers] == [
        "inception_3a_branch1_1",
        "inception_3a_branch2_1",
        "inception_3a_branch2_2",
        "inception_3a_branch3_1",
        "inception_3a_branch3_2",
        "inception_3a_branch4_1",
        "inception_3a_branch4_2",
    ]
    assert isinstance(block.step_layers[5], keras.layers.MaxPooling2D)
    assert block.step_layers[4].kernel_size == (5, 5)


def test_naive_module_keeps_pool_channels():
    block = InceptionBlock.naive(64, 128, 32, name="naive")
    assert block.compute_output_shape((None, 28, 28, 192)) == (None, 28, 28, 64 + 128 + 32 + 192)
    y = block(np.random.rand(1, 28, 28, 192).astype("float32"))
    assert y.shape == (1, 28, 28, 416)
    # The last 192 channels are the max-pooled input (stride 1, same): >= the input itself.
    x = np.random.rand(1, 6, 6, 5).astype("float32")
    small = InceptionBlock.naive(2, 3, 4, name="naive_small")
    out = np.asarray(small(x))
    np.testing.assert_allclose(out[..., -5:], np.asarray(keras.layers.MaxPooling2D(3, 1, "same")(x)))


def test_concatenation_follows_branch_order():
    x = np.random.RandomState(1).rand(2, 5, 5, 3).astype("float32")
    block = InceptionBlock([[(4, 1)], ["avg"], [(2, 3)]], use_bn=False, name="order")
    out = np.asarray(block(x))
    assert out.shape == (2, 5, 5, 4 + 3 + 2)
    np.testing.assert_allclose(out[..., :4], np.asarray(block.step_layers[0](x)), atol=1e-6)
    np.testing.assert_allclose(out[..., 4:7], np.asarray(keras.layers.AveragePooling2D(3, 1, "same")(x)), atol=1e-6)
    np.testing.assert_allclose(out[..., 7:], np.asarray(block.step_layers[2](x)), atol=1e-6)


@pytest.mark.parametrize(
    "mode, kernels",
    [("plain", [(5, 5)]), ("stacked", [(3, 3), (3, 3)]), ("asymmetric", [(1, 5), (5, 1)])],
)
def test_v1_five_by_five_factorisations(mode, kernels):
    block = InceptionBlock.v1(8, 4, 8, 2, 6, 4, five_by_five=mode, name="m")
    block.build((None, 9, 9, 16))
    assert _kernels(block, "m_branch3_")[1:] == kernels
    # The factorised forms are one FactorizedConv step after the 1x1 reduction.
    step = [layer for layer in block.step_layers if layer.name == "m_branch3_2"][0]
    assert type(step) is (ConvBN if mode == "plain" else FactorizedConv)
    if mode != "plain":
        assert (step.mode, step.kernel_size, step.filters) == (mode, 5, 6)
    assert block.compute_output_shape((None, 9, 9, 16)) == (None, 9, 9, 8 + 8 + 6 + 4)
    with pytest.raises(ValueError, match="five_by_five"):
        InceptionBlock.v1(8, 4, 8, 2, 6, 4, five_by_five="3x3")


def test_figure5_factorized_is_cheaper_than_5x5():
    # Two 3x3 (18 weights/position) instead of one 5x5 (25): "Rethinking", section 3.1.
    plain = InceptionBlock.v1(8, 8, 8, 16, 16, 8, five_by_five="plain", use_bn=False, name="p")
    fact = InceptionBlock.factorized(8, 8, 8, 16, 16, 8, use_bn=False, name="f")
    plain.build((None, 9, 9, 16))
    fact.build((None, 9, 9, 16))
    assert plain.count_params() - fact.count_params() == (25 - 18) * 16 * 16 - 16  # one bias more
    # Figure 5 modules use average pooling by default.
    assert isinstance(fact.step_layers[-2], keras.layers.AveragePooling2D)


def test_figure6_asymmetric_chain():
    block = InceptionBlock.asymmetric(192, 128, 192, 128, 192, 192, name="mixed4")
    assert block.compute_output_shape((None, 17, 17, 768)) == (None, 17, 17, 768)
    block.build((None, 17, 17, 768))
    # Every 7x7 is a FactorizedConv (1x7 -> 7x1): one in branch 2, two in branch 3.
    factorized = [layer for layer in block.step_layers if isinstance(layer, FactorizedConv)]
    assert [(f.name, f.mode, f.intermediate_filters, f.filters) for f in factorized] == [
        ("mixed4_branch2_2", "asymmetric", 128, 192),
        ("mixed4_branch3_2", "asymmetric", 128, 128),
        ("mixed4_branch3_3", "asymmetric", 128, 192),
    ]
    assert [f.name for f in factorized[2].factors] == ["mixed4_branch3_3_1", "mixed4_branch3_3_2"]
    kernels = _kernels(block)
    assert kernels == [
        (1, 1),
        (1, 1), (1, 7), (7, 1),
        (1, 1), (1, 7), (7, 1), (1, 7), (7, 1),
        (1, 1),
    ]


def test_figure7_expanded_filter_bank():
    block = InceptionBlock.expanded(320, 384, 384, 448, 384, 384, 192, name="mixed9", bn_scale=False)
    y = block(keras.Input((8, 8, 1280)))
    assert tuple(y.shape) == (None, 8, 8, 320 + 2 * 384 + 2 * 384 + 192)
    bank = [layer for layer in block.step_layers if layer.name == "mixed9_branch2_2"][0]
    assert isinstance(bank, FactorizedConv) and bank.mode == "expanded" and bank.output_channels == 768
    assert [(f.name, f.kernel_size) for f in bank.factors] == [("mixed9_branch2_2_1", (1, 3)), ("mixed9_branch2_2_2", (3, 1))]
    # keras.applications' mixed9 (BN scale=False): 5,047,872 parameters.
    assert block.count_params() == 5_047_872


def test_weights_listed_in_creation_order():
    block = InceptionBlock(expanded_branches(4, 3, 2, 5, 3, 2, 1), name="e")
    block.build((None, 8, 8, 6))
    conv_names = [w.path.split("/")[-2] for w in block.weights if w.path.endswith("kernel")]
    assert conv_names == [
        "e_branch1_1_conv",
        "e_branch2_1_conv",
        "e_branch2_2_1_conv",
        "e_branch2_2_2_conv",
        "e_branch3_1_conv",
        "e_branch3_2_conv",
        "e_branch3_3_1_conv",
        "e_branch3_3_2_conv",
        "e_branch4_2_conv",
    ]


# ------------------------------------------------------------------------------- specification


def test_shorthand_and_canonical_specs_are_equivalent():
    short = [[(64, 1)], [(48, 1), (64, (1, 7))], ["avg", (32, 1)], [(8, 1), factorized_step(4, 3, "expanded")]]
    canonical = [
        [conv_step(64, 1)],
        [conv_step(48, 1), conv_step(64, (1, 7))],
        [pool_step("avg"), conv_step(32, 1)],
        [
            conv_step(8, 1),
            {
                "type": "factorized",
                "filters": 4,
                "kernel_size": 3,
                "mode": "expanded",
                "intermediate_filters": 4,
                "first_factor": "1xn",
            },
        ],
    ]
    assert normalize_branches(short) == normalize_branches(canonical) == canonical
    block = InceptionBlock(short, name="s")
    assert block.get_config()["branches"] == canonical
    assert block.compute_output_shape((None, 7, 7, 16)) == (None, 7, 7, 64 + 64 + 32 + 8)


def test_count_include_pad_average_pool_divides_by_the_full_window(tmp_path):
    # PyTorch's avg_pool2d(3, stride=1, padding=1): on an all-ones map a corner averages 4 ones over 9.
    x = np.ones((1, 4, 4, 2), "float32")
    torch_like = InceptionBlock([[pool_step("avg", count_include_pad=True)]], name="p")
    keras_like = InceptionBlock([["avg"]], name="k")
    expected = np.array([[4, 6, 6, 4], [6, 9, 9, 6], [6, 9, 9, 6], [4, 6, 6, 4]], "float32") / 9
    np.testing.assert_allclose(np.asarray(torch_like(x))[0, :, :, 1], expected, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(keras_like(x)), 1.0, rtol=1e-6)  # Keras leaves the padding out
    clone = InceptionBlock.from_config(torch_like.get_config())
    assert clone.branches == torch_like.branches and clone.branches[0][0]["count_include_pad"] is True
    np.testing.assert_allclose(np.asarray(clone(x)), np.asarray(torch_like(x)))
    inputs = keras.Input((4, 4, 2))
    assert_keras_roundtrip(keras.Model(inputs, torch_like(inputs)), x, tmp_path)


@pytest.mark.parametrize(
    "kwargs", [{"pool": "max"}, {"padding": "valid"}, {"strides": 2}, {"pool_size": 2}, {"count_include_pad": 1}]
)
def test_count_include_pad_only_where_it_is_a_symmetric_zero_padding(kwargs):
    with pytest.raises(ValueError, match="count_include_pad"):
        pool_step(**{"pool": "avg", "count_include_pad": True, **kwargs})


def test_scale_branches():
    scaled = scale_branches(expanded_branches(320, 384, 384, 448, 384, 384, 192), 0.25)
    block = InceptionBlock(scaled, name="c")
    assert block.compute_output_shape((None, 8, 8, 64)) == (None, 8, 8, 80 + 192 + 192 + 48)
    tiny = InceptionBlock(scale_branches([[(3, 1)], ["max"]], 0.01), name="t")
    assert tiny.compute_output_shape((None, 4, 4, 2)) == (None, 4, 4, 1 + 2)


@pytest.mark.parametrize(
    "branches",
    [
        [],
        [[]],
        "abc",
        [[(0, 1)]],
        [[(8, 0)]],
        [[(8, 3, 1, "full")]],
        [["min"]],
        [[{"type": "dense", "units": 3}]],
        [[{"type": "split", "convs": [(4, (1, 3)), (4, (3, 1))]}]],
        [[{"type": "factorized", "filters": 4, "kernel_size": 4}]],
        [[{"type": "factorized", "filters": 4, "kernel_size": 3, "mode": "diagonal"}]],
        [[{"type": "factorized", "filters": 4, "kernel_size": 3, "mode": "expanded", "intermediate_filters": 2}]],
        [[{"type": "factorized", "filters": 4, "kernel_size": 7, "first_factor": "7x1"}]],
    ],
)
def test_bad_specs_raise_naming_branches(branches):
    with pytest.raises(ValueError, match="branches"):
        InceptionBlock(branches)


def test_factorized_step_is_a_factorized_conv():
    """A factorized step computes exactly the standalone FactorizedConv it describes."""
    x = np.random.RandomState(4).rand(2, 7, 7, 3).astype("float32")
    block = InceptionBlock(
        [[(2, 1)], [factorized_step(4, 7, "asymmetric", intermediate_filters=3, first_factor="nx1")]],
        name="fb",
    )
    out = np.asarray(block(x))
    step = block.step_layers[1]
    _random_bn_stats(block, seed=5)
    alone = FactorizedConv(4, 7, "asymmetric", intermediate_filters=3, first_factor="nx1", name="alone")
    alone.build(x.shape)
    alone.set_weights(step.get_weights())
    np.testing.assert_allclose(np.asarray(block(x))[..., 2:], np.asarray(alone(x)), atol=1e-6)
    assert out.shape == (2, 7, 7, 2 + 4)
    assert [f.kernel_size for f in step.factors] == [(7, 1), (1, 7)]
    # The block's conv options reach every factor (the activation too, not only the last one's).
    elu = InceptionBlock([[factorized_step(4, 7, "asymmetric")]], activation="elu", use_bn=False, name="elu")
    assert [(f.activation, f.use_bn, f.use_bias) for f in elu.step_layers[0].factors] == [("elu", False, True)] * 2
    # scale_branches scales the factorisation's filters and its intermediate filters.
    scaled = scale_branches(block.branches, 2.0)[1][0]
    assert (scaled["filters"], scaled["intermediate_filters"]) == (8, 6)


def test_legacy_split_step_is_refused_with_its_replacement():
    with pytest.raises(ValueError, match="branches.*'split' step .* mode='expanded'"):
        InceptionBlock([[(4, 1), {"type": "split", "convs": [(4, (1, 3)), (4, (3, 1))]}]])


def test_branches_with_different_grids_raise():
    block = InceptionBlock([[(4, 1)], [(4, 3, 2, "valid")]], name="bad")
    with pytest.raises(ValueError, match="branches.*same height and width"):
        block.build((None, 9, 9, 3))


# ----------------------------------------------------------------------------- grid reduction


def test_grid_reduction_mixed3():
    red = GridReduction([[(384, 3)], [(64, 1), (96, 3), (96, 3)]], name="mixed3", bn_scale=False)
    y = red(keras.Input((35, 35, 288)))
    assert tuple(y.shape) == (None, 17, 17, 384 + 96 + 288)
    convs = [layer for layer in red.step_layers if isinstance(layer, ConvBN)]
    assert [(c.strides, c.padding) for c in convs] == [((2, 2), "valid"), ((1, 1), "same"), ((1, 1), "same"), ((2, 2), "valid")]
    pool = red.step_layers[-1]
    assert isinstance(pool, keras.layers.MaxPooling2D) and pool.strides == (2, 2)
    # keras' mixed3 (BN without gamma: beta, moving mean, moving variance).
    expected = sum(
        _conv_params(k, c_in, c_out, bias=False) + 3 * c_out
        for k, c_in, c_out in [(3, 288, 384), (1, 288, 64), (3, 64, 96), (3, 96, 96)]
    )
    assert red.count_params() == expected == 1_153_920


def test_grid_reduction_options_and_errors():
    red = GridReduction([[(6, 3)]], pool="avg", padding="same", pool_proj=5, name="r")
    assert red.compute_output_shape((None, 9, 9, 4)) == (None, 5, 5, 6 + 5)
    assert red.get_config()["branches"] == [[conv_step(6, 3)]]  # as given, not the stride-2 form
    with pytest.raises(ValueError, match="branches"):
        GridReduction([[(4, 1), "max"]])
    with pytest.raises(ValueError, match="pool"):
        GridReduction([[(4, 3)]], pool="min")
    with pytest.raises(ValueError, match="pool_proj"):
        GridReduction([[(4, 3)]], pool=None, pool_proj=3)


# ------------------------------------------------------------------------------ aux classifier


def test_googlenet_aux_head():
    head = AuxiliaryClassifier.googlenet(1000, name="aux1")
    y = head(keras.Input((14, 14, 512)))
    assert tuple(y.shape) == (None, 1000)
    # avg-pool 5/3 -> 4x4x512 -> 1x1x128 -> flatten 2048 -> FC 1024 -> FC 1000.
    assert head.count_params() == _conv_params(1, 512, 128) + (2048 + 1) * 1024 + (1024 + 1) * 1000
    assert head.dropout == 0.7
    x = np.random.rand(3, 14, 14, 512).astype("float32")
    probs = np.asarray(head(x))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    # Dropout is active in training only.
    assert not np.allclose(np.asarray(head(x, training=True)), probs)


def test_inception_v3_aux_head():
    head = AuxiliaryClassifier.inception_v3(1000, name="aux1")
    assert head.compute_output_shape((None, 17, 17, 768)) == (None, 1000)
    head.build((None, 17, 17, 768))
    # 1x1x128 + BN(beta, mean, var) | 5x5x768 + BN | FC: 3,327,592 (torchvision's InceptionAux
    # without BN gamma).
    assert head.count_params() == 768 * 128 + 3 * 128 + 25 * 128 * 768 + 3 * 768 + 769 * 1000 == 3_327_592
    logits = AuxiliaryClassifier.inception_v3(7, activation=None, name="aux_logits")
    out = np.asarray(logits(np.random.rand(2, 17, 17, 16).astype("float32")))
    assert out.shape == (2, 7) and not np.allclose(out.sum(axis=1), 1.0)


@pytest.mark.parametrize("grid", [1, 3, 6])
def test_aux_head_builds_on_small_grids(grid):
    head = AuxiliaryClassifier.inception_v3(5, name="aux_small")
    assert head.compute_output_shape((None, grid, grid, 8)) == (None, 5)
    out = head(np.random.rand(2, grid, grid, 8).astype("float32"))
    assert out.shape == (2, 5)
    flat = AuxiliaryClassifier.googlenet(5, convs=((4, 1),), fc_units=(6,), name="aux_flat")
    assert flat(np.random.rand(1, grid, grid, 8).astype("float32")).shape == (1, 5)


def test_aux_head_validation():
    with pytest.raises(ValueError, match="dropout"):
        AuxiliaryClassifier(10, dropout=1.5)
    with pytest.raises(ValueError, match="classes"):
        AuxiliaryClassifier(0)
    with pytest.raises(ValueError, match="convs"):
        AuxiliaryClassifier(10, convs=("max",))


# -------------------------------------------------------------------------------- stem helper


def test_apply_conv_stem_names_and_shapes():
    inputs = keras.Input((299, 299, 3))
    y = apply_conv_stem(inputs, [(32, 3, 2, "valid"), (16, 3, 1, "same"), "pool"], width_multiplier=0.5, use_bn=False)
    assert tuple(y.shape) == (None, 74, 74, 8)  # 299 -> 149 -> 149 -> 74
    model = keras.Model(inputs, y)
    assert [layer.name for layer in model.layers[1:]] == ["stem_conv1", "stem_conv2", "stem_pool1"]
    assert model.get_layer("stem_conv1").filters == 16 and model.get_layer("stem_conv1").use_bias


# ------------------------------------------------------------------------------- serialisation


def _all_layers_model():
    inputs = keras.Input((17, 17, 6))
    v1 = InceptionBlock.v1(4, 3, 4, 2, 3, 2, five_by_five="asymmetric", use_bn=False, name="v1")(inputs)
    naive = InceptionBlock.naive(2, 3, 2, pool="avg", name="naive")(v1)
    exp = InceptionBlock.expanded(2, 2, 3, 2, 2, 3, 2, bn_scale=False, name="exp")(naive)
    aux1 = AuxiliaryClassifier.googlenet(4, convs=((3, 1),), fc_units=(5,), name="aux1")(exp)
    aux2 = AuxiliaryClassifier.inception_v3(4, convs=((3, 1), (5, 5, 1, "valid")), name="aux2")(exp)
    red = GridReduction([[(4, 3)], [(2, 1), (3, 3)]], name="red", kernel_regularizer="l2")(exp)
    # Every layer's output is a model output, so the round trip compares each of them.
    return keras.Model(inputs, {"v1": v1, "naive": naive, "exp": exp, "aux1": aux1, "aux2": aux2, "red": red})


def test_layers_keras_roundtrip(tmp_path):
    model = _all_layers_model()
    for name in ("exp", "aux2", "red"):
        _random_bn_stats(model.get_layer(name), seed=len(name))
    x = np.random.RandomState(0).rand(2, 17, 17, 6).astype("float32")
    loaded = assert_keras_roundtrip(model, x, tmp_path)
    assert set(loaded(x)) == {"v1", "naive", "exp", "aux1", "aux2", "red"}
    for name in ("v1", "naive", "exp", "aux1", "aux2", "red"):
        original, restored = model.get_layer(name), loaded.get_layer(name)
        assert type(restored) is type(original)
        assert restored.get_config() == original.get_config()
        assert [w.path for w in restored.weights] == [w.path for w in original.weights]


@pytest.mark.parametrize(
    "layer",
    [
        lambda: InceptionBlock.v1(4, 3, 4, 2, 3, 2, use_bn=False, activation="elu", name="b"),
        lambda: GridReduction([[(4, 3)]], pool="avg", strides=2, padding="same", pool_proj=3, name="g"),
        lambda: AuxiliaryClassifier.inception_v3(3, activation=None, name="a"),
    ],
)
def test_config_roundtrip(layer):
    original = layer()
    clone = type(original).from_config(original.get_config())
    assert clone.get_config() == original.get_config()
    shape = (None, 9, 9, 5)
    assert clone.compute_output_shape(shape) == original.compute_output_shape(shape)
