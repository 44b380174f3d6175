"""`train`: data -> registry model with its paper recipe -> checkpoints -> evaluation -> export.

The run directory (``runs/<model>`` by default) holds:

* ``model.keras``: the inference model (raw 0..255 pixels in, preprocessing inside, no
  augmentation, no auxiliary heads, float32) and ``class_names.json``;
* ``metrics.json``: held-out test accuracy, loss, per-class accuracy, confusion matrix, ...;
* ``history.csv`` (one row per finished epoch, appended across resumes), ``learning_curves.png``,
  ``confusion_matrix.png``, ``logs/`` (TensorBoard), ``checkpoints/`` (BackupAndRestore),
  ``config.json`` (the arguments, the recipe and the run fingerprint), ``README.txt``.

Augmentation runs on the accelerator by default: the augmenter is the first layer of the
*training* model, inside the compiled step; ``augment_on="cpu"`` applies it in the tf.data
pipeline instead. Models with auxiliary classifiers (GoogLeNet, Inception-v2/v3) are trained
with them (loss weight from the recipe) and saved without them.
"""

from __future__ import annotations

import time

import keras

from keras_cnn.training import callbacks as cb
from keras_cnn.training import pipeline
from keras_cnn.training.pipeline import RunConfig, TrainResult
from keras_cnn.training.rundir import CHECKPOINT_DIR, HISTORY_FILE, RunState

__all__ = ["RunConfig", "TrainResult", "run", "train"]


def _is_multi_worker(strategy):
    if strategy == "multi_worker":
        return True
    import tensorflow as tf

    return isinstance(strategy, (tf.distribute.MultiWorkerMirroredStrategy,
                                 tf.distribute.experimental.MultiWorkerMirroredStrategy))


def _strategy(strategy):
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.Strategy):
        return strategy
    if strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def train(
    model="lenet5",
    data="digits",
    *,
    epochs=None,
    batch_size=None,
    augment=None,
    augment_on="auto",
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
    keep_checkpoints=False,
    cluster_timeout=300.0,
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
        augment_on: "auto" (default: "device" when a GPU is visible, else "cpu", the faster path
            on each), "device" (first layer of the training model, inside the compiled step) or
            "cpu" (a tf.data map with AUTOTUNE).
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
        resume: reuse ``out_dir`` when it holds this run (same fingerprint, see
            `keras_cnn.training.rundir`): an unfinished one resumes from its checkpoint, a
            finished one returns its stored result (nothing trained or exported); another run
            there is refused. False: start over (the old run's files are cleared).
        verbose: Keras ``fit`` verbosity (0, 1, 2).
        max_examples: use at most this many examples (quick runs).
        validation_split: fraction of the training data held out for validation.
        model_kwargs: extra builder keywords (``width_multiplier``, ``stem``, ...).
        strategy: "default", "mirrored" (``tf.distribute.MirroredStrategy``), "multi_worker"
            (``MultiWorkerMirroredStrategy`` from ``TF_CONFIG``, with the custom loop of
            `keras_cnn.training.distributed.train_multi_worker`) or a ``tf.distribute.Strategy``;
            model and optimizer are created in its scope.
        callbacks: extra Keras callbacks, run after the built-in ones.
        keep_checkpoints: keep ``out_dir/checkpoints`` after the run finished (default: removed,
            with a notice).
        cluster_timeout: with ``strategy="multi_worker"``: seconds to wait for the other workers
            of ``TF_CONFIG`` (a line every 10 s names those not reachable yet). Default 300.

    Returns:
        A `TrainResult`.

    Raises:
        ValueError: an invalid argument (named in the message), data with fewer than two
            classes or an empty split, ``out_dir`` holding another run or a corrupt run file.

    Example:
        >>> result = train("lenet5", "digits", epochs=30, export=False)
        >>> result.metrics["accuracy"] > 0.98
        True
    """
    cfg = RunConfig(
        model=model, data=data, epochs=epochs, batch_size=batch_size, augment=augment, augment_on=augment_on,
        image_size=image_size, out_dir=out_dir, recipe=recipe, mixed_precision=mixed_precision,
        jit_compile=jit_compile, seed=seed, export=export, export_dir=export_dir, export_name=export_name,
        export_version=export_version, early_stopping=early_stopping, resume=resume, verbose=verbose,
        max_examples=max_examples, validation_split=validation_split, model_kwargs=model_kwargs,
        strategy=strategy, callbacks=callbacks, keep_checkpoints=keep_checkpoints, cluster_timeout=cluster_timeout,
    )
    return run(cfg)


def run(cfg):
    """Run a `RunConfig`: check -> open the run directory -> prepare -> ``fit`` -> finish.

    ``strategy="multi_worker"`` goes to the custom loop of `keras_cnn.training.distributed`
    (Keras' ``fit`` cannot run under ``MultiWorkerMirroredStrategy``), before any TensorFlow op
    runs: that strategy must be created first.
    """
    if isinstance(cfg.strategy, str) and cfg.strategy == "multi_worker" or (
        not isinstance(cfg.strategy, str) and _is_multi_worker(cfg.strategy)
    ):
        from keras_cnn.training.distributed import run_multi_worker

        return run_multi_worker(cfg)
    started = time.perf_counter()
    args = pipeline.check(cfg)
    fp, state = pipeline.open_run(cfg, args, "fit")
    if state.status == "finished":
        return pipeline.finished_result(cfg, args, state)
    if not state.done_epochs:
        state = RunState("new")  # nothing checkpointed yet: start clean (no stale history rows)
    dist = _strategy(cfg.strategy)
    strategy_name = cfg.strategy if isinstance(cfg.strategy, str) else type(cfg.strategy).__name__
    prep = pipeline.load(cfg, args, fp, {"strategy": strategy_name})
    pipeline.prepare(cfg, args, prep, dist)
    _compile(cfg, args, prep, dist)
    pipeline.begin(cfg, args, prep, state)
    if state.done_epochs:
        cb.trim_history(args.run_dir / HISTORY_FILE, state.done_epochs)
    fit_seconds = _fit(cfg, args, prep)
    return pipeline.finish(
        cfg, args, prep, status="resumed" if state.done_epochs else "trained", started=started,
        fit_seconds=fit_seconds, optimizer_steps=int(keras.ops.convert_to_numpy(prep.train_model.optimizer.iterations)),
        extra={"jit_compile": bool(prep.train_model.jit_compile)},  # Keras turns XLA off for layers without support
    )


def _compile(cfg, args, prep, dist):
    with dist.scope():
        pipeline.compile_model(
            prep.train_model, prep.optimizer, label_smoothing=args.recipe.label_smoothing,
            aux_loss_weight=args.recipe.aux_loss_weight, jit_compile=cfg.jit_compile,
        )


def _callbacks(cfg, args, monitor):
    run_dir, recipe = args.run_dir, args.recipe
    callback_list = [
        keras.callbacks.TerminateOnNaN(),
        cb.EpochLog(),
        keras.callbacks.CSVLogger(str(run_dir / HISTORY_FILE), append=True),
        keras.callbacks.BackupAndRestore(str(run_dir / CHECKPOINT_DIR), save_freq="epoch", delete_checkpoint=False),
        keras.callbacks.TensorBoard(log_dir=str(run_dir / "logs"), write_graph=False, profile_batch=0),
    ]
    if recipe.schedule == "plateau":
        callback_list.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=monitor, factor=recipe.decay_rate, patience=recipe.plateau_patience, verbose=0
            )
        )
    if cfg.early_stopping:
        callback_list.append(
            keras.callbacks.EarlyStopping(monitor=monitor, patience=cfg.early_stopping, restore_best_weights=True)
        )
    return callback_list + list(cfg.callbacks or [])


def _fit(cfg, args, prep):
    """The ``fit`` engine with the run's callbacks -> seconds spent in ``fit``."""
    monitor = "val_loss" if prep.bundle.val is not None else "loss"
    started = time.perf_counter()
    pipeline.fit_engine(
        prep.train_model, pipeline.training_data(cfg, prep), validation=prep.bundle.val, epochs=args.recipe.epochs,
        callbacks=_callbacks(cfg, args, monitor), verbose=cfg.verbose,
    )
    return time.perf_counter() - started
