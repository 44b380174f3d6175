"""keras_cnn.tuning.tune with real (tiny) training: report, export, memory, resume, Hyperband."""

import gc
import json

import keras
import numpy as np
import pytest

from keras_cnn.tuning import tune

# 8x8 digits (their own size), one channel, tiny VGG-style nets: a trial trains in seconds.
TINY = dict(
    data="digits",
    image_size=8,
    channels=1,
    max_examples=200,
    batch_size=32,
    verbose=0,
)
TINY_VGG = dict(
    blocks=(1,),
    convs_per_block=(1,),
    base_widths=(4, 64, 8),
    fc_units=(8,),
    dropout=(0.0,),
    batch_norm=(False,),
    optimizers=("adam",),
    optimizer_params={"adam_beta_1": (0.9,)},
    learning_rate=(1e-2, 1e-2),
    label_smoothing=(0.0,),
)


@pytest.mark.slow
def test_search_reports_exports_keeps_memory_flat_and_does_not_rerun_a_finished_search(tmp_path):
    from keras_cnn.export.saved_model import read_class_names, read_metadata

    events = []

    def progress(record):
        if record.status == "RUNNING":
            return
        gc.collect()
        live_models = sum(isinstance(o, keras.Model) for o in gc.get_objects())
        # After the tuner's clear_session, auto-generated names start over.
        events.append((record, live_models, keras.layers.Dense(1).name))

    # Grid order: base width 4, 64, 8; the width-64 net is over the MAC budget.
    kwargs = dict(
        tuner="grid", max_trials=3, epochs=1, directory=tmp_path / "runs", project_name="vgg",
        max_macs=20_000, search_space=TINY_VGG, export_dir=tmp_path / "exports", **TINY,
    )
    result = tune("vgg", progress=progress, **kwargs)

    # One search, three trials; the over-budget candidate was rejected before training.
    assert [r.status for r in result.trials] == ["COMPLETED", "REJECTED", "COMPLETED"]
    assert [r.hyperparameters["base_width"] for r in result.trials] == [4, 64, 8]
    rejected = result.trials[1]
    assert rejected.macs > 20_000 and rejected.val_accuracy is None
    assert all(r.macs <= 20_000 and 0.0 <= r.val_accuracy <= 1.0 for r in result.trials if r.status == "COMPLETED")
    assert [e[0].status for e in events] == ["COMPLETED", "REJECTED", "COMPLETED"]

    # Memory: the Keras session is cleared between trials; no model outlives its trial.
    assert [e[2] for e in events] == ["dense"] * 3
    assert max(e[1] for e in events) <= events[0][1]

    # Report files.
    project = tmp_path / "runs" / "vgg"
    rows = (project / "results.csv").read_text().splitlines()
    assert len(rows) == 4 and rows[2].split(",")[2] == "REJECTED"
    assert (project / "accuracy_vs_macs.png").read_bytes()[:4] == b"\x89PNG"
    assert "REJECTED" in result.table and "COMPLETED" in result.table

    # The best trial's model: evaluated, saved, exported with class names and metadata.
    best = max((r for r in result.trials if r.val_accuracy is not None), key=lambda r: r.val_accuracy)
    assert result.best.trial_id == best.trial_id
    assert result.export_path == tmp_path / "exports" / "vgg_tuned" / "1"
    meta = read_metadata(result.export_path)
    assert meta["metadata"]["trial_id"] == best.trial_id
    assert meta["metadata"]["hyperparameters"]["base_width"] == best.hyperparameters["base_width"]
    assert read_class_names(result.export_path) == [str(i) for i in range(10)]
    saved = keras.models.load_model(project / "best_model.keras")
    x = np.random.default_rng(0).uniform(0, 255, (3, 8, 8, 1)).astype("float32")  # raw pixels
    np.testing.assert_allclose(np.asarray(saved(x)), np.asarray(result.model(x)), atol=1e-5)
    assert json.loads((project / "best.json").read_text())["test_metrics"]["accuracy"] == result.metrics["accuracy"]

    # Rerunning the finished search runs nothing and exports nothing new.
    events.clear()
    again = tune("vgg", progress=progress, **kwargs)
    assert events == []
    key = lambda r: (r.trial_id, r.status, r.val_accuracy, r.params, r.macs)  # noqa: E731
    assert [key(r) for r in again.trials] == [key(r) for r in result.trials]
    assert again.export_path == result.export_path
    assert sorted(p.name for p in (tmp_path / "exports" / "vgg_tuned").iterdir()) == ["1"]

    # A different search in the same project is refused.
    with pytest.raises(ValueError, match=r"`project_name` holds a different run: epochs \(stored 1, now 2\)"):
        tune("vgg", **{**kwargs, "epochs": 2})


@pytest.mark.slow
def test_hyperband_continues_the_best_trial_from_its_checkpoint(tmp_path):
    # max_epochs 3, factor 3: three 1-epoch trials, then the best one continued to epoch 3.
    space = {**TINY_VGG, "base_widths": (4, 8, 6)}
    result = tune(
        "vgg", tuner="hyperband", max_trials=4, epochs=3, directory=tmp_path, search_space=space,
        export=False, **TINY,
    )
    assert len(result.trials) == 4
    first, last = result.trials[:3], result.trials[3]
    assert all(r.hyperparameters["tuner/epochs"] == 1 for r in first)
    best_first = max(first, key=lambda r: r.val_accuracy)
    assert last.hyperparameters["tuner/trial_id"] == best_first.trial_id
    assert last.hyperparameters["tuner/initial_epoch"] == 1 and last.hyperparameters["tuner/epochs"] == 3
    assert last.hyperparameters["base_width"] == best_first.hyperparameters["base_width"]
    saved = json.loads((tmp_path / "vgg_hyperband" / f"trial_{last.trial_id}" / "trial.json").read_text())
    epochs = saved["metrics"]["metrics"]["epochs_trained"]["observations"][0]["value"]
    assert epochs == [2.0]  # continued from epoch 1: only epochs 2 and 3 trained
