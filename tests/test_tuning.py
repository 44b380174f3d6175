"""keras_cnn.tuning: search spaces, budget rejection, failure counting, grid resume, report, CLI.

These tests avoid real training: a tiny hyper-model whose ``fit`` returns a fake history drives
keras-tuner's real oracles and our `CNNTuner`. Searches that train are in
test_tuning_search.py; the subprocess resume and distributed tests in their own files.
"""

import json
import types

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

from keras_cnn.tuning import (
    Budget,
    CNNHyperModel,
    CNNTuner,
    InceptionHyperModel,
    ResNetHyperModel,
    TrialRecord,
    VGGHyperModel,
    format_table,
    get_hypermodel,
    make_oracle,
    pareto_front,
    resolve_distributed,
    write_report,
)
from keras_cnn.tuning.search import keras_tuner_objective
from keras_cnn.tuning.tuner import _best_epoch


class TinyHyperModel(CNNHyperModel):
    """Flatten + Dense on 4x4x1 images; ``mode`` picks the candidate's fate.

    "ok*": trains (fake history, accuracy from ``scores``), "big*": 10x the units (over a small
    parameter budget), "crash*": build raises, "kill*": fit raises KeyboardInterrupt (a killed
    process) while ``kill`` is True.
    """

    def __init__(self, modes, *, scores=None, units=(2,), kill=False):
        super().__init__(
            (4, 4, 1), 3, optimizers=("adam",), learning_rate=(1e-3, 1e-3), label_smoothing=(0.0,),
            optimizer_params={"adam_beta_1": (0.9,)},
        )
        self.modes = list(modes)
        self.units = list(units)
        self.scores = scores or {}
        self.kill = kill
        self.built = []
        self.fitted = []

    def declare_architecture(self, hp):
        return {"mode": hp.Choice("mode", self.modes), "units": hp.Choice("units", self.units)}

    def build_network(self, inputs, x, arch):
        self.built.append(arch["mode"])
        if arch["mode"].startswith("crash"):
            raise ValueError("boom: this candidate crashes")
        units = arch["units"] * (10 if arch["mode"].startswith("big") else 1)
        y = keras.layers.Flatten()(x)
        y = keras.layers.Dense(units, activation="relu", name="hidden")(y)
        return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="predictions")(y), name="tiny")

    def fit(self, hp, model, x, validation_data=None, **kwargs):
        mode = hp.values["mode"]
        self.fitted.append((mode, hp.values["units"]))
        if self.kill and mode.startswith("kill"):
            raise KeyboardInterrupt("killed mid-trial")
        score = self.scores.get(mode, 0.5)
        return types.SimpleNamespace(history={"val_accuracy": [score], "val_loss": [1.0 - score]})


def _data():
    x = np.random.default_rng(0).uniform(0, 255, (6, 4, 4, 1)).astype("float32")
    y = np.array([0, 1, 2, 0, 1, 2], dtype="int32")
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(3)
    return ds, ds


def _tuner(
    hypermodel, tmp_path, *, tuner="grid", max_trials=5, budget=None, failures=3, progress=None, name="p",
    max_rejected=None,
):
    oracle = make_oracle(
        tuner, objective=keras_tuner_objective("val_accuracy"), max_trials=max_trials, seed=1,
        max_consecutive_failed_trials=failures, max_rejected=max_rejected,
    )
    return CNNTuner(hypermodel, oracle, budget=budget, progress=progress, directory=str(tmp_path), project_name=name)


def _search(t):
    train, val = _data()
    t.search(train, validation_data=val, epochs=1, verbose=0)


# --------------------------------------------------------------------------- search spaces


def test_vgg_convs_per_block_is_conditional_on_the_number_of_blocks():
    hm = VGGHyperModel((16, 16, 1), 4, blocks=(2, 3), base_widths=(4,), fc_units=(8,))
    hp = keras_tuner.HyperParameters()
    hp.values["blocks"] = 2
    with hm.declaring():
        assert hm.build(hp) is None
    block3 = next(p for p in hp.space if p.name == "convs_block3")
    assert not hp.is_active(block3)
    assert "convs_block3" not in hp.values or hp.values["blocks"] == 2
    hp2 = keras_tuner.HyperParameters()
    hp2.values["blocks"] = 3
    with hm.declaring():
        hm.build(hp2)
    assert hp2.is_active(next(p for p in hp2.space if p.name == "convs_block3"))


def test_inception_aux_loss_weight_only_with_aux_heads_and_optimizer_params_follow_optimizer():
    hm = InceptionHyperModel((32, 32, 3), 10, aux_logits=(False, True))
    for aux, optimizer in ((False, "sgd"), (True, "adam")):
        hp = keras_tuner.HyperParameters()
        hp.values.update({"aux_logits": aux, "optimizer": optimizer})
        with hm.declaring():
            hm.build(hp)
        active = {p.name for p in hp.space if hp.is_active(p)}
        assert ("aux_loss_weight" in active) is aux
        assert ("sgd_momentum" in active) is (optimizer == "sgd")
        assert ("sgd_nesterov" in active) is (optimizer == "sgd")  # momentum defaults to 0.9
        assert ("adam_beta_1" in active) is (optimizer == "adam")
        assert "rmsprop_rho" not in active
        assert {"width_multiplier", "modules_stage4", "five_by_five", "reduction_ratio", "label_smoothing"} <= active


def test_tuner_discovers_every_conditional_hyperparameter_without_building_models(tmp_path, monkeypatch):
    hm = InceptionHyperModel((32, 32, 3), 10)
    calls = []
    monkeypatch.setattr(hm, "build_network", lambda *a, **k: calls.append(1))
    t = _tuner(hm, tmp_path, tuner="random")
    names = {p.name for p in t.oracle.get_space().space}
    assert {"aux_loss_weight", "sgd_momentum", "sgd_nesterov", "rmsprop_rho", "adam_beta_1"} <= names
    assert {"five_by_five", "reduction_ratio", "modules_stage3", "modules_stage5", "learning_rate"} <= names
    assert calls == []  # the space was declared, no network was built


def test_resnet_block_kind_follows_depth_or_is_searched():
    hm = ResNetHyperModel((32, 32, 3), 10, depths=(18, 50))
    hp = keras_tuner.HyperParameters()
    hp.values["depth"] = 50
    assert hm.declare_architecture(hp)["depth"][0] == "bottleneck"
    assert "block" not in hp.values
    searched = ResNetHyperModel((32, 32, 3), 10, depths=(18,), block_kind="search")
    hp = keras_tuner.HyperParameters()
    hp.values.update({"depth": 18, "block": "bottleneck"})
    arch = searched.declare_architecture(hp)
    assert arch["depth"] == ("bottleneck", (2, 2, 2, 2))
    assert arch["stem"] == "small"  # 32 px inputs


def test_hypermodel_validation_messages():
    with pytest.raises(ValueError, match="blocks"):
        VGGHyperModel((8, 8, 1), 10, blocks=(4,))  # 2**4 > 8 px
    with pytest.raises(ValueError, match="optimizers"):
        VGGHyperModel((32, 32, 1), 10, optimizers=("adagrad",))
    with pytest.raises(ValueError, match="preprocessing"):
        VGGHyperModel((32, 32, 1), 10, preprocessing="caffe")
    with pytest.raises(ValueError, match="family"):
        get_hypermodel("alexnet", (32, 32, 3), 10)
    assert isinstance(get_hypermodel("googlenet", (32, 32, 3), 10), InceptionHyperModel)


@pytest.mark.slow
def test_hypermodels_build_raw_pixel_models_through_the_family_builders():
    x = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    cases = [
        (VGGHyperModel((16, 16, 3), 5, blocks=(2,), base_widths=(4,), fc_units=(8,)), "block2_conv1", False),
        (
            InceptionHyperModel(
                (16, 16, 3), 5, width_multipliers=(0.0625,), modules_per_stage=((1,), (1,), (1,)),
                aux_logits=(True,), five_by_five=("asymmetric",),
            ),
            "inception_4a",
            True,
        ),
        (ResNetHyperModel((16, 16, 3), 5, depths=(18,), width_multipliers=(0.0625,)), "conv5_block2", False),
    ]
    for hm, layer, aux in cases:
        keras.backend.clear_session()
        hp = keras_tuner.HyperParameters()
        model = hm.build(hp)
        assert model.layers[1].__class__.__name__ == "Preprocess"  # raw pixels in
        model.get_layer(layer)  # built by our family builder
        assert model.optimizer is not None  # compiled
        out = model(x)
        assert isinstance(out, dict) is aux
        infer = hm.inference_model(model)
        probs = np.asarray(infer(x))
        assert probs.shape == (2, 5)
        np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-5)
        if aux:
            # Integer labels become one-hot targets for every head; the main head is scored.
            ds = tf.data.Dataset.from_tensor_slices((x, np.array([1, 3], "int32"))).batch(2)
            model.run_eagerly = True  # tracing this graph costs ~40 s on a busy 2-core CPU
            history = hm.fit(hp, model, ds, validation_data=ds, epochs=1, verbose=0).history
            assert {"aux1_loss", "aux2_loss", "val_predictions_accuracy"} <= set(history)
            best = _best_epoch(history, "val_accuracy", "max", dict_output=True)
            assert best["val_accuracy"] == history["val_predictions_accuracy"][0]
            assert best["val_loss"] == history["val_predictions_loss"][0]


# --------------------------------------------------------------------------- budget


def test_budget_violations():
    b = Budget(max_macs=1000, max_params=50)
    assert b.violations(50, 1000) == []
    assert b.violations(51, 1001) == ["MACs 1,001 > max_macs 1,000", "params 51 > max_params 50"]
    assert Budget().violations(10**12, 10**12) == []
    with pytest.raises(ValueError, match="max_macs"):
        Budget(max_macs=0)


@pytest.mark.slow
def test_over_budget_candidates_are_rejected_before_training_and_do_not_abort_the_search(tmp_path):
    # 5 candidates over a 100-parameter budget, max_consecutive_failed_trials=3: keras-tuner would
    # abort after 3 failures; rejections are not crashes, so the search runs all 5.
    hm = TinyHyperModel(["big1", "big2", "big3", "big4", "big5"])
    seen = []
    t = _tuner(hm, tmp_path, budget=Budget(max_params=100), progress=seen.append)
    _search(t)
    records = t.trial_records()
    assert [r.status for r in records] == ["REJECTED"] * 5
    assert hm.fitted == []  # never trained
    assert all(r.params > 100 and r.macs > 0 for r in records)
    assert all(r.message.startswith("over compute budget: params") for r in records)
    ended = [r for r in seen if r.status != "RUNNING"]
    assert [r.status for r in ended] == ["REJECTED"] * 5
    saved = json.loads((tmp_path / "p" / "trial_0" / "trial.json").read_text())
    assert saved["status"] == "FAILED" and saved["tuner_id"] == "tuner0"
    assert saved["metrics"]["metrics"]["over_budget"]


def test_real_crashes_still_abort_and_rejections_do_not_reset_the_count(tmp_path):
    # Grid order: crash1, crash2, big (rejected), crash3 -> the third crash aborts.
    hm = TinyHyperModel(["crash1", "crash2", "big", "crash3", "ok"])
    t = _tuner(hm, tmp_path, budget=Budget(max_params=100))
    with pytest.raises(RuntimeError, match="consecutive failures"):
        _search(t)
    statuses = {r.hyperparameters["mode"]: r.status for r in t.trial_records()}
    assert statuses == {"crash1": "FAILED", "crash2": "FAILED", "big": "REJECTED", "crash3": "FAILED"}
    assert hm.fitted == []


@pytest.mark.slow
@pytest.mark.parametrize("max_rejected, expected", [(None, ["big1", "ok1", "big2", "ok2"]), (2, ["big1", "ok1", "big2"])])
def test_rejections_do_not_use_up_max_trials_up_to_max_rejected(tmp_path, max_rejected, expected):
    hm = TinyHyperModel(["big1", "ok1", "big2", "ok2", "ok3"])
    t = _tuner(hm, tmp_path, max_trials=2, budget=Budget(max_params=100), max_rejected=max_rejected)
    _search(t)
    assert [r.hyperparameters["mode"] for r in t.trial_records()] == expected
    assert [m for m, _ in hm.fitted] == [m for m in expected if m.startswith("ok")]


def test_rejected_candidates_are_not_trials_and_the_end_says_why(tmp_path, caplog):
    # max_trials=2 over a space where one candidate in five fits: the rejections do not use up the
    # two trials; the search stops at the cap on rejections, and says so with the counts.
    hm = TinyHyperModel(["big1", "big2", "ok1", "big3", "big4", "big5", "big6"])
    seen = []
    t = _tuner(hm, tmp_path, max_trials=2, budget=Budget(max_params=100), max_rejected=5, progress=seen.append)
    with caplog.at_level("WARNING", logger="keras_cnn.tuning"):
        _search(t)
    summary = t.oracle.search_summary()
    assert (summary.completed, summary.failed, summary.rejected, summary.cause) == (1, 0, 5, "max_rejected")
    assert summary.short
    text = summary.describe()
    assert text.startswith("1 trial trained (1 completed, 0 failed), 5 candidates rejected over the compute budget")
    assert "ended before max_trials=2: the cap of max_rejected=5 rejections was reached" in text
    assert any(text in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    # A rejected candidate is announced once (REJECTED), never as a trial that starts.
    assert [(r.hyperparameters["mode"], r.status) for r in seen if r.status == "RUNNING"] == [("ok1", "RUNNING")]
    assert sum(r.status == "REJECTED" for r in seen) == 5


def test_a_search_that_ran_its_trials_says_so(tmp_path, caplog):
    hm = TinyHyperModel(["big1", "ok1", "big2", "ok2", "ok3"])
    t = _tuner(hm, tmp_path, max_trials=2, budget=Budget(max_params=100))
    with caplog.at_level("INFO", logger="keras_cnn.tuning"):
        _search(t)
    summary = t.oracle.search_summary()
    assert (summary.completed, summary.rejected, summary.cause, summary.short) == (2, 2, "max_trials", False)
    assert summary.max_rejected == 100  # 50 rejections allowed per trial
    assert summary.describe().endswith("; ended: max_trials=2 trials ran")
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_search_space_protobufs_print_nothing(tmp_path, capsys):
    # A distributed search turns the space into protobufs on every gRPC call; keras-tuner 1.4 printed
    # the parent value of every conditional hyper-parameter each time ("2", "sgd", ...).
    hm = VGGHyperModel((16, 16, 1), 4, blocks=(2, 3), base_widths=(4,), fc_units=(8,))
    t = _tuner(hm, tmp_path, tuner="random", max_trials=1)
    capsys.readouterr()
    proto = t.oracle.get_space().to_proto()
    assert "parent" in str(proto.space)  # conditional hyper-parameters are in it
    assert capsys.readouterr().out == ""


@pytest.mark.slow
def test_completed_trials_report_params_macs_and_best(tmp_path):
    hm = TinyHyperModel(["ok1", "ok2", "big"], scores={"ok1": 0.4, "ok2": 0.9})
    t = _tuner(hm, tmp_path, max_trials=3, budget=Budget(max_params=100))
    _search(t)
    by_mode = {r.hyperparameters["mode"]: r for r in t.trial_records()}
    assert by_mode["ok2"].val_accuracy == pytest.approx(0.9)
    assert by_mode["ok1"].params == 16 * 2 + 2 + 2 * 3 + 3  # Flatten(4x4x1) -> Dense 2 -> Dense 3
    assert by_mode["ok1"].macs == 16 * 2 + 2 * 3
    assert by_mode["big"].status == "REJECTED" and by_mode["big"].val_accuracy is None
    assert t.oracle.get_best_trials(1)[0].hyperparameters.values["mode"] == "ok2"


@pytest.mark.parametrize("tuner", ["random", "bayesian"])
def test_random_and_bayesian_searches_give_distinct_candidates(tmp_path, tuner):
    hm = TinyHyperModel([f"ok{i}" for i in range(6)], scores={f"ok{i}": i / 10 for i in range(6)})
    t = _tuner(hm, tmp_path, tuner=tuner, max_trials=4)
    _search(t)
    records = t.trial_records()
    assert len(records) == 4 and all(r.status == "COMPLETED" for r in records)
    assert len({r.hyperparameters["mode"] for r in records}) == 4
    assert type(t.oracle).__name__ == {"random": "RandomSearchOracle", "bayesian": "BayesianOptimizationOracle"}[tuner]


def test_best_epoch_picks_the_objective_and_ranks_nan_last():
    history = {"val_accuracy": [0.5, float("nan"), 0.7, 0.6], "val_loss": [1.0, 9.0, 0.8, 0.7], "loss": [2, 1, 1, 1]}
    best = _best_epoch(history, "val_accuracy", "max")
    assert best["val_accuracy"] == 0.7 and best["val_loss"] == 0.8
    assert _best_epoch(history, "val_loss", "min")["val_loss"] == 0.7
    with pytest.raises(keras_tuner.errors.FatalValueError, match="val_auc"):
        _best_epoch(history, "val_auc", "max")


# --------------------------------------------------------------------------- resume


@pytest.mark.slow
def test_interrupted_grid_search_resumes_without_rerunning_finished_trials(tmp_path):
    # keras-tuner 1.4's GridSearchOracle keeps its grid position in memory only; ours rebuilds it.
    modes = ["ok1", "ok2", "kill", "ok3"]
    hm = TinyHyperModel(modes, units=(2, 3), kill=True)
    t = _tuner(hm, tmp_path, max_trials=8)
    with pytest.raises(KeyboardInterrupt):
        _search(t)
    first = list(hm.fitted)
    assert first[-1][0] == "kill" and len(first) == 5  # ok1 x2, ok2 x2, then killed in "kill"
    keras.backend.clear_session()

    hm2 = TinyHyperModel(modes, units=(2, 3), kill=False)
    t2 = _tuner(hm2, tmp_path, max_trials=8)
    _search(t2)
    assert hm2.fitted[0] == first[-1]  # the interrupted trial is retried first
    assert not set(hm2.fitted) & set(first[:-1])  # finished trials are not run again
    records = t2.trial_records()
    assert len(records) == 8 and all(r.status == "COMPLETED" for r in records)
    combos = {(r.hyperparameters["mode"], r.hyperparameters["units"]) for r in records}
    assert len(combos) == 8  # the whole grid, each point once


# --------------------------------------------------------------------------- report


def _records():
    return [
        TrialRecord("0", "COMPLETED", {"depth": 18, "lr": 0.001}, 0.8, 0.5, 1000, 2_000_000, "worker0"),
        TrialRecord("1", "COMPLETED", {"depth": 34, "lr": 0.01}, 0.9, 0.4, 5000, 9_000_000, "worker1"),
        TrialRecord("2", "COMPLETED", {"depth": 50, "lr": 0.1}, 0.85, 0.4, 9000, 12_000_000, "worker0"),
        TrialRecord("3", "REJECTED", {"depth": 50, "lr": 0.001}, None, None, 9000, 30_000_000, "worker1",
                    "over compute budget: MACs 30,000,000 > max_macs 20,000,000"),
    ]


def test_report_table_csv_and_plot(tmp_path):
    records = _records()
    assert [r.trial_id for r in pareto_front(records)] == ["0", "1"]
    table = format_table(records)
    lines = table.splitlines()
    assert lines[0].split()[:6] == ["trial", "tuner", "status", "val_acc", "params", "MACs"]
    assert lines[2].split()[:3] == ["1", "worker1", "COMPLETED"]  # best first
    assert "REJECTED" in lines[-1] and " - " in lines[-1] and "30M" in lines[-1]
    paths = write_report(records, tmp_path / "out", max_macs=20_000_000)
    rows = (tmp_path / "out" / "results.csv").read_text().splitlines()
    assert rows[0].startswith("trial,tuner,status,val_accuracy") and rows[0].endswith("depth,lr")
    assert rows[4].startswith("3,worker1,REJECTED,,,9000,30000000")
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "out" / "results.txt").read_text().strip() == format_table(records, max_hp_width=0)
    # Hundreds of rejections (a tight budget) do not bury the trials in the printed table.
    many = records + [TrialRecord(str(i), "REJECTED", {"depth": 50}, macs=30_000_000) for i in range(4, 30)]
    short = format_table(many, max_rejected_rows=3).splitlines()
    assert [line.split()[2] for line in short[2:-1]] == ["COMPLETED"] * 3 + ["REJECTED"] * 3
    assert short[-1] == "... and 24 more candidates REJECTED over the compute budget (all in results.csv)"


# --------------------------------------------------------------------------- distributed env, CLI


def test_resolve_distributed_sets_keras_tuner_environment():
    assert resolve_distributed(None, environ={}) == ("local", {})
    role, env = resolve_distributed("worker", oracle_port=9001, tuner_id="worker7", environ={})
    assert role == "worker"
    assert env == {"KERASTUNER_TUNER_ID": "worker7", "KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": "9001"}
    role, env = resolve_distributed(
        None, environ={"KERASTUNER_ORACLE_IP": "10.0.0.2", "KERASTUNER_ORACLE_PORT": "8000", "KERASTUNER_TUNER_ID": "chief"}
    )
    assert role == "chief" and env["KERASTUNER_ORACLE_IP"] == "10.0.0.2"
    assert resolve_distributed("chief", environ={})[1]["KERASTUNER_TUNER_ID"] == "chief"
    with pytest.raises(ValueError, match="chief"):
        resolve_distributed("worker", tuner_id="chief0", environ={})
    with pytest.raises(ValueError, match="oracle_port"):
        resolve_distributed("worker", oracle_port=70000, environ={})


def test_cli_parsers_and_errors(capsys):
    from keras_cnn.cli import main
    from keras_cnn.commands.tune import parse_count, parse_space

    assert parse_count("--max-macs", "5M") == 5_000_000
    assert parse_count("--max-macs", "2.5e6") == 2_500_000
    assert parse_count("--max-params", "300k") == 300_000
    with pytest.raises(ValueError, match="max-macs"):
        parse_count("--max-macs", "lots")
    assert parse_space(
        ["depths=18,34", "aux_logits=true", "modules_per_stage=1;1,2;1", "five_by_five=plain",
         "optimizer_params.adam_beta_1=0.9", "optimizer_params.sgd_momentum=0.9,0.0"]
    ) == {
        "depths": (18, 34),
        "aux_logits": (True,),
        "modules_per_stage": ((1,), (1, 2), (1,)),
        "five_by_five": ("plain",),
        "optimizer_params": {"adam_beta_1": (0.9,), "sgd_momentum": (0.9, 0.0)},
    }
    with pytest.raises(ValueError, match="--space"):
        parse_space(["depths"])
    assert main(["tune", "alexnet", "--max-trials", "2"]) == 2
    assert "`FAMILY` must be one of" in capsys.readouterr().err  # the CLI names its own arguments
    assert main(["tune", "vgg", "--tuner", "annealing"]) == 2
    assert "`--tuner` must be one of" in capsys.readouterr().err
    assert main(["tune", "vgg", "--max-macs", "0"]) == 2
    err = capsys.readouterr().err
    assert "`--max-macs`" in err and "Received: --max-macs=" in err
