"""Weights that need builder arguments: one rule (`specs.merge_weights_build_args`) for the library
(`transfer.load_base`) and ``keras-cnn transfer --weights`` / ``--model-arg``.

Offline: timm's ResNet-50 file (seeded random values, timm's names and shapes) is laid out in a
Hugging Face cache folder, with ``HF_HUB_OFFLINE=1``.
"""

import json
import os
import warnings

import keras
import numpy as np
import pytest
from safetensors.numpy import save_file

from keras_cnn import transfer as T
from keras_cnn._compat import keras_ as keras_compat
from keras_cnn.models import model_identity
from keras_cnn.models.specs import (
    merge_weights_build_args,
    source_build_args,
    weights_build_args,
)
from tests.test_timm_weights import _put_in_hf_cache, _random_state_dict

NOTICE = "resnet50: building with keras_layout=False, the layout of the weights 'resnet50.tv_in1k'"


@pytest.fixture(scope="module")
def tv50():
    """timm's resnet50.tv_in1k state dict, seeded random values."""
    return _random_state_dict("resnet50")


@pytest.fixture
def hf_cache(tmp_path, monkeypatch, tv50):
    """An offline Hugging Face cache holding timm/resnet50.tv_in1k."""
    from huggingface_hub import constants

    _put_in_hf_cache(tmp_path / "hub", "resnet50.tv_in1k", tv50)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


def _hwio(tensor):
    return np.transpose(tensor, (2, 3, 1, 0))


def _assert_torchvision_base_with(base, tensors):
    """``base`` is torchvision's ResNet-50 layout (no conv bias) holding ``tensors``."""
    convs = [lay for lay in keras_compat.flatten_layers(base) if isinstance(lay, keras.layers.Conv2D)]
    assert len(convs) == 53 and not any(conv.use_bias for conv in convs)
    np.testing.assert_array_equal(base.get_layer("conv1_conv").kernel.numpy(), _hwio(tensors["conv1.weight"]))
    block = base.get_layer("conv5_block3")
    np.testing.assert_array_equal(block.conv3.kernel.numpy(), _hwio(tensors["layer4.2.conv3.weight"]))
    np.testing.assert_array_equal(block.bn3.moving_variance.numpy(), tensors["layer4.2.bn3.running_var"])


# --------------------------------------------------------------------------------------------
# The rule (plain data: nothing is built).


def test_the_rule_per_weights_argument():
    needs = {"keras_layout": False}
    for spelling in ("timm:resnet50.tv_in1k", "resnet50.tv_in1k", "tv_in1k", "resnet50.a1_in1k"):
        assert weights_build_args("resnet50", spelling) == needs
    # None, paths, "imagenet" (the default of the layout built), weights without arguments: nothing.
    for weights in (None, "imagenet", "/no/such/x.safetensors", "resnet50.keras_in1k"):
        assert weights_build_args("resnet50", weights) == {}
    assert weights_build_args("resnet18", "timm:resnet18.tv_in1k") == {}
    assert weights_build_args("my_custom_net", "timm:resnet50.tv_in1k") == {}  # the builder refuses it
    with pytest.raises(ValueError, match=r"Unknown pretrained weights. Received: weights='nope' for 'resnet50'"):
        weights_build_args("resnet50", "timm:nope")
    # A file has no record: what every timm record of the network needs.
    assert source_build_args("resnet50", "timm") == needs
    assert source_build_args("resnet18", "timm") == source_build_args("resnet50", "keras.applications") == {}


def test_merge_adds_with_a_notice_and_refuses_a_contradiction():
    assert merge_weights_build_args("resnet50", "timm:resnet50.tv_in1k") == (needs := {"keras_layout": False}, NOTICE)
    # Said by the caller already: no notice; other arguments are kept, the caller's dict untouched.
    given = {"keras_layout": False, "dropout": 0.1}
    assert merge_weights_build_args("resnet50", "tv_in1k", given) == (given, None)
    kwargs, notice = merge_weights_build_args("resnet50", "timm:resnet50.tv_in1k", {"dropout": 0.1})
    assert kwargs == {**needs, "dropout": 0.1} and notice == NOTICE
    # "imagenet" keeps its meaning: it follows the layout the caller builds.
    assert merge_weights_build_args("resnet50", "imagenet", {"keras_layout": False}) == (needs, None)
    assert merge_weights_build_args("resnet50", "imagenet") == ({}, None)
    with pytest.raises(ValueError) as info:
        merge_weights_build_args("resnet50", "timm:resnet50.tv_in1k", {"keras_layout": True})
    message = str(info.value)
    for needed in ("'resnet50.tv_in1k' need the builder argument(s) keras_layout=False",
                   "`model_kwargs` sets keras_layout=True", "['resnet50.keras_in1k']",
                   "Received: weights='timm:resnet50.tv_in1k', model_kwargs={'keras_layout': True}"):
        assert needed in message


# --------------------------------------------------------------------------------------------
# The library: transfer.load_base / build_transfer_model.


def test_load_base_builds_the_layout_of_named_weights(hf_cache, tv50):
    with pytest.warns(UserWarning) as record:
        base, arch = T.load_base("resnet50", weights="timm:resnet50.tv_in1k", input_shape=(32, 32, 3))
    assert [str(w.message) for w in record] == [NOTICE]
    assert arch == "resnet50"
    _assert_torchvision_base_with(base, tv50)
    identity = model_identity(base)
    assert identity.build_args["keras_layout"] is False and identity.weights == "resnet50.tv_in1k"
    assert identity.preprocessing == "torch"
    # Said by the caller: the same build, silently. Contradicted: an error before anything is built.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = T.build_transfer_model("resnet50", 3, weights="timm:resnet50.tv_in1k", input_shape=(32, 32, 3),
                                       model_kwargs={"keras_layout": False})
    _assert_torchvision_base_with(model.get_layer("resnet50"), tv50)
    with pytest.raises(ValueError, match=r"keras_layout=False.*`model_kwargs` sets keras_layout=True"):
        T.load_base("resnet50", weights="timm:resnet50.tv_in1k", model_kwargs={"keras_layout": True})


def test_feature_extractor_builds_the_layout_of_named_weights(hf_cache, tv50):
    from keras_cnn.applications import feature_extractor

    with pytest.warns(UserWarning) as record:
        fx = feature_extractor("resnet50", weights="timm:resnet50.tv_in1k", input_shape=(32, 32, 3))
    assert [str(w.message) for w in record] == [NOTICE]
    _assert_torchvision_base_with(fx, tv50)
    assert list(fx(np.zeros((1, 32, 32, 3), "float32"))) == ["stem", "conv2", "conv3", "conv4", "conv5"]
    with pytest.raises(ValueError, match=r"`model_kwargs` sets keras_layout=True"):
        feature_extractor("resnet50", weights="timm:resnet50.tv_in1k", keras_layout=True)


def test_load_base_model_kwargs_for_a_file_and_their_checks(tmp_path, tv50):
    path = tmp_path / "resnet50.safetensors"
    save_file(tv50, str(path))
    # A file has no record: the loader names the argument; with it, the file loads.
    with pytest.raises(ValueError, match="keras_layout=False"):
        T.load_base("resnet50", weights=str(path), input_shape=(32, 32, 3))
    base, _ = T.load_base("resnet50", weights=str(path), input_shape=(32, 32, 3), model_kwargs={"keras_layout": False})
    _assert_torchvision_base_with(base, tv50)
    with pytest.raises(ValueError, match=r"may not set include_top, input_shape: .* Received: model_kwargs="):
        T.load_base("resnet50", model_kwargs={"include_top": True, "input_shape": (32, 32, 3)})
    with pytest.raises(ValueError, match=r"`model_kwargs` applies to a registry name.*Received: base=<Functional"):
        T.load_base(base, model_kwargs={"keras_layout": False})
    with pytest.raises(ValueError, match=r"`model_kwargs` has 'nope', which model 'lenet5' does not take"):
        T.load_base("lenet5", model_kwargs={"nope": 1})


# --------------------------------------------------------------------------------------------
# The CLI: keras-cnn transfer.


def _transfer_argv(out, *extra):
    return ["transfer", "resnet50", *extra, "--data", "digits", "--regime", "medium", "--trainable-blocks", "2",
            "--image-size", "32", "--epochs", "1", "--fine-tune-epochs", "1", "--max-examples", "64",
            "--batch-size", "16", "--out", str(out)]


@pytest.mark.slow
@pytest.mark.heavy  # two transfer runs of a ResNet-50, about 35 s
def test_cli_transfer_resnet50_with_timm_weights(tmp_path, hf_cache, tv50, capsys):
    from keras_cnn import cli

    out = tmp_path / "run"
    assert cli.main(_transfer_argv(out, "--weights", "timm:resnet50.tv_in1k")) == 0
    assert NOTICE in capsys.readouterr().out.splitlines()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["weights"] == "timm:resnet50.tv_in1k" and metrics["model_args"] == {"keras_layout": False}
    model = keras.models.load_model(out / "model.keras", compile=False)
    assert model.get_layer("preprocess").mode == "torch"
    base = model.get_layer("resnet50")
    # The frozen part kept the file's weights through both phases.
    convs = [lay for lay in keras_compat.flatten_layers(base) if isinstance(lay, keras.layers.Conv2D)]
    assert len(convs) == 53 and not any(conv.use_bias for conv in convs)
    np.testing.assert_array_equal(base.get_layer("conv1_conv").kernel.numpy(), _hwio(tv50["conv1.weight"]))
    assert model_identity(base).build_args["keras_layout"] is False

    # A timm safetensors FILE: --model-arg keras_layout=false says the layout; no notice then.
    path = tmp_path / "resnet50.safetensors"
    save_file(tv50, str(path))
    out = tmp_path / "file_run"
    argv = _transfer_argv(out, "--weights", str(path), "--model-arg", "keras_layout=false")
    argv[argv.index("--regime") + 1:argv.index("--regime") + 4] = ["small"]  # head only: the whole base frozen
    assert cli.main(argv) == 0
    assert "building with" not in capsys.readouterr().out
    base = keras.models.load_model(out / "model.keras", compile=False).get_layer("resnet50")
    _assert_torchvision_base_with(base, tv50)


def test_cli_transfer_errors_name_the_flags(tmp_path, hf_cache, tv50, capsys):
    from keras_cnn import cli

    def error(argv):
        capsys.readouterr()
        assert cli.main(argv) == 2
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err and len(captured.err.strip().splitlines()) == 1
        assert not os.path.exists(argv[-1])
        return captured.err

    err = error(_transfer_argv(tmp_path / "a", "--weights", "timm:resnet50.tv_in1k", "--model-arg",
                               "keras_layout=true"))
    assert err.startswith("keras-cnn transfer: error: The weights 'resnet50.tv_in1k' need")
    for needed in ("keras_layout=False", "`--model-arg` sets keras_layout=True", "['resnet50.keras_in1k']",
                   "--weights='timm:resnet50.tv_in1k'"):
        assert needed in err
    path = tmp_path / "resnet50.safetensors"
    save_file(tv50, str(path))
    err = error(_transfer_argv(tmp_path / "b", "--weights", str(path)))
    assert "is a timm safetensors file" in err and "pass --model-arg keras_layout=false" in err
    err = error(_transfer_argv(tmp_path / "c", "--weights", str(path), "--model-arg", "keras_layout=true"))
    assert "pass --model-arg keras_layout=false" in err and "--model-arg keras_layout=True" in err
    keras_file = tmp_path / "m.keras"
    keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(2)]).save(keras_file)
    argv = _transfer_argv(tmp_path / "d", "--model-arg", "keras_layout=false")
    argv[1] = str(keras_file)
    argv[argv.index("--image-size") + 1] = "8"
    err = error(argv)
    assert "`--model-arg` applies to a registry name" in err
    err = error(_transfer_argv(tmp_path / "e", "--model-arg", "input_shape=[8,8,3]"))
    assert "`--model-arg` may not set --image-size: the transfer base is built headless" in err
    assert "at `--image-size` with `--weights`" in err
