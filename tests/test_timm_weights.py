"""timm safetensors weights in our ResNet-18/34/50, Inception-v3 (torchvision layout) and VGG-16/19.

Proof without the internet: each test writes a safetensors file with timm's tensor names and
shapes (seeded random values, BN statistics included), loads it into our model, and compares
the outputs with keras-hub's own timm converter reading the same file (a timm-format folder:
``config.json`` + ``model.safetensors``), an implementation neither written nor adapted by us.
keras-hub has no Inception-v3; tests/test_timm_peer.py compares every network, Inception-v3 with
its auxiliary head included, with timm itself.
"""

import json
import os

import keras
import numpy as np
import pytest
from safetensors.numpy import save_file

from keras_cnn import weights as W
from keras_cnn.weights import timm as TW
from keras_cnn.models.registry import build_model

keras_hub = pytest.importorskip("keras_hub")

# Tolerance: max |ours - keras-hub| <= TOL * max |keras-hub| (outputs of random nets vary in scale).
TOL = 1e-5


def _random_state_dict(network, seed=0, classes=1000, batches_tracked=True, aux_logits=False):
    """timm's state dict of ``network`` with seeded random values (keys and torch shapes)."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for key, shape in TW.expected_timm_shapes(network, classes=classes, aux_logits=aux_logits).items():
        if key.endswith("running_var"):
            value = rng.uniform(0.5, 2.0, shape)
        elif key.endswith("running_mean"):
            value = rng.normal(0.0, 0.2, shape)
        elif len(shape) == 1 and key.endswith("weight"):  # BN gamma: < 1 keeps deep nets' outputs O(1)
            value = rng.uniform(0.2, 0.7, shape)
        elif key.endswith("bias"):
            value = rng.normal(0.0, 0.1, shape)
        else:  # He-scaled kernels, drawn in float32 (VGG's fc1 alone has 102M values)
            value = rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / np.prod(shape[1:])))
        tensors[key] = value.astype("float32", copy=False)
        if batches_tracked and key.endswith("running_var"):
            tensors[key.replace("running_var", "num_batches_tracked")] = np.array(7, dtype="int64")
    return tensors


def _timm_folder(tmp_path, network, **kwargs):
    folder = tmp_path / network
    folder.mkdir(exist_ok=True)
    save_file(_random_state_dict(network, **kwargs), str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"architecture": network, "num_classes": 1000}))
    return folder


def _ours(network, **kwargs):
    if network in ("resnet50", "resnet101", "resnet152", "inception_v3"):
        kwargs.setdefault("keras_layout", False)
    return build_model(network, **kwargs)


def _assert_close(ours, peer):
    ours, peer = np.asarray(ours), np.asarray(peer)
    assert ours.shape == peer.shape
    scale = float(np.abs(peer).max())
    assert scale > 1e-3  # a real signal, not zeros
    assert float(np.abs(ours - peer).max()) <= TOL * scale


def _pixels(size, seed=1):
    return np.random.default_rng(seed).uniform(-2.0, 2.0, (2, size, size, 3)).astype("float32")


# --------------------------------------------------------------------------------------------
# Names and shapes.


@pytest.mark.parametrize(
    "network, tensors, params",
    [
        # torchvision's state dicts without num_batches_tracked; trainable parameters as published.
        ("resnet18", 102, 11_689_512),
        ("resnet34", 182, 21_797_672),
        ("resnet50", 267, 25_557_032),
        ("resnet101", 522, 44_549_160),
        ("resnet152", 777, 60_192_808),
        ("vgg16", 32, 138_357_544),
        ("vgg19", 38, 143_667_240),
        ("inception_v3", 472, 23_834_568),
        ("inception_v3+aux", 484, 27_161_264),
    ],
)
def test_expected_timm_shapes_match_torchvision_counts(network, tensors, params):
    network, _, aux = network.partition("+")
    shapes = TW.expected_timm_shapes(network, aux_logits=bool(aux))
    assert len(shapes) == tensors
    assert sum(int(np.prod(s)) for k, s in shapes.items() if not k.endswith(("running_mean", "running_var"))) == params
    # The key map reaches every tensor of the file.
    suffixes = {"conv": ("weight", "bias"), "bn": ("weight", "bias", "running_mean", "running_var"),
                "linear": ("weight", "bias"), "conv_as_dense": ("weight", "bias")}
    covered = {f"{p.prefix}.{s}" for p in TW.timm_key_map(network) for s in suffixes[p.kind]}
    assert set(shapes) <= covered


def test_records_are_consistent():
    records = TW.timm_records()
    assert len(records) == 24
    for tag, record in records.items():
        assert record.name == tag and record.source == "timm" and record.arch == tag.split(".")[0]
        assert record.hf_repo == f"timm/{tag}" and [f.fname for f in record.files] == ["model.safetensors"]
        assert record.files[0].url == f"https://huggingface.co/timm/{tag}/resolve/main/model.safetensors"
        # timm's mean/std: ImageNet's ("torch") but Inception-v3's 0.5 ("tf") except gluon's.
        inception_mean = record.arch == "inception_v3" and "gluon" not in tag
        assert record.preprocessing == ("tf" if inception_mean else "torch") and 50 < record.top1 < record.top5 < 100
        assert record.license in ("BSD-3-Clause", "Apache-2.0")
        assert record.crop_pct in (0.875, 0.95) and record.interpolation in ("bilinear", "bicubic")
        assert record.aux == (tag == "inception_v3.tv_in1k")  # only torchvision's file has AuxLogits
    assert records["resnet50.tv_in1k"].build_args == {"keras_layout": False}
    assert records["inception_v3.tv_in1k"].build_args == {"keras_layout": False}
    assert records["inception_v3.tv_in1k"].input_size == 299
    assert (records["resnet18.a1_in1k"].crop_pct, records["resnet18.a1_in1k"].interpolation) == (0.95, "bicubic")
    # Registered as the zoo's weights records (source "timm"), torchvision's first.
    from keras_cnn.models import specs

    for network in TW.TIMM_NETWORKS:
        ours = [n for n in specs.list_weights(network) if specs.WEIGHTS_SPECS[n].source == "timm"]
        assert ours == list(TW.timm_records(network))
        assert ours[0] == f"{network}.tv_in1k"
    spec = specs.WEIGHTS_SPECS["resnet50.a1_in1k"]
    assert (spec.hf_repo, spec.preprocessing, spec.top1, spec.build_args) == (
        "timm/resnet50.a1_in1k", "torch", 80.382, {"keras_layout": False})
    with pytest.raises(ValueError, match="Unknown timm weights tag.*timm:nope.*timm:resnet18.tv_in1k"):
        TW.timm_record("timm:nope")


# --------------------------------------------------------------------------------------------
# Equality with keras-hub's timm converter.


@pytest.mark.slow
@pytest.mark.parametrize("network, size", [("resnet18", 64), ("resnet34", 64), ("resnet50", 64), ("vgg16", 32),
                                           ("vgg19", 32)])
def test_backbone_features_equal_keras_hub(tmp_path, network, size):
    folder = _timm_folder(tmp_path, network)
    peer = keras_hub.models.Backbone.from_preset(str(folder))
    model = _ours(network, include_top=False, weights=str(folder / "model.safetensors"), input_shape=(size, size, 3))
    x = _pixels(size)
    _assert_close(model(x, training=False), peer(x, training=False))


@pytest.mark.slow
@pytest.mark.parametrize("network", ["resnet18", "resnet34", "resnet50"])
def test_resnet_logits_equal_keras_hub(tmp_path, network):
    folder = _timm_folder(tmp_path, network)
    peer = keras_hub.models.ImageClassifier.from_preset(str(folder))
    model = _ours(network, weights=str(folder / "model.safetensors"), classifier_activation=None,
                  input_shape=(64, 64, 3))
    x = _pixels(64)
    _assert_close(model(x, training=False), peer(x, training=False))


@pytest.mark.slow
@pytest.mark.parametrize("network", ["vgg16", "vgg19"])
def test_vgg_logits_equal_keras_hub(tmp_path, network):
    """timm's fc1 is a 7x7 conv (keras-hub keeps it one); ours is Dense over the NHWC flatten."""
    folder = _timm_folder(tmp_path, network)
    peer = keras_hub.models.ImageClassifier.from_preset(str(folder))
    model = _ours(network, weights=str(folder / "model.safetensors"), classifier_activation=None)
    x = _pixels(224)[:1]
    _assert_close(model(x, training=False), peer(x, training=False))


# --------------------------------------------------------------------------------------------
# Wrong files: clear errors, nothing written.


def test_file_of_another_network_is_refused(tmp_path):
    path = tmp_path / "resnet34.safetensors"
    save_file(_random_state_dict("resnet34"), str(path))
    assert TW.describe_timm_file(path)[0] == "resnet34"
    with pytest.raises(ValueError) as info:
        _ours("resnet18", include_top=False, weights=str(path), input_shape=(64, 64, 3))
    message = str(info.value)
    assert str(path) in message and "resnet34" in message and "basic blocks 3-4-6-3" in message
    assert "this model is resnet18" in message
    # A timm tag of another network is refused before any download.
    with pytest.raises(ValueError, match="resnet34.tv_in1k.*resnet34.*resnet18"):
        _ours("resnet18", weights="timm:resnet34.tv_in1k")
    with pytest.raises(ValueError, match="'timm:resnet34.tv_in1k' are resnet34's; this model is resnet18"):
        TW.load_timm_weights(_ours("resnet18", include_top=False, input_shape=(32, 32, 3)),
                             "timm:resnet34.tv_in1k", arch="resnet18", include_top=False)


def test_torchvision_resnet50_file_into_the_keras_layout_names_the_fix(tmp_path):
    path = tmp_path / "r50.safetensors"
    save_file(_random_state_dict("resnet50"), str(path))
    model = build_model("resnet50", include_top=False, input_shape=(64, 64, 3))  # keras layout
    before = [w.copy() for w in model.get_weights()]
    from keras_cnn.weights import load_weights

    with pytest.raises(ValueError, match="keras_layout=False") as info:
        load_weights(model, str(path), arch="resnet50", include_top=False)
    assert "bias" in str(info.value) and str(path) in str(info.value)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # nothing written


def test_timm_tag_of_the_wrong_layout_is_refused_before_fetching(monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("fetched a file the model cannot take")

    monkeypatch.setattr(TW, "get_timm_file", no_download)
    with pytest.raises(ValueError, match="timm:resnet50.tv_in1k.*keras_layout=False"):
        build_model("resnet50", include_top=False, weights="timm:resnet50.tv_in1k", input_shape=(64, 64, 3))


def test_shape_mismatch_writes_nothing(tmp_path):
    path = tmp_path / "r18.safetensors"
    save_file(_random_state_dict("resnet18"), str(path))
    model = _ours("resnet18", classes=10, input_shape=(64, 64, 3))
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=r"'fc.weight' of shape \(1000, 512\) gives \(512, 1000\).*\(512, 10\)"):
        TW.load_timm_weights(model, str(path), arch="resnet18", include_top=True)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    # Headless, the classifier tensors are not needed.
    headless = _ours("resnet18", include_top=False, weights=str(path), input_shape=(64, 64, 3))
    assert np.array_equal(headless.get_layer("conv1_conv").kernel.numpy(),
                          np.transpose(_random_state_dict("resnet18")["conv1.weight"], (2, 3, 1, 0)))


def test_missing_tensor_and_non_safetensors_file(tmp_path):
    tensors = _random_state_dict("resnet18")
    del tensors["layer3.0.bn2.running_var"]
    path = tmp_path / "partial.safetensors"
    save_file(tensors, str(path))
    with pytest.raises(ValueError, match="'layer3.0.bn2.running_var' is missing"):
        _ours("resnet18", include_top=False, weights=str(path), input_shape=(64, 64, 3))
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    assert not W.is_safetensors_file(junk)
    with pytest.raises(ValueError, match="junk.safetensors"):  # routed to the Keras loaders: clear error too
        _ours("resnet18", include_top=False, weights=str(junk), input_shape=(64, 64, 3))


def test_network_without_timm_weights_is_refused(tmp_path):
    path = tmp_path / "r18.safetensors"
    save_file(_random_state_dict("resnet18"), str(path))
    with pytest.raises(ValueError, match=r"timm weights convert into \[.*\].*'plain34'"):
        build_model("plain34", include_top=False, weights=str(path), input_shape=(64, 64, 3))


# --------------------------------------------------------------------------------------------
# Inception-v3: torchvision's layout and its auxiliary head (numbers against timm: test_timm_peer.py).


def _no_download(*args, **kwargs):
    raise AssertionError("fetched a file the model cannot take")


def _leaf(model, name):
    return next(layer for _, layer in W.weighted_leaves(model) if layer.name == name)


@pytest.mark.slow
def test_inception_v3_file_loads_into_the_torchvision_layout(tmp_path):
    from keras_cnn.weights import expected_preprocessing

    tensors = _random_state_dict("inception_v3", aux_logits=True)
    path = tmp_path / "iv3.safetensors"
    save_file(tensors, str(path))
    assert TW.describe_timm_file(path) == (
        "inception_v3",
        "timm's inception_v3 (Mixed_5b..Mixed_7c, with its auxiliary head AuxLogits), with a 1000-class classifier",
    )
    model = _ours("inception_v3", aux_logits=True, weights=str(path))  # built at 299 px, not run

    def hwio(key):
        return np.transpose(tensors[key], (2, 3, 1, 0))

    # A stem conv, the 7x1 that starts mixed4's double 7x7 branch, a 3x1 of mixed9's expanded bank,
    # the auxiliary head's convs and classifier, the classifier.
    assert np.array_equal(_leaf(model, "stem_conv1_conv").kernel.numpy(), hwio("Conv2d_1a_3x3.conv.weight"))
    assert np.array_equal(_leaf(model, "mixed4_branch3_2_1_conv").kernel.numpy(),
                          hwio("Mixed_6b.branch7x7dbl_2.conv.weight"))
    assert _leaf(model, "mixed4_branch3_2_1_conv").kernel.shape == (7, 1, 128, 128)
    bn = _leaf(model, "mixed9_branch2_2_2_bn")
    assert np.array_equal(bn.gamma.numpy(), tensors["Mixed_7b.branch3x3_2b.bn.weight"])
    assert np.array_equal(bn.moving_variance.numpy(), tensors["Mixed_7b.branch3x3_2b.bn.running_var"])
    assert np.array_equal(_leaf(model, "aux1_conv2_conv").kernel.numpy(), hwio("AuxLogits.conv1.conv.weight"))
    assert np.array_equal(_leaf(model, "aux1_predictions").kernel.numpy(), tensors["AuxLogits.fc.weight"].T)
    assert np.array_equal(model.get_layer("predictions").kernel.numpy(), tensors["fc.weight"].T)
    assert expected_preprocessing(model) == "tf"  # timm's inception mean / std 0.5: x / 127.5 - 1
    # Without the auxiliary head its tensors are skipped (as timm does); the rest is the same.
    plain = _ours("inception_v3", include_top=False, weights=str(path), input_shape=(75, 75, 3))
    assert np.array_equal(_leaf(plain, "mixed10_branch4_2_conv").kernel.numpy(),
                          hwio("Mixed_7c.branch_pool.conv.weight"))


@pytest.mark.slow
def test_inception_v3_weights_need_the_torchvision_layout(tmp_path, monkeypatch):
    monkeypatch.setattr(TW, "get_timm_file", _no_download)
    with pytest.raises(ValueError, match=r"'timm:inception_v3.tv_in1k' do not fit.*gamma.*keras_layout=False"):
        build_model("inception_v3", include_top=False, weights="timm:inception_v3.tv_in1k", input_shape=(75, 75, 3))
    path = tmp_path / "iv3.safetensors"
    save_file(_random_state_dict("inception_v3"), str(path))
    model = build_model("inception_v3", include_top=False, input_shape=(75, 75, 3))  # keras' layout
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match="keras_layout=False") as info:
        W.load_weights(model, str(path), arch="inception_v3", include_top=False)
    assert "gamma" in str(info.value) and str(path) in str(info.value)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # nothing written


@pytest.mark.slow
def test_inception_v3_auxiliary_head_needs_a_file_with_one(tmp_path, monkeypatch):
    monkeypatch.setattr(TW, "get_timm_file", _no_download)
    with pytest.raises(ValueError, match=r"'timm:inception_v3.tf_in1k' have no auxiliary head.*aux_logits=False"
                                         r".*'timm:inception_v3.tv_in1k'"):
        _ours("inception_v3", aux_logits=True, weights="timm:inception_v3.tf_in1k")
    path = tmp_path / "tf_in1k.safetensors"
    save_file(_random_state_dict("inception_v3", aux_logits=False), str(path))
    with pytest.raises(ValueError, match=r"auxiliary head.*'AuxLogits.conv0.conv' is missing.*aux_logits=False"):
        _ours("inception_v3", aux_logits=True, weights=str(path))
    # A file of another network is named as such.
    other = tmp_path / "r18.safetensors"
    save_file(_random_state_dict("resnet18"), str(other))
    with pytest.raises(ValueError, match="holds timm's resnet18.*this model is inception_v3"):
        _ours("inception_v3", include_top=False, weights=str(other), input_shape=(75, 75, 3))


# --------------------------------------------------------------------------------------------
# The Hub: cache, offline mode, "imagenet" defaults.


def _put_in_hf_cache(cache, tag, tensors):
    """Lay a file out as huggingface_hub's cache does (refs/main -> snapshots/<commit>/)."""
    commit = "0" * 40
    repo = cache / f"models--timm--{tag}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    save_file(tensors, str(repo / "snapshots" / commit / "model.safetensors"))


def test_offline_without_the_file_is_a_clear_error(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(TW.TimmWeightsUnavailableError) as info:
        TW.get_timm_file("timm:resnet18.tv_in1k")
    message = str(info.value)
    for needed in ("timm/resnet18.tv_in1k", "model.safetensors", str(tmp_path / "hub"),
                   "hf download timm/resnet18.tv_in1k", "https://huggingface.co/timm/resnet18.tv_in1k/resolve/main/model.safetensors", "weights='/path/to/"):
        assert needed in message
    # Through a builder: "imagenet" means timm's torchvision weights for ResNet-18.
    with pytest.raises(FileNotFoundError, match="timm/resnet18.tv_in1k"):
        _ours("resnet18", weights="imagenet")
    with pytest.raises(FileNotFoundError, match="timm/resnet50.a1_in1k"):
        _ours("resnet50", include_top=False, weights="timm:resnet50.a1_in1k", input_shape=(64, 64, 3))


@pytest.mark.slow
def test_offline_from_the_hf_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    tensors = _random_state_dict("resnet34", batches_tracked=False)
    _put_in_hf_cache(tmp_path / "hub", "resnet34.tv_in1k", tensors)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    path = TW.get_timm_file("resnet34.tv_in1k")
    assert os.path.isfile(path) and "models--timm--resnet34.tv_in1k" in path
    # Inception-v3 records their own preprocessing: "tf" for torchvision's, "torch" for GluonCV's.
    iv3 = _random_state_dict("inception_v3", batches_tracked=False)
    _put_in_hf_cache(tmp_path / "hub", "inception_v3.tv_in1k", iv3)
    _put_in_hf_cache(tmp_path / "hub", "inception_v3.gluon_in1k", iv3)
    from keras_cnn.weights import expected_preprocessing

    for weights, mode in (("imagenet", "tf"), ("timm:inception_v3.gluon_in1k", "torch")):
        model = _ours("inception_v3", include_top=False, weights=weights, input_shape=(75, 75, 3))
        assert expected_preprocessing(model) == mode
        assert np.array_equal(_leaf(model, "stem_conv5_bn").gamma.numpy(), iv3["Conv2d_4a_3x3.bn.weight"])
    # A transfer base named by its weights gets their layout, and says so.
    from keras_cnn.transfer import load_base

    with pytest.warns(UserWarning, match="inception_v3: building with keras_layout=False"):
        base, arch = load_base("inception_v3", weights="timm:inception_v3.tv_in1k", input_shape=(75, 75, 3))
    assert arch == "inception_v3" and expected_preprocessing(base) == "tf"
    assert np.array_equal(_leaf(base, "mixed7_branch4_2_bn").gamma.numpy(), iv3["Mixed_6e.branch_pool.bn.weight"])
    by_tag = _ours("resnet34", include_top=False, weights="timm:resnet34.tv_in1k", input_shape=(32, 32, 3))
    by_default = _ours("resnet34", include_top=False, weights="imagenet", input_shape=(32, 32, 3))
    kernel = np.transpose(tensors["layer4.2.conv2.weight"], (2, 3, 1, 0))
    for model in (by_tag, by_default):
        assert np.array_equal(model.get_layer("conv5_block3").conv2.kernel.numpy(), kernel)
        bn = model.get_layer("conv5_block3").bn2
        assert np.array_equal(bn.moving_variance.numpy(), tensors["layer4.2.bn2.running_var"])
        assert np.array_equal(bn.gamma.numpy(), tensors["layer4.2.bn2.weight"])


@pytest.mark.slow
def test_imagenet_default_and_preprocessing_per_layout(tmp_path):
    from keras_cnn.models._common import resolve_weights_name
    from keras_cnn.weights import expected_preprocessing

    # "imagenet": keras.applications' file for the keras-layout twin, timm's torchvision file otherwise.
    assert resolve_weights_name("imagenet", arch="resnet50", twin="ResNet50").name == "resnet50.keras_in1k"
    assert resolve_weights_name("imagenet", arch="resnet50", twin=None).name == "resnet50.tv_in1k"
    assert resolve_weights_name("imagenet", arch="resnet18", twin=None).name == "resnet18.tv_in1k"
    assert resolve_weights_name("imagenet", arch="resnet152", twin=None).name == "resnet152.tv_in1k"
    assert resolve_weights_name("imagenet", arch="resnet152", twin="ResNet152").name == "resnet152.keras_in1k"
    assert resolve_weights_name("imagenet", arch="inception_v3", twin="InceptionV3").name == "inception_v3.keras_in1k"
    assert resolve_weights_name("imagenet", arch="inception_v3", twin=None).name == "inception_v3.tv_in1k"
    with pytest.raises(ValueError, match="No ImageNet weights"):
        _ours("plain34", weights="imagenet")
    # The model records the preprocessing of its weights: "torch" for timm's VGG, not keras' "caffe".
    path = tmp_path / "vgg16.safetensors"
    save_file(_random_state_dict("vgg16", batches_tracked=False), str(path))
    vgg = _ours("vgg16", include_top=False, weights=str(path), input_shape=(32, 32, 3))
    assert expected_preprocessing(vgg) == "torch"
    assert expected_preprocessing(_ours("vgg16", include_top=False, input_shape=(32, 32, 3))) == "caffe"


# --------------------------------------------------------------------------------------------
# End to end: keras-cnn transfer with a local timm file.


@pytest.mark.slow
def test_cli_transfer_resnet18_from_a_timm_file(tmp_path, capsys):
    from keras_cnn import cli

    path = tmp_path / "resnet18.safetensors"
    save_file(_random_state_dict("resnet18"), str(path))
    out = tmp_path / "run"
    argv = ["transfer", "resnet18", "--weights", str(path), "--data", "digits", "--regime", "medium",
            "--trainable-blocks", "2", "--image-size", "32", "--epochs", "1", "--fine-tune-epochs", "1",
            "--max-examples", "64", "--batch-size", "16", "--out", str(out)]
    assert cli.main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["weights"] == str(path) and metrics["regime"] == "medium"
    model = keras.models.load_model(out / "model.keras")
    assert model.get_layer("preprocess").mode == "torch"
    # The frozen stem kept the file's weights through both phases.
    base = model.get_layer("resnet18")
    np.testing.assert_array_equal(base.get_layer("conv1_conv").kernel.numpy(),
                                  np.transpose(_random_state_dict("resnet18")["conv1.weight"], (2, 3, 1, 0)))
    # A file of another network: exit code 2 and a one-line error, no output folder.
    other = tmp_path / "resnet34.safetensors"
    save_file(_random_state_dict("resnet34"), str(other))
    bad = argv[:2] + ["--weights", str(other)] + argv[4:-1] + [str(tmp_path / "bad")]
    capsys.readouterr()
    assert cli.main(bad) == 2
    err = capsys.readouterr().err
    assert "keras-cnn transfer: error:" in err and "resnet34" in err and "Traceback" not in err
    assert not os.path.exists(tmp_path / "bad")


def test_cli_transfer_with_a_timm_tag_offline_is_a_clear_error(tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    from keras_cnn import cli

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    rc = cli.main(["transfer", "resnet18", "--weights", "timm:resnet18.tv_in1k", "--image-size", "32",
                   "--out", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "keras-cnn transfer: error:" in err and "timm/resnet18.tv_in1k" in err and "model.safetensors" in err
    assert not os.path.exists(tmp_path / "o")
