"""The training run's steps, shared by the ``fit`` engine (`keras_cnn.training.trainer`) and the
multi-worker loop (`keras_cnn.training.distributed`): `TrainingRun` is their `Lifecycle`.

* open: the run fingerprint (`fingerprint`; fields: `keras_cnn.training.rundir`);
* prepare: load the data (at least two classes, no empty split: `check_bundle`), build the
  augmenter, network, training model and optimizer (`Prepared`);
* begin: ``config.json``; a resumed run says from which epoch;
* finish: the inference model, evaluation, ``model.keras``, plots, export, then
  `keras_cnn.training.lifecycle.complete` (``metrics.json``, checkpoints, ``README.txt``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import sys
import tempfile
import time
from pathlib import Path

from keras_cnn._io import usual_permissions
from keras_cnn.training import rundir
from keras_cnn.training.config import TrainResult, check
from keras_cnn.training.lifecycle import Lifecycle, complete

logger = logging.getLogger(__name__)


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
        "augment_on": args.augment_on if args.spec else None,  # irrelevant without augmentation
        "seed": cfg.seed,
        "max_examples": cfg.max_examples,
        "validation_split": cfg.validation_split,
        "early_stopping": cfg.early_stopping,
        "mixed_precision": cfg.mixed_precision,
        "engine": engine,
    }


def finished_result(cfg, args, state):
    """The stored `TrainResult` of a finished run (nothing trained, nothing exported)."""
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
        logger.info("data: skipped %d unreadable image file(s): %s", len(skipped), shown)
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
        "model_kwargs": dict(cfg.model_kwargs or {}), "augment": args.spec, "augment_on": args.augment_on,
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
                prep.network, augmenter=prep.augmenter if args.augment_on == "device" else None,
                float32_outputs=cfg.mixed_precision,
            )
        prep.optimizer = build_optimizer(
            args.recipe, steps_per_epoch=prep.steps_per_epoch, batch_size=args.recipe.batch_size,
            epochs=args.recipe.epochs,
        )
    return prep


def training_data(args, prep):
    """The training dataset, with the augmenter mapped in on the CPU when ``augment_on="cpu"``."""
    if prep.augmenter is not None and args.augment_on == "cpu":
        from keras_cnn.data.augment import cpu_augment

        return cpu_augment(prep.bundle.train, prep.augmenter)
    return prep.bundle.train


def begin(cfg, args, prep, state):
    """Write the run directory's start (``config.json``); say whether the run resumes."""
    rundir.start_run_dir(args.run_dir, prep.config, state=state)
    if state.status == "resume" and state.done_epochs:
        logger.info("%s: resuming from epoch %d of %d (same run fingerprint)", args.run_dir, state.done_epochs,
                    args.recipe.epochs)


# ---------------------------------------------------------------------------------------- finish
def save_keras_model(model, path):
    """``model.save`` to a temporary sibling (usual permissions), then rename into place."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.tmp-", suffix=".keras", dir=path.parent)
    os.close(fd)
    try:
        model.save(tmp)
        usual_permissions(tmp)  # mkstemp creates 0600; a saved model is meant to be shared
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
        logger.info("%s: exported by this run before it was stopped; not exported again", earlier)
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
    """Evaluate, save, plot, export; then `complete` (metrics.json, checkpoints, README.txt)."""
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
    complete(run_dir, metrics, title=f"keras-cnn run: {cfg.model} on {prep.config['data']}",
             keep_checkpoints=cfg.keep_checkpoints, report={"model": inference, "data": prep.bundle})
    return TrainResult(run_dir, inference, history, metrics, export_path=export_path, recipe=args.recipe,
                       status=status)


def stdout_is_terminal():
    """True when stdout is a terminal (progress bars); else one line per epoch suits logs better."""
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


class TrainingRun(Lifecycle):
    """A `RunConfig`'s lifecycle: the steps both engines share. Subclasses: the ``fit`` engine
    (`keras_cnn.training.trainer.FitRun`) and the multi-worker loop
    (`keras_cnn.training.distributed.MultiWorkerRun`)."""

    engine_name = "fit"

    def __init__(self, cfg, args=None):
        self.cfg = cfg
        self.args = args if args is not None else check(cfg)
        self.run_dir = self.args.run_dir
        self.resume = cfg.resume
        self.started = time.perf_counter()
        if not isinstance(cfg.data, (str, os.PathLike)) and not hasattr(cfg.data, "class_names"):
            raise ValueError(
                f"`data` must be a source string, a directory or a DataBundle. Received: data={cfg.data!r}"
            )
        self._fingerprint = None

    def fingerprint(self):
        if self._fingerprint is None:
            self._fingerprint = fingerprint(self.cfg, self.args, self.engine_name)
        return self._fingerprint

    def finished(self, state):
        return finished_result(self.cfg, self.args, state)

    def strategy_config(self):
        """The strategy fields of ``config.json``."""
        raise NotImplementedError

    def prepare(self, state):
        return load(self.cfg, self.args, self.fingerprint(), self.strategy_config())

    def begin(self, prepared, state):
        begin(self.cfg, self.args, prepared, state)
