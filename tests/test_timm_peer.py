"""Our loading of timm's safetensors files against timm itself (PyTorch, CPU, a separate process).

The files are the seeded random state dicts of `tests.test_timm_weights` (BN statistics
included). timm loads each with its own loader (`tests.timm_peer.run_timm`), so these tests
prove (a) that the files we write and read have exactly the keys, shapes and dtypes of timm's
state dicts and (b) that our networks compute timm's logits and pre-logits features from them,
to 1e-5 of the output scale. torch, torchvision and timm come with the `peer` extra
(``pip install -e ".[test,peer]"``); without them these tests skip, naming the extra.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time

import importlib.util

import keras
import numpy as np
import pytest

if not all(importlib.util.find_spec(name) for name in ("torch", "torchvision", "timm")):
    pytest.skip('timm peer tests: torch, torchvision and timm are not installed; they come with the `peer` extra: '
                'pip install -e ".[test,peer]"', allow_module_level=True)
# Each network's timm files are written by timm in its own process (5-10 s a network): slow.
pytestmark = pytest.mark.slow
from safetensors.numpy import save_file

from keras_cnn.weights import timm as TW
from tests.test_timm_weights import _assert_close, _ours, _pixels, _random_state_dict
from tests.timm_peer import TimmPeerError, run_timm

# (network, timm model name, input size, images, aux head): ResNets at 64 px; VGG's classifier (fc1
# is a 7x7 conv over the 7x7 map) needs 224 px; Inception-v3's auxiliary head (avg-pool 5/3, 5x5
# conv) needs the 17x17 grid of 299 px, where timm's own file (inception_v3.tv_in1k) has it.
PEERS = [
    pytest.param(("resnet18", "resnet18.tv_in1k", 64, 2, False), id="resnet18"),
    pytest.param(("resnet34", "resnet34.tv_in1k", 64, 2, False), id="resnet34"),
    pytest.param(("resnet50", "resnet50.tv_in1k", 64, 2, False), id="resnet50"),
    pytest.param(("resnet101", "resnet101.tv_in1k", 64, 2, False), id="resnet101", marks=pytest.mark.slow),
    pytest.param(("resnet152", "resnet152.tv_in1k", 64, 2, False), id="resnet152", marks=pytest.mark.slow),
    pytest.param(("vgg16", "vgg16.tv_in1k", 224, 1, False), id="vgg16", marks=pytest.mark.slow),
    pytest.param(("vgg19", "vgg19.tv_in1k", 224, 1, False), id="vgg19", marks=pytest.mark.slow),
    pytest.param(("inception_v3", "inception_v3.tv_in1k", 299, 2, True), id="inception_v3+aux",
                 marks=pytest.mark.slow),
]


@pytest.fixture(scope="module", params=PEERS)
def peer(request, tmp_path_factory):
    """One timm run per network, shared by the tests of that network: the file, images, timm's answer."""
    network, timm_name, size, count, aux = request.param
    path = tmp_path_factory.mktemp(network) / "model.safetensors"
    tensors = _random_state_dict(network, aux_logits=aux)
    save_file(tensors, str(path))
    x = _pixels(size)[:count]
    result = run_timm(timm_name, path, x, **({"aux_logits": True} if aux else {}))
    yield {"network": network, "path": path, "tensors": tensors, "x": x, "timm": result, "aux": aux}
    path.unlink()  # VGG's files are 0.5 GB


def test_files_have_exactly_timms_state_dict(peer):
    """Keys, shapes and dtypes of our files are those of timm's ``model.state_dict()``."""
    ours = {k: (tuple(v.shape), str(v.dtype)) for k, v in peer["tensors"].items()}
    timm = {k: (shape, peer["timm"]["state_dict_dtypes"][k]) for k, shape in peer["timm"]["state_dict"].items()}
    assert sorted(set(ours) - set(timm)) == [] and sorted(set(timm) - set(ours)) == []
    assert ours == timm
    # The architecture tables give timm's shapes; torch adds a num_batches_tracked per BN.
    tracked = {k for k in timm if k.endswith("num_batches_tracked")}
    assert len(tracked) == (0 if peer["network"].startswith("vgg") else sum(k.endswith("running_var") for k in timm))
    assert TW.expected_timm_shapes(peer["network"], aux_logits=peer["aux"]) == {
        k: v for k, v in peer["timm"]["state_dict"].items() if k not in tracked}


def test_logits_and_features_equal_timm(peer):
    size = peer["x"].shape[1]
    aux = {"aux_logits": True} if peer["aux"] else {}
    model = _ours(peer["network"], weights=str(peer["path"]), classifier_activation=None,
                  input_shape=(size, size, 3), **aux)
    features = keras.Model(model.input, model.get_layer("predictions").input)
    outputs = model(peer["x"], training=False)
    if peer["aux"]:  # {"predictions", "aux1"}: both heads against timm's
        _assert_close(outputs["aux1"], peer["timm"]["aux"])
        outputs = outputs["predictions"]
    _assert_close(outputs, peer["timm"]["logits"])
    _assert_close(features(peer["x"], training=False), peer["timm"]["features"])
    # timm's parameters are our trainable weights (BN statistics are buffers in torch).
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == peer["timm"]["param_count"]


@pytest.mark.slow
def test_file_of_another_network_is_refused_by_timm_and_by_us(tmp_path):
    path = tmp_path / "resnet34.safetensors"
    save_file(_random_state_dict("resnet34"), str(path))
    with pytest.raises(TimmPeerError) as info:
        run_timm("resnet18.tv_in1k", path)
    err = info.value
    assert (err.stage, err.exc_type) == ("create", "RuntimeError")
    assert "Error(s) in loading state_dict for ResNet" in str(err) and '"layer1.2.conv1.weight"' in str(err)
    with pytest.raises(ValueError, match="resnet34.*this model is resnet18"):
        _ours("resnet18", include_top=False, weights=str(path), input_shape=(64, 64, 3))


# --------------------------------------------------------------------------------------------
# The runner itself.


def test_runner_refuses_bad_arguments_before_starting_timm(tmp_path):
    x = _pixels(32)
    with pytest.raises(FileNotFoundError, match="`path`.*nope.safetensors"):
        run_timm("resnet18.tv_in1k", tmp_path / "nope.safetensors", x)
    renamed = tmp_path / "model.bin"
    save_file({"w": np.zeros(2, "float32")}, str(renamed))
    with pytest.raises(ValueError, match=r"`path` is a safetensors file without the '\.safetensors' extension.*model\.bin"):
        run_timm("resnet18.tv_in1k", renamed, x)
    with pytest.raises(ValueError, match="`images`.*NHWC float32.*float64"):
        run_timm("resnet18.tv_in1k", None, x.astype("float64"))
    with pytest.raises(ValueError, match=r"`images`.*\(32, 32, 3\)"):
        run_timm("resnet18.tv_in1k", None, x[0])
    with pytest.raises(ValueError, match="JSON-serialisable"):
        run_timm("resnet18.tv_in1k", None, x, act_layer=object())
    with pytest.raises(ValueError, match="`timeout`.*0"):
        run_timm("resnet18.tv_in1k", None, x, timeout=0)


def _peer_children(parent=None):
    """Live processes started by ``parent`` (default: this one) running tests/timm_peer.py (Linux /proc)."""
    parent = os.getpid() if parent is None else parent
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and b"timm_peer.py" in cmdline:
            found.append(int(pid))
    return found


def test_runner_kills_a_peer_past_its_timeout(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where run_timm's work folder goes
    start = time.monotonic()
    with pytest.raises(TimmPeerError, match="did not finish within 0.5 s") as info:
        run_timm("resnet18.tv_in1k", None, _pixels(32), timeout=0.5)  # importing torch alone takes longer
    assert info.value.stage == "timeout" and time.monotonic() - start < 10
    assert _peer_children() == []  # killed and reaped
    assert os.listdir(tmp_path) == []  # and its work folder removed


def test_peer_exits_when_the_test_process_dies(tmp_path):
    """SIGKILL of the caller (no cleanup runs there): the peer notices and exits by itself."""
    script = ("import numpy as np, sys; sys.path.insert(0, sys.argv[1]); from tests.timm_peer import run_timm; "
              "run_timm('resnet18.tv_in1k', None, np.zeros((1, 32, 32, 3), 'float32'))")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    caller = subprocess.Popen([sys.executable, "-c", script, root])
    try:
        deadline = time.monotonic() + 30
        while not (children := _peer_children(caller.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert children, "the peer never started"
    finally:
        caller.kill()
        caller.wait()
    deadline = time.monotonic() + 5
    while (alive := _running(children[0])) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive:
        os.kill(children[0], signal.SIGKILL)
    assert not alive, "the peer outlived its caller by 5 s"


def _running(pid):
    """``pid`` exists and is not a zombie waiting to be reaped by its new parent."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
