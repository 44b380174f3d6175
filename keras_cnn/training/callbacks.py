"""Callbacks and run-directory helpers for `keras_cnn.training.train`.

Fault tolerance uses `keras.callbacks.BackupAndRestore`: at the end of every epoch it saves the
training model's weights *and optimizer state* plus the epoch number under
``run_dir/checkpoints``; a rerun of the same command restores them and continues with the next
epoch, so a run killed mid-epoch loses only the unfinished epoch (which run a directory holds,
and from which epoch it resumes: `keras_cnn.training.rundir`).
"""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import keras

from keras_cnn._io import atomic_file


class EpochLog(keras.callbacks.Callback):
    """Adds ``learning_rate`` and ``epoch_seconds`` to the epoch logs (so to history.csv)."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        logs["epoch_seconds"] = time.perf_counter() - getattr(self, "_start", time.perf_counter())
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            try:
                logs["learning_rate"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
            except (TypeError, ValueError):  # pragma: no cover - exotic optimizers
                pass


def read_history(path):
    """history.csv as ``{column: [values...]}`` (floats; "epoch" as ints), sorted by epoch."""
    path = Path(path)
    if not path.is_file():
        return {}
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows.sort(key=lambda r: int(float(r["epoch"])))
    history = {}
    for row in rows:
        for key, value in row.items():
            if key is None:
                continue
            try:
                num = float(value)
            except (TypeError, ValueError):
                num = float("nan")
            history.setdefault(key, []).append(int(num) if key == "epoch" else num)
    return history


def trim_history(path, num_epochs):
    """Keep only the rows of epochs ``< num_epochs`` in history.csv (atomically).

    A run killed after the CSV row of an epoch was written but before its checkpoint redoes
    that epoch on resume; trimming keeps exactly one row per finished epoch.
    """
    path = Path(path)
    if not path.is_file():
        return
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        rows = list(reader)
    if not rows:
        return
    header, body = rows[0], rows[1:]
    col = header.index("epoch") if "epoch" in header else 0
    kept = [r for r in body if r and int(float(r[col])) < num_epochs]
    if num_epochs <= 0 or not kept:
        os.unlink(path)
        return
    with atomic_file(path, "w") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(kept)


def accuracy_key(history):
    """The training-accuracy key of a Keras history (single or dict-output models)."""
    for key in ("accuracy", "predictions_accuracy"):
        if key in history:
            return key
    candidates = [k for k in history if k.endswith("accuracy") and not k.startswith("val_")]
    return candidates[0] if candidates else None

