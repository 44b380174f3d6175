"""GoogLeNet, Inception-v2 and InceptionV3Custom: reference figures, structure, aux heads, I/O."""

import re

import keras
import numpy as np
import pytest

from keras_cnn.layers.conv import FactorizedConv
from keras_cnn.layers.inception import AuxiliaryClassifier, GridReduction, InceptionBlock
from keras_cnn.models import get_model_spec, list_models
from keras_cnn.models.googlenet import GOOGLENET_MODULES, GoogLeNet
from keras_cnn.models.inception_v2 import InceptionV2
from keras_cnn.models.inception_v3 import InceptionV3Custom
from keras_cnn.weights import port_weights
from tests.conftest import assert_keras_roundtrip

GOOGLENET_PARAMS = 6_998_552  # SPEC 5
INCEPTION_V3_PARAMS = 23_851_784  # SPEC 5 / keras.applications
INCEPTION_V3_NOTOP_PARAMS = 21_802_784
INCEPTION_V2_PARAMS = 25_973_512  # our Table-1 layout (see inception_v2's docstring)
GOOGLENET_AUX_PARAMS = {
    # avg-pool 5/3 -> 1x1 conv 128 -> flatten 4x4x128 -> FC 1024 -> FC 1000
    "aux1": (512 + 1) * 128 + (2048 + 1) * 1024 + (1024 + 1) * 1000,  # on 4a (512 channels)
    "aux2": (528 + 1) * 128 + (2048 + 1) * 1024 + (1024 + 1) * 1000,  # on 4d (528 channels)
}


def _v3_aux_params(classes, channels=768):
    # 1x1 conv 128 + BN (beta, mean, var) | 5x5 conv 768 + BN | FC
    return channels * 128 + 3 * 128 + 25 * 128 * 768 + 3 * 768 + (768 + 1) * classes


def _kernels(layer):
    """(kh, kw) of every Conv2D under ``layer``, in weight (= creation) order."""
    return [tuple(w.shape[:2]) for w in layer.weights if w.path.endswith("kernel")]


def _factorized(layer):
    """(name, mode, kernel_size, first_factor) of the FactorizedConv steps of a block."""
    return [
        (s.name, s.mode, s.kernel_size, s.first_factor) for s in layer.step_layers if isinstance(s, FactorizedConv)
    ]


def _spatial(model, layer_name):
    return tuple(model.get_layer(layer_name).output.shape[1:3])


@pytest.fixture(scope="module")
def googlenet():
    return GoogLeNet()


@pytest.fixture(scope="module")
def v3_pair():
    """(ours, keras') InceptionV3 at 299 px with the top, built once for the module."""
    return InceptionV3Custom(classifier_activation=None), keras.applications.InceptionV3(
        weights=None, classifier_activation=None
    )


# ----------------------------------------------------------------------------------- GoogLeNet


def test_googlenet_parameter_count_and_modules(googlenet):
    assert googlenet.count_params() == GOOGLENET_PARAMS
    assert googlenet.output_shape == (None, 1000)
    expected = {
        "3a": (28, 256), "3b": (28, 480),
        "4a": (14, 512), "4b": (14, 512), "4c": (14, 512), "4d": (14, 528), "4e": (14, 832),
        "5a": (7, 832), "5b": (7, 1024),
    }
    for key, (grid, channels) in expected.items():
        c1, _, c3, _, c5, pool_proj = GOOGLENET_MODULES[key]
        assert c1 + c3 + c5 + pool_proj == channels
        layer = googlenet.get_layer(f"inception_{key}")
        assert isinstance(layer, InceptionBlock)
        assert tuple(layer.output.shape) == (None, grid, grid, channels)
    assert _spatial(googlenet, "conv1") == (112, 112)
    assert _spatial(googlenet, "pool2") == (28, 28)
    assert googlenet.get_layer("top_dropout").rate == 0.4
    # Paper-faithful: true 5x5 convs with biases, no BN anywhere.
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in googlenet._flatten_layers())
    assert googlenet.get_layer("inception_4e").step_layers[4].kernel_size == (5, 5)


def test_googlenet_aux_heads():
    model = GoogLeNet(aux_logits=True)
    assert set(model.output) == {"predictions", "aux1", "aux2"}
    assert model.get_layer("aux1").input.shape == (None, 14, 14, 512)  # inception_4a
    assert model.get_layer("aux2").input.shape == (None, 14, 14, 528)  # inception_4d
    for name, params in GOOGLENET_AUX_PARAMS.items():
        assert isinstance(model.get_layer(name), AuxiliaryClassifier)
        assert model.get_layer(name).count_params() == params
    assert model.count_params() == GOOGLENET_PARAMS + sum(GOOGLENET_AUX_PARAMS.values())
    inference = keras.Model(model.input, model.output["predictions"])
    assert inference.count_params() == GOOGLENET_PARAMS


@pytest.mark.slow
def test_googlenet_small_stem_forward_and_roundtrip(tmp_path):
    model = GoogLeNet(
        input_shape=(32, 32, 3), classes=10, stem="small", width_multiplier=0.125, aux_logits=True, name="tiny"
    )
    assert _spatial(model, "conv1") == (32, 32)
    assert _spatial(model, "inception_3b") == (32, 32)
    assert _spatial(model, "inception_4e") == (16, 16)
    assert _spatial(model, "inception_5b") == (8, 8)
    assert model.get_layer("inception_5b").output.shape[-1] == 128  # 1024 / 8
    x = np.random.RandomState(0).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    out = model(x, training=False)
    assert set(out) == {"predictions", "aux1", "aux2"}
    for value in out.values():
        assert value.shape == (2, 10)
        np.testing.assert_allclose(np.asarray(value).sum(axis=1), 1.0, rtol=1e-5)
    assert_keras_roundtrip(model, x, tmp_path)


def test_googlenet_structure_knobs():
    small = dict(input_shape=(32, 32, 3), classes=4, stem="small", width_multiplier=0.25, include_top=True)
    model = GoogLeNet(modules_per_stage=(1, 2, 3), five_by_five="stacked", reduction_ratio=0.5, use_bn=True, **small)
    names = [layer.name for layer in model.layers if isinstance(layer, InceptionBlock)]
    assert names == ["inception_3a", "inception_4a", "inception_4b", "inception_5a", "inception_5b", "inception_5c"]
    block = model.get_layer("inception_3a")
    branch3 = [layer for layer in block.step_layers if layer.name.startswith("inception_3a_branch3")]
    assert [_kernels(layer) for layer in branch3] == [[(1, 1)], [(3, 3), (3, 3)]]
    assert _factorized(block) == [("inception_3a_branch3_2", "stacked", 5, "1xn")]
    assert block.step_layers[1].filters == 12  # r3 = 96 * 0.25 * 0.5
    assert block.step_layers[0].use_bn and not block.step_layers[0].use_bias
    # The extra 5c repeats 5b's row.
    assert model.get_layer("inception_5c").output.shape[-1] == model.get_layer("inception_5b").output.shape[-1] == 256
    asym = GoogLeNet(modules_per_stage=(1, 1, 1), five_by_five="asymmetric", **small)
    kernels = _kernels(asym.get_layer("inception_3a"))
    assert (1, 5) in kernels and (5, 1) in kernels and (5, 5) not in kernels
    assert _factorized(asym.get_layer("inception_3a")) == [("inception_3a_branch3_2", "asymmetric", 5, "1xn")]
    # Forward pass at 32x32 with the small stem (the tuning configuration).
    x = np.random.RandomState(2).uniform(0, 1, (3, 32, 32, 3)).astype("float32")
    probs = np.asarray(model(x, training=False))
    assert probs.shape == (3, 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert np.asarray(asym(x)).shape == (3, 4)


@pytest.mark.parametrize(
    "kwargs, arg",
    [
        (dict(include_top=False, input_shape=(31, 31, 3)), "input_shape"),
        (dict(stem="small", include_top=False, input_shape=(7, 7, 3)), "input_shape"),
        (dict(include_top=False, pooling="sum"), "pooling"),
        (dict(include_top=False, aux_logits=True), "aux_logits"),
        (dict(aux_logits="yes"), "aux_logits"),
        (dict(width_multiplier=0), "width_multiplier"),
        (dict(reduction_ratio=-1.0), "reduction_ratio"),
        (dict(modules_per_stage=(2, 0, 2)), "modules_per_stage"),
        (dict(modules_per_stage=(2, 5)), "modules_per_stage"),
        (dict(five_by_five="7x7"), "five_by_five"),
        (dict(stem="cifar"), "stem"),
        (dict(use_bn="yes"), "use_bn"),
        (dict(dropout=1.0), "dropout"),
        (dict(classes=0), "classes"),
        (dict(weights="imagenet"), "weights"),
    ],
)
def test_googlenet_validation(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        GoogLeNet(**kwargs)


# -------------------------------------------------------------------------------- Inception-v3


def _keras_creation_order_shapes(model):
    """keras' weight shapes with Conv2D / BN layers in creation order (their name suffix)."""

    def index(layer):
        match = re.search(r"_(\d+)$", layer.name)
        return int(match.group(1)) if match else 0

    convs = sorted((l for l in model.layers if isinstance(l, keras.layers.Conv2D)), key=index)
    bns = sorted((l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)), key=index)
    shapes = []
    for conv, bn in zip(convs, bns, strict=True):
        shapes += [tuple(w.shape) for w in conv.weights + bn.weights]
    dense = [l for l in model.layers if isinstance(l, keras.layers.Dense)]
    for layer in dense:
        shapes += [tuple(w.shape) for w in layer.weights]
    return shapes


@pytest.mark.slow
def test_inception_v3_is_keras_twin_with_top(v3_pair):
    ours, theirs = v3_pair
    assert ours.count_params() == theirs.count_params() == INCEPTION_V3_PARAMS
    assert [tuple(w.shape) for w in ours.weights] == _keras_creation_order_shapes(theirs)
    assert len(ours.weights) == len(theirs.weights) == 378
    for i in range(11):
        name = f"mixed{i}"
        assert ours.get_layer(name).output.shape == theirs.get_layer(name).output.shape
        expected_cls = GridReduction if i in (3, 8) else InceptionBlock
        assert type(ours.get_layer(name)) is expected_cls
    assert [l.name for l in ours.layers[-2:]] == ["avg_pool", "predictions"]
    bns = [l for l in ours._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)]
    assert len(bns) == 94 and all(not bn.scale and bn.epsilon == 1e-3 for bn in bns)
    # The factorised branches are FactorizedConv steps: the double 3x3 of mixed0-2, the 7x7s of
    # mixed4-8 (keras starts the double 7x7 with a 7x1), the expanded banks of mixed9-10.
    assert _factorized(ours.get_layer("mixed0")) == [("mixed0_branch3_2", "stacked", 5, "1xn")]
    assert _factorized(ours.get_layer("mixed4")) == [
        ("mixed4_branch2_2", "asymmetric", 7, "1xn"),
        ("mixed4_branch3_2", "asymmetric", 7, "nx1"),
        ("mixed4_branch3_3", "asymmetric", 7, "nx1"),
    ]
    assert _factorized(ours.get_layer("mixed8")) == [("mixed8_branch2_2", "asymmetric", 7, "1xn")]
    assert _factorized(ours.get_layer("mixed10")) == [
        ("mixed10_branch2_2", "expanded", 3, "1xn"),
        ("mixed10_branch3_3", "expanded", 3, "1xn"),
    ]
    assert _factorized(ours.get_layer("mixed3")) == []  # Figure 10: the stride-2 convs stay plain
    # Registry stage taps: one per grid size, in depth order.
    stages = get_model_spec("inception_v3").stages
    assert [_spatial(ours, n)[0] for n in stages.values()] == [147, 71, 35, 17, 8]


@pytest.mark.slow
def test_inception_v3_is_keras_twin_without_top():
    ours = InceptionV3Custom(include_top=False, pooling="max")
    theirs = keras.applications.InceptionV3(weights=None, include_top=False, pooling="max")
    assert ours.count_params() == theirs.count_params() == INCEPTION_V3_NOTOP_PARAMS
    assert [tuple(w.shape) for w in ours.weights] == _keras_creation_order_shapes(theirs)
    assert ours.output_shape == theirs.output_shape == (None, 2048)


@pytest.mark.slow
def test_inception_v3_keras_weights_port_exactly(v3_pair):
    ours, theirs = v3_pair
    rng = np.random.RandomState(0)
    for layer in theirs.layers:  # non-trivial BN statistics, so a BN mix-up would show
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in layer.get_weights()])
    # The generic porting (leaves paired kind by kind in creation order) needs no Inception table.
    pairs = port_weights(theirs, ours)
    assert len(pairs) == 94 * 2 + 1
    # keras' 7x1 that starts mixed4's double 7x7 branch lands in our first factor of it.
    assert ("conv2d_35", "mixed4/mixed4_branch3_2/mixed4_branch3_2_1/mixed4_branch3_2_1_conv") in pairs
    x = rng.uniform(-1, 1, (1, 299, 299, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(theirs(x)), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_inception_v3_aux_dropout_and_roundtrip(tmp_path):
    model = InceptionV3Custom(aux_logits=True, dropout=0.5, classes=10, input_shape=(75, 75, 3), name="v3_small")
    assert set(model.output) == {"predictions", "aux1"}
    assert model.get_layer("aux1").input.shape == model.get_layer("mixed7").output.shape == (None, 3, 3, 768)
    assert model.get_layer("top_dropout").rate == 0.5  # dropout adds no parameters:
    base = INCEPTION_V3_PARAMS - (2048 + 1) * 1000 + (2048 + 1) * 10
    assert model.count_params() == base + _v3_aux_params(10)
    x = np.random.RandomState(0).uniform(-1, 1, (1, 75, 75, 3)).astype("float32")
    out = model(x, training=False)
    assert out["predictions"].shape == out["aux1"].shape == (1, 10)
    assert_keras_roundtrip(model, x, tmp_path, atol=1e-5)


@pytest.mark.slow
def test_inception_v3_cost_analysis_reports_the_factorised_layers():
    from keras_cnn.analysis import conv_macs, profile

    model = InceptionV3Custom(include_top=False, input_shape=(75, 75, 3))
    p = profile(model)
    assert p.total_params == model.count_params() == INCEPTION_V3_NOTOP_PARAMS
    assert sum(r.params for r in p.rows) == p.total_params and sum(r.macs for r in p.rows) == p.total_macs
    # mixed4's second 7x7 branch: a FactorizedConv whose factors (7x1 then 1x7) are rows of their own.
    prefix = "mixed4/mixed4_branch3_2/"
    factor_rows = [(r.name, r.kind, r.macs) for r in p.rows if r.name.startswith(prefix) and r.kind == "Conv2D"]
    hw = 3  # mixed4 at 75 px: 35 -> ... -> a 3x3 grid
    assert factor_rows == [
        (prefix + "mixed4_branch3_2_1/mixed4_branch3_2_1_conv", "Conv2D", conv_macs(hw, hw, 128, 7, 1, 128)),
        (prefix + "mixed4_branch3_2_2/mixed4_branch3_2_2_conv", "Conv2D", conv_macs(hw, hw, 128, 1, 7, 128)),
    ]
    stages = {s.name: s for s in p.per_stage()}
    expected = sum(
        conv_macs(hw, hw, c_out, kh, kw, c_in)
        for c_out, kh, kw, c_in in [
            (192, 1, 1, 768),
            (128, 1, 1, 768), (128, 1, 7, 128), (192, 7, 1, 128),
            (128, 1, 1, 768), (128, 7, 1, 128), (128, 1, 7, 128), (128, 7, 1, 128), (192, 1, 7, 128),
            (192, 1, 1, 768),
        ]
    )
    assert stages["mixed4"].macs == expected
    assert stages["mixed4"].params == model.get_layer("mixed4").count_params()
    assert "mixed10_branch2_2_1_conv" in p.to_table()  # the expanded bank's 1x3


@pytest.mark.slow
def test_inception_v3_torchvision_layout(tmp_path):
    """keras_layout=False is timm's / torchvision's inception_v3: BN with gamma, pools counting the padding."""
    from keras_cnn._compat.keras_ import flatten_layers
    from keras_cnn.models.identity import model_identity

    def trainable(model):
        return sum(int(np.prod(w.shape)) for w in model.trainable_weights)

    model = InceptionV3Custom(keras_layout=False, aux_logits=True)
    assert trainable(model) == 27_161_264  # timm's parameter count with AuxLogits
    assert trainable(InceptionV3Custom(keras_layout=False)) == 23_834_568  # and without
    bns = [w for w in model.weights if w.path.endswith("gamma")]
    assert len(bns) == 94 + 2  # every conv + BN unit, the auxiliary head's two included
    for layer in flatten_layers(model.get_layer("mixed0")):
        if isinstance(layer, keras.layers.BatchNormalization):
            assert (layer.epsilon, layer.momentum, layer.scale) == (1e-3, 0.9, True)
    assert model.get_layer("mixed0").branches[3][0]["count_include_pad"] is True
    assert model_identity(model).build_args["keras_layout"] is False
    with pytest.raises(ValueError, match="keras_layout"):
        InceptionV3Custom(keras_layout="torchvision")
    # Not keras.applications' twin: "imagenet" is timm's torchvision file, not keras'.
    from keras_cnn.models._common import resolve_weights_name

    assert resolve_weights_name("imagenet", arch="inception_v3", twin=None).name == "inception_v3.tv_in1k"
    small = InceptionV3Custom(keras_layout=False, aux_logits=True, classes=10, input_shape=(75, 75, 3))
    x = np.random.RandomState(0).uniform(-1, 1, (1, 75, 75, 3)).astype("float32")
    assert_keras_roundtrip(small, x, tmp_path, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, arg",
    [
        (dict(include_top=False, input_shape=(74, 74, 3)), "input_shape"),
        (dict(include_top=False, pooling="avgmax"), "pooling"),
        (dict(include_top=False, aux_logits=True), "aux_logits"),
        (dict(weights="imagenet", classes=10), "classes"),
        (dict(weights="no/such/file.weights.h5"), "weights"),
        (dict(dropout=-0.1), "dropout"),
        (dict(include_top=True, input_shape=(None, None, 3)), "input_shape|static"),
    ],
)
def test_inception_v3_validation(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        InceptionV3Custom(**kwargs)


# -------------------------------------------------------------------------------- Inception-v2


@pytest.mark.slow
def test_inception_v2_layout():
    model = InceptionV2()
    assert model.count_params() == INCEPTION_V2_PARAMS
    expected = {
        "stem_conv3": (147, 64), "stem_conv4": (71, 80), "stem_conv6": (35, 288),
        "inception_a1": (35, 288), "inception_a3": (35, 288), "reduction_a": (17, 768),
        "inception_b1": (17, 768), "inception_b5": (17, 768), "reduction_b": (8, 1280),
        "inception_c1": (8, 2048), "inception_c2": (8, 2048),
    }
    for name, (grid, channels) in expected.items():
        assert tuple(model.get_layer(name).output.shape) == (None, grid, grid, channels)
    blocks = [l.name for l in model.layers if type(l) is InceptionBlock]
    assert len(blocks) == 10 and len([b for b in blocks if b.startswith("inception_b")]) == 5
    # Figure 5: no 5x5 kernel at the 35x35 grid; Figure 6: 1x7 / 7x1 at 17x17.
    assert set(_kernels(model.get_layer("inception_a1"))) == {(1, 1), (3, 3)}
    assert set(_kernels(model.get_layer("inception_b3"))) == {(1, 1), (1, 7), (7, 1)}
    # The factorised branches are FactorizedConv layers (Figures 5, 6, 7).
    assert _factorized(model.get_layer("inception_a1")) == [("inception_a1_branch3_2", "stacked", 5, "1xn")]
    assert _factorized(model.get_layer("inception_b3")) == [
        ("inception_b3_branch2_2", "asymmetric", 7, "1xn"),
        ("inception_b3_branch3_2", "asymmetric", 7, "1xn"),
        ("inception_b3_branch3_3", "asymmetric", 7, "1xn"),
    ]
    assert _factorized(model.get_layer("reduction_b")) == [("reduction_b_branch2_2", "asymmetric", 7, "1xn")]
    assert [m for _, m, _, _ in _factorized(model.get_layer("inception_c1"))] == ["expanded", "expanded"]
    stages = get_model_spec("inception_v2").stages
    assert [_spatial(model, n)[0] for n in stages.values()] == [147, 71, 35, 17, 8]


@pytest.mark.slow
def test_inception_v2_small_forward_and_roundtrip(tmp_path):
    model = InceptionV2(input_shape=(32, 32, 3), classes=10, stem="small", width_multiplier=0.125, aux_logits=True)
    assert _spatial(model, "inception_a3") == (32, 32)
    assert _spatial(model, "inception_b5") == (15, 15)
    assert _spatial(model, "inception_c2") == (7, 7)
    assert model.get_layer("inception_c2").output.shape[-1] == 256  # 2048 / 8
    assert model.get_layer("aux1").input.shape == model.get_layer("inception_b5").output.shape
    x = np.random.RandomState(1).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    out = model(x, training=False)
    assert set(out) == {"predictions", "aux1"} and out["aux1"].shape == (2, 10)
    assert_keras_roundtrip(model, x, tmp_path, atol=1e-5)


@pytest.mark.slow
def test_inception_v2_knobs():
    model = InceptionV2(
        input_shape=(16, 16, 3), classes=3, stem="small", width_multiplier=0.0625,
        modules_per_stage=(1, 2, 1), five_by_five="plain",
    )
    names = [l.name for l in model.layers if isinstance(l, InceptionBlock)]
    assert names == ["inception_a1", "reduction_a", "inception_b1", "inception_b2", "reduction_b", "inception_c1"]
    assert (5, 5) in _kernels(model.get_layer("inception_a1"))
    assert _factorized(model.get_layer("inception_a1")) == []
    x = np.random.RandomState(3).uniform(0, 1, (2, 16, 16, 3)).astype("float32")
    assert np.asarray(model(x)).shape == (2, 3)
    # The smallest input the small stem accepts: 7 -> 3 -> 1 through the two reductions.
    tiny = InceptionV2(include_top=False, stem="small", input_shape=(7, 7, 3), width_multiplier=0.0625)
    assert tiny.output_shape == (None, 1, 1, 128)


@pytest.mark.parametrize(
    "kwargs, arg",
    [
        (dict(include_top=False, input_shape=(74, 74, 3)), "input_shape"),
        (dict(include_top=False, stem="small", input_shape=(6, 6, 3)), "input_shape"),
        (dict(include_top=False, pooling="mean"), "pooling"),
        (dict(five_by_five="3x3"), "five_by_five"),
        (dict(stem="tiny"), "stem"),
        (dict(width_multiplier="wide"), "width_multiplier"),
        (dict(modules_per_stage=(3, 5, 0)), "modules_per_stage"),
        (dict(include_top=False, aux_logits=True), "aux_logits"),
        (dict(weights="imagenet"), "weights"),
    ],
)
def test_inception_v2_validation(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        InceptionV2(**kwargs)


# ------------------------------------------------------------------------------------ registry


def test_registry_entries(googlenet):
    assert {"googlenet", "inception_v2", "inception_v3"} <= set(list_models())
    g, v2, v3 = (get_model_spec(n) for n in ("googlenet", "inception_v2", "inception_v3"))
    assert (g.family, g.default_size, g.min_size, g.preprocessing, g.aux_heads, g.twin) == (
        "googlenet", 224, 32, "tf", 2, None,
    )
    assert (v2.family, v2.default_size, v2.min_size, v2.preprocessing, v2.aux_heads) == ("inception_v2", 299, 75, "tf", 1)
    assert (v3.family, v3.default_size, v3.min_size, v3.preprocessing, v3.aux_heads, v3.twin) == (
        "inception_v3", 299, 75, "tf", 1, "InceptionV3",
    )
    # Stage taps name real layers, in depth order (one per grid size).
    assert [_spatial(googlenet, n)[0] for n in g.stages.values()] == [112, 56, 28, 14, 7]


def test_registry_build_model_forwards_knobs():
    from keras_cnn.models import build_model

    model = build_model("googlenet", input_shape=(32, 32, 3), classes=5, stem="small", width_multiplier=0.125)
    assert model.output_shape == (None, 5)
    assert model.get_layer("inception_3a").output.shape[-1] == 32  # 256 / 8
