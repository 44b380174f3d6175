"""What ``weights=`` means: a name is a name, a `WeightsSpec` is the typed form, a file of another
network fails in one line, and timm weights without a network fail at once.

No network: the ImageNet file is a keras.applications-layout ``.h5`` the test writes into a
prepared Keras cache (as tests/test_weights.py does); the timm tests block name resolution.
"""

import os
import pathlib
import socket
import subprocess
import sys
import time
import warnings

import keras
import numpy as np
import pytest

from keras_cnn.models.registry import build_model
from keras_cnn.models.resnet import ResNet18, ResNet50Custom
from keras_cnn.models.specs import WeightsFileNotFoundError, get_weights_spec, weights_name
from keras_cnn.models.vgg import VGG16Custom
from tests.test_weights import (  # noqa: F401  (keras_home is a fixture)
    assert_same_function,
    images,
    keras_home,
    md5,
    patch_keras_file,
    randomize,
    write_legacy_h5,
)

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_a_registered_name_is_a_name_whatever_files_the_working_directory_holds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("imagenet", "tv_in1k", "resnet50.keras_in1k", "resnet50", "mymodel"):
        (tmp_path / name).write_bytes(b"a file with a weights name")
    assert weights_name("imagenet") == "imagenet"
    assert weights_name("tv_in1k") == "tv_in1k"
    assert weights_name("resnet50.keras_in1k") == "resnet50.keras_in1k"
    assert weights_name("resnet50") == "resnet50"
    assert weights_name("timm:resnet18.tv_in1k") == "resnet18.tv_in1k"
    assert weights_name(get_weights_spec("resnet18.a1_in1k")) == "resnet18.a1_in1k"
    # A path: a pathlib.Path, a separator, a weights suffix, or an existing file that is not a name.
    assert weights_name(pathlib.Path("imagenet")) is None
    assert weights_name("./imagenet") is None and weights_name(os.path.join("runs", "x")) is None
    for suffix in (".h5", ".weights.h5", ".keras", ".safetensors"):
        assert weights_name(f"model{suffix}") is None
    assert weights_name("mymodel") is None
    # Neither a name nor a file: an unknown name, refused listing the known ones.
    assert weights_name("nosuchweights") == "nosuchweights"
    with pytest.raises(ValueError, match=r"Unknown pretrained weights. Received: weights='nosuchweights'"):
        VGG16Custom(weights="nosuchweights", include_top=False)


def test_a_weights_spec_is_checked_against_the_network_and_a_path_object_is_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"'resnet50.keras_in1k' are for 'resnet50', not 'vgg16'"):
        VGG16Custom(weights=get_weights_spec("resnet50.keras_in1k"), include_top=False)
    with pytest.raises(ValueError, match="keras.applications' and fit only the layer-for-layer twin"):
        VGG16Custom(weights=get_weights_spec("vgg16.keras_in1k"), include_top=False, width_multiplier=0.5)
    with pytest.raises(WeightsFileNotFoundError, match="`weights` file does not exist: 'imagenet'"):
        VGG16Custom(weights=pathlib.Path("imagenet"), include_top=False)


@pytest.mark.slow
def test_a_file_named_imagenet_does_not_change_what_imagenet_loads(tmp_path, keras_home, monkeypatch):  # noqa: F811
    shape = (32, 32, 3)
    reference = randomize(keras.applications.ResNet50(weights=None, include_top=False, input_shape=shape))
    record = get_weights_spec("resnet50.keras_in1k")
    cached = keras_home / "models" / record.file(False).fname
    cached.parent.mkdir()
    write_legacy_h5(cached, reference.layers)
    patch_keras_file(monkeypatch, "resnet50", False, file_hash=md5(cached))
    # In the working directory, a file named "imagenet" that would load: other weights of this network.
    decoy = randomize(ResNet50Custom(weights=None, include_top=False, input_shape=shape), seed=5)
    work = tmp_path / "work"
    work.mkdir()
    decoy.save_weights(work / "imagenet.weights.h5")
    os.replace(work / "imagenet.weights.h5", work / "imagenet")
    monkeypatch.chdir(work)
    x = images(32)
    by_name = ResNet50Custom(weights="imagenet", include_top=False, input_shape=shape)
    assert_same_function(reference(x), by_name(x))
    assert by_name.get_layer("keras_cnn_identity").weights_source == "resnet50.keras_in1k"
    assert not np.allclose(np.asarray(decoy(x)), np.asarray(by_name(x)), atol=1e-3)
    # The typed form loads the same record.
    by_record = ResNet50Custom(weights=get_weights_spec("resnet50.keras_in1k"), include_top=False, input_shape=shape)
    assert_same_function(reference(x), by_record(x))


# ------------------------------------------------------------------------------------------
# A weights file of another network: one error, no flood of Keras warnings.


@pytest.fixture
def resnet50_file(tmp_path):
    path = tmp_path / "resnet50.weights.h5"
    keras.applications.ResNet50(weights=None, include_top=True, input_shape=(32, 32, 3)).save_weights(path)
    return path


def test_another_networks_file_raises_without_keras_warnings(resnet50_file):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match=r"does not fit vgg16 .* it holds resnet50"):
            VGG16Custom(weights=str(resnet50_file), include_top=True, input_shape=(32, 32, 3))
    assert [str(w.message)[:120] for w in caught if "freshly-initialized" in str(w.message)] == []


def test_a_partial_keras_load_is_refused(tmp_path):
    from keras_cnn.weights.files import load_keras_file

    small = build_model("lenet5", input_shape=(32, 32, 1), classes=10)
    path = tmp_path / "lenet.weights.h5"
    small.save_weights(path)
    other = build_model("resnet18", include_top=False, input_shape=(32, 32, 3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises((ValueError, KeyError)):
            load_keras_file(other, path, "keras_weights_h5")
    assert not [w for w in caught if "freshly-initialized" in str(w.message)]
    same = build_model("lenet5", input_shape=(32, 32, 1), classes=10)
    load_keras_file(same, path, "keras_weights_h5")
    assert all(np.array_equal(a, b) for a, b in zip(small.get_weights(), same.get_weights()))


@pytest.mark.slow
def test_cli_with_another_networks_file_prints_one_line(resnet50_file, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-m", "keras_cnn", "transfer", "vgg16", "--weights", str(resnet50_file),
         "--image-size", "32", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-3000:]
    assert lines[0].startswith("keras-cnn transfer: error:") and "does not fit" in lines[0] and "resnet50" in lines[0]
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------
# timm weights without a network.


@pytest.fixture
def no_network(tmp_path, monkeypatch):
    """An empty Hugging Face cache, offline mode off, and no host name resolves."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))

    def unresolvable(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, f"Name or service not known: {host} (network blocked by the test)")

    monkeypatch.setattr(socket, "getaddrinfo", unresolvable)
    return tmp_path / "hub"


def test_timm_weights_without_a_network_fail_at_once(no_network):
    from keras_cnn.weights.timm import TimmWeightsUnavailableError, get_timm_file

    start = time.monotonic()
    with pytest.raises(TimmWeightsUnavailableError) as info:
        get_timm_file("timm:resnet18.tv_in1k")
    assert time.monotonic() - start < 5  # huggingface_hub's own retries take about 25 s
    message = str(info.value)
    for needed in ("timm/resnet18.tv_in1k", "model.safetensors", str(no_network), "ConnectError",
                   "hf download timm/resnet18.tv_in1k", "weights='/path/to/model.safetensors'"):
        assert needed in message
    start = time.monotonic()
    with pytest.raises(FileNotFoundError, match="timm/resnet18.tv_in1k"):
        ResNet18(weights="imagenet", include_top=False, input_shape=(32, 32, 3))
    assert time.monotonic() - start < 15
