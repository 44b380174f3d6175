"""`keras-cnn transfer` reruns like `keras-cnn train`: finished -> the stored result, nothing
trained; interrupted -> resumes at the phase and epoch it reached; other data -> refused.

LeNet-5 on digits (120 examples), one head epoch and two fine-tune epochs.
"""

import dataclasses
import json

import keras
import numpy as np
import pytest
from PIL import Image

from keras_cnn.cli import main
from keras_cnn.training.transfer import TransferConfig, run_transfer

pytestmark = pytest.mark.slow  # each test trains LeNet-5 (a few seconds)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    from keras_cnn.training import build_network

    path = tmp_path_factory.mktemp("source") / "lenet.keras"
    build_network("lenet5", image_shape=(32, 32, 1), classes=10).save(path)
    return path


def _argv(source, out, *extra):
    return ["transfer", str(source), "--regime", "medium", "--trainable-blocks", "2", "--epochs", "1",
            "--fine-tune-epochs", "2", "--max-examples", "120", "--out", str(out), *extra]


class _Epochs(keras.callbacks.Callback):
    """Counts the epochs trained; raises KeyboardInterrupt (as Ctrl-C) after epoch ``stop`` of the
    second fit (the fine-tune phase), once that epoch is checkpointed."""

    def __init__(self, stop=None):
        super().__init__()
        self.trained, self.fits, self.stop = 0, 0, stop

    def on_train_begin(self, logs=None):
        self.fits += 1

    def on_epoch_end(self, epoch, logs=None):
        self.trained += 1
        if self.stop is not None and self.fits == 2 and epoch == self.stop:
            raise KeyboardInterrupt


def test_interrupted_transfer_resumes_at_its_phase_and_epoch_and_a_rerun_trains_nothing(source, tmp_path, capsys):
    out = tmp_path / "run"
    config = TransferConfig(base=str(source), data="digits", regime="medium", trainable_blocks=2, head_epochs=1,
                            fine_tune_epochs=2, max_examples=120, out_dir=out)
    first = _Epochs(stop=0)
    with pytest.raises(KeyboardInterrupt):
        run_transfer(dataclasses.replace(config, callbacks=[first]))
    assert first.trained == 2 and not (out / "metrics.json").exists()  # head epoch + first fine-tune epoch

    again = _Epochs()
    capsys.readouterr()
    result = run_transfer(dataclasses.replace(config, callbacks=[again]))
    printed = capsys.readouterr()
    assert result.status == "resumed" and again.trained == 1  # only the last fine-tune epoch
    assert [len(p.history["loss"]) for p in result.phases] == [1, 2]  # both phases' full history
    metrics = json.loads((out / "metrics.json").read_text())
    assert [len(p["history"]["loss"]) for p in metrics["phases"]] == [1, 2]
    assert not (out / "checkpoints").exists()

    # Finished: the CLI says so and prints the stored result; nothing is trained.
    assert main(_argv(source, out)) == 0
    printed = capsys.readouterr()
    assert "finished before; nothing was trained" in printed.out + printed.err
    assert "stored result of the finished run" in printed.out and f"test accuracy {metrics['test_accuracy']:.4f}" in printed.out
    assert json.loads((out / "metrics.json").read_text()) == metrics


def _folder(root, colours, per_class=12):
    rng = np.random.default_rng(0)
    for name, colour in colours.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(colour + rng.integers(-20, 20, size=(12, 12)), 0, 255).astype("uint8")
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_other_data_in_a_transfer_run_directory_is_refused_naming_the_fields(source, tmp_path, capsys):
    out = tmp_path / "run"
    a = _folder(tmp_path / "A", {"dark": 40, "light": 210})
    argv = ["transfer", str(source), "--epochs", "1", "--image-size", "32", "--out", str(out)]
    assert main([*argv, "--data", str(a)]) == 0
    config = (out / "config.json").read_text()
    capsys.readouterr()
    assert main([*argv, "--data", "digits", "--max-examples", "60"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("keras-cnn transfer: error: `--out` holds a different run:")
    assert "data.source" in err and "--max-examples (stored None, now 60)" in err and "--no-resume" in err
    assert (out / "config.json").read_text() == config  # nothing changed
    assert main([*argv, "--data", "digits", "--max-examples", "60", "--no-resume"]) == 0
    assert json.loads((out / "class_names.json").read_text()) == [str(i) for i in range(10)]
