"""ImageNet weights of the keras.applications twins, port_weights, weight files, preprocessing.

There is no network here: the tests make keras.applications-layout ``.h5`` files from a
keras.applications model built with ``weights=None`` and given seeded random weights (BN
moving mean / variance included), and check that our twins loaded from them compute the same
function as the keras model.
"""

import hashlib
import inspect
import os
import time
import urllib.parse

import h5py
import keras
import numpy as np
import pytest

from keras_cnn import weights as W
from keras_cnn.weights import keras_applications as KA
from keras_cnn.models.inception_v3 import InceptionV3Custom
from keras_cnn.models.registry import build_model
from keras_cnn.models.resnet import ResNet50Custom, ResNet101Custom, ResNet152Custom  # noqa: F401
from keras_cnn.models.vgg import VGG16Custom, VGG19Custom


# registry name -> (keras class, our builder, small input size, keras layer ending the no-top model)
TWINS = {
    "vgg16": ("VGG16", VGG16Custom, 32, "block5_pool"),
    "vgg19": ("VGG19", VGG19Custom, 32, "block5_pool"),
    "resnet50": ("ResNet50", ResNet50Custom, 32, "conv5_block3_out"),
    "resnet101": ("ResNet101", ResNet101Custom, 32, "conv5_block3_out"),
    "resnet152": ("ResNet152", ResNet152Custom, 32, "conv5_block3_out"),
    "inception_v3": ("InceptionV3", InceptionV3Custom, 75, "mixed10"),
}


def randomize(model, seed=0):
    """Seeded random weights that keep activations finite: fan-in scaled kernels, BN with
    non-trivial gamma, beta, moving mean and moving variance."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        path, shape = v.path, tuple(v.shape)
        if path.endswith("moving_variance"):
            value = rng.uniform(0.5, 1.5, shape)
        elif path.endswith("moving_mean"):
            value = rng.normal(0.0, 0.2, shape)
        elif path.endswith("gamma"):
            value = rng.uniform(0.5, 1.0, shape)
        elif path.endswith("beta") or path.endswith("bias"):
            value = rng.normal(0.0, 0.1, shape)
        else:
            value = rng.normal(0.0, 1.0, shape) / np.sqrt(np.prod(shape[:-1]))
        v.assign(value.astype("float32"))
    return model


def write_legacy_h5(path, layers):
    """Write ``layers`` in the layout of the keras.applications downloads (Keras 2 legacy
    weights-only .h5: "layer_names" attribute, one group per layer with "weight_names")."""
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [layer.name.encode("utf8") for layer in layers]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for layer in layers:
            legacy_h5_format.save_subset_weights_to_hdf5_group(f.create_group(layer.name), layer.weights)
    return str(path)


def md5(path):
    return hashlib.md5(open(path, "rb").read()).hexdigest()


def images(size, n=2, seed=1):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, (n, size, size, 3)).astype("float32")


def assert_same_function(a, b, tol=1e-5):
    a, b = np.asarray(a), np.asarray(b)
    assert np.all(np.isfinite(a)) and a.std() > 0, "degenerate reference output"
    np.testing.assert_allclose(b, a, rtol=tol, atol=tol * float(np.abs(a).max()))


# ------------------------------------------------------------------------------------------
# The files keras.applications downloads.


@pytest.mark.parametrize("twin", W.IMAGENET_TWINS)
@pytest.mark.parametrize("include_top", [True, False])
def test_weights_file_is_the_one_keras_applications_downloads(twin, include_top):
    spec = W.imagenet_weights_file(twin, include_top)
    # keras' source passes this file name, URL and md5 to get_file(cache_subdir="models").
    module = inspect.getmodule(getattr(keras.applications, twin))
    source = inspect.getsource(module)
    assert f'"{spec.file_hash}"' in source
    assert f'"{spec.fname}"' in source or twin.startswith("ResNet")
    assert spec.url.endswith("/" + spec.fname)
    assert spec.url.startswith("https://storage.googleapis.com/tensorflow/keras-applications/")
    assert spec.fname.endswith("_notop.h5") != include_top
    if twin.startswith("ResNet"):
        assert spec.fname == f"{twin.lower()}_weights_tf_dim_ordering_tf_kernels{'' if include_top else '_notop'}.h5"
        assert spec.url == module.BASE_WEIGHTS_PATH + spec.fname
    else:
        assert spec.url == (module.WEIGHTS_PATH if include_top else module.WEIGHTS_PATH_NO_TOP)


def test_weights_file_accepts_registry_and_builder_names():
    assert W.imagenet_weights_file("resnet50", False) == W.imagenet_weights_file("ResNet50", False)
    assert W.imagenet_weights_file("InceptionV3Custom").twin == "InceptionV3"
    with pytest.raises(ValueError, match="arch='lenet5'"):
        W.imagenet_weights_file("lenet5")


# ------------------------------------------------------------------------------------------
# Proof: same function as keras.applications, via port_weights and via the .h5 files.


def _check_twin(name, tmp_path):
    keras_name, builder, size, last = TWINS[name]
    k = getattr(keras.applications, keras_name)(
        weights=None, include_top=True, input_shape=(size, size, 3), classifier_activation=None
    )
    randomize(k)
    k_notop = keras.Model(k.inputs, k.get_layer(last).output)
    top_file = write_legacy_h5(tmp_path / "top.h5", k.layers)
    notop_file = write_legacy_h5(tmp_path / "notop.h5", k.layers[: k.layers.index(k.get_layer(last)) + 1])
    x = images(size)
    ref, ref_notop = np.asarray(k(x)), np.asarray(k_notop(x))

    # port_weights, with the top: every weight copied exactly, same outputs. InceptionV3 gets
    # its auxiliary head (which keras lacks): the port fills the main path only.
    extra = {"aux_logits": True} if name == "inception_v3" else {}
    ours = builder(weights=None, include_top=True, input_shape=(size, size, 3), classifier_activation=None, **extra)
    main = KA.main_path(ours)
    if extra:
        with pytest.raises(ValueError, match="target layer 'aux1/"):
            W.port_weights(k, ours)  # the aux head has no counterpart in keras
    pairs = W.port_weights(k, main)
    assert len(pairs) == len([layer for layer in k.layers if layer.weights])
    leaves = dict(W.weighted_leaves(main))
    for src_path, dst_path in pairs:
        src, dst = k.get_layer(src_path).get_weights(), leaves[dst_path].get_weights()
        assert len(src) == len(dst) and all(np.array_equal(a, b) for a, b in zip(src, dst))
    assert_same_function(ref, main(x))

    # The keras.applications .h5 with the top, loaded by order into the twin, then ported.
    randomize(ours, seed=7)
    assert not np.allclose(np.asarray(main(x)), ref, atol=1e-3)
    W.load_weights(ours, top_file, arch=name, include_top=True)
    assert_same_function(ref, main(x))

    # The "notop" .h5 through the builder's `weights=<path>`.
    ours_notop = builder(weights=notop_file, include_top=False, input_shape=(size, size, 3))
    assert_same_function(ref_notop, ours_notop(x))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vgg16", "vgg19", "resnet50", "inception_v3"])
def test_twin_computes_keras_function(name, tmp_path):
    _check_twin(name, tmp_path)


@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.parametrize("name", ["resnet101", "resnet152"])
def test_deep_resnet_twin_computes_keras_function(name, tmp_path):
    _check_twin(name, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name, size", [("resnet50", 224), ("inception_v3", 299)])
def test_twin_full_size_with_top(name, size):
    keras_name, builder, _, _ = TWINS[name]
    k = randomize(getattr(keras.applications, keras_name)(weights=None, classifier_activation=None))
    ours = builder(weights=None, classifier_activation=None)
    W.port_weights(k, ours)
    x = images(size, n=1)
    assert_same_function(k(x), ours(x))


# ------------------------------------------------------------------------------------------
# Mismatches fail loudly, naming the first layer, and change nothing.


def test_port_weights_names_first_mismatch_and_leaves_target_untouched():
    src = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    dst = VGG19Custom(weights=None, include_top=False, input_shape=(32, 32, 3))
    before = [w.copy() for w in dst.get_weights()]
    with pytest.raises(ValueError) as err:
        W.port_weights(src, dst)
    msg = str(err.value)
    assert "'vgg16' (source)" in msg and "'vgg19' (target)" in msg
    assert "target layer 'block3_conv4/block3_conv4_conv' (Conv2D, weight shapes [(3, 3, 256, 256), (256,)])" in msg
    assert "no counterpart in the source (paired by name" in msg
    assert all(np.array_equal(a, b) for a, b in zip(before, dst.get_weights()))
    with pytest.raises(ValueError, match="source layer 'block3_conv4'"):  # and the other way round
        W.port_weights(
            keras.applications.VGG19(weights=None, include_top=False, input_shape=(32, 32, 3)),
            VGG16Custom(weights=None, include_top=False, input_shape=(32, 32, 3)),
        )


def test_port_weights_by_order_names_source_layer_target_path_and_shapes():
    src = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    dst = build_model("resnet18", weights=None, include_top=False, input_shape=(32, 32, 3))
    with pytest.raises(ValueError) as err:
        W.port_weights(src, dst)
    msg = str(err.value)
    assert "first mismatch (paired by order, kind by kind)" in msg
    assert "source layer 'block1_conv1' (Conv2D, weight shapes [(3, 3, 3, 64), (64,)])" in msg
    assert "target layer 'conv1_conv' (Conv2D, weight shapes [(7, 7, 3, 64)])" in msg
    with pytest.raises(ValueError, match="match"):
        W.port_weights(src, dst, match="fuzzy")


def test_legacy_file_with_the_other_top_is_refused(tmp_path):
    k = keras.applications.VGG16(weights=None, include_top=True, input_shape=(32, 32, 3))
    notop = write_legacy_h5(tmp_path / "notop.h5", k.layers[: k.layers.index(k.get_layer("block5_pool")) + 1])
    top = write_legacy_h5(tmp_path / "top.h5", k.layers)
    with pytest.raises(ValueError, match=r"include_top=True.*Build the model with include_top=False"):
        VGG16Custom(weights=notop, include_top=True, input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match="include_top=True"):
        VGG16Custom(weights=top, include_top=False, input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match="does not fit"):  # 1000-class file, 10-class model
        VGG16Custom(weights=top, include_top=True, input_shape=(32, 32, 3), classes=10)


def test_imagenet_needs_1000_classes_with_top_and_a_twin():
    with pytest.raises(ValueError, match="`classes` should be 1000. Received: classes=10"):
        VGG16Custom(weights="imagenet", include_top=True, classes=10)
    with pytest.raises(ValueError, match="classes=5"):
        ResNet50Custom(weights="imagenet", classes=5)
    with pytest.raises(ValueError, match="weights='imagenet'"):
        build_model("lenet5", weights="imagenet")


# ------------------------------------------------------------------------------------------
# The download path: offline errors, the cache.


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """An empty KERAS_HOME (keras reads the variable at import, so patch what it set)."""
    from keras.src.backend import config

    home = tmp_path / "keras_home"
    home.mkdir()
    monkeypatch.setattr(config, "_KERAS_DIR", str(home))
    return home


# `offline` (tests/conftest.py): no connection beyond this machine, whatever URL is fetched.


def test_offline_download_fails_fast_saying_which_file_and_where(keras_home, offline):
    spec = W.imagenet_weights_file("ResNet50", include_top=False)
    start = time.monotonic()
    with pytest.raises(W.ImageNetWeightsUnavailableError) as err:
        ResNet50Custom(weights="imagenet", include_top=False, input_shape=(32, 32, 3))
    assert time.monotonic() - start < 60
    assert isinstance(err.value, FileNotFoundError)  # the CLI reports it as an error, exit 2
    msg = str(err.value)
    expected = os.path.join(str(keras_home), "models", spec.fname)
    assert spec.fname in msg and spec.url in msg and expected in msg
    assert "weights='/path/to/" in msg
    assert err.value.cache_path == expected
    assert not os.path.exists(expected)
    assert offline.hosts == [urllib.parse.urlsplit(spec.url).hostname]  # the record's URL was the one fetched


def patch_keras_file(monkeypatch, arch, include_top, **changes):
    """Replace fields of one keras.applications file in the weights records, for this test."""
    import dataclasses

    from keras_cnn.models import specs

    record = specs.WEIGHTS_SPECS[f"{arch}.keras_in1k"]
    files = tuple(dataclasses.replace(f, **changes) if f.include_top == include_top else f for f in record.files)
    monkeypatch.setitem(specs.WEIGHTS_SPECS, record.name, dataclasses.replace(record, files=files))


def test_cached_file_is_used_offline(keras_home, offline, monkeypatch):
    k = randomize(keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3)))
    spec = W.imagenet_weights_file("VGG16", include_top=False)
    cached = keras_home / "models" / spec.fname
    cached.parent.mkdir()
    write_legacy_h5(cached, k.layers)
    # The file is not Keras' real one, so give it the hash keras checks (keras would re-download
    # a cached file whose md5 differs, and so do we: see the next test).
    patch_keras_file(monkeypatch, "vgg16", False, file_hash=md5(cached))
    ours = VGG16Custom(weights="imagenet", include_top=False, input_shape=(32, 32, 3))
    x = images(32)
    assert_same_function(k(x), ours(x))
    assert W.get_imagenet_weights_file("vgg16", include_top=False) == str(cached)
    assert offline.hosts == []  # read from the cache: no fetch was tried


@pytest.fixture
def local_server(tmp_path):
    """A local HTTP server over a folder: the download path, without the internet."""
    import functools
    import http.server
    import threading

    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_download_path_fetches_verifies_and_caches(keras_home, local_server, monkeypatch):
    root, url = local_server
    k = randomize(keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3)))
    served = write_legacy_h5(root / "vgg16_notop.h5", k.layers)
    patch_keras_file(monkeypatch, "vgg16", False, url=url + "vgg16_notop.h5", file_hash=md5(served))
    ours = VGG16Custom(weights="imagenet", include_top=False, input_shape=(32, 32, 3))
    x = images(32)
    assert_same_function(k(x), ours(x))
    cached = keras_home / "models" / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert md5(cached) == md5(served)  # stored under keras' name, where keras.applications looks
    # A download whose md5 is wrong is refused, with the same clear error.
    cached.unlink()
    patch_keras_file(monkeypatch, "vgg16", False, file_hash="0" * 32)
    with pytest.raises(W.ImageNetWeightsUnavailableError, match="file hash does not match"):
        W.get_imagenet_weights_file("VGG16", include_top=False)


def test_cached_file_with_wrong_hash_is_kept_when_redownload_fails(keras_home, offline):
    spec = W.imagenet_weights_file("InceptionV3", include_top=False)
    cached = keras_home / "models" / spec.fname
    cached.parent.mkdir()
    cached.write_bytes(b"not the real weights")
    with pytest.raises(W.ImageNetWeightsUnavailableError, match="md5 is not") as err:
        W.get_imagenet_weights_file("InceptionV3", include_top=False)
    assert "it was kept" in str(err.value)
    assert cached.read_bytes() == b"not the real weights"
    assert sorted(os.listdir(cached.parent)) == [spec.fname]
    assert offline.hosts == [urllib.parse.urlsplit(spec.url).hostname]  # the re-download met the block


def test_download_timeout_setting(monkeypatch):
    assert KA._download_timeout(None) == W.DOWNLOAD_TIMEOUT
    monkeypatch.setenv("KERAS_CNN_DOWNLOAD_TIMEOUT", "2.5")
    assert KA._download_timeout(None) == 2.5
    monkeypatch.setenv("KERAS_CNN_DOWNLOAD_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="KERAS_CNN_DOWNLOAD_TIMEOUT"):
        KA._download_timeout(None)
    import socket

    with KA._socket_timeout(3.0):
        assert socket.getdefaulttimeout() == 3.0
    assert socket.getdefaulttimeout() is None


# ------------------------------------------------------------------------------------------
# Files saved by this package.


def test_own_weight_files_by_content_not_suffix(tmp_path):
    model = build_model("lenet5", input_shape=(32, 32, 1), classes=10)
    randomize(model, seed=3)
    x = np.random.default_rng(0).uniform(0, 1, (2, 32, 32, 1)).astype("float32")
    ref = np.asarray(model(x))
    model.save_weights(tmp_path / "m.weights.h5")
    model.save(tmp_path / "m.keras")
    os.replace(tmp_path / "m.weights.h5", tmp_path / "m.bin")  # suffix lost: detected by content
    assert W.weights_file_format(tmp_path / "m.bin") == "keras_weights_h5"
    assert W.weights_file_format(tmp_path / "m.keras") == "keras"
    for path in (tmp_path / "m.bin", tmp_path / "m.keras"):
        loaded = build_model("lenet5", input_shape=(32, 32, 1), classes=10, weights=str(path))
        np.testing.assert_allclose(np.asarray(loaded(x)), ref, atol=1e-6)
    legacy = write_legacy_h5(tmp_path / "legacy.h5", model.layers)
    assert W.weights_file_format(legacy) == "legacy_h5"
    loaded = build_model("lenet5", input_shape=(32, 32, 1), classes=10, weights=legacy)
    np.testing.assert_allclose(np.asarray(loaded(x)), ref, atol=1e-6)


def test_weights_file_format_rejects_other_files(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="Received: weights="):
        W.weights_file_format(junk)
    with h5py.File(tmp_path / "empty.h5", "w"):
        pass
    with pytest.raises(ValueError, match="neither"):
        W.weights_file_format(tmp_path / "empty.h5")
    with pytest.raises(FileNotFoundError, match="weights"):
        W.weights_file_format(tmp_path / "missing.h5")


# ------------------------------------------------------------------------------------------
# Preprocessing travels with the model.


def test_with_preprocessing_matches_keras_preprocess_input(tmp_path):
    from keras.src.applications import inception_v3, vgg16

    base = randomize(VGG16Custom(weights=None, include_top=False, input_shape=(32, 32, 3), pooling="avg"))
    raw = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    wrapped = W.with_preprocessing(base)  # "caffe", recognised from the VGG stage names
    assert wrapped.get_layer("preprocess").mode == "caffe"
    assert_same_function(base(vgg16.preprocess_input(raw.copy())), wrapped(raw))
    tf_wrapped = W.with_preprocessing(base, mode="tf")
    assert_same_function(base(inception_v3.preprocess_input(raw.copy())), tf_wrapped(raw))
    assert W.with_preprocessing(base, arch="inception_v3").get_layer("preprocess").mode == "tf"
    # Saved and reloaded, it still takes raw pixels.
    wrapped.save(tmp_path / "raw.keras")
    reloaded = keras.models.load_model(tmp_path / "raw.keras")
    assert_same_function(wrapped(raw), reloaded(raw))
    with pytest.raises(ValueError, match="mode"):
        W.with_preprocessing(keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten()]))


# ------------------------------------------------------------------------------------------
# Twins load their counterpart's native Keras 3 files; clear errors for wrong or broken files.


# ResNet-101/152 take the same path as ResNet-50 with more blocks: heavy (run by .ci/run after the README's command).
@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow, pytest.mark.heavy])
                                  if n in ("resnet101", "resnet152") else n for n in TWINS])
@pytest.mark.slow  # a full-size model saved and loaded twice: 4-10 s each
@pytest.mark.parametrize("suffix", [".weights.h5", ".keras"])
def test_twin_loads_keras_applications_native_file(name, suffix, tmp_path):
    keras_name, builder, size, _ = TWINS[name]
    shape = (size, size, 3)
    reference = randomize(getattr(keras.applications, keras_name)(weights=None, include_top=False, input_shape=shape))
    path = tmp_path / f"{keras_name}{suffix}"
    if suffix == ".keras":
        reference.save(path)
    else:
        reference.save_weights(path)
    ours = builder(weights=str(path), include_top=False, input_shape=shape)
    x = images(size)
    assert_same_function(reference(x), ours(x))
    assert ours.get_layer("keras_cnn_identity").weights_source == f"file:{path.name}"


def test_weights_file_of_another_network_fails_in_one_sentence(tmp_path):
    other = randomize(keras.applications.ResNet50(weights=None, include_top=True, input_shape=(32, 32, 3)))
    path = tmp_path / "resnet50.weights.h5"
    other.save_weights(path)
    with pytest.raises(ValueError) as err:
        VGG16Custom(weights=str(path), include_top=True, input_shape=(32, 32, 3))
    message = str(err.value)
    assert message.startswith(f"The weights file '{path}' does not fit vgg16")
    assert "resnet50 (keras.applications ResNet50)" in message and "25,636,712 parameters" in message
    assert len(message) < 400 and "\n" not in message  # no tensor dump


def test_keras_file_names_the_network_it_holds(tmp_path):
    path = tmp_path / "lenet.keras"
    build_model("lenet5", classes=10).save(path)
    with pytest.raises(ValueError, match=r"does not fit resnet18 .* it holds lenet5: "):
        build_model("resnet18", weights=str(path), input_shape=(32, 32, 3), classes=10)


def test_truncated_missing_and_unknown_weights_are_named(tmp_path):
    good = tmp_path / "vgg.weights.h5"
    randomize(keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))).save_weights(good)
    truncated = tmp_path / "truncated.weights.h5"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    with pytest.raises(ValueError, match=r"`weights` file '.*truncated.weights.h5' cannot be read"):
        VGG16Custom(weights=str(truncated), include_top=False, input_shape=(32, 32, 3))
    with pytest.raises(FileNotFoundError, match="`weights` file does not exist: '/no/such/vgg.h5'"):
        VGG16Custom(weights="/no/such/vgg.h5", include_top=False)
    with pytest.raises(ValueError, match=r"Unknown pretrained weights. Received: weights='bogus_in1k' for 'vgg16'"):
        VGG16Custom(weights="bogus_in1k", include_top=False)
    with pytest.raises(ValueError, match="No ImageNet weights for this lenet5 build.*none"):
        build_model("lenet5", weights="imagenet")
    with pytest.raises(ValueError, match="keras.applications' and fit only the layer-for-layer twin"):
        VGG16Custom(weights="vgg16.keras_in1k", include_top=False, width_multiplier=0.5)
