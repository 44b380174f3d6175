"""keras_cnn.analysis: the lecture's arithmetic (SPEC sections 1, 4, 5) and the per-layer profiler."""

import json
import math

import keras
import numpy as np
import pytest

from keras_cnn.analysis import (
    FactorizationTable,
    compare_factorizations,
    conv_macs,
    conv_output_size,
    conv_params,
    plot_comparison,
    profile,
)
from keras_cnn.layers import ConvBN, FactorizedConv
from keras_cnn.models import build_model, list_models

# ---------------------------------------------------------------------------------------------
# Formulas (SPEC 1, 4, 5)
# ---------------------------------------------------------------------------------------------


def test_conv_output_size_course_convnet_and_alexnet():
    # SPEC 1: 39 -> 37 -> 17 -> 7.
    assert conv_output_size(39, 3) == 37
    assert conv_output_size(37, 5, s=2) == 17
    assert conv_output_size(17, 5, s=2) == 7
    assert conv_output_size(28, 5, p=2) == 28  # "same"
    assert conv_output_size(227, 11, s=4) == 55  # AlexNet conv1
    assert conv_output_size(55, 3, s=2) == 27  # its max-pool


@pytest.mark.parametrize(
    "kwargs, arg",
    [
        (dict(n=3, f=5), "`f`"),
        (dict(n=0, f=1), "`n`"),
        (dict(n=5, f=3, s=0), "`s`"),
        (dict(n=5, f=3, p=-1), "`p`"),
    ],
)
def test_conv_output_size_rejects_bad_arguments(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        conv_output_size(**kwargs)


def test_conv_params_280_and_variants():
    assert conv_params(3, 3, 10) == 280  # SPEC 1
    assert conv_params(3, 3, 10, bias=False) == 270
    assert conv_params((1, 7), 128, 192) == (7 * 128 + 1) * 192
    assert conv_params(1, 192, 32) == 193 * 32
    with pytest.raises(ValueError, match="c_in"):
        conv_params(3, 0, 10)


def test_conv_macs_spec5_figures():
    assert conv_macs(28, 28, 32, 5, 5, 192) == 120_422_400
    reduce, conv = conv_macs(28, 28, 16, 1, 1, 192), conv_macs(28, 28, 32, 5, 5, 16)
    assert (reduce, conv, reduce + conv) == (2_408_448, 10_035_200, 12_443_648)
    assert conv_macs(14, 14, 48, 5, 5, 480) == 112_896_000
    assert conv_macs(14, 14, 16, 1, 1, 480) + conv_macs(14, 14, 48, 5, 5, 16) == 5_268_480
    assert conv_macs(8, 8, 64, 3, 3, 32, groups=4) == conv_macs(8, 8, 64, 3, 3, 32) // 4
    with pytest.raises(ValueError, match="groups"):
        conv_macs(8, 8, 64, 3, 3, 30, groups=4)


# ---------------------------------------------------------------------------------------------
# compare_factorizations / plot_comparison (SPEC 5)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inception_3a_table():
    return compare_factorizations((28, 28, 192), filters=32, kernel_size=5, bottleneck=16)


def test_factorizations_reproduce_googlenet_bottleneck(inception_3a_table):
    t = inception_3a_table
    assert t.keys() == ["plain", "stacked", "asymmetric", "bottleneck", "bottleneck_stacked", "bottleneck_asymmetric"]
    assert t["plain"].macs == 120_422_400
    assert t["bottleneck"].macs == 12_443_648
    assert t["bottleneck"].layer_macs == (2_408_448, 10_035_200)
    assert t["plain"].params == (5 * 5 * 192 + 1) * 32
    assert t["bottleneck"].params == (192 + 1) * 16 + (25 * 16 + 1) * 32
    assert t["bottleneck"].relative_macs == pytest.approx(12_443_648 / 120_422_400)  # "about a tenth"
    for row in t.rows:
        assert row.output_shape == (28, 28, 32)
        assert row.formula_agrees, row  # real layers and formula agree
        assert sum(row.layer_macs) == row.macs


def test_factorizations_second_example_14x14x480():
    t = compare_factorizations((14, 14, 480), filters=48, kernel_size=5, bottleneck=16, combined=False)
    assert t.keys() == ["plain", "stacked", "asymmetric", "bottleneck"]
    assert t["plain"].macs == 112_896_000
    assert t["bottleneck"].macs == 5_268_480


def test_asymmetric_3x3_saves_a_third_and_2x2_a_ninth():
    # SPEC 5: 3x3 -> 1x3 + 3x1 saves ~33%, a 2x2 factorisation only ~11% (same width in and out).
    t = compare_factorizations((17, 17, 64), filters=64, kernel_size=3, bottleneck=None)
    assert t.keys() == ["plain", "stacked", "asymmetric"]
    assert t["asymmetric"].macs_saving == pytest.approx(1 / 3)
    assert t["stacked"].macs_saving == pytest.approx(1 / 9)
    assert "2x2" in t["stacked"].label
    assert all(row.formula_agrees for row in t.rows)


def test_stacked_5x5_is_18_of_25_and_7x7_asymmetric_is_14_of_49():
    t5 = compare_factorizations((17, 17, 32), filters=32, kernel_size=5, bottleneck=None, use_bias=False)
    assert t5["stacked"].relative_macs == pytest.approx(18 / 25)
    assert t5["stacked"].relative_params == pytest.approx(18 / 25)  # no bias: params scale alike
    t7 = compare_factorizations((17, 17, 32), filters=32, kernel_size=7, bottleneck=None, use_bias=False)
    assert t7["asymmetric"].relative_macs == pytest.approx(14 / 49)
    assert t7["stacked"].relative_macs == pytest.approx(27 / 49)  # three 3x3
    even = compare_factorizations((16, 16, 8), filters=8, kernel_size=4, bottleneck=None)
    assert "stacked" not in even.keys()


@pytest.mark.parametrize(
    "kwargs, arg",
    [
        (dict(kernel_size=1), "kernel_size"),
        (dict(filters=0), "filters"),
        (dict(input_shape=(28, 28)), "input_shape"),
        (dict(bottleneck=-3), "bottleneck"),
    ],
)
def test_compare_factorizations_rejects_bad_arguments(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        compare_factorizations(**kwargs)


def test_factorization_table_text_and_dict(inception_3a_table):
    text = inception_3a_table.to_table()
    assert "120,422,400" in text and "2,408,448 + 10,035,200" in text and "12,443,648" in text
    assert "MISMATCH" not in text
    d = json.loads(json.dumps(inception_3a_table.to_dict()))
    assert [r["key"] for r in d["rows"]] == inception_3a_table.keys()
    assert d["rows"][3]["layer_macs"] == [2_408_448, 10_035_200]


def test_plot_comparison_writes_png_atomically(inception_3a_table, tmp_path):
    path = plot_comparison(inception_3a_table, tmp_path / "sub" / "cost.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert [p.name for p in path.parent.iterdir()] == ["cost.png"]  # no temporary left behind
    with pytest.raises(ValueError, match="table"):
        plot_comparison({"rows": []}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="path"):
        plot_comparison(inception_3a_table, tmp_path)
    assert isinstance(inception_3a_table, FactorizationTable)


# ---------------------------------------------------------------------------------------------
# profile()
# ---------------------------------------------------------------------------------------------


def _model(inputs, outputs, name="m"):
    return keras.Model(inputs, outputs, name=name)


def test_profile_280_parameter_layer_and_1x1_conv():
    inputs = keras.Input((39, 39, 3))
    p = profile(_model(inputs, keras.layers.Conv2D(10, 3, name="c")(inputs)))
    (row,) = p.rows
    assert (row.name, row.kind, row.output_shape, row.params) == ("c", "Conv2D", (None, 37, 37, 10), 280)
    assert row.macs == conv_macs(37, 37, 10, 3, 3, 3) == 369_630

    inputs = keras.Input((28, 28, 192))
    p = profile(_model(inputs, keras.layers.Conv2D(32, 1, name="nin")(inputs)))
    assert p.rows[0].output_shape == (None, 28, 28, 32)  # SPEC 4
    assert (p.total_params, p.total_macs) == (193 * 32, 28 * 28 * 32 * 192)


def _lenet5():
    inputs = keras.Input((32, 32, 1))
    x = keras.layers.Conv2D(6, 5, activation="tanh")(inputs)
    x = keras.layers.AveragePooling2D(2)(x)
    x = keras.layers.Conv2D(16, 5, activation="tanh")(x)
    x = keras.layers.AveragePooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(120, activation="tanh")(x)
    x = keras.layers.Dense(84, activation="tanh")(x)
    return _model(inputs, keras.layers.Dense(10, activation="softmax")(x), "lenet")


# LeNet-5 by hand: conv1 28*28*6*25 + conv2 10*10*16*25*6 + 400*120 + 120*84 + 84*10.
LENET5_MACS = 117_600 + 240_000 + 48_000 + 10_080 + 840


def test_profile_lenet5_by_hand():
    assert LENET5_MACS == 416_520
    p = profile(_lenet5())
    assert p.total_macs == LENET5_MACS
    assert p.total_params == 61_706 and p.trainable_params == 61_706 and p.non_trainable_params == 0
    assert [r.macs for r in p.rows if r.macs] == [117_600, 240_000, 48_000, 10_080, 840]
    assert p.gmacs == pytest.approx(416_520e-9)


@keras.saving.register_keras_serializable(package="keras_cnn_tests")
class _Gated(keras.layers.Layer):
    """A composite with its own weight, a child that it never calls, and a nested Sequential."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = keras.Sequential([keras.layers.Conv2D(4, 3, padding="same", name="inner_conv")], name="inner")
        self.unused = keras.layers.Dense(5, name="unused_dense")

    def build(self, input_shape):
        self.inner.build(input_shape)
        self.unused.build((None, 7))
        self.gate = self.add_weight(shape=(4,), initializer="ones", name="gate")

    def call(self, x):
        return self.inner(x) * self.gate

    def compute_output_shape(self, input_shape):
        return input_shape[:-1] + (4,)


def _composite_model():
    """ConvBN, FactorizedConv (both modes), a nested Functional model, a custom composite with
    own weights, a shared Dense layer and dict outputs."""
    inputs = keras.Input((12, 12, 3), name="image")
    x = ConvBN(8, 3, name="stem")(inputs)  # 12x12x8
    x = FactorizedConv(8, 5, mode="stacked", name="fs")(x)
    x = FactorizedConv(6, 3, mode="asymmetric", intermediate_filters=4, name="fa")(x)
    sub_in = keras.Input((12, 12, 6))
    sub = keras.Model(sub_in, ConvBN(4, 1, use_bn=False, name="sub_conv")(sub_in), name="sub")
    x = sub(x)  # 12x12x4
    x = _Gated(name="gated")(x)  # 12x12x4
    pooled = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    shared = keras.layers.Dense(4, name="shared")
    y = shared(shared(pooled))
    out = {"predictions": keras.layers.Dense(3, name="predictions")(y), "features": pooled}
    return _model(inputs, out, "composite")


def _composite_macs():
    hw = 12 * 12
    return (
        hw * 8 * 9 * 3  # stem
        + hw * 8 * 9 * 8 * 2  # fs: two 3x3
        + hw * 4 * 3 * 8 + hw * 6 * 3 * 4  # fa: 1x3 (8->4), 3x1 (4->6)
        + hw * 4 * 6  # sub_conv 1x1
        + hw * 4 * 9 * 4  # gated/inner/inner_conv
        + 2 * 4 * 4  # shared Dense, called twice
        + 4 * 3  # predictions
    )


def test_profile_descends_into_composite_layers():
    model = _composite_model()
    p = profile(model)
    assert p.total_params == model.count_params()
    assert p.trainable_params == sum(math.prod(w.shape) for w in model.trainable_weights)
    assert p.non_trainable_params == sum(math.prod(w.shape) for w in model.non_trainable_weights) > 0
    assert p.total_macs == _composite_macs()
    names = {r.name: r for r in p.rows}
    assert names["fs/fs_2/fs_2_conv"].output_shape == (None, 12, 12, 8)
    assert names["fs/fs_2/fs_2_conv"].macs == 12 * 12 * 8 * 9 * 8
    assert names["fa/fa_1/fa_1_conv"].output_shape == (None, 12, 12, 4)
    assert names["sub/sub_conv/sub_conv_conv"].params == 6 * 4 + 4
    assert names["gated/inner/inner_conv"].macs == 12 * 12 * 4 * 9 * 4
    assert names["gated (own weights)"].params == 4
    assert names["gated/unused_dense"].output_shape is None  # never called, still counted
    assert names["gated/unused_dense"].params == 7 * 5 + 5
    # Only leaf layers (and own weights) are rows: no composite class appears as a plain row.
    assert not {r.kind for r in p.rows if "(own" not in r.name} & {"ConvBN", "FactorizedConv", "Functional", "Sequential"}
    shared_rows = [r for r in p.rows if r.name == "shared"]
    assert [r.params for r in shared_rows] == [4 * 4 + 4, 0]  # weights once, MACs per call
    assert [r.macs for r in shared_rows] == [16, 16]
    assert p.output_shape == {"predictions": (None, 3), "features": (None, 4)}


def test_profile_per_stage_and_reports():
    model = _composite_model()
    p = profile(model)
    stages = {s.name: s for s in p.per_stage()}
    assert list(stages)[:4] == ["stem", "fs", "fa", "sub"]
    assert stages["fs"].kind == "FactorizedConv" and stages["fs"].output_shape == (None, 12, 12, 8)
    assert stages["fs"].params == sum(r.params for r in p.rows if r.name.startswith("fs/"))
    assert sum(s.params for s in stages.values()) == p.total_params
    assert sum(s.macs for s in stages.values()) == p.total_macs
    text = p.to_table()
    assert "fs/fs_1/fs_1_conv" in text and f"Total params: {p.total_params:,}" in text
    assert f"Total MACs: {p.total_macs:,}" in text
    compact = p.to_table(skip_empty=True)
    assert "stem/stem_relu" in text and "stem/stem_relu" not in compact
    assert "FactorizedConv" in p.to_table(stages=True)
    d = json.loads(json.dumps(p.to_dict()))
    assert d["total_params"] == model.count_params() and d["total_macs"] == p.total_macs
    assert sum(r["params"] for r in d["layers"]) == d["total_params"]
    assert d["output_shape"]["predictions"] == [None, 3]


def test_profile_has_no_side_effects():
    model = _composite_model()
    x = np.random.default_rng(0).uniform(size=(2, 12, 12, 3)).astype("float32")
    before = [np.array(w) for w in model.weights]
    y0 = model(x, training=False)["predictions"]
    profile(model)
    for layer in model._flatten_layers(include_self=True, recursive=True):
        assert "call" not in vars(layer)  # hooks removed
    np.testing.assert_array_equal(model(x, training=False)["predictions"], y0)
    for a, w in zip(before, model.weights):
        np.testing.assert_array_equal(a, np.array(w))


def test_profile_frozen_composite_counts_non_trainable():
    model = _composite_model()
    model.get_layer("fs").trainable = False
    p = profile(model)
    assert p.trainable_params == sum(math.prod(w.shape) for w in model.trainable_weights)
    fs_rows = [r for r in p.rows if r.stage == "fs"]
    assert sum(r.params for r in fs_rows) > 0 and all(r.trainable_params == 0 for r in fs_rows)


def test_profile_mac_counts_of_other_layer_kinds():
    inputs = keras.Input((10, 10, 8))
    x = keras.layers.Conv2D(16, 3, groups=4, name="grouped")(inputs)  # 8x8x16
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(x)  # 8x8x32
    x = keras.layers.SeparableConv2D(8, 3, name="sep")(x)  # 6x6x8
    x = keras.layers.Conv2DTranspose(4, 2, strides=2, name="tconv")(x)  # 12x12x4
    x = keras.layers.Reshape((144, 4))(x)
    x = keras.layers.Conv1D(5, 3, name="c1d")(x)  # 142x5
    x = keras.layers.Dense(2, name="dense3d")(x)  # 142x2
    p = profile(_model(inputs, x))
    macs = {r.name: r.macs for r in p.rows}
    assert macs["grouped"] == 8 * 8 * 16 * 9 * 2
    assert macs["dw"] == 8 * 8 * 32 * 9
    assert macs["sep"] == 6 * 6 * 32 * 9 + 6 * 6 * 32 * 8
    assert macs["tconv"] == 6 * 6 * 8 * 4 * 4
    assert macs["c1d"] == 142 * 5 * 3 * 4
    assert macs["dense3d"] == 142 * 5 * 2
    assert p.total_params == p.total_params == _model(inputs, x).count_params()

    v_in = keras.Input((4, 6, 6, 2))
    p3 = profile(_model(v_in, keras.layers.Conv3D(3, 3, name="c3d")(v_in)))
    assert p3.total_macs == 2 * 4 * 4 * 3 * 27 * 2


def test_profile_input_shape_handling():
    inputs = keras.Input((None, None, 3))
    model = _model(inputs, keras.layers.Conv2D(4, 3, padding="same")(inputs))
    with pytest.raises(ValueError, match="input_shape"):
        profile(model)
    small, large = profile(model, (8, 8, 3)), profile(model, input_shape=(16, 16, 3))
    assert large.total_macs == 4 * small.total_macs == 4 * 8 * 8 * 4 * 27
    assert small.input_shape == (8, 8, 3)
    with pytest.raises(ValueError, match="input_shape"):
        profile(model, (8, 8, 4))  # the model fixes 3 channels
    with pytest.raises(ValueError, match="input_shape"):
        profile(model, "8x8")
    with pytest.raises(ValueError, match="model"):
        profile("resnet50")


def test_profile_bare_layer_needs_and_uses_input_shape():
    layer = FactorizedConv(32, 5, mode="asymmetric", use_bn=False, use_bias=False, name="f")
    with pytest.raises(ValueError, match="input_shape"):
        profile(layer)
    p = profile(layer, input_shape=(28, 28, 192))  # builds the layer
    assert p.total_macs == conv_macs(28, 28, 32, 1, 5, 192) + conv_macs(28, 28, 32, 5, 1, 32)
    assert p.total_params == layer.count_params() == 5 * 192 * 32 + 5 * 32 * 32
    assert [r.name for r in p.rows if r.macs] == ["f_1/f_1_conv", "f_2/f_2_conv"]


def test_profile_bare_leaf_and_composite_root():
    p = profile(keras.layers.Conv2D(4, 3, name="c"), input_shape=(8, 8, 3))
    assert [(r.name, r.params, r.macs) for r in p.rows] == [("c", 112, 6 * 6 * 4 * 27)]
    gated = _Gated(name="g")
    p = profile(gated, input_shape=(6, 6, 3))
    assert p.total_params == gated.count_params() == 112 + 4 + 40
    assert {r.name: r.params for r in p.rows} == {"inner/inner_conv": 112, "g (own weights)": 4, "unused_dense": 40}


def test_profile_multiple_inputs():
    a, b = keras.Input((None, 3), name="a"), keras.Input((5,), name="b")
    x = keras.layers.GlobalAveragePooling1D()(keras.layers.Conv1D(4, 1, name="c")(a))
    model = _model([a, b], keras.layers.Dense(2, name="d")(keras.layers.Concatenate()([x, b])))
    with pytest.raises(ValueError, match="input_shape"):
        profile(model)
    with pytest.raises(ValueError, match="2 shape"):
        profile(model, (7, 3))
    p = profile(model, [(7, 3), (5,)])
    assert p.total_macs == 7 * 4 * 3 + 9 * 2
    assert p.input_shape == [(7, 3), (5,)]


def test_profile_applications_vgg16_conv_macs_by_hand():
    # VGG-16's 13 convolutions at 224x224 (SPEC 2), counted with the lecture's formula.
    blocks = [(224, 64, 2), (112, 128, 2), (56, 256, 3), (28, 512, 3), (14, 512, 3)]
    expected, c_in = 0, 3
    for size, width, convs in blocks:
        for _ in range(convs):
            expected += conv_macs(size, size, width, 3, 3, c_in)
            c_in = width
    model = keras.applications.VGG16(weights=None, include_top=False, input_shape=(224, 224, 3))
    p = profile(model)
    assert p.total_macs == expected == 15_346_630_656
    assert p.total_params == model.count_params() == 14_714_688


# ---------------------------------------------------------------------------------------------
# Registry models (written in parallel; skipped until registered)
# ---------------------------------------------------------------------------------------------


def _need(name):
    if name not in list_models():
        pytest.skip(f"model {name!r} not registered in this build")


def test_profile_course_convnet():
    _need("course_convnet")
    p = profile(build_model("course_convnet"))
    convs = [r for r in p.rows if r.kind == "Conv2D"]
    assert [r.output_shape for r in convs] == [(None, 37, 37, 10), (None, 17, 17, 20), (None, 7, 7, 40)]
    assert convs[0].params == 280
    assert [r.macs for r in convs] == [
        conv_macs(37, 37, 10, 3, 3, 3),
        conv_macs(17, 17, 20, 5, 5, 10),
        conv_macs(7, 7, 40, 5, 5, 20),
    ]
    assert p.total_params == build_model("course_convnet").count_params()


def test_profile_registry_lenet5():
    _need("lenet5")
    p = profile(build_model("lenet5"))
    assert (p.total_params, p.total_macs) == (61_706, LENET5_MACS)


@pytest.mark.slow
@pytest.mark.parametrize("name, size", [("resnet18", 64), ("inception_v3", 75)])
def test_profile_registry_models_with_blocks(name, size):
    _need(name)
    model = build_model(name, include_top=False, input_shape=(size, size, 3))
    p = profile(model)
    assert p.total_params == model.count_params()
    composite = {
        type(layer).__name__
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if list(layer._flatten_layers(include_self=False, recursive=False))
    }
    assert composite  # the family is built from blocks ...
    assert any("/" in r.name for r in p.rows)  # ... which the profile descends into:
    assert not composite & {r.kind for r in p.rows if "(own weights)" not in r.name}
    assert p.total_macs > 0


@pytest.mark.slow
def test_profile_googlenet_inception_modules_match_spec5():
    # SPEC 5 inside the real network: (3a) is 28x28x192 with a 1x1 x16 -> 5x5 x32 branch,
    # (4a) is 14x14x480 with a 1x1 x16 -> 5x5 x48 branch.
    _need("googlenet")
    p = profile(build_model("googlenet"))
    stages = {s.name: s for s in p.per_stage()}
    assert stages["inception_3a"].output_shape == (None, 28, 28, 256)

    def module_macs(hw, c_in, c1, r3, c3, r5, c5, pool):
        m = conv_macs(hw, hw, c1, 1, 1, c_in) + conv_macs(hw, hw, r3, 1, 1, c_in)
        m += conv_macs(hw, hw, c3, 3, 3, r3) + conv_macs(hw, hw, r5, 1, 1, c_in)
        return m + conv_macs(hw, hw, c5, 5, 5, r5) + conv_macs(hw, hw, pool, 1, 1, c_in)

    assert stages["inception_3a"].macs == module_macs(28, 192, 64, 96, 128, 16, 32, 32)
    assert stages["inception_4a"].macs == module_macs(14, 480, 192, 96, 208, 16, 48, 64)
    macs_3a = [r.macs for r in p.rows if r.stage == "inception_3a"]
    macs_4a = [r.macs for r in p.rows if r.stage == "inception_4a"]
    assert 2_408_448 in macs_3a and 10_035_200 in macs_3a  # 12,443,648 in all
    assert 1_505_280 in macs_4a and 3_763_200 in macs_4a  # 5,268,480 in all
    assert p.total_params == 6_998_552
