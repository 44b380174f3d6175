"""The `offline` fixture (tests/conftest.py) blocks what keras_cnn really fetches, and only that.

Each fetch test asserts that the fetch met the fixture's own error (`NetworkBlocked`), so it
fails if the block is removed or stops covering the fetcher keras_cnn uses: on a machine with
internet the download would then succeed, and on one without, it would fail differently.
"""

import socket
import threading

import pytest

from tests.conftest import NetworkBlocked


def _causes(err):
    seen = []
    while err is not None and err not in seen:
        seen.append(err)
        err = err.__cause__ or err.__context__
    return seen


def test_keras_applications_weights_fetch_meets_the_block(offline, tmp_path, monkeypatch):
    from keras.src.backend import config

    from keras_cnn.models import build_model

    monkeypatch.setattr(config, "_KERAS_DIR", str(tmp_path))  # an empty Keras cache
    with pytest.raises(FileNotFoundError) as info:
        build_model("vgg16", weights="imagenet", include_top=False, input_shape=(32, 32, 3))
    assert any(isinstance(e, NetworkBlocked) for e in _causes(info.value)), _causes(info.value)
    assert offline.hosts == ["storage.googleapis.com"]  # keras.applications' host, read from our record


@pytest.mark.slow  # huggingface_hub retries a refused connection for about 25 s
def test_huggingface_hub_fetch_meets_the_block(offline, tmp_path, monkeypatch):
    from huggingface_hub import constants

    from keras_cnn.models import build_model

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError) as info:
        build_model("resnet18", weights="imagenet")  # timm's torchvision weights, from the Hub
    assert any(isinstance(e, NetworkBlocked) for e in _causes(info.value)), _causes(info.value)
    assert offline.hosts and set(offline.hosts) == {"huggingface.co"}


def test_the_block_leaves_this_machine_reachable(offline):
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        accepted = threading.Thread(target=lambda: server.accept()[0].close())
        accepted.start()
        with socket.create_connection(("localhost", port), timeout=10):
            pass
        accepted.join(10)
    with pytest.raises(NetworkBlocked):
        socket.create_connection(("example.com", 80), timeout=10)
    with pytest.raises(NetworkBlocked):
        socket.socket().connect(("203.0.113.7", 80))
    assert offline.hosts == ["example.com", "203.0.113.7"]
