"""`keras-cnn train` / `keras-cnn evaluate`: exit codes, output, errors."""

import json
import os
import subprocess
import sys

import pytest

from keras_cnn.cli import main
from keras_cnn.commands.train import parse_key_values


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    return run_dir


@pytest.mark.slow
def test_cli_train_then_evaluate(cli_run, capsys):
    rc = main(
        [
            "train", "lenet5", "--data", "digits", "--epochs", "1", "--batch-size", "64",
            "--max-examples", "150", "--augment", "translate=0.1", "--augment-on", "cpu",
            "--strategy", "mirrored", "--recipe", "learning_rate=0.002", "--model-arg", "activation=relu",
            "--no-export", "--verbose", "0", "--out", str(cli_run),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    metrics = json.loads((cli_run / "metrics.json").read_text())
    assert f"test accuracy: {metrics['accuracy']:.4f}" in out
    assert str(cli_run) in out and "export:" not in out
    config = json.loads((cli_run / "config.json").read_text())
    assert config["strategy"] == "mirrored" and config["augment_on"] == "cpu"
    assert config["recipe"]["learning_rate"] == 0.002 and config["recipe"]["batch_size"] == 64
    assert config["model_kwargs"] == {"activation": "relu"}

    rc = main(["evaluate", str(cli_run)])
    out = capsys.readouterr().out
    assert rc == 0
    assert f"test accuracy: {metrics['accuracy']:.4f}" in out
    per_class = [line for line in out.splitlines() if line[:1].isdigit()]
    assert len(per_class) == 10  # one line per digit class

    rc = main(["evaluate", str(cli_run), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0 and report["accuracy"] == pytest.approx(metrics["accuracy"])


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["train", "no_such_net"], "argument MODEL: must be a registered model name"),
        (["train", "lenet5", "--epochs", "0"], "argument --epochs: must be a whole number > 0"),
        (["train", "lenet5", "--augment", "spin=3"], "--augment"),
        (["train", "lenet5", "--strategy", "tpu_pod"], "`--strategy`"),
        (["train", "lenet5", "--recipe", "learning_rate"], "--recipe"),
        (["train", "lenet5", "--model-arg", "bogus=1"], "`--model-arg` has 'bogus'"),
        (["train", "lenet5", "--model-arg", "width_multiplier=abc"], "`--model-arg`"),
        (["train", "lenet5", "--validation-split", "1.5"], "`--validation-split`"),
        (["train", "resnet18", "--image-size", "31"], "Received: --image-size=(31, 31, 3)"),
        (["train", "lenet5", "--strategy", "multi_worker", "--cluster-timeout", "0"], "`--cluster-timeout`"),
        (["evaluate", "/nonexistent/run"], "RUN_DIR"),
        (["demo", "--epochs", "0"], "`--epochs`"),
    ],
)
def test_cli_errors_exit_2(argv, needle, capsys, tmp_path):
    if argv[0] == "train":
        argv = [*argv, "--out", str(tmp_path / "run"), "--no-export"]
    if argv[0] == "demo":
        argv = [*argv, "--out", str(tmp_path / "demo"), "--no-export"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"keras-cnn {argv[0]}: error:")
    assert needle in err
    assert err.count("\n") == 1 and "Traceback" not in err  # one line
    if argv[0] in ("train", "demo"):
        assert not (tmp_path / "run").exists() and not (tmp_path / "demo").exists()  # nothing half-written


def test_parse_key_values():
    assert parse_key_values("--recipe", ["epochs=3", "schedule=cosine", "clipnorm=null", "a-b=1.5"]) == {
        "epochs": 3,
        "schedule": "cosine",
        "clipnorm": None,
        "a_b": 1.5,
    }
    with pytest.raises(ValueError, match="--recipe"):
        parse_key_values("--recipe", ["novalue"])


@pytest.mark.slow
def test_console_entry_point_exit_code(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, "-m", "keras_cnn", "train", "lenet5", "--epochs", "-1", "--out", str(tmp_path / "r")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 2
    assert "keras-cnn train: error:" in proc.stderr and "epochs" in proc.stderr


def test_error_messages_name_the_cli_flags():
    from keras_cnn.commands._errors import translate

    names = {"out_dir": "--out", "resume": "--no-resume", "batch_size": "--batch-size", "model_kwargs": "--model-arg",
             "max_examples": "--max-examples", "data": "--data"}
    message = ("`out_dir` holds a different run: recipe.batch_size (stored 64, now 32); max_examples (stored 1, "
               "now 2). Pass resume=False to start over in out_dir, or choose another out_dir. "
               "Received: out_dir='runs/x', data='digits'")
    assert translate(message, names) == (
        "`--out` holds a different run: recipe.batch_size (stored 64, now 32); --max-examples (stored 1, now 2). "
        "Pass --no-resume to start over in --out, or choose another --out. Received: --out='runs/x', --data='digits'"
    )
    assert translate("`model_kwargs` has 'x'", names) == "`--model-arg` has 'x'"
    assert translate("the training data is empty", names) == "the training data is empty"  # words stay words
