"""`keras-cnn summary`, `keras-cnn cost` and `keras-cnn list`, called in-process through cli.main."""

import json

import keras
import pytest

from keras_cnn import cli
from keras_cnn.layers import ConvBN, FactorizedConv
from keras_cnn.models import list_models, registry

TINY = "tiny_test_net"


def _tiny(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None, classes=4,
          classifier_activation="softmax", name=TINY, aux_logits=False):
    # Like keras.applications: without a top, height and width stay open unless given.
    inputs = keras.Input(input_shape or ((16, 16, 3) if include_top else (None, None, 3)), name="input_layer")
    x = ConvBN(4, 3, name="stem")(inputs)
    x = FactorizedConv(4, 3, mode="asymmetric", name="fac")(x)
    if not include_top:
        return keras.Model(inputs, x, name=name)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    out = keras.layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    if aux_logits:
        out = {"predictions": out, "aux1": keras.layers.Dense(classes, name="aux1")(x)}
    return keras.Model(inputs, out, name=name)


def _tiny_macs(hw=16, classes=4, top=True):
    return hw * hw * 4 * 27 + 2 * hw * hw * 4 * 3 * 4 + (4 * classes if top else 0)


@pytest.fixture
def tiny_registered(monkeypatch):
    """A tiny model in the registry for the duration of one test (removed afterwards)."""
    from keras_cnn.models import specs

    path = f"{__name__}:_tiny"
    entry = registry.ModelSpec(name=TINY, builder_path=path, family="tinyfam", default_size=16, min_size=8,
                               preprocessing="unit", aux_heads=1, description="test net")
    no_aux = registry.ModelSpec(name=TINY + "_noaux", builder_path=path, family="tinyfam", default_size=16,
                                min_size=8, description="test net without aux")
    monkeypatch.setitem(specs.MODEL_SPECS, TINY, entry)
    monkeypatch.setitem(specs.MODEL_SPECS, TINY + "_noaux", no_aux)
    return entry


def _run(capsys, *argv):
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


# ---------------------------------------------------------------------------------------------
# summary
# ---------------------------------------------------------------------------------------------


def test_summary_prints_layers_and_totals(capsys, tiny_registered):
    rc, out, err = _run(capsys, "summary", TINY)
    assert rc == 0, err
    params = _tiny().count_params()
    assert "fac/fac_1/fac_1_conv" in out and "fac/fac_2/fac_2_conv" in out  # descended
    assert f"Total params: {params:,}" in out
    assert f"Total MACs: {_tiny_macs():,}" in out and "GMACs" in out
    assert "16x16x4" in out


def test_summary_json_options(capsys, tiny_registered):
    rc, out, _ = _run(capsys, "summary", TINY, "--json", "--classes", "7", "--image-size", "8,8,3")
    assert rc == 0
    d = json.loads(out)
    assert d["total_macs"] == _tiny_macs(hw=8, classes=7)
    assert d["total_params"] == _tiny(classes=7, input_shape=(8, 8, 3)).count_params()
    assert d["input_shape"] == [8, 8, 3]
    assert {"name": "predictions", "params": 4 * 7 + 7}.items() <= next(
        r for r in d["layers"] if r["name"] == "predictions"
    ).items()

    rc, out, _ = _run(capsys, "summary", TINY, "--json", "--no-top")
    assert rc == 0
    d = json.loads(out)
    assert d["input_shape"] == [16, 16, 3]  # the registry's default size fills the open H, W
    assert d["total_macs"] == _tiny_macs(top=False)
    assert not any(r["name"] == "predictions" for r in d["layers"])

    rc, out, _ = _run(capsys, "summary", TINY, "--json", "--aux-logits")
    assert rc == 0
    assert set(json.loads(out)["output_shape"]) == {"predictions", "aux1"}


def test_summary_stages_and_compact(capsys, tiny_registered):
    rc, out, _ = _run(capsys, "summary", TINY, "--stages")
    assert rc == 0
    lines = out.splitlines()
    assert any(line.split()[:2] == ["fac", "FactorizedConv"] for line in lines)
    assert "fac/fac_1" not in out
    rc, out, _ = _run(capsys, "summary", TINY, "--compact")
    assert "stem/stem_conv" in out and "stem/stem_relu" not in out


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["summary", "no_such_net"], "MODEL"),
        (["summary", TINY, "--classes", "0"], "--classes"),
        (["summary", TINY + "_noaux", "--aux-logits"], "--aux-logits"),
    ],
)
def test_summary_bad_input_exits_2(capsys, tiny_registered, argv, needle):
    rc, out, err = _run(capsys, *argv)
    assert rc == 2
    assert err.startswith("keras-cnn summary: error:") and needle in err
    assert out == ""
    if argv[1] == "no_such_net":
        assert TINY in err  # lists the known names


def test_summary_course_convnet_shapes(capsys):
    if "course_convnet" not in list_models():
        pytest.skip("course_convnet not registered in this build")
    rc, out, _ = _run(capsys, "summary", "course_convnet")
    assert rc == 0
    for text in ("37x37x10", "17x17x20", "7x7x40", " 280 "):
        assert text in out


# ---------------------------------------------------------------------------------------------
# cost
# ---------------------------------------------------------------------------------------------


def test_cost_default_reproduces_spec5(capsys, tmp_path):
    png = tmp_path / "charts" / "cost.png"
    rc, out, err = _run(capsys, "cost", "--png", str(png))
    assert rc == 0, err
    assert "120,422,400" in out and "12,443,648" in out and "2,408,448 + 10,035,200" in out
    assert "MISMATCH" not in out
    assert png.read_bytes()[:4] == b"\x89PNG" and str(png) in out


def test_cost_second_example_json(capsys):
    rc, out, _ = _run(capsys, "cost", "--image-size", "14,14,480", "--filters", "48", "--json")
    assert rc == 0
    rows = {r["key"]: r for r in json.loads(out)["rows"]}
    assert rows["plain"]["macs"] == 112_896_000 and rows["bottleneck"]["macs"] == 5_268_480


def test_cost_without_bottleneck_and_3x3(capsys):
    rc, out, _ = _run(capsys, "cost", "--image-size", "17,17,64", "--filters", "64", "--kernel-size", "3",
                      "--bottleneck", "0", "--json")
    assert rc == 0
    rows = {r["key"]: r for r in json.loads(out)["rows"]}
    assert set(rows) == {"plain", "stacked", "asymmetric"}
    assert rows["asymmetric"]["macs_saving"] == pytest.approx(1 / 3)
    assert rows["stacked"]["macs_saving"] == pytest.approx(1 / 9)


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["cost", "--image-size", "28,28"], "--image-size"),
        (["cost", "--kernel-size", "1"], "--kernel-size"),
        (["cost", "--filters", "0"], "--filters"),
        (["cost", "--bottleneck", "-1"], "--bottleneck"),
    ],
)
def test_cost_bad_input_exits_2(capsys, argv, needle):
    rc, out, err = _run(capsys, *argv)
    assert rc == 2 and needle in err and err.startswith("keras-cnn cost: error:")


def test_cost_non_integer_is_an_argparse_error(capsys):
    assert cli.main(["cost", "--filters", "many"]) == 2
    assert "--filters" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# list
# ---------------------------------------------------------------------------------------------


def test_list_is_fast_and_does_not_build(capsys, tiny_registered, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("list must not build models without --params")

    monkeypatch.setattr("keras_cnn.models.build_model", refuse)
    monkeypatch.setattr(registry, "build_model", refuse)
    rc, out, err = _run(capsys, "list")
    assert rc == 0, err
    line = next(line for line in out.splitlines() if line.startswith(TINY + " "))
    assert line.split()[:9] == [TINY, "tinyfam", "?", "16x16x3", "8", "unit", "-", "1", "-"]
    assert f"{len(list_models())} model(s)" in out
    for name in list_models():
        assert name in out
    # The zoo's rows come from the specs: parameters and weights without building anything.
    resnet50 = next(line for line in out.splitlines() if line.startswith("resnet50 "))
    assert resnet50.split()[:12] == ["resnet50", "resnet", "25,636,712", "224x224x3", "32", "caffe", "ResNet50", "0",
                                     "keras_in1k,", "tv_in1k,", "tv2_in1k,", "a1_in1k,"]  # + timm's records
    rc, out, _ = _run(capsys, "list", "resnet*", "--pretrained")
    rows = [line.split()[0] for line in out.splitlines()[2:-1]]
    assert rc == 0 and rows == list_models("resnet*", pretrained=True)
    assert {"resnet50", "resnet101", "resnet152"} <= set(rows) and "plain34" not in rows


def test_list_family_params_and_json(capsys, tiny_registered):
    rc, out, _ = _run(capsys, "list", "--family", "tinyfam", "--params")
    assert rc == 0
    assert f"{_tiny().count_params():,}" in out
    assert "2 model(s)" in out
    rc, out, _ = _run(capsys, "list", "--json", "--family", "tinyfam")
    records = json.loads(out)
    assert [r["name"] for r in records] == [TINY, TINY + "_noaux"]
    assert records[0]["aux_heads"] == 1 and records[0]["params"] is None and records[0]["weights"] == []


def test_list_plain_word_and_no_match(capsys):
    rc, out, _ = _run(capsys, "list", "inception")  # a plain word: the names containing it
    assert rc == 0 and [line.split()[0] for line in out.splitlines()[2:-1]] == ["inception_v2", "inception_v3"]
    rc, out, _ = _run(capsys, "list", "lenet", "--pretrained")
    assert rc == 0 and "No model matching 'lenet' with pretrained weights" in out and "keras-cnn list" in out


def test_list_unknown_family_exits_2(capsys, tiny_registered):
    rc, _, err = _run(capsys, "list", "--family", "nope")
    assert rc == 2 and "--family" in err and "tinyfam" in err



@pytest.mark.parametrize("command", ["summary", "cost"])
@pytest.mark.parametrize("value", ["a,b,c", "0,28,3", "1,2,3,4"])
def test_bad_image_size_is_refused_by_the_parser(capsys, command, value):
    argv = [command, *([TINY] if command == "summary" else []), "--image-size", value]
    assert cli.main(argv) == 2
    assert "argument --image-size: must be N (square), H,W or H,W,C" in capsys.readouterr().err


def test_summary_and_cost_take_image_size_like_every_command(capsys, tiny_registered):
    # --image-size as in train/tune/transfer; --input-shape still works, hidden, with a notice.
    rc, out, err = _run(capsys, "summary", TINY, "--json", "--image-size", "8")
    assert rc == 0, err
    square = json.loads(out)
    rc, out, err = _run(capsys, "summary", TINY, "--json", "--input-shape", "8,8")
    assert rc == 0 and json.loads(out) == square
    assert err == "keras-cnn summary: --input-shape is deprecated; use --image-size\n"
    rc, out, err = _run(capsys, "cost", "--input-shape", "14,14,480", "--filters", "48", "--json")
    assert rc == 0 and "--input-shape is deprecated" in err
    assert {r["key"]: r for r in json.loads(out)["rows"]}["plain"]["macs"] == 112_896_000
    for command in ("summary", "cost"):
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args([command, "--help"])
        text = capsys.readouterr().out
        assert "--image-size" in text and "--input-shape" not in text
