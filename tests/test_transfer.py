"""The three transfer-learning regimes, the two-phase schedule, feature caching and the CLI.

A tiny ResNet (BatchNormalization everywhere) on a few random images keeps every test to a few
optimizer steps; what is checked is which weights move, not accuracy.
"""

import json
import os
import warnings

import keras
import numpy as np
import pytest

from keras_cnn.training import transfer as T
from keras_cnn.models.resnet import build_resnet


def tiny_base(name="tiny"):
    """conv1_conv, conv1_bn, conv2_block1, conv3_block1: 4 weighted units, BN in each."""
    return build_resnet(
        ("basic", (1, 1)), stem="small", include_top=False, input_shape=(16, 16, 3), stage_widths=(8, 16), name=name
    )


def data(n=24, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (n, 16, 16, 3)).astype("float32")
    return x, (np.arange(n) % classes).astype("int32")


def snapshot(model):
    return {v.path: np.array(v) for v in model.weights}


def changed(before, model):
    return {p for p, v in snapshot(model).items() if not np.array_equal(before[p], v)}


class LRLog(keras.callbacks.Callback):
    """Learning rate seen by each fit, and the BN-frozen features at every batch."""

    def __init__(self, probe=None):
        super().__init__()
        self.rates, self.probe, self.features = [], probe, []

    def on_train_begin(self, logs=None):
        self.rates.append(float(self.model.optimizer.learning_rate))

    def on_train_batch_end(self, batch, logs=None):
        if self.probe is not None:
            extractor, x = self.probe
            self.features.append(np.asarray(extractor(x, training=True)))


FIT = dict(head_epochs=1, fine_tune_epochs=1, batch_size=8, preprocessing="unit", run_eagerly=True, seed=0)


@pytest.mark.parametrize(
    "regime, kwargs, moves",
    [
        ("small", {}, set()),
        ("medium", {"trainable_blocks": 1}, {"conv3_block1"}),
        ("medium", {"freeze_until": "conv2_block1_out"}, {"conv3_block1"}),  # keras' name, inside a block
        ("large", {}, {"conv1_conv", "conv1_bn", "conv2_block1", "conv3_block1"}),
    ],
)
def test_regime_trains_exactly_its_layers(regime, kwargs, moves, tmp_path):
    base = tiny_base()
    model = T.build_transfer_model(base, 3, regime, preprocessing="unit", **kwargs)
    before = snapshot(model)
    result = T.fine_tune(model, data(), regime, **FIT, **kwargs)
    moved = changed(before, model)
    assert {"predictions/kernel", "predictions/bias"} <= moved  # the new head always trains
    moved_base = moved - {"predictions/kernel", "predictions/bias"}
    assert {p.split("/")[0] for p in moved_base} == moves
    if regime == "large":
        # BN trains in "large": its moving statistics and gamma/beta move too.
        assert "conv1_bn/moving_mean" in moved and "conv3_block1/conv3_block1_1_bn/gamma" in moved
    else:
        # BN stays frozen: no gamma, beta, moving mean or variance moves, even in trained units.
        assert all(p.endswith("_conv/kernel") for p in moved_base)
    assert [p.name for p in result.phases] == (["head"] if regime == "small" else ["head", "fine_tune"])
    assert result.phases[0].plan.trainable == []  # phase 1: the whole base frozen
    if regime != "small":
        assert set(result.phases[1].plan.trainable) == moves
    # Saved and loaded, the model trains the same variables (frozen units and frozen BN inside
    # trained blocks included), so its optimizer state loads without Keras' mismatch warning.
    model.save(tmp_path / "tuned.keras")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = keras.models.load_model(tmp_path / "tuned.keras")
    assert not [w for w in caught if "Skipping variable loading for optimizer" in str(w.message)]
    assert sorted(v.path for v in loaded.trainable_variables) == sorted(v.path for v in model.trainable_variables)


def test_frozen_bn_runs_in_inference_mode_during_fit():
    base = tiny_base()
    model = T.build_transfer_model(base, 3, "small", dropout=0.0, preprocessing="unit")
    extractor = keras.Model(model.inputs, model.get_layer("features").output)
    x, y = data()
    ref = np.asarray(extractor(x[:4], training=False))
    # Training mode gives the inference-mode output: BN uses its moving statistics.
    np.testing.assert_array_equal(np.asarray(extractor(x[:4], training=True)), ref)
    stats = {v.path: np.array(v) for v in base.non_trainable_weights if "moving" in v.path}
    bns = [lay for lay in base._flatten_layers() if isinstance(lay, keras.layers.BatchNormalization)]
    assert len(bns) >= 5 and len(stats) == 2 * len(bns)
    log = LRLog(probe=(extractor, x[:4]))
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[log])
    assert len(log.features) == 6
    for features in log.features:  # deterministic during fit, equal to inference mode
        np.testing.assert_array_equal(features, ref)
    for path, value in stats.items():
        np.testing.assert_array_equal(np.array(next(v for v in base.weights if v.path == path)), value)
    # Keras 3's rule this relies on: a non-trainable BN ignores training=True.
    bn = keras.layers.BatchNormalization()
    bn.build((None, 4))
    bn.moving_mean.assign(np.full(4, 3.0, "float32"))
    bn.trainable = False
    z = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    np.testing.assert_allclose(np.asarray(bn(z, training=True)), np.asarray(bn(z, training=False)))


@pytest.mark.slow
def test_two_phase_schedule_learning_rates():
    log = LRLog()
    result = T.fine_tune(tiny_base(), data(), "large", head_lr=2e-3, callbacks=[log], **FIT)
    assert log.rates == pytest.approx([2e-3, 2e-4])  # fine_tune_lr defaults to head_lr / 10
    assert [p.learning_rate for p in result.phases] == pytest.approx([2e-3, 2e-4])
    log = LRLog()
    T.fine_tune(tiny_base(), data(), "medium", trainable_blocks=2, head_lr=1e-2, fine_tune_lr=5e-4,
                callbacks=[log], **FIT)
    assert log.rates == pytest.approx([1e-2, 5e-4])
    log = LRLog()
    T.fine_tune(tiny_base(), data(), "small", head_lr=1e-2, callbacks=[log], **FIT)
    assert log.rates == pytest.approx([1e-2])  # "small" has no second phase
    with pytest.raises(ValueError, match="fine_tune_lr"):
        T.fine_tune(tiny_base(), data(), "large", head_lr=1e-4, fine_tune_lr=1e-3, **FIT)


def test_precompute_gives_the_head_what_end_to_end_training_gives_it():
    base = tiny_base()
    model = T.build_transfer_model(base, 3, "small", dropout=0.0, preprocessing="unit")
    initial = model.get_weights()
    x, y = data(n=32)
    # What the head reads during end-to-end training (training=True) ...
    extractor = keras.Model(model.inputs, model.get_layer("features").output)
    seen = np.asarray(extractor(x, training=True))
    # ... is what precompute caches.
    cached, labels = T._features(extractor, (x, y), batch_size=8)
    np.testing.assert_allclose(cached, seen, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(labels, y)
    # Training the head on the cache = training it end to end (same batches, same optimizer).
    kw = dict(head_epochs=2, batch_size=8, head_lr=1e-2, shuffle=False, run_eagerly=True)
    end_to_end = T.fine_tune(model, (x, y), "small", **kw)
    head_e2e = [np.array(w) for w in model.get_layer("predictions").weights]
    model.set_weights(initial)
    cached_run = T.fine_tune(model, (x, y), "small", precompute=True, **kw)
    head_cached = [np.array(w) for w in model.get_layer("predictions").weights]
    assert cached_run.phases[0].precomputed and not end_to_end.phases[0].precomputed
    assert not np.allclose(head_cached[0], initial[-2])  # it did train
    for a, b in zip(head_e2e, head_cached):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        end_to_end.phases[0].history["loss"], cached_run.phases[0].history["loss"], rtol=1e-4
    )


def test_bad_arguments_name_the_argument_and_the_accepted_values():
    base = tiny_base()
    accepted = r"`regime` must be one of \['small', 'medium', 'large'\]. Received: regime='huge'"
    with pytest.raises(ValueError, match=accepted):
        T.build_transfer_model(base, 3, "huge", preprocessing=None)
    with pytest.raises(ValueError) as err:
        T.build_transfer_model(base, 3, "medium", freeze_until="conv9", preprocessing=None)
    msg = str(err.value)
    assert "`freeze_until`" in msg and "Received: freeze_until='conv9'" in msg
    assert "['conv1_conv', 'conv1_bn', 'conv2_block1', 'conv3_block1']" in msg  # the accepted units
    with pytest.raises(ValueError, match="exactly one of `freeze_until`"):
        T.build_transfer_model(base, 3, "medium", preprocessing=None)
    with pytest.raises(ValueError, match="at most the number of weighted units of the base \\(4\\)"):
        T.build_transfer_model(base, 3, "medium", trainable_blocks=9, preprocessing=None)
    with pytest.raises(ValueError, match="apply to regime='medium'"):
        T.build_transfer_model(base, 3, "small", trainable_blocks=1, preprocessing=None)
    with pytest.raises(ValueError, match="preprocessing='auto' needs to know the network"):
        T.build_transfer_model(keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3)]), 3)
    with pytest.raises(ValueError, match="`data` must be"):
        T.fine_tune(base, "digits", preprocessing=None)


def test_freeze_until_keras_names_stages_and_units_on_resnet50():
    model = T.build_transfer_model(
        "resnet50", 4, "medium", freeze_until="conv4_block6_out", input_shape=(32, 32, 3)
    )
    assert model.get_layer("preprocess").mode == "caffe"  # the registry's preprocessing, inside
    base = model.get_layer("resnet50")
    trainable_units = [layer.name for layer in base.layers if layer.trainable and layer.weights]
    assert trainable_units == ["conv5_block1", "conv5_block2", "conv5_block3"]
    assert not base.get_layer("conv4_block6").trainable
    for point in ("conv4", "conv4_block6"):
        plan = T.apply_regime(model, "medium", freeze_until=point, arch="resnet50")
        assert plan.trainable == trainable_units and plan.frozen[-1] == "conv4_block6"
    plan = T.apply_regime(model, "medium", trainable_blocks=3)
    assert plan.trainable == trainable_units
    with pytest.raises(ValueError, match=r"Accepted: \['stem', 'conv2', 'conv3', 'conv4', 'conv5', 'conv1_conv'"):
        T.apply_regime(model, "medium", freeze_until="conv6")
    block = base.get_layer("conv5_block3")
    bns = [lay for lay in block._flatten_layers() if isinstance(lay, keras.layers.BatchNormalization)]
    assert bns and not any(bn.trainable for bn in bns)


def test_feature_model_strips_the_classifier():
    from keras_cnn.training import build_network
    from keras_cnn.weights import with_preprocessing
    from keras_cnn.models.registry import build_model

    flat = build_network("lenet5", image_shape=(32, 32, 1), classes=5)
    assert T.feature_model(flat).output_shape == (None, 84)
    nested = with_preprocessing(build_model("lenet5", input_shape=(32, 32, 1), classes=5, dropout=0.3), mode="unit")
    features = T.feature_model(nested)
    assert features.output_shape == (None, 84)  # through the dropout in front of the softmax
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 1)).astype("float32")
    inner = nested.layers[-1]
    expected = keras.Model(inner.inputs, inner.get_layer("fc2").output)(x / 255.0)
    np.testing.assert_allclose(np.asarray(features(x)), np.asarray(expected), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="`layer`"):
        T.feature_model(flat, layer="nope")


@pytest.mark.slow
def test_cli_transfer_from_a_keras_file(tmp_path, capsys):
    from keras_cnn import cli
    from keras_cnn.training import build_network

    source = build_network("lenet5", image_shape=(32, 32, 1), classes=10)
    source.save(tmp_path / "lenet.keras")
    out = tmp_path / "run"
    argv = ["transfer", str(tmp_path / "lenet.keras"), "--data", "digits", "--regime", "medium",
            "--trainable-blocks", "2", "--epochs", "1", "--fine-tune-epochs", "1", "--max-examples", "200",
            "--out", str(out)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "regime medium" in printed and "test accuracy" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["regime"] == "medium" and [p["name"] for p in metrics["phases"]] == ["head", "fine_tune"]
    assert metrics["phases"][1]["trainable_units"] == ["fc1", "fc2"]
    assert metrics["phases"][1]["learning_rate"] == pytest.approx(1e-4)
    assert json.loads((out / "class_names.json").read_text()) == [str(i) for i in range(10)]
    # The run pipeline's finish: held-out per-class metrics, plots and a README.
    assert len(metrics["confusion_matrix"]) == 10 and set(metrics["per_class_accuracy"]) == {str(i) for i in range(10)}
    for name in ("learning_curves.png", "confusion_matrix.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name
    assert "model.keras" in (out / "README.txt").read_text()
    reloaded = keras.models.load_model(out / "model.keras")
    assert reloaded.output_shape == (None, 10)
    # The same command again: the stored result, nothing trained; a bad freeze point is an error, exit code 2.
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert "finished before; nothing was trained" in captured.out + captured.err
    assert "test accuracy" in captured.out and json.loads((out / "metrics.json").read_text()) == metrics
    bad = argv[:6] + ["--freeze-until", "conv9", "--max-examples", "100", "--out", str(tmp_path / "bad")]
    assert cli.main(bad) == 2
    err = capsys.readouterr().err
    assert "`--freeze-until`" in err and "Received: --freeze-until='conv9'" in err  # the CLI flag, not freeze_until
    assert not os.path.exists(tmp_path / "bad")


def test_cli_imagenet_offline_is_a_clear_error(tmp_path, monkeypatch, capsys, offline):
    from keras.src.backend import config

    from keras_cnn import cli

    monkeypatch.setattr(config, "_KERAS_DIR", str(tmp_path))
    rc = cli.main(["transfer", "vgg16", "--weights", "imagenet", "--image-size", "32", "--out", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in err and "weights=" in err
    assert offline.hosts == ["storage.googleapis.com"] and "network access to 'storage.googleapis.com' blocked" in err


def test_truncated_keras_file_is_named_on_the_api_and_the_cli(tmp_path, capsys):
    from keras_cnn import cli
    from keras_cnn.models import build_model

    good = tmp_path / "lenet.keras"
    build_model("lenet5", classes=10).save(good)
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(ValueError, match=r"`base` could not be loaded as a Keras model .* Received: base='.*truncated.keras'"):
        T.load_base(str(truncated))
    out = tmp_path / "run"
    assert cli.main(["transfer", str(truncated), "--epochs", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("keras-cnn transfer: error: `BASE` could not be loaded as a Keras model")
    assert "Traceback" not in err and not out.exists()
