import ipaddress
import os
import signal
import socket

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# A test run started in the background by a non-interactive shell (`cmd &`, nohup) inherits SIGINT
# ignored, and so would every process a test starts; keras_cnn's signal guard rightly leaves an
# ignored SIGINT ignored. The tests that send SIGINT (Ctrl-C) need the usual disposition, which a
# handler here gives to this process and, reset to the default at exec, to its children.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


SLOW_TIMEOUT = 1200  # seconds; pyproject's `timeout` (300) holds for every other test


def pytest_collection_modifyitems(items):
    """A test marked slow and without its own ``@pytest.mark.timeout`` gets `SLOW_TIMEOUT`."""
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT))


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    """Seed and clear Keras state around every test so tests do not depend on order."""
    keras.utils.set_random_seed(0)
    yield
    keras.backend.clear_session(free_memory=False)


def assert_keras_roundtrip(model, x, tmp_path, atol=1e-6):
    """Save ``model`` to .keras, load it back, and assert identical outputs on ``x``."""
    path = tmp_path / "roundtrip.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    a = model(x, training=False)
    b = loaded(x, training=False)
    if isinstance(a, dict):
        assert set(a) == set(b)
        for key in a:
            np.testing.assert_allclose(np.asarray(a[key]), np.asarray(b[key]), atol=atol)
    else:
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=atol)
    return loaded


class NetworkBlocked(ConnectionRefusedError):
    """Raised by the `offline` fixture where a test would reach beyond this machine."""


class _Offline:
    """What the `offline` fixture blocked: ``hosts``, in the order they were asked for."""

    def __init__(self):
        self.hosts = []

    def refuse(self, host):
        self.hosts.append(str(host))
        raise NetworkBlocked(f"offline fixture: network access to {host!r} blocked")


def _is_local(host):
    if host in (None, "", "localhost"):
        return True
    try:
        return ipaddress.ip_address(str(host).strip("[]").split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture
def offline(monkeypatch):
    """No connection beyond this machine: name lookups and connections to any host but loopback
    raise `NetworkBlocked` (a ConnectionRefusedError, so fetchers fail as they do without a
    network), and each blocked host is recorded in ``offline.hosts``.

    Blocked at the socket, under every fetcher keras_cnn uses (`keras.utils.get_file` for
    keras.applications' files, huggingface_hub for timm's, tensorflow-datasets), whatever URL
    they are given: a test that proves a file is read from a cache proves it for the real URL.
    """
    state = _Offline()
    real_getaddrinfo, real_connect, real_connect_ex = socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex

    def getaddrinfo(host, *args, **kwargs):
        if not _is_local(host if not isinstance(host, bytes) else host.decode()):
            state.refuse(host)
        return real_getaddrinfo(host, *args, **kwargs)

    def _check(address):
        if isinstance(address, tuple) and not _is_local(address[0]):
            state.refuse(address[0])

    def connect(self, address):
        _check(address)
        return real_connect(self, address)

    def connect_ex(self, address):
        _check(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    return state
