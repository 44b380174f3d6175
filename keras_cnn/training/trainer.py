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

The run goes through the one lifecycle (`keras_cnn.training.lifecycle`); `FitRun` is its
``fit`` engine.
"""

from __future__ import annotations

import dataclasses
import time

from keras_cnn.training import pipeline
from keras_cnn.training.config import RunConfig, TrainResult, build_config
from keras_cnn.training.rundir import CHECKPOINT_DIR, HISTORY_FILE, RunState

__all__ = ["FitRun", "RunConfig", "TrainResult", "run", "train"]


def train(model_or_config=dataclasses.MISSING, data=dataclasses.MISSING, **fields):
    """Train a registered network on a dataset with its paper recipe; evaluate; export.

    The network is ``raw pixels -> Preprocess(entry.preprocessing) -> registry model`` so the
    saved and exported models take raw 0..255 pixels. Families with auxiliary classifiers
    (GoogLeNet: Szegedy et al., 2015; Inception-v3: Szegedy et al., 2016) train with them,
    weighted by ``recipe.aux_loss_weight``, and are saved without them (`strip_aux`).

    Args:
        model_or_config: a registered model name (default "lenet5") or a `RunConfig` (then
            nothing else is passed).
        data: the data source (default "digits").
        **fields: the other fields of `RunConfig` (epochs, batch_size, augment, out_dir, resume,
            strategy, ...: each is documented there).

    Returns:
        A `TrainResult`.

    Raises:
        ValueError: an invalid argument (named in the message), data with fewer than two
            classes or an empty split, ``out_dir`` holding another run, files without a
            ``config.json`` or a corrupt run file, or in use by another process.

    Example:
        >>> result = train("lenet5", "digits", epochs=30, export=False)
        >>> result.metrics["accuracy"] > 0.98
        True
    """
    if isinstance(model_or_config, RunConfig):
        if data is not dataclasses.MISSING or fields:
            raise TypeError("train(config) takes no other argument; use dataclasses.replace(config, ...)")
        return run(model_or_config)
    return run(build_config(RunConfig, {"model": model_or_config, "data": data}, fields))


def _is_multi_worker(strategy):
    if isinstance(strategy, str):
        return strategy == "multi_worker"
    from keras_cnn.training.distributed import is_multi_worker_strategy

    return is_multi_worker_strategy(strategy)


def run(cfg):
    """Run a `RunConfig` through the lifecycle: check -> open -> prepare -> engine -> finish.

    ``strategy="multi_worker"`` goes to the custom loop of `keras_cnn.training.distributed`
    (Keras' ``fit`` cannot run under ``MultiWorkerMirroredStrategy``), before any TensorFlow op
    runs: that strategy must be created first.
    """
    if _is_multi_worker(cfg.strategy):
        from keras_cnn.training.distributed import run_multi_worker

        return run_multi_worker(cfg)
    return FitRun(cfg).execute()


def _strategy(strategy):
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.Strategy):
        return strategy
    if strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


class FitRun(pipeline.TrainingRun):
    """The ``fit`` engine (strategies "default", "mirrored" or a single-worker Strategy)."""

    engine_name = "fit"

    def strategy_config(self):
        strategy = self.cfg.strategy
        return {"strategy": strategy if isinstance(strategy, str) else type(strategy).__name__}

    def prepare(self, state):
        prep = super().prepare(state)
        self.dist = _strategy(self.cfg.strategy)
        pipeline.prepare(self.cfg, self.args, prep, self.dist)
        with self.dist.scope():
            from keras_cnn.training.engine import compile_model

            recipe = self.args.recipe
            compile_model(prep.train_model, prep.optimizer, label_smoothing=recipe.label_smoothing,
                          aux_loss_weight=recipe.aux_loss_weight, jit_compile=self.cfg.jit_compile)
        return prep

    def begin(self, prepared, state):
        if not state.done_epochs:
            state = RunState("new")  # nothing checkpointed yet: start clean (no stale history rows)
        super().begin(prepared, state)
        if state.done_epochs:
            from keras_cnn.training.callbacks import trim_history

            trim_history(self.run_dir / HISTORY_FILE, state.done_epochs)

    def engine(self, prep, state):
        return {"fit_seconds": _fit(self.cfg, self.args, prep), "resumed": bool(state.done_epochs)}

    def finish(self, prep, outcome):
        import keras

        return pipeline.finish(
            self.cfg, self.args, prep, status="resumed" if outcome["resumed"] else "trained", started=self.started,
            fit_seconds=outcome["fit_seconds"],
            optimizer_steps=int(keras.ops.convert_to_numpy(prep.train_model.optimizer.iterations)),
            extra={"jit_compile": bool(prep.train_model.jit_compile)},  # Keras turns XLA off for layers without support
        )


def _callbacks(cfg, args, monitor):
    import keras

    from keras_cnn.training import callbacks as cb

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
    from keras_cnn.training.engine import fit_engine

    monitor = "val_loss" if prep.bundle.val is not None else "loss"
    started = time.perf_counter()
    fit_engine(
        prep.train_model, pipeline.training_data(args, prep), validation=prep.bundle.val, epochs=args.recipe.epochs,
        callbacks=_callbacks(cfg, args, monitor), verbose=cfg.verbose,
    )
    return time.perf_counter() - started
