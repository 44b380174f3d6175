"""Tuning guards: a budget below every candidate is reported before any trial; a best trial that
does not beat the floor (default: the majority-class rate) is not exported without a word."""

import itertools
import json

import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

from keras_cnn.cli import main
from keras_cnn.tuning.hypermodels import get_hypermodel
from keras_cnn.tuning.report import accuracy_floor, majority_rate
from keras_cnn.tuning.tuner import _profile, smallest_candidates

TINY_ARGS = ["--data", "digits", "--image-size", "8", "--channels", "1", "--max-examples", "200",
             "--tuner", "random", "--max-trials", "1", "--epochs", "1",
             "--space", "blocks=1", "--space", "convs_per_block=1", "--space", "base_widths=4",
             "--space", "fc_units=8", "--space", "batch_norm=false"]


def test_majority_rate_of_a_dataset():
    labels = np.array([2, 2, 0, 2, 1, 2, 2, 0], "int32")
    ds = tf.data.Dataset.from_tensor_slices((np.zeros((8, 2, 2, 1), "float32"), labels)).batch(3)
    assert majority_rate(ds) == pytest.approx(5 / 8)


def _labels(labels):
    labels = np.asarray(labels, "int32")
    return tf.data.Dataset.from_tensor_slices((np.zeros((len(labels), 2, 2, 1), "float32"), labels)).batch(7)


def test_floor_is_compared_in_correct_examples_not_floats():
    # 60 validation examples, 6 per class: chance is 6 right. Keras reports that as float32 0.1, which is
    # 0.10000000149 > 0.1 as floats: a chance-level model "beat" the floor and was exported.
    val = _labels(np.repeat(np.arange(10), 6))
    floor = accuracy_floor(val)
    assert (floor.rate, floor.examples, floor.needed, floor.source) == (0.1, 60, 7, "the majority-class rate")
    chance = float(np.float32(6 / 60))  # as the trial record holds it
    assert chance > 0.1  # the old comparison
    assert not floor.beaten_by(chance) and not floor.beaten_by(np.float32(6 / 60))
    assert floor.beaten_by(np.float32(7 / 60))
    assert not floor.beaten_by(None) and not floor.beaten_by(float("nan"))
    assert floor.to_dict(np.float32(6 / 60)) == {
        "floor": 0.1, "floor_source": "the majority-class rate", "val_examples": 60, "val_correct_needed": 7,
        "val_correct": 6, "below_floor": True}
    # A given floor: one more correct example than floor x examples.
    assert accuracy_floor(val, 0.5).needed == 31
    assert accuracy_floor(_labels([0] * 20), 0.999).needed == 20
    assert accuracy_floor(val, 0.1).needed == 7  # 0.1 * 60 is 6.000000000000001 or 5.999...: 6 either way


@pytest.mark.slow
def test_smallest_candidate_is_the_cheapest_of_the_whole_space():
    space = dict(blocks=(2, 1), convs_per_block=(2, 1), base_widths=(8, 4), fc_units=(16, 8), batch_norm=(True, False))
    hypermodel = get_hypermodel("vgg", (8, 8, 1), 10, **space)
    params, macs, values = smallest_candidates(hypermodel)[0]
    # Every candidate, built and profiled.
    every = []
    for b, c, w, f, bn in itertools.product(*space.values()):
        hp = keras_tuner.HyperParameters()
        hp.values.update({"blocks": b, "convs_block1": c, "convs_block2": c, "base_width": w, "fc_units": f,
                          "batch_norm": bn})
        prof = _profile(hypermodel.inference_model(hypermodel.build(hp)))
        every.append((int(prof.total_macs), int(prof.total_params)))
    assert (macs, params) == min(every)
    assert values["blocks"] == 1 and values["base_width"] == 4 and values["batch_norm"] is False


def test_budget_below_the_smallest_candidate_is_reported_before_any_trial(tmp_path, capsys):
    rc = main(["tune", "vgg", *TINY_ARGS, "--max-macs", "1", "--dir", str(tmp_path / "runs"),
               "--export-dir", str(tmp_path / "exports")])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("keras-cnn tune: error: The compute budget is below every candidate")
    assert "smallest candidate has" in err and "MACs" in err and "params" in err
    assert "`--max-macs`" in err and "--max-macs=1" in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "exports").exists()  # no trial, nothing written


@pytest.mark.slow
def test_best_trial_below_the_floor_is_not_exported_unless_asked(tmp_path, capsys):
    argv = ["tune", "vgg", *TINY_ARGS, "--floor", "0.999", "--dir", str(tmp_path / "runs"),
            "--export-dir", str(tmp_path / "exports")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "does not beat the floor 0.9990" in out and "not exported (--export-below-floor exports it)" in out
    assert "Exported to" not in out and not (tmp_path / "exports").exists()
    best = json.loads((tmp_path / "runs" / "vgg_random" / "best.json").read_text())
    assert best["below_floor"] is True and best["floor"] == 0.999 and best["export_path"] is None
    assert best["val_examples"] == 20 and best["val_correct_needed"] == 20 and best["val_correct"] < 20
    assert best["search"]["cause"] == "max_trials" and best["search"]["completed"] == 1
    # Asked for (a search started over: a finished one is only reported): exported, still with the warning.
    assert main([*argv, "--export-below-floor", "--no-resume"]) == 0
    out = capsys.readouterr().out
    assert "exported anyway" in out and (tmp_path / "exports" / "vgg_tuned" / "1" / "saved_model.pb").is_file()


@pytest.mark.slow
def test_default_floor_is_the_majority_class_rate(tmp_path):
    from keras_cnn.data import load_data
    from keras_cnn.tuning import tune

    result = tune("vgg", "digits", image_size=8, channels=1, max_examples=200, max_trials=1, epochs=1,
                  directory=tmp_path / "runs", export=False, verbose=0,
                  search_space={"blocks": (1,), "convs_per_block": (1,), "base_widths": (4,), "fc_units": (8,)})
    bundle = load_data("digits", image_size=8, channels=1, max_examples=200, batch_size=32, validation_split=0.1)
    assert result.floor == pytest.approx(majority_rate(bundle.val))
    assert 0.05 < result.floor < 0.5
    assert result.below_floor == (not result.best.val_accuracy > result.floor)
