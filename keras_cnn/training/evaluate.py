"""Evaluation on a held-out split: accuracy, loss, per-class accuracy, confusion matrix."""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras
import numpy as np

from keras_cnn._io import load_keras_model
from keras_cnn._validation import check_choice, check_positive_int, parse_shape
from keras_cnn.training.network import strip_aux

CONFIG_FILE = "config.json"
_EPS = 1e-7


def compute_metrics(model, dataset, class_names):
    """Metrics of ``model`` on a batched dataset of ``(raw pixels, int labels)``.

    Args:
        model: a single-output classifier taking raw pixels (dict outputs are stripped).
        dataset: iterable of ``(images, labels)`` batches (tf.data.Dataset or numpy pairs).
        class_names: the class names, index order.

    Returns:
        dict with ``accuracy``, ``loss`` (mean cross-entropy, Keras' clipping),
        ``per_class_accuracy`` (name -> accuracy, None for a class absent from the split),
        ``confusion_matrix`` (rows true, columns predicted), ``class_names``, ``num_examples``,
        and ``top5_accuracy`` when there are more than 5 classes.
    """
    import tensorflow as tf

    model = strip_aux(model)
    n = len(class_names)
    # One traced function for every batch size (the last batch is usually smaller).
    predict = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    probs, labels = [], []
    for images, y in dataset:
        p = predict(tf.convert_to_tensor(images, tf.float32))
        if isinstance(p, dict):  # pragma: no cover - strip_aux handles graph models
            p = p["predictions"]
        probs.append(np.asarray(p, dtype="float64"))
        labels.append(np.asarray(y).reshape(-1).astype("int64"))
    if not probs:
        raise ValueError("`dataset` is empty: nothing to evaluate.")
    probs = np.concatenate(probs)
    labels = np.concatenate(labels)
    if probs.shape[-1] != n:
        raise ValueError(
            f"The model predicts {probs.shape[-1]} classes but `class_names` has {n}. "
            f"Received: class_names={list(class_names)!r}"
        )
    pred = probs.argmax(axis=-1)
    normed = probs / np.maximum(probs.sum(axis=-1, keepdims=True), _EPS)
    picked = np.clip(normed[np.arange(len(labels)), labels], _EPS, 1.0 - _EPS)
    matrix = np.zeros((n, n), dtype="int64")
    np.add.at(matrix, (labels, pred), 1)
    support = matrix.sum(axis=1)
    per_class = {
        str(name): (float(matrix[i, i] / support[i]) if support[i] else None) for i, name in enumerate(class_names)
    }
    metrics = {
        "accuracy": float((pred == labels).mean()),
        "loss": float(-np.log(picked).mean()),
        "per_class_accuracy": per_class,
        "confusion_matrix": matrix.tolist(),
        "class_names": [str(c) for c in class_names],
        "num_examples": int(len(labels)),
    }
    if n > 5:
        top5 = np.argsort(-probs, axis=-1)[:, :5]
        metrics["top5_accuracy"] = float((top5 == labels[:, None]).any(axis=1).mean())
    return metrics


def load_run(run_dir):
    """``(model, class_names, config)`` of a finished run directory."""
    run_dir = Path(run_dir)
    model_path = run_dir / "model.keras"
    if not model_path.is_file():
        if not run_dir.exists():
            why = "no such file or directory"
        elif (run_dir / CONFIG_FILE).is_file():
            why = "a run that has not finished: model.keras is written at its end; rerun the same command to resume it"
        elif run_dir.is_dir():
            why = "a directory without model.keras: not a training run"
        else:
            why = "a file, and not a .keras model"
        raise FileNotFoundError(
            f"`run_dir_or_model` must be a finished run directory (with model.keras) or a .keras file; it is {why}. "
            f"Received: run_dir_or_model={str(run_dir)!r}"
        )
    import keras_cnn.layers  # noqa: F401  (registers the custom layers)
    import keras_cnn.models  # noqa: F401

    model = load_keras_model(model_path, arg="run_dir_or_model")
    names_path = run_dir / "class_names.json"
    class_names = json.loads(names_path.read_text()) if names_path.is_file() else None
    config_path = run_dir / CONFIG_FILE
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    return model, class_names, config


def evaluate(
    run_dir_or_model,
    data=None,
    *,
    split="test",
    batch_size=None,
    max_examples=None,
    seed=None,
    validation_split=None,
    class_names=None,
):
    """Evaluate a trained run (or model) on a held-out split.

    Args:
        run_dir_or_model: a run directory written by `train` (``model.keras``,
            ``class_names.json``, ``config.json``) or a `keras.Model` taking raw pixels.
        data: a `keras_cnn.data.load_data` source ("digits", "tfds:NAME", a directory) or a
            `DataBundle`. Default: the run's own data source.
        split: "test", "val" or "train".
        batch_size: evaluation batch size (default 64).
        max_examples, seed, validation_split: passed to ``load_data``; default: the run's
            own values when ``data`` is the run's source, so that "test" is the same held-out
            split as in training.
        class_names: class names for a bare model (default: the data's).

    Returns:
        The metrics dict of `compute_metrics`, plus ``split`` and ``data``.

    Example:
        >>> m = evaluate("runs/lenet5")            # its own digits test split
        >>> round(m["accuracy"], 3)
    """
    check_choice("split", split, ("test", "val", "train"))
    if batch_size is not None:
        check_positive_int("batch_size", batch_size)
    config = {}
    if isinstance(run_dir_or_model, keras.Model):
        model = run_dir_or_model
        run_names = None
        if data is None:
            raise ValueError("`data` is required when evaluating a model object. Received: data=None")
    elif isinstance(run_dir_or_model, (str, os.PathLike)):
        model, run_names, config = load_run(run_dir_or_model)
    else:
        raise ValueError(
            "`run_dir_or_model` must be a run directory or a keras.Model. "
            f"Received: run_dir_or_model={run_dir_or_model!r}"
        )
    if data is None:
        data = config.get("data")
        if data is None:
            raise ValueError("`data` is required: the run does not record its data source. Received: data=None")
    same_source = isinstance(data, str) and data == config.get("data")
    if is_bundle(data):
        bundle = data
    else:
        shape = tuple(model.input_shape[1:])
        if len(shape) != 3 or None in shape:
            raise ValueError(f"The model's input shape must be fully known (H, W, C). Received: {shape}")
        from keras_cnn.data import load_data

        kwargs = dict(
            image_size=shape[:2],
            channels=shape[2],
            batch_size=batch_size or 64,
            shuffle=False,
            seed=seed if seed is not None else (config.get("seed", 0) if same_source else 0),
        )
        vs = validation_split if validation_split is not None else (config.get("validation_split") if same_source else None)
        if vs is not None:
            kwargs["validation_split"] = vs
        mx = max_examples if max_examples is not None else (config.get("max_examples") if same_source else None)
        if mx is not None:
            kwargs["max_examples"] = mx
        bundle = load_data(data, **kwargs)
    dataset = getattr(bundle, split)
    if dataset is None:
        raise ValueError(f"The data has no {split!r} split. Received: split={split!r}")
    names = class_names or run_names or list(bundle.class_names)
    metrics = compute_metrics(model, dataset, names)
    metrics["split"] = split
    metrics["data"] = data if isinstance(data, str) else getattr(bundle, "source", "bundle")
    return metrics


def is_bundle(data):
    """Duck-typed check for a `keras_cnn.data.DataBundle`."""
    return hasattr(data, "train") and hasattr(data, "class_names") and hasattr(data, "image_shape")


def parse_image_size(value):
    """``None``, an int, "H,W" or (H, W) -> ``(H, W)`` or None."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return parse_shape("image_size", (value, value), ndim=2)
    return parse_shape("image_size", value, ndim=2)
