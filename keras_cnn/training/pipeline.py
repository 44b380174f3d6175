"""One training run: `RunConfig` -> `check` -> `prepare` -> an engine -> `finish`.

Every training path of keras_cnn goes through these steps: `keras_cnn.training.train` (the
``fit`` engine, strategies "default" and "mirrored"), the multi-worker loop
(`keras_cnn.training.distributed`), both phases of `keras_cnn.transfer.fine_tune` and the
tuner's trials. The steps:

* `check`: every argument, before TensorFlow runs anything (`RunArgs`);
* `open_run`: the run fingerprint and what the run directory holds (`keras_cnn.training.rundir`):
  new, resume, finished (the stored result is returned, nothing is trained or exported) or a
  different run (refused);
* `prepare`: load the data (at least two classes, no empty split), build the network, the
  augmenter and the optimizer (`Prepared`); only then is the run directory written;
* the engine trains;
* `finish`: the inference model, evaluation, ``model.keras``, plots, export, ``metrics.json``,
  ``README.txt``; the checkpoints are dropped unless ``keep_checkpoints``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import tempfile
import time
from pathlib import Path

from keras_cnn._validation import check_choice, check_non_negative_int, check_positive_int
from keras_cnn.models.registry import get_model_entry, list_models
from keras_cnn.training import rundir
from keras_cnn.training.recipes import Recipe, get_recipe

STRATEGIES = ("default", "mirrored", "multi_worker")
AUGMENT_ON = ("auto", "device", "cpu")


def notice(message):
    """A line for the user (stdout, flushed): never a silent result."""
    print(message, flush=True)


@dataclasses.dataclass
class RunConfig:
    """Everything a training run is asked to do (see `keras_cnn.training.train` for each field)."""

    model: str = "lenet5"
    data: object = "digits"
    epochs: int | None = None
    batch_size: int | None = None
    augment: object = None
    augment_on: str = "auto"
    image_size: object = None
    out_dir: object = None
    recipe: object = None
    mixed_precision: bool = False
    jit_compile: bool = False
    seed: int = 0
    export: bool = True
    export_dir: object = "saved_models"
    export_name: str | None = None
    export_version: int | None = None
    early_stopping: int | None = None
    resume: bool = True
    verbose: int = 1
    max_examples: int | None = None
    validation_split: float = 0.1
    model_kwargs: dict | None = None
    strategy: object = "default"
    callbacks: list | None = None
    keep_checkpoints: bool = False
    communication: str = "auto"
    cluster_timeout: float = 300.0


@dataclasses.dataclass
class TrainResult:
    """What `train` returns.

    Attributes:
        run_dir: the run directory.
        model: the inference model (raw pixels in, single output, float32).
        history: ``{metric: [per-epoch values]}`` over every finished epoch, resumed ones too.
        metrics: the held-out metrics written to ``metrics.json``.
        export_path: the SavedModel directory, or None with ``export=False``.
        recipe: the `Recipe` used.
        status: "trained" (from scratch), "resumed" (from a checkpoint) or "finished" (the run
            directory held this run, finished: its stored result, nothing trained or exported).
    """

    run_dir: Path
    model: object
    history: dict
    metrics: dict
    export_path: Path | None = None
    recipe: Recipe | None = None
    status: str = "trained"


@dataclasses.dataclass(frozen=True)
class RunArgs:
    """The checked arguments of a run (`check`)."""

    entry: object
    recipe: Recipe
    spec: str | None
    parsed_augment: list
    size: tuple
    run_dir: Path
    aux: bool


def _resolve_recipe(model, recipe, epochs, batch_size):
    if recipe is None:
        resolved = get_recipe(model)
    elif isinstance(recipe, Recipe):
        resolved = recipe
    elif isinstance(recipe, dict):
        resolved = get_recipe(model, **recipe)
    elif isinstance(recipe, str):
        resolved = get_recipe(recipe)
    else:
        raise ValueError(
            f"`recipe` must be None, a Recipe, a family name or a dict of overrides. Received: recipe={recipe!r}"
        )
    overrides = {}
    if epochs is not None:
        overrides["epochs"] = check_positive_int("epochs", epochs)
    if batch_size is not None:
        overrides["batch_size"] = check_positive_int("batch_size", batch_size)
    return get_recipe(resolved, **overrides) if overrides else resolved


def _check_augment(augment, recipe):
    """The augmentation spec to use (None for none) and its parsed form."""
    spec = recipe.augment if augment is None else augment
    if spec is False or spec is None:
        return None, []
    if not isinstance(spec, str):
        raise ValueError(f"`augment` must be a spec string like 'flip,crop,rotate=15'. Received: augment={augment!r}")
    if spec.strip().lower() in ("", "none", "off", "false"):
        return None, []
    from keras_cnn.data.augment import parse_augment_spec

    try:
        parsed = parse_augment_spec(spec)
    except ValueError as err:
        msg = str(err)
        if "augment" not in msg:
            msg = f"`augment` is not a valid spec: {msg}. Received: augment={spec!r}"
        raise ValueError(msg) from err
    return spec, parsed


def check(cfg):
    """Check every argument of ``cfg`` (no TensorFlow op runs) -> `RunArgs`.

    Raises:
        ValueError: naming the argument, the value and what is accepted.
    """
    if not isinstance(cfg.model, str) or cfg.model not in list_models():
        raise ValueError(
            f"`model` must be a registered model name (see keras_cnn.list_models()). Received: model={cfg.model!r}"
        )
    entry = get_model_entry(cfg.model)
    recipe = _resolve_recipe(cfg.model, cfg.recipe, cfg.epochs, cfg.batch_size)
    check_choice("augment_on", cfg.augment_on, AUGMENT_ON)
    if cfg.augment_on == "auto":  # the faster path here: tf.data map on a CPU, in the step on a GPU
        from keras_cnn.data.augment import resolve_augment_on

        cfg.augment_on = resolve_augment_on("auto")  # the run records where it really ran
    check_non_negative_int("seed", cfg.seed)
    check_choice("verbose", cfg.verbose, (0, 1, 2))
    if cfg.early_stopping is not None:
        check_positive_int("early_stopping", cfg.early_stopping)
    if cfg.max_examples is not None:
        check_positive_int("max_examples", cfg.max_examples)
    if cfg.model_kwargs is not None and not isinstance(cfg.model_kwargs, dict):
        raise ValueError(f"`model_kwargs` must be a dict. Received: model_kwargs={cfg.model_kwargs!r}")
    for name in ("mixed_precision", "jit_compile", "export", "resume", "keep_checkpoints"):
        flag = getattr(cfg, name)
        if not isinstance(flag, bool):
            raise ValueError(f"`{name}` must be True or False. Received: {name}={flag!r}")
    if not (isinstance(cfg.strategy, str) or hasattr(cfg.strategy, "scope")):
        raise ValueError(f"`strategy` must be one of {STRATEGIES} or a tf.distribute.Strategy. "
                         f"Received: strategy={cfg.strategy!r}")
    if isinstance(cfg.strategy, str):
        check_choice("strategy", cfg.strategy, STRATEGIES)
    timeout = cfg.cluster_timeout
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"`cluster_timeout` must be a number of seconds > 0. Received: cluster_timeout={timeout!r}")
    from keras_cnn.training.network import check_model_kwargs
    from keras_cnn.training.evaluate import parse_image_size

    check_model_kwargs(cfg.model, cfg.model_kwargs)
    spec, parsed_augment = _check_augment(cfg.augment, recipe)
    size = parse_image_size(cfg.image_size) or (entry.default_size, entry.default_size)
    run_dir = Path(cfg.out_dir) if cfg.out_dir is not None else Path("runs") / cfg.model
    aux = bool(entry.aux_heads) and recipe.aux_loss_weight > 0
    return RunArgs(entry, recipe, spec, parsed_augment, size, run_dir, aux)


# ------------------------------------------------------------------------------ the run directory
def fingerprint(cfg, args, engine):
    """The run fingerprint (fields: `keras_cnn.training.rundir`)."""
    return {
        "model": cfg.model,
        "model_kwargs": dict(cfg.model_kwargs or {}),
        "aux_heads": int(args.entry.aux_heads) if args.aux else 0,
        "image_size": list(args.size),
        "data": rundir.data_fingerprint(cfg.data),
        "recipe": args.recipe.to_dict(),
        "augment": args.spec,
        "augment_on": cfg.augment_on if args.spec else None,  # irrelevant without augmentation
        "seed": cfg.seed,
        "max_examples": cfg.max_examples,
        "validation_split": cfg.validation_split,
        "early_stopping": cfg.early_stopping,
        "mixed_precision": cfg.mixed_precision,
        "engine": engine,
    }


def open_run(cfg, args, engine):
    """``(fingerprint, RunState)`` of the run directory for this run (see `rundir.inspect_run_dir`)."""
    if not isinstance(cfg.data, (str, os.PathLike)) and not hasattr(cfg.data, "class_names"):
        raise ValueError(f"`data` must be a source string, a directory or a DataBundle. Received: data={cfg.data!r}")
    fp = fingerprint(cfg, args, engine)
    return fp, rundir.inspect_run_dir(args.run_dir, fp, resume=cfg.resume)


def finished_result(cfg, args, state):
    """The stored `TrainResult` of a finished run (nothing trained, nothing exported), with a notice."""
    import keras

    import keras_cnn.layers  # noqa: F401  (registers the custom layers for loading)
    from keras_cnn.training.callbacks import read_history

    run_dir, metrics = args.run_dir, dict(state.metrics)
    model_path = run_dir / "model.keras"
    if not model_path.is_file():
        raise ValueError(
            f"`out_dir` holds a finished run without its model ({str(model_path)!r} is missing); "
            f"pass resume=False to train again. Received: out_dir={str(run_dir)!r}"
        )
    model = keras.models.load_model(model_path, compile=False)
    export = metrics.get("export_path")
    notice(
        f"{run_dir}: this run (same model, data, recipe and seed) finished before; nothing was trained or "
        f"exported again."
    )
    return TrainResult(
        run_dir=run_dir, model=model, history=read_history(run_dir / rundir.HISTORY_FILE), metrics=metrics,
        export_path=Path(export) if export else None, recipe=args.recipe, status="finished",
    )


# --------------------------------------------------------------------------------------- prepare
@dataclasses.dataclass
class Prepared:
    """A prepared run: its data, network and optimizer, ready for an engine."""

    bundle: object
    class_names: list
    image_shape: tuple
    steps_per_epoch: int
    config: dict
    augmenter: object = None
    network: object = None
    keys: list | None = None
    train_model: object = None
    optimizer: object = None


def _load_bundle(cfg, args):
    if hasattr(cfg.data, "class_names"):
        return cfg.data
    from keras_cnn.data import load_data

    kwargs = dict(
        image_size=args.size, channels=args.entry.channels, batch_size=args.recipe.batch_size,
        validation_split=cfg.validation_split, seed=cfg.seed,
    )
    if cfg.max_examples is not None:
        kwargs["max_examples"] = cfg.max_examples
    return load_data(os.fspath(cfg.data), **kwargs)


def check_bundle(bundle, data, *, announce=True):
    """At least two classes, a non-empty training split; a notice for skipped unreadable files
    (``announce``)."""
    names = [str(c) for c in bundle.class_names]
    if len(names) < 2:
        raise ValueError(
            f"`data` must have at least two classes to train a classifier; it has {len(names)} ({names}). "
            f"Received: data={data!r}"
        )
    if not bundle.num_train:
        raise ValueError(f"`data` has an empty training split. Received: data={data!r}")
    skipped = list(getattr(bundle, "skipped_files", []) or [])
    if skipped and announce:
        shown = ", ".join(skipped[:3]) + (", ..." if len(skipped) > 3 else "")
        notice(f"data: skipped {len(skipped)} unreadable image file(s): {shown}")
    return names


def load(cfg, args, fp, strategy_config):
    """Seed, load and check the data; assemble the run's ``config.json`` -> `Prepared`."""
    import keras

    keras.utils.set_random_seed(cfg.seed)
    bundle = _load_bundle(cfg, args)
    class_names = check_bundle(bundle, cfg.data if isinstance(cfg.data, (str, os.PathLike)) else bundle.source)
    image_shape = tuple(int(d) for d in bundle.image_shape)
    if cfg.export:  # an export name that serves another model: refused before training, not after
        from keras_cnn.export.saved_model import check_export_name

        check_export_name(cfg.export_dir, cfg.export_name or cfg.model, image_shape, class_names,
                          version=cfg.export_version)
    card = int(bundle.train.cardinality())
    steps = card if card > 0 else max(1, math.ceil(bundle.num_train / args.recipe.batch_size))
    data = os.fspath(cfg.data) if isinstance(cfg.data, (str, os.PathLike)) else getattr(bundle, "source", None)
    config = {
        "model": cfg.model, "family": args.entry.family, "data": data, "image_shape": list(image_shape),
        "num_classes": len(class_names), "aux_heads": int(args.entry.aux_heads) if args.aux else 0,
        "model_kwargs": dict(cfg.model_kwargs or {}), "augment": args.spec, "augment_on": cfg.augment_on,
        "mixed_precision": cfg.mixed_precision, "jit_compile": cfg.jit_compile, "seed": cfg.seed,
        "max_examples": cfg.max_examples, "validation_split": cfg.validation_split,
        **strategy_config, "recipe": args.recipe.to_dict(), rundir.FINGERPRINT_KEY: fp,
    }
    return Prepared(bundle, class_names, image_shape, steps, config)


def _augmenter(cfg, args, prep):
    """The run's augmenter (None without augmentation), with the PCA colour statistics of the
    training set when the spec asks for them (Krizhevsky et al., 2012, section 4.1)."""
    if not args.spec:
        return None
    from keras_cnn.data.augment import build_augmenter, compute_pca_stats

    pca = compute_pca_stats(prep.bundle.train) if any(n == "pca" for n, _ in args.parsed_augment) else None
    return build_augmenter(args.spec, image_shape=prep.image_shape, pca_stats=pca, seed=cfg.seed)


@contextlib.contextmanager
def dtype_policy(name):
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def build_network_for(cfg, args, prep, *, policy="float32"):
    """The registry network behind its Preprocess layer, for this run's data."""
    from keras_cnn.training.network import build_network

    with dtype_policy(policy):
        return build_network(
            cfg.model, image_shape=prep.image_shape, classes=len(prep.class_names), aux_logits=args.aux,
            dropout=args.recipe.dropout, model_kwargs=cfg.model_kwargs,
        )


def prepare(cfg, args, prep, strategy):
    """Build the augmenter, network, training model and optimizer of ``prep`` in ``strategy``'s scope."""
    from keras_cnn.training.network import output_names, wrap_for_training
    from keras_cnn.training.recipes import build_optimizer

    prep.augmenter = _augmenter(cfg, args, prep)
    policy = "mixed_float16" if cfg.mixed_precision else "float32"
    with strategy.scope():
        prep.network = build_network_for(cfg, args, prep, policy=policy)
        prep.keys = output_names(prep.network)
        with dtype_policy(policy):
            prep.train_model = wrap_for_training(
                prep.network, augmenter=prep.augmenter if cfg.augment_on == "device" else None,
                float32_outputs=cfg.mixed_precision,
            )
        prep.optimizer = build_optimizer(
            args.recipe, steps_per_epoch=prep.steps_per_epoch, batch_size=args.recipe.batch_size,
            epochs=args.recipe.epochs,
        )
    return prep


def training_data(cfg, prep):
    """The training dataset, with the augmenter mapped in on the CPU when ``augment_on="cpu"``."""
    if prep.augmenter is not None and cfg.augment_on == "cpu":
        from keras_cnn.data.augment import cpu_augment

        return cpu_augment(prep.bundle.train, prep.augmenter)
    return prep.bundle.train


# ---------------------------------------------------------------------------------- the fit engine
def compile_model(model, optimizer, *, label_smoothing=0.0, aux_loss_weight=0.0, jit_compile=False,
                  run_eagerly=False):
    """The one compile of every ``fit`` path (`train`, both phases of ``fine_tune``, tuning trials).

    Categorical cross-entropy (with ``label_smoothing``) on one-hot targets; a dict-output model
    (auxiliary heads, Szegedy et al., 2015) gets one loss per output, the auxiliary ones weighted
    by ``aux_loss_weight``; accuracy is measured on the main output.
    """
    import keras

    from keras_cnn.training.network import MAIN_OUTPUT, output_names

    loss = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
    accuracy = keras.metrics.CategoricalAccuracy(name="accuracy")
    keys = output_names(model)
    if keys:
        kwargs = dict(
            loss={k: loss for k in keys},
            loss_weights={k: (1.0 if k == MAIN_OUTPUT else aux_loss_weight) for k in keys},
            metrics={MAIN_OUTPUT: [accuracy]},
        )
    else:
        kwargs = dict(loss=loss, metrics=[accuracy])
    model.compile(optimizer=optimizer, jit_compile=jit_compile, run_eagerly=run_eagerly, **kwargs)
    return model


def one_hot_targets(data, model):
    """``(pixels, int labels)`` -> the one-hot targets ``model`` trains on (one per output of a
    dict-output model). ``data``: a batched ``tf.data.Dataset``, an ``(x, y)`` pair of arrays, or None."""
    if data is None:
        return None
    import numpy as np
    import tensorflow as tf

    from keras_cnn.training.network import output_names

    depth = int(model.outputs[0].shape[-1])  # every output (main and auxiliary heads) has one per class
    keys = output_names(model)
    if isinstance(data, tuple):
        onehot = np.eye(depth, dtype="float32")[np.asarray(data[1]).reshape(-1).astype("int64")]
        return data[0], ({k: onehot for k in keys} if keys else onehot)

    def to_target(x, y):
        onehot = tf.one_hot(tf.cast(tf.reshape(y, [-1]), tf.int32), depth)
        return x, ({k: onehot for k in keys} if keys else onehot)

    return data.map(to_target, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def fit_engine(model, train, *, epochs, validation=None, callbacks=None, verbose=0, initial_epoch=0,
               batch_size=None, shuffle=True):
    """The ``fit`` engine of every single-process path: one-hot targets, then ``model.fit``.

    Args:
        train: a batched ``tf.data.Dataset`` of ``(pixels, int labels)`` (shuffled by itself) or an
            ``(x, y)`` pair of arrays (batched with ``batch_size``, shuffled when ``shuffle``).
        validation: the same kinds, or None.

    Returns:
        The Keras ``History``.
    """
    kwargs = dict(epochs=epochs, callbacks=list(callbacks or []), verbose=verbose, initial_epoch=initial_epoch)
    if validation is not None:
        kwargs["validation_data"] = one_hot_targets(validation, model)
    x, y = one_hot_targets(train, model) if isinstance(train, tuple) else (one_hot_targets(train, model), None)
    if y is not None:
        return model.fit(x, y, batch_size=batch_size, shuffle=shuffle, **kwargs)
    return model.fit(x, shuffle=False, **kwargs)  # the datasets shuffle themselves


def evaluate_engine(model, data, *, batch_size=None):
    """``(loss, accuracy)`` of a model compiled by `compile_model` on ``data`` (kinds as `fit_engine`)."""
    if isinstance(data, tuple):
        x, y = one_hot_targets(data, model)
        values = model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True)
    else:
        values = model.evaluate(one_hot_targets(data, model), verbose=0, return_dict=True)
    accuracy = values.get("accuracy", values.get("predictions_accuracy"))
    return float(values["loss"]), float(accuracy)


def begin(cfg, args, prep, state):
    """Write the run directory's start (``config.json``); say whether the run resumes."""
    rundir.start_run_dir(args.run_dir, prep.config, state=state)
    if state.status == "resume" and state.done_epochs:
        notice(f"{args.run_dir}: resuming from epoch {state.done_epochs} of {args.recipe.epochs} "
               "(same run fingerprint)")


# ---------------------------------------------------------------------------------------- finish
def save_keras_model(model, path):
    """``model.save`` to a temporary sibling (usual permissions), then rename into place."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.tmp-", suffix=".keras", dir=path.parent)
    os.close(fd)
    try:
        model.save(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; a saved model is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def inference_model(cfg, args, prep, *, rebuild):
    """The inference model: float32, no augmenter, no aux heads (rebuilt outside any strategy when
    ``rebuild``: plain variables, local predictions)."""
    from keras_cnn.training.network import strip_aux

    network = prep.network
    if rebuild or cfg.mixed_precision:
        clean = build_network_for(cfg, args, prep)
        clean.set_weights(network.get_weights())
        network = clean
    return strip_aux(network)


def evaluate_run(cfg, args, prep, inference, *, history, fit_seconds, optimizer_steps, extra):
    """Held-out metrics of the inference model plus the run's figures."""
    from keras_cnn.training.evaluate import compute_metrics

    bundle = prep.bundle
    test_ds, split = (bundle.test, "test") if bundle.test is not None else (bundle.val, "val")
    if test_ds is None:
        raise ValueError("`data` has neither a test nor a validation split to evaluate on.")
    metrics = compute_metrics(inference, test_ds, prep.class_names)
    metrics.update(
        split=split, model=cfg.model, data=prep.config["data"], epochs=len(history.get("epoch", [])),
        optimizer_steps=optimizer_steps, seconds=float(sum(history.get("epoch_seconds", [])) or fit_seconds),
        fit_seconds=fit_seconds, num_train=int(bundle.num_train), num_val=int(bundle.num_val or 0),
        image_shape=list(prep.image_shape), augment=args.spec, recipe=args.recipe.name,
        mixed_precision=cfg.mixed_precision, **extra,
    )
    metrics[rundir.DIGEST_KEY] = rundir.digest(prep.config[rundir.FINGERPRINT_KEY])
    return metrics


def save_outputs(run_dir, model, *, class_names, metrics, history, name, data):
    """The saved part of every finished run: ``model.keras``, ``class_names.json``, the learning
    curves and the confusion matrix (``train``, the multi-worker loop, ``keras-cnn transfer``)."""
    from keras_cnn._io import atomic_write_json
    from keras_cnn.training.plots import plot_confusion_matrix, plot_learning_curves

    run_dir = Path(run_dir)
    save_keras_model(model, run_dir / "model.keras")
    atomic_write_json(run_dir / "class_names.json", list(class_names))
    plot_learning_curves(history, run_dir / "learning_curves.png", title=f"{name} on {data}")
    plot_confusion_matrix(
        metrics["confusion_matrix"], list(class_names), run_dir / "confusion_matrix.png",
        title=f"{name}: {metrics['split']} accuracy {metrics['accuracy']:.4f}",
    )


def write_outputs(cfg, args, prep, inference, metrics, history, export_metadata):
    """`save_outputs`, then the export (-> its path or None)."""
    save_outputs(args.run_dir, inference, class_names=prep.class_names, metrics=metrics, history=history,
                 name=cfg.model, data=prep.config["data"])
    if not cfg.export:
        return None
    from keras_cnn.export import export_for_serving

    run_id = prep.config.get(rundir.RUN_ID_KEY)
    name = cfg.export_name or cfg.model
    earlier = exported_by(Path(cfg.export_dir) / name, run_id)
    if earlier is not None:  # this attempt exported, then was stopped before metrics.json
        notice(f"{earlier}: exported by this run before it was stopped; not exported again")
        return earlier
    metadata = {
        "model": cfg.model, "data": prep.config["data"], "accuracy": metrics["accuracy"],
        "image_shape": list(prep.image_shape), "preprocessing": args.entry.preprocessing,
        "run_dir": str(args.run_dir), rundir.RUN_ID_KEY: run_id, **export_metadata,
    }
    return Path(export_for_serving(
        inference, cfg.export_dir, name=name, version=cfg.export_version,
        class_names=prep.class_names, metadata=metadata,
    ))


def exported_by(model_dir, run_id):
    """The export version under ``model_dir`` whose metadata names training attempt ``run_id``, or None."""
    from keras_cnn.export.saved_model import read_metadata

    if run_id is None or not Path(model_dir).is_dir():
        return None
    for version in sorted(Path(model_dir).iterdir(), key=lambda p: p.name):
        if not version.name.isdigit():
            continue
        try:
            meta = (read_metadata(version) or {}).get("metadata") or {}
        except (OSError, ValueError, AttributeError):  # an unreadable export is not this run's
            continue
        if meta.get(rundir.RUN_ID_KEY) == run_id:
            return version
    return None


def finish(cfg, args, prep, *, status, started, fit_seconds, optimizer_steps, rebuild=False, chief=True,
           extra=None, export_metadata=None):
    """Evaluate, save, plot, export; write metrics.json and README.txt; drop the checkpoints."""
    from keras_cnn._io import atomic_write_json
    from keras_cnn.training.callbacks import read_history

    run_dir = args.run_dir
    inference = inference_model(cfg, args, prep, rebuild=rebuild)
    history = read_history(run_dir / rundir.HISTORY_FILE) if chief else (extra or {}).pop("_history", {})
    metrics = evaluate_run(cfg, args, prep, inference, history=history, fit_seconds=fit_seconds,
                           optimizer_steps=optimizer_steps, extra={k: v for k, v in (extra or {}).items()
                                                                    if not k.startswith("_")})
    if not chief:
        return TrainResult(run_dir, inference, history, metrics, recipe=args.recipe, status=status)
    export_path = write_outputs(cfg, args, prep, inference, metrics, history, export_metadata or {})
    if export_path is not None:
        metrics["export_path"] = str(export_path)
    metrics["wall_seconds"] = time.perf_counter() - started
    atomic_write_json(run_dir / rundir.METRICS_FILE, metrics)  # written last: the run is finished
    if not cfg.keep_checkpoints and rundir.drop_checkpoints(run_dir):
        notice(f"{run_dir}: run finished; its checkpoints were removed "
               "(--keep-checkpoints, or keep_checkpoints=True in Python, keeps them)")
    rundir.write_readme(run_dir, title=f"keras-cnn run: {cfg.model} on {prep.config['data']}")
    return TrainResult(run_dir, inference, history, metrics, export_path=export_path, recipe=args.recipe,
                       status=status)


def stdout_is_terminal():
    """True when stdout is a terminal (progress bars); else one line per epoch suits logs better."""
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False
