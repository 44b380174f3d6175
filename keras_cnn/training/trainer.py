"""`train`: data -> registry model with its paper recipe -> checkpoints -> evaluation -> export.

The run directory (``runs/<model>`` by default) holds:

* ``model.keras``: the inference model (raw 0..255 pixels in, preprocessing inside, no
  augmentation, no auxiliary heads, float32) and ``class_names.json``;
* ``metrics.json``: held-out test accuracy, loss, per-class accuracy, confusion matrix, ...;
* ``history.csv`` (one row per finished epoch, appended across resumes), ``learning_curves.png``,
  ``confusion_matrix.png``, ``logs/`` (TensorBoard), ``checkpoints/`` (BackupAndRestore),
  ``config.json`` (the arguments and the recipe used).

Augmentation runs on the accelerator by default: the augmenter is the first layer of the
*training* model, inside the compiled step; ``augment_on="cpu"`` applies it in the tf.data
pipeline instead. Models with auxiliary classifiers (GoogLeNet, Inception-v2/v3) are trained
with them (loss weight from the recipe) and saved without them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import keras
import tensorflow as tf

from keras_cnn._io import atomic_write_json
from keras_cnn._validation import check_choice, check_non_negative_int, check_positive_int
from keras_cnn.models.registry import get_model_entry, list_models
from keras_cnn.training import callbacks as cb
from keras_cnn.training.evaluate import CONFIG_FILE, compute_metrics, is_bundle, parse_image_size
from keras_cnn.training.network import MAIN_OUTPUT, build_network, output_names, strip_aux, wrap_for_training
from keras_cnn.training.plots import plot_confusion_matrix, plot_learning_curves
from keras_cnn.training.recipes import Recipe, build_optimizer, get_recipe

STRATEGIES = ("default", "mirrored", "multi_worker")
AUGMENT_ON = ("device", "cpu")


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
    """

    run_dir: Path
    model: keras.Model
    history: dict
    metrics: dict
    export_path: Path | None = None
    recipe: Recipe | None = None


def _is_multi_worker(strategy):
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or isinstance(
        strategy, tf.distribute.experimental.MultiWorkerMirroredStrategy
    )


def _strategy(strategy):
    if isinstance(strategy, tf.distribute.Strategy):
        return strategy
    check_choice("strategy", strategy, STRATEGIES)
    if strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


@contextlib.contextmanager
def _dtype_policy(name):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


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


def _load_bundle(data, *, image_size, channels, batch_size, seed, max_examples, validation_split):
    if is_bundle(data):
        return data
    if not isinstance(data, (str, os.PathLike)):
        raise ValueError(f"`data` must be a source string, a directory or a DataBundle. Received: data={data!r}")
    from keras_cnn.data import load_data

    kwargs = dict(
        image_size=image_size,
        channels=channels,
        batch_size=batch_size,
        validation_split=validation_split,
        seed=seed,
    )
    if max_examples is not None:
        kwargs["max_examples"] = max_examples
    return load_data(os.fspath(data), **kwargs)


def _steps(dataset, num, batch_size):
    card = int(dataset.cardinality())
    if card > 0:
        return card
    return max(1, math.ceil(num / batch_size))


def _targets(dataset, num_classes, keys):
    def to_target(x, y):
        onehot = tf.one_hot(tf.cast(tf.reshape(y, [-1]), tf.int32), num_classes)
        if keys:
            return x, {k: onehot for k in keys}
        return x, onehot

    return dataset.map(to_target, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _save_keras_model(model, path):
    """``model.save`` to a temporary sibling, then rename into place."""
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


def _check_resume_config(run_dir, config):
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text())
    except ValueError:
        return
    for key in ("model", "image_shape", "num_classes", "aux_heads", "model_kwargs"):
        if key in old and old[key] != config[key]:
            raise ValueError(
                f"`out_dir` holds a checkpoint of a different run ({key}={old[key]!r}, now {config[key]!r}); "
                f"pass resume=False to start over or choose another out_dir. Received: out_dir={str(run_dir)!r}"
            )


@dataclasses.dataclass(frozen=True)
class _RunArgs:
    """The checked arguments of a run (`_check_run_args`)."""

    entry: object
    recipe: Recipe
    spec: str
    parsed_augment: list
    size: tuple
    run_dir: Path
    aux: bool


def _check_run_args(model, *, recipe, epochs, batch_size, augment, augment_on, image_size, out_dir, seed,
                    verbose, early_stopping, max_examples, model_kwargs, flags):
    """Check the arguments shared by `train` and `train_multi_worker`; ``flags``: (name, value) pairs
    that must be bools."""
    entry = get_model_entry(model)
    recipe = _resolve_recipe(model, recipe, epochs, batch_size)
    check_choice("augment_on", augment_on, AUGMENT_ON)
    check_non_negative_int("seed", seed)
    check_choice("verbose", verbose, (0, 1, 2))
    if early_stopping is not None:
        check_positive_int("early_stopping", early_stopping)
    if max_examples is not None:
        check_positive_int("max_examples", max_examples)
    if model_kwargs is not None and not isinstance(model_kwargs, dict):
        raise ValueError(f"`model_kwargs` must be a dict. Received: model_kwargs={model_kwargs!r}")
    for name, flag in flags:
        if not isinstance(flag, bool):
            raise ValueError(f"`{name}` must be True or False. Received: {name}={flag!r}")
    spec, parsed_augment = _check_augment(augment, recipe)
    size = parse_image_size(image_size) or (entry.default_size, entry.default_size)
    run_dir = Path(out_dir) if out_dir is not None else Path("runs") / model
    aux = bool(entry.aux_heads) and recipe.aux_loss_weight > 0
    return _RunArgs(entry, recipe, spec, parsed_augment, size, run_dir, aux)


@dataclasses.dataclass(frozen=True)
class _RunData:
    """The loaded data of a run and its config (`_load_run_data`)."""

    bundle: object
    class_names: list
    num_classes: int
    image_shape: tuple
    steps_per_epoch: int
    config: dict


def _load_run_data(model, data, args, *, augment_on, mixed_precision, jit_compile, seed, max_examples,
                   validation_split, model_kwargs, strategy_config):
    """Seed, load the data and assemble the run's config; ``strategy_config``: the config's
    strategy entries (placed before "recipe")."""
    entry, recipe = args.entry, args.recipe
    keras.utils.set_random_seed(seed)
    bundle = _load_bundle(
        data,
        image_size=args.size,
        channels=entry.channels,
        batch_size=recipe.batch_size,
        seed=seed,
        max_examples=max_examples,
        validation_split=validation_split,
    )
    class_names = [str(c) for c in bundle.class_names]
    num_classes = len(class_names)
    image_shape = tuple(int(d) for d in bundle.image_shape)
    steps_per_epoch = _steps(bundle.train, bundle.num_train, recipe.batch_size)

    config = {
        "model": model,
        "family": entry.family,
        "data": os.fspath(data) if isinstance(data, (str, os.PathLike)) else getattr(bundle, "source", None),
        "image_shape": list(image_shape),
        "num_classes": num_classes,
        "aux_heads": int(entry.aux_heads) if args.aux else 0,
        "model_kwargs": dict(model_kwargs or {}),
        "augment": args.spec,
        "augment_on": augment_on,
        "mixed_precision": mixed_precision,
        "jit_compile": jit_compile,
        "seed": seed,
        "max_examples": max_examples,
        "validation_split": validation_split,
        **strategy_config,
        "recipe": recipe.to_dict(),
    }
    return _RunData(bundle, class_names, num_classes, image_shape, steps_per_epoch, config)


def _build_run_augmenter(args, bundle, image_shape, seed):
    """The run's augmenter (None without augmentation), with the PCA colour statistics of the
    training set when the spec asks for them (Krizhevsky et al., 2012, section 4.1)."""
    if not args.spec:
        return None
    from keras_cnn.data.augment import build_augmenter, compute_pca_stats

    pca_stats = compute_pca_stats(bundle.train) if any(n == "pca" for n, _ in args.parsed_augment) else None
    return build_augmenter(args.spec, image_shape=image_shape, pca_stats=pca_stats, seed=seed)


def train(
    model="lenet5",
    data="digits",
    *,
    epochs=None,
    batch_size=None,
    augment=None,
    augment_on="device",
    image_size=None,
    out_dir=None,
    recipe=None,
    mixed_precision=False,
    jit_compile=False,
    seed=0,
    export=True,
    export_dir="saved_models",
    export_name=None,
    export_version=None,
    early_stopping=None,
    resume=True,
    verbose=1,
    max_examples=None,
    validation_split=0.1,
    model_kwargs=None,
    strategy="default",
    callbacks=None,
):
    """Train a registered network on a dataset with its paper recipe; evaluate; export.

    The network is ``raw pixels -> Preprocess(entry.preprocessing) -> registry model`` so the
    saved and exported models take raw 0..255 pixels. Families with auxiliary classifiers
    (GoogLeNet: Szegedy et al., 2015; Inception-v3: Szegedy et al., 2016) train with them,
    weighted by ``recipe.aux_loss_weight``, and are saved without them (`strip_aux`).

    Args:
        model: registered model name (``keras_cnn.list_models()``). Default "lenet5".
        data: a ``keras_cnn.data.load_data`` source ("digits", "tfds:NAME", a directory) or a
            ``DataBundle`` (used as it is: its batching, splits and image size).
            Default "digits".
        epochs: epochs (default: the recipe's).
        batch_size: global batch size (default: the recipe's).
        augment: augmentation spec, e.g. "flip,crop,rotate=15,pca=0.1" (default: the recipe's;
            "none" or "" for none).
        augment_on: "device" (first layer of the training model, inside the compiled step) or
            "cpu" (a tf.data map).
        image_size: ``(H, W)``, "H,W" or an int (default: the model's default size).
        out_dir: run directory (default ``runs/<model>``).
        recipe: None (the family's), a `Recipe`, a family name, or a dict of overrides.
        mixed_precision: train under the "mixed_float16" policy (restored afterwards; outputs
            cast to float32; the saved model is float32).
        jit_compile: compile the train step with XLA. Keras falls back to no XLA (with a
            warning) when a layer cannot be compiled, e.g. some augmentation layers;
            ``metrics["jit_compile"]`` records what was used.
        seed: random seed (weights, shuffling, augmentation).
        export: export a SavedModel for TF Serving at the end.
        export_dir: export root; the model goes to ``export_dir/<name>/<version>/``.
        export_name: the served model's name (default: ``model``).
        export_version: export version (default: the exporter's next free version).
        early_stopping: stop after this many epochs without validation-loss improvement and
            restore the best weights (None: off).
        resume: continue from ``out_dir/checkpoints`` if a previous run left one (else start
            over and clear the old history).
        verbose: Keras ``fit`` verbosity (0, 1, 2).
        max_examples: use at most this many examples (quick runs).
        validation_split: fraction of the training data held out for validation.
        model_kwargs: extra builder keywords (``width_multiplier``, ``stem``, ...).
        strategy: "default", "mirrored" (``tf.distribute.MirroredStrategy``), "multi_worker"
            (``MultiWorkerMirroredStrategy`` from ``TF_CONFIG``, with the custom loop of
            `keras_cnn.training.distributed.train_multi_worker`) or a ``tf.distribute.Strategy``;
            model and optimizer are created in its scope.
        callbacks: extra Keras callbacks, run after the built-in ones.

    Returns:
        A `TrainResult`.

    Raises:
        ValueError: an invalid argument (named in the message).

    Example:
        >>> result = train("lenet5", "digits", epochs=30, export=False)
        >>> result.metrics["accuracy"] > 0.98
        True
    """
    if strategy == "multi_worker" or _is_multi_worker(strategy):
        # Keras' fit cannot run under MultiWorkerMirroredStrategy: a custom loop trains the same
        # model with the same recipe (keras_cnn.training.distributed). Dispatch before any
        # TensorFlow op runs: the strategy must be created first.
        from keras_cnn.training.distributed import train_multi_worker

        return train_multi_worker(
            model, data, epochs=epochs, batch_size=batch_size, augment=augment, augment_on=augment_on,
            image_size=image_size, out_dir=out_dir, recipe=recipe, mixed_precision=mixed_precision,
            jit_compile=jit_compile, seed=seed, export=export, export_dir=export_dir,
            export_name=export_name, export_version=export_version, early_stopping=early_stopping,
            resume=resume, verbose=verbose, max_examples=max_examples, validation_split=validation_split,
            model_kwargs=model_kwargs, strategy=strategy, callbacks=callbacks,
        )
    started = time.perf_counter()
    if not isinstance(model, str) or model not in list_models():
        raise ValueError(
            f"`model` must be a registered model name (see keras_cnn.list_models()). Received: model={model!r}"
        )
    args = _check_run_args(
        model, recipe=recipe, epochs=epochs, batch_size=batch_size, augment=augment, augment_on=augment_on,
        image_size=image_size, out_dir=out_dir, seed=seed, verbose=verbose, early_stopping=early_stopping,
        max_examples=max_examples, model_kwargs=model_kwargs,
        flags=(("mixed_precision", mixed_precision), ("jit_compile", jit_compile),
               ("export", export), ("resume", resume)),
    )
    entry, recipe, spec, run_dir, aux = args.entry, args.recipe, args.spec, args.run_dir, args.aux
    dist = _strategy(strategy)

    run = _load_run_data(
        model, data, args, augment_on=augment_on, mixed_precision=mixed_precision, jit_compile=jit_compile,
        seed=seed, max_examples=max_examples, validation_split=validation_split, model_kwargs=model_kwargs,
        strategy_config={"strategy": strategy if isinstance(strategy, str) else type(strategy).__name__},
    )
    bundle, class_names, num_classes = run.bundle, run.class_names, run.num_classes
    image_shape, steps_per_epoch, config = run.image_shape, run.steps_per_epoch, run.config
    run_dir.mkdir(parents=True, exist_ok=True)
    backup_dir = run_dir / "checkpoints"
    history_path = run_dir / "history.csv"
    done_epochs = cb.backup_epoch(backup_dir) if resume else 0
    if done_epochs:
        _check_resume_config(run_dir, config)
        cb.trim_history(history_path, done_epochs)
    else:
        shutil.rmtree(backup_dir, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(history_path)
    atomic_write_json(run_dir / CONFIG_FILE, config)

    # PCA colour statistics of the training set, once (Krizhevsky et al., 2012, section 4.1).
    augmenter = _build_run_augmenter(args, bundle, image_shape, seed)

    policy = "mixed_float16" if mixed_precision else "float32"
    with _dtype_policy(policy), dist.scope():
        network = build_network(
            model,
            image_shape=image_shape,
            classes=num_classes,
            aux_logits=aux,
            dropout=recipe.dropout,
            model_kwargs=model_kwargs,
        )
        keys = output_names(network)
        train_model = wrap_for_training(
            network,
            augmenter=augmenter if augment_on == "device" else None,
            float32_outputs=mixed_precision,
        )
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing)
        optimizer = build_optimizer(
            recipe, steps_per_epoch=steps_per_epoch, batch_size=recipe.batch_size, epochs=recipe.epochs
        )
        accuracy = keras.metrics.CategoricalAccuracy(name="accuracy")
        if keys:
            compile_kwargs = dict(
                loss={k: loss for k in keys},
                loss_weights={k: (1.0 if k == MAIN_OUTPUT else recipe.aux_loss_weight) for k in keys},
                metrics={MAIN_OUTPUT: [accuracy]},
            )
        else:
            compile_kwargs = dict(loss=loss, metrics=[accuracy])
        train_model.compile(optimizer=optimizer, jit_compile=jit_compile, **compile_kwargs)

    train_ds = bundle.train
    if augmenter is not None and augment_on == "cpu":
        from keras_cnn.data.augment import cpu_augment

        train_ds = cpu_augment(train_ds, augmenter)
    train_ds = _targets(train_ds, num_classes, keys)
    val_ds = _targets(bundle.val, num_classes, keys) if bundle.val is not None else None

    monitor = "val_loss" if val_ds is not None else "loss"
    callback_list = [
        keras.callbacks.TerminateOnNaN(),
        cb.EpochLog(),
        keras.callbacks.CSVLogger(str(history_path), append=True),
        keras.callbacks.BackupAndRestore(str(backup_dir), save_freq="epoch", delete_checkpoint=False),
        keras.callbacks.TensorBoard(log_dir=str(run_dir / "logs"), write_graph=False, profile_batch=0),
    ]
    if recipe.schedule == "plateau":
        callback_list.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=monitor, factor=recipe.decay_rate, patience=recipe.plateau_patience, verbose=0
            )
        )
    if early_stopping:
        callback_list.append(
            keras.callbacks.EarlyStopping(monitor=monitor, patience=early_stopping, restore_best_weights=True)
        )
    callback_list.extend(callbacks or [])

    fit_started = time.perf_counter()
    train_model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=recipe.epochs,
        callbacks=callback_list,
        verbose=verbose,
        shuffle=False,  # the datasets shuffle themselves
    )
    fit_seconds = time.perf_counter() - fit_started
    optimizer_steps = int(keras.ops.convert_to_numpy(train_model.optimizer.iterations))

    # The inference model: no augmenter, no aux heads, float32.
    if mixed_precision:
        with _dtype_policy("float32"):
            clean = build_network(
                model,
                image_shape=image_shape,
                classes=num_classes,
                aux_logits=aux,
                dropout=recipe.dropout,
                model_kwargs=model_kwargs,
            )
        clean.set_weights(network.get_weights())
        network = clean
    inference = strip_aux(network)

    history = cb.read_history(history_path)
    test_ds, test_split = bundle.test, "test"
    if test_ds is None:
        test_ds, test_split = bundle.val, "val"
    if test_ds is None:
        raise ValueError("`data` has neither a test nor a validation split to evaluate on.")
    metrics = compute_metrics(inference, test_ds, class_names)
    metrics.update(
        split=test_split,
        model=model,
        data=config["data"],
        epochs=len(history.get("epoch", [])),
        optimizer_steps=optimizer_steps,
        seconds=float(sum(history.get("epoch_seconds", [])) or fit_seconds),
        fit_seconds=fit_seconds,
        num_train=int(bundle.num_train),
        num_val=int(bundle.num_val or 0),
        image_shape=list(image_shape),
        augment=spec,
        recipe=recipe.name,
        jit_compile=bool(train_model.jit_compile),  # Keras turns XLA off for layers without support
        mixed_precision=mixed_precision,
    )

    _save_keras_model(inference, run_dir / "model.keras")
    atomic_write_json(run_dir / "class_names.json", class_names)
    plot_learning_curves(history, run_dir / "learning_curves.png", title=f"{model} on {config['data']}")
    plot_confusion_matrix(
        metrics["confusion_matrix"],
        class_names,
        run_dir / "confusion_matrix.png",
        title=f"{model}: {test_split} accuracy {metrics['accuracy']:.4f}",
    )

    export_path = None
    if export:
        from keras_cnn.export import export_for_serving

        export_path = Path(
            export_for_serving(
                inference,
                export_dir,
                name=export_name or model,
                version=export_version,
                class_names=class_names,
                metadata={
                    "model": model,
                    "data": config["data"],
                    "accuracy": metrics["accuracy"],
                    "image_shape": list(image_shape),
                    "preprocessing": entry.preprocessing,
                    "run_dir": str(run_dir),
                },
            )
        )
        metrics["export_path"] = str(export_path)
    metrics["wall_seconds"] = time.perf_counter() - started
    atomic_write_json(run_dir / "metrics.json", metrics)
    return TrainResult(
        run_dir=run_dir,
        model=inference,
        history=history,
        metrics=metrics,
        export_path=export_path,
        recipe=recipe,
    )
