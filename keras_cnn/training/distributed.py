"""Multi-worker data-parallel training: ``tf.distribute.MultiWorkerMirroredStrategy`` + a custom loop.

``train(..., strategy="multi_worker")`` (or `train_multi_worker`) trains one model on every
worker of a cluster described by the ``TF_CONFIG`` environment variable, synchronously: each
step, every replica (one per local device of every worker) runs the training model on its slice
of the *global* batch, the gradients are summed across all replicas with collective all-reduce,
and the same update is applied everywhere, so every worker holds identical weights.

Keras' ``model.fit`` does not run under ``MultiWorkerMirroredStrategy`` with Keras 3.15 /
TensorFlow 2.21 (keras-team/keras#20585), so this module has its own loop (``strategy.run``). It
trains exactly what ``fit`` trains in `keras_cnn.training.train`:

* the same training model (``raw pixels -> augmenter -> Preprocess -> network``, the augmenter
  applied with ``training=True`` inside the step) and the same recipe: optimizer, learning-rate
  schedule (per epoch, evaluated per step), weight decay, label smoothing, auxiliary-loss weight,
  gradient clipping (``clipnorm`` is applied to the *global* gradient, after the all-reduce, as
  on one device; Keras' optimizer would clip each replica's partial gradient before summing);
* the per-example losses are summed and divided by the number of examples in the *global* batch
  (``tf.nn.compute_average_loss(global_batch_size=...)``, the actual count of the step, so that
  a final partial batch is averaged correctly); auxiliary-head losses are added with the
  recipe's weight; regularisation losses are divided by the number of replicas
  (``tf.nn.scale_regularization_loss``) so that their gradient, summed over replicas, counts once;
* loss and accuracy are summed over all workers each step (``strategy.reduce``), so the history
  is that of the global batch, identical on every worker.

Data. Every worker builds the same (seeded) pipeline; ``experimental_distribute_dataset`` with the
``DATA`` auto-shard policy splits each global batch into one slice per replica and each worker
keeps its own slices, so the workers see disjoint parts of every global batch. (``FILE`` sharding
does not apply: the pipelines start from in-memory arrays or file-path tensors.) The pipeline
must be deterministic across workers: `keras_cnn.data.load_data` shuffles with ``seed``.

Fault tolerance. At the end of every epoch every worker saves a checkpoint (model variables,
optimizer state, epoch counter; ``tf.train.CheckpointManager``): the chief into
``run_dir/checkpoints``, the other workers into a temporary directory that is removed at once
(every worker must take part in saving; only the chief's copy is kept). When the job is restarted
(after a worker failed, all workers are restarted, as usual with synchronous training) every
worker restores the newest checkpoint it can read and continues with the next epoch; if the
workers disagree (``out_dir`` not on a shared file system, so only the chief sees its
checkpoint) the chief's state is broadcast to all workers first. A killed run loses at most the
unfinished epoch. The chief alone writes ``config.json``, ``history.csv``, TensorBoard logs,
plots, ``metrics.json``, ``model.keras`` and the SavedModel export.

Reference: Goyal et al., 2017, "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour"
(synchronous data parallelism; the loss is normalised by the global batch, not the local one).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_cnn._io import atomic_file
from keras_cnn._tf_config import is_chief_task
from keras_cnn._validation import check_choice
from keras_cnn.training import pipeline
from keras_cnn.training.config import RunConfig, TrainResult, build_config, check
from keras_cnn.training.config import check_cluster_timeout as _check_timeout
from keras_cnn.training.cluster import (
    DEFAULT_CLUSTER_TIMEOUT,
    TF_CONFIG_EXAMPLE,  # noqa: F401  (re-exported)
    ClusterTimeoutError,
    SignalGuard,
    WorkerLostError,
    WorkerInfo,
    cluster_info,
    wait_for_peers,
)
from keras_cnn.training.rundir import HISTORY_FILE, RunState

MULTI_WORKER = "multi_worker"
COMMUNICATIONS = ("auto", "ring", "nccl")
CHECKPOINT_DIR = "checkpoints"
CHECKPOINTS_KEPT = 2
logger = logging.getLogger(__name__)

__all__ = [
    "MULTI_WORKER",
    "ClusterTimeoutError",
    "WorkerInfo",
    "WorkerLostError",
    "append_history",
    "cluster_info",
    "is_multi_worker_strategy",
    "multi_worker_strategy",
    "MultiWorkerRun",
    "run_multi_worker",
    "train_multi_worker",
    "worker_info",
]


# --------------------------------------------------------------------------------------------
# The cluster.
# --------------------------------------------------------------------------------------------


def is_multi_worker_strategy(strategy):
    """True for a ``tf.distribute.MultiWorkerMirroredStrategy`` (which ``fit`` cannot use)."""
    return isinstance(strategy, (tf.distribute.MultiWorkerMirroredStrategy,
                                 tf.distribute.experimental.MultiWorkerMirroredStrategy))


def multi_worker_strategy(communication="auto", *, cluster_timeout=DEFAULT_CLUSTER_TIMEOUT):
    """A ``MultiWorkerMirroredStrategy`` for the cluster in ``TF_CONFIG`` (one worker without it).

    Must run before TensorFlow executes any operation in the process (TensorFlow configures its
    collective ops at start-up); `train` with ``strategy="multi_worker"`` creates it first thing.
    With two or more workers it first waits for the others (`keras_cnn.training.cluster.wait_for_peers`:
    a line every 10 s names the workers not yet reachable), then creates the strategy, which
    blocks until every worker has joined; SIGTERM / SIGINT end the process within a second
    meanwhile. Without ``TF_CONFIG`` it says that the process trains as a single worker.

    Args:
        communication: collective implementation, "auto", "ring" (gRPC, CPUs) or "nccl" (GPUs).
        cluster_timeout: seconds to wait for the other workers. Default 300.

    Raises:
        ValueError: bad ``TF_CONFIG``, ``communication`` or ``cluster_timeout``.
        RuntimeError: TensorFlow was already initialised in this process.
        ClusterTimeoutError: the other workers were not reachable within ``cluster_timeout``.
        WorkerLostError: a worker failed during the run (restart all workers to resume).

    Example:
        >>> strategy = multi_worker_strategy()   # first statement of the program
        >>> train("resnet18", "tfds:cifar10", strategy=strategy)
    """
    from keras_cnn._compat.tensorflow_ import eager_context_initialized

    check_choice("communication", communication, COMMUNICATIONS)
    _check_timeout(cluster_timeout)
    info = cluster_info()  # a clear error for a malformed TF_CONFIG
    late = RuntimeError(
        "strategy='multi_worker' must be set up before TensorFlow runs any operation in this process "
        "(TensorFlow configures collective ops at start-up): call train(..., strategy='multi_worker') or "
        "keras_cnn.training.distributed.multi_worker_strategy() at the start of the program, in a fresh "
        "process."
    )
    if info.num_workers > 1 and eager_context_initialized():
        raise late
    implementation = {
        "auto": tf.distribute.experimental.CommunicationImplementation.AUTO,
        "ring": tf.distribute.experimental.CommunicationImplementation.RING,
        "nccl": tf.distribute.experimental.CommunicationImplementation.NCCL,
    }[communication]
    if info.num_workers <= 1 and not os.environ.get("TF_CONFIG", "").strip():
        logger.info("TF_CONFIG is not set: strategy 'multi_worker' trains in this process as a single worker.")
    what = f"the cluster did not start within cluster_timeout={cluster_timeout!r} s (+60 s)"
    with SignalGuard(enabled=info.num_workers > 1, deadline_seconds=float(cluster_timeout) + 60.0, what=what):
        waited = wait_for_peers(cluster_timeout)
        if info.num_workers > 1:
            logger.info("%s:%s: all %d workers reachable after %.0f s; starting the cluster", info.task_type,
                        info.task_id, info.num_workers, waited)
        try:
            strategy = tf.distribute.MultiWorkerMirroredStrategy(
                communication_options=tf.distribute.experimental.CommunicationOptions(implementation=implementation)
            )
        except RuntimeError as err:
            if "program startup" not in str(err):
                raise
            raise late from err
    return strategy


def worker_info(strategy):
    """`WorkerInfo` of a ``MultiWorkerMirroredStrategy`` (its cluster resolver)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    task_id = getattr(resolver, "task_id", None) or 0
    spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if not spec or task_type is None:
        return WorkerInfo(None, 0, 1, True)
    num_workers = len(spec.get("worker", [])) + len(spec.get("chief", []))
    return WorkerInfo(task_type, int(task_id), num_workers, is_chief_task(spec, task_type, task_id))


# --------------------------------------------------------------------------------------------
# Checkpoints and history.
# --------------------------------------------------------------------------------------------


class _Checkpointer:
    """Every worker saves (collective-safe); only the chief's copy is kept.

    The chief saves into ``run_dir/checkpoints`` with a ``CheckpointManager`` (TensorFlow writes
    the files under temporary names and updates the ``checkpoint`` index last, atomically); the
    other workers save into a fresh temporary directory that is removed right after.
    """

    def __init__(self, checkpoint, directory, *, is_chief):
        self.checkpoint = checkpoint
        self.directory = Path(directory)
        self.is_chief = is_chief
        self._manager = None

    def latest(self):
        return tf.train.latest_checkpoint(str(self.directory)) if self.directory.is_dir() else None

    def save(self, number):
        if self.is_chief:
            if self._manager is None:
                self._manager = tf.train.CheckpointManager(
                    self.checkpoint, str(self.directory), max_to_keep=CHECKPOINTS_KEPT
                )
            return self._manager.save(checkpoint_number=number)
        scratch = tempfile.mkdtemp(prefix="keras_cnn_worker_ckpt-")
        try:
            tf.train.CheckpointManager(self.checkpoint, scratch, max_to_keep=1).save(checkpoint_number=number)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return None


def _history_header(old_header, logs):
    keys = sorted(logs)
    if old_header:
        extra = [k for k in keys if k not in old_header]
        return list(old_header) + extra
    return ["epoch", *keys]


def append_history(path, epoch, logs):
    """Add (or replace) the row of ``epoch`` in history.csv, rewriting the file atomically.

    Same layout as Keras' ``CSVLogger`` in the ``fit`` path: an "epoch" column (0-based), then
    the log keys in sorted order, so `keras_cnn.training.callbacks.read_history` reads both.
    """
    path = Path(path)
    header, rows = None, []
    if path.is_file():
        with open(path, newline="") as handle:
            reader = csv.reader(handle)
            all_rows = list(reader)
        if all_rows:
            header, rows = all_rows[0], [r for r in all_rows[1:] if r]
    header = _history_header(header, logs)
    col = header.index("epoch")
    rows = [r for r in rows if int(float(r[col])) != epoch]
    rows = [r + [""] * (len(header) - len(r)) for r in rows]
    values = {"epoch": epoch, **logs}
    rows.append([values.get(k, "") for k in header])
    rows.sort(key=lambda r: int(float(r[col])))
    with atomic_file(path, "w") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


# --------------------------------------------------------------------------------------------
# The loop.
# --------------------------------------------------------------------------------------------


def _distribute(strategy, dataset):
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(dataset.with_options(options))


def _reduce_gradients_in_loop(optimizer):
    """Make the loop, not the optimizer, sum the gradients across replicas (so that ``clipnorm``
    acts on the global gradient, as on one device): `keras_cnn._compat.keras_`."""
    from keras_cnn._compat.keras_ import disable_optimizer_gradient_all_reduce

    disable_optimizer_gradient_all_reduce(optimizer)


class _Loop:
    """The distributed train / evaluation steps of one training model."""

    def __init__(self, strategy, model, optimizer, *, keys, num_classes, label_smoothing, aux_loss_weight):
        self.strategy = strategy
        self.model = model
        self.optimizer = optimizer
        self.keys = keys
        self.num_classes = num_classes
        self.loss_fn = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing, reduction=None)
        self.weights = {k: (1.0 if k == "predictions" else float(aux_loss_weight)) for k in (keys or [])}
        self._train = tf.function(self._train_step, reduce_retracing=True)
        self._eval = tf.function(self._eval_step, reduce_retracing=True)

    # Per-replica sums: [weighted total loss, per-output losses..., correct, examples, regularisation * examples].
    def metric_names(self):
        outputs = [f"{k}_loss" for k in self.keys] if self.keys else []
        acc = "predictions_accuracy" if self.keys else "accuracy"
        return ["loss", *outputs, acc]

    def _losses(self, outputs, onehot):
        if not self.keys:
            per_example = self.loss_fn(onehot, outputs)
            return per_example, [], outputs
        per_output = [self.loss_fn(onehot, outputs[k]) for k in self.keys]
        total = tf.add_n([self.weights[k] * l for k, l in zip(self.keys, per_output)])
        return total, per_output, outputs["predictions"]

    def _sums(self, per_example, per_output, probs, labels, reg):
        n = tf.cast(tf.shape(labels)[0], tf.float32)
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(probs, axis=-1, output_type=tf.int32), labels), tf.float32))
        sums = [tf.reduce_sum(per_example)] + [tf.reduce_sum(l) for l in per_output]
        return tf.stack([*sums, correct, n, reg * n])

    def _regularization(self):
        losses = self.model.losses
        return tf.add_n([tf.cast(l, tf.float32) for l in losses]) if losses else tf.constant(0.0)

    def _train_replica(self, images, labels):
        ctx = tf.distribute.get_replica_context()
        labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
        onehot = tf.one_hot(labels, self.num_classes)
        # The examples of this step over all replicas (a final batch may be partial or uneven).
        global_batch = ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.shape(labels)[0])
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            outputs = self.model(images, training=True)
            per_example, per_output, probs = self._losses(outputs, onehot)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            reg = self._regularization()
            if self.model.losses:
                loss += tf.nn.scale_regularization_loss(reg)
        grads = tape.gradient(loss, variables)
        present = [i for i, g in enumerate(grads) if g is not None]
        reduced = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [grads[i] for i in present]) if present else []
        self.optimizer.apply_gradients(zip(reduced, [variables[i] for i in present]))
        return self._sums(per_example, per_output, probs, labels, reg)

    def _eval_replica(self, images, labels):
        labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
        outputs = self.model(images, training=False)
        per_example, per_output, probs = self._losses(outputs, tf.one_hot(labels, self.num_classes))
        return self._sums(per_example, per_output, probs, labels, self._regularization())

    def _train_step(self, batch):
        sums = self.strategy.run(self._train_replica, args=tuple(batch))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, sums, axis=None)

    def _eval_step(self, batch):
        sums = self.strategy.run(self._eval_replica, args=tuple(batch))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, sums, axis=None)

    def logs(self, totals, prefix=""):
        """Epoch metrics from the summed step results (global over all workers)."""
        totals = np.asarray(totals, dtype="float64")
        count = max(totals[-2], 1.0)
        names = self.metric_names()
        values = list(totals[: len(names) - 1] / count) + [totals[-3] / count]
        values[0] += totals[-1] / count  # regularisation, weighted by examples like Keras' loss tracker
        return {prefix + k: float(v) for k, v in zip(names, values)}

    def run_epoch(self, dataset, *, train, progbar=None):
        step_fn = self._train if train else self._eval
        totals = None
        for step, batch in enumerate(dataset, start=1):
            sums = step_fn(batch).numpy().astype("float64")
            totals = sums if totals is None else totals + sums
            if progbar is not None:
                progbar.update(step, values=list(self.logs(totals).items()))
        if totals is None:
            raise ValueError("The training data is empty: nothing to train on.")
        return totals


def _broadcast_from_chief(strategy, variables):
    """Give every worker the chief's values of ``variables`` (the chief's replica is replica 0)."""

    def replica_fn():
        ctx = tf.distribute.get_replica_context()
        return [ctx.all_gather(tf.expand_dims(tf.convert_to_tensor(v), 0), axis=0)[0] for v in variables]

    values = strategy.run(tf.function(replica_fn))
    for var, value in zip(variables, values):
        local = strategy.experimental_local_results(value)[0]
        var.assign(local)


def _gather_ints(strategy, values):
    """``[replicas, len(values)]``: the integers ``values`` of every replica (replica order)."""
    local = tf.constant([list(values)], tf.int64)

    def replica_fn():
        return tf.distribute.get_replica_context().all_gather(local, axis=0)

    gathered = strategy.run(tf.function(replica_fn))
    return strategy.experimental_local_results(gathered)[0].numpy()


def _barrier(strategy, info):
    """Every worker waits until all reach this point (the chief has written its files), so that
    they end together and no worker mistakes a finished peer for a failed one."""
    if info.num_workers > 1:
        _gather_ints(strategy, [0])


def _learning_rate(optimizer):
    try:
        return float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    except (TypeError, ValueError):  # pragma: no cover - exotic optimizers
        return float("nan")


@contextlib.contextmanager
def _summary_writers(log_dir, enabled):
    if not enabled:
        yield None
        return
    writers = {
        "train": tf.summary.create_file_writer(str(Path(log_dir) / "train")),
        "validation": tf.summary.create_file_writer(str(Path(log_dir) / "validation")),
    }
    try:
        yield writers
    finally:
        for writer in writers.values():
            writer.close()


def _write_summaries(writers, epoch, logs):
    if writers is None:
        return
    for key, value in logs.items():
        if key in ("epoch_seconds",):
            continue
        split, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
        with writers[split].as_default():
            tf.summary.scalar(f"epoch_{name}", value, step=epoch)
    for writer in writers.values():
        writer.flush()


def train_multi_worker(model_or_config=dataclasses.MISSING, data=dataclasses.MISSING, **fields):
    """`train` on every worker of a ``TF_CONFIG`` cluster with ``MultiWorkerMirroredStrategy``.

    Run the same call (same arguments, same data) in one process per worker, each with its own
    ``TF_CONFIG`` (see `cluster_info`); ``batch_size`` is the *global* batch, split evenly over
    all replicas of all workers. Without ``TF_CONFIG`` it trains in this process alone with the
    same loop. ``train(..., strategy="multi_worker")`` calls this. See the module docstring for
    how losses, gradients, data and checkpoints are handled.

    Args:
        model_or_config: a registered model name or a `keras_cnn.training.RunConfig`.
        data: the data source (default "digits").
        **fields: the other `RunConfig` fields, as in `keras_cnn.training.train`; ``strategy``
            defaults to "multi_worker" (or a ``tf.distribute.MultiWorkerMirroredStrategy``).
            ``mixed_precision`` and ``jit_compile`` are not supported by this loop.
            ``out_dir`` should be on a file system that every worker can read (so that each
            restores the checkpoint itself); otherwise the chief's state is broadcast on resume.
            ``callbacks`` run on *every* worker after the epoch's checkpoint (write files only
            on the chief: `worker_info`).

    While a cluster of two or more workers runs, SIGTERM and SIGINT end the process within a
    second at any stage (`keras_cnn.training.cluster.SignalGuard`); a rerun resumes from the
    last epoch checkpoint.

    Returns:
        A `keras_cnn.training.TrainResult`, on every worker (identical weights and metrics; every
        worker evaluates the test split). On the other workers than the chief nothing is written,
        ``export_path`` is None and ``history`` covers only the epochs run by this process.

    Raises:
        ValueError: an invalid argument or ``TF_CONFIG``, ``out_dir`` holding another run.
        ClusterTimeoutError: the other workers were not reachable within ``cluster_timeout``.
        RuntimeError: TensorFlow was initialised in this process before the strategy was created.

    Example:
        On each of two hosts (``TF_CONFIG`` index 0 and 1)::

            train("resnet18", "tfds:cifar10", image_size=32, batch_size=256, strategy="multi_worker")
    """
    if isinstance(model_or_config, RunConfig):
        if data is not dataclasses.MISSING or fields:
            raise TypeError("train_multi_worker(config) takes no other argument; use dataclasses.replace(config, ...)")
        return run_multi_worker(model_or_config)
    fields.setdefault("strategy", MULTI_WORKER)
    return run_multi_worker(build_config(RunConfig, {"model": model_or_config, "data": data}, fields))


def _check_loop_options(cfg):
    """Checks that need no TensorFlow (it must not run before the strategy exists)."""
    for name in ("mixed_precision", "jit_compile"):
        if getattr(cfg, name) is not False:
            raise ValueError(
                f"`{name}` is not supported with strategy='multi_worker' (the custom loop runs in float32 "
                f"without XLA). Received: {name}={getattr(cfg, name)!r}"
            )
    if isinstance(cfg.strategy, str):
        check_choice("strategy", cfg.strategy, (MULTI_WORKER,))
    elif not is_multi_worker_strategy(cfg.strategy):
        raise ValueError(
            "`strategy` must be 'multi_worker' or a tf.distribute.MultiWorkerMirroredStrategy. "
            f"Received: strategy={cfg.strategy!r}"
        )
    check_choice("communication", cfg.communication, COMMUNICATIONS)  # cluster_timeout: config.check


def run_multi_worker(cfg):
    """`keras_cnn.training.RunConfig` -> `TrainResult` with the multi-worker loop (`MultiWorkerRun`).

    With two or more workers, SIGTERM / SIGINT end the process within a second at any stage
    (`keras_cnn.training.cluster.SignalGuard`); a rerun resumes from the last epoch checkpoint.
    """
    _check_loop_options(cfg)
    args = check(cfg)
    if isinstance(cfg.strategy, str):
        dist = multi_worker_strategy(cfg.communication, cluster_timeout=cfg.cluster_timeout)
    else:
        dist = cfg.strategy
    with SignalGuard(enabled=worker_info(dist).num_workers > 1):
        try:
            return MultiWorkerRun(cfg, args, dist).execute()
        except (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.CancelledError) as err:
            if worker_info(dist).num_workers <= 1:
                raise
            detail = str(getattr(err, "message", err)).strip().splitlines()[0]
            raise WorkerLostError(
                f"A worker of the cluster was lost ({type(err).__name__}: {detail}). The finished epochs are "
                f"checkpointed in {args.run_dir / CHECKPOINT_DIR} (on the chief): restart every worker with the "
                "same command to resume."
            ) from None


def _share(dist, info, values):
    return _gather_ints(dist, values) if info.num_workers > 1 else np.asarray([values])


class MultiWorkerRun(pipeline.TrainingRun):
    """The multi-worker loop's lifecycle: the chief alone locks, opens and writes the run
    directory; what it finds is shared with every worker (a problem anywhere makes every worker
    raise rather than leaving the others blocked in the next collective)."""

    engine_name = MULTI_WORKER

    def __init__(self, cfg, args, dist):
        super().__init__(cfg, args)
        self.dist = dist
        self.info = worker_info(dist)

    def open(self, stack):
        state, problem = RunState("new"), None
        if self.info.is_chief:
            try:
                state = super().open(stack)
            except ValueError as err:
                problem = err
        code = {"new": 0, "resume": 1, "finished": 2}[state.status]
        flags = _share(self.dist, self.info, [code, int(problem is not None)])
        if problem is not None:
            raise problem
        if flags[:, 1].any():
            raise ValueError(
                f"The chief could not open `out_dir`; see its error. Received: out_dir={str(self.run_dir)!r}"
            )
        chief_code = int(flags[:, 0].max())
        if not self.info.is_chief and chief_code:
            state = RunState({1: "resume", 2: "finished"}[chief_code], metrics={"is_chief": False})
        return state

    def finished(self, state):
        if self.info.is_chief:
            return super().finished(state)
        return TrainResult(self.run_dir, None, {}, dict(state.metrics), recipe=self.args.recipe, status="finished")

    def strategy_config(self):
        return {"strategy": MULTI_WORKER, "num_workers": self.info.num_workers,
                "num_replicas": int(self.dist.num_replicas_in_sync)}

    def prepare(self, state):
        prep = super().prepare(state)
        pipeline.prepare(self.cfg, self.args, prep, self.dist)
        with self.dist.scope():
            prep.train_model.compile(optimizer=prep.optimizer)  # model.optimizer for ReduceLROnPlateau & co.; no fit
            prep.optimizer.build(prep.train_model.trainable_variables)
            _reduce_gradients_in_loop(prep.optimizer)
            self.epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        checkpoint = tf.train.Checkpoint(
            model_variables=list(prep.train_model.variables), optimizer=prep.optimizer, epoch=self.epoch_var
        )
        self.checkpointer = _Checkpointer(checkpoint, self.run_dir / CHECKPOINT_DIR, is_chief=self.info.is_chief)
        return prep

    def begin(self, prep, state):
        """Every worker restores (the chief's state wins); then the chief writes config.json."""
        cfg, args, info = self.cfg, self.args, self.info
        self.done = _restore(cfg, args, self.dist, info, prep, self.checkpointer, self.epoch_var,
                             resume=state.status == "resume")
        if info.is_chief:
            super().begin(prep, RunState("resume", done_epochs=self.done) if self.done else RunState("new"))
            if self.done:
                from keras_cnn.training.callbacks import trim_history

                trim_history(args.run_dir / HISTORY_FILE, self.done)

    def engine(self, prep, state):
        loop = _Loop(self.dist, prep.train_model, prep.optimizer, keys=prep.keys, num_classes=len(prep.class_names),
                     label_smoothing=self.args.recipe.label_smoothing,
                     aux_loss_weight=self.args.recipe.aux_loss_weight)
        return _train_epochs(self.cfg, self.args, self.dist, self.info, prep, loop, self.checkpointer,
                             self.epoch_var, self.done)

    def finish(self, prep, outcome):
        history, fit_seconds = outcome
        info, dist = self.info, self.dist
        extra = {
            "jit_compile": False, "strategy": MULTI_WORKER, "num_workers": info.num_workers,
            "num_replicas": int(dist.num_replicas_in_sync),
            "task": f"{info.task_type}:{info.task_id}" if info.task_type else None, "is_chief": info.is_chief,
            "_history": history,
        }
        result = pipeline.finish(
            self.cfg, self.args, prep, status="resumed" if self.done else "trained", started=self.started,
            fit_seconds=fit_seconds, optimizer_steps=int(keras.ops.convert_to_numpy(prep.optimizer.iterations)),
            rebuild=True, chief=info.is_chief, extra=extra,
            export_metadata={"strategy": MULTI_WORKER, "num_workers": info.num_workers},
        )
        _barrier(dist, info)  # the chief has written its files; the workers end together
        return result


def _restore(cfg, args, dist, info, prep, checkpointer, epoch_var, *, resume):
    """Each worker restores the newest checkpoint it can read; the chief's state wins -> epochs done."""
    done, problem = 0, None
    latest = checkpointer.latest() if resume else None
    if latest:
        try:
            checkpointer.checkpoint.restore(latest).assert_existing_objects_matched()
            done = int(epoch_var.numpy())
        except (AssertionError, tf.errors.OpError) as err:
            problem = ValueError(
                f"`out_dir` holds a checkpoint that does not fit this run: {err}. Pass resume=False to start over. "
                f"Received: out_dir={str(args.run_dir)!r}"
            )
    states = _share(dist, info, [done, int(problem is not None)])
    if problem is not None:
        raise problem
    if states[:, 1].any():
        bad = [i for i, flag in enumerate(states[:, 1]) if flag]
        raise ValueError(
            f"Worker(s) {bad} (replica order) could not resume from `out_dir`; see their error. "
            f"Received: out_dir={str(args.run_dir)!r}"
        )
    if states[:, 0].min() != states[:, 0].max():
        state_vars = [*prep.train_model.variables, *prep.optimizer.variables, epoch_var]
        _broadcast_from_chief(dist, state_vars)
        done = int(epoch_var.numpy())
    return done


def _epoch_callbacks(cfg, args, prep, steps, chief):
    monitor = "val_loss" if prep.bundle.val is not None else "loss"
    recipe = args.recipe
    before_checkpoint = []  # callbacks whose state changes must be in the epoch's checkpoint
    if recipe.schedule == "plateau":
        before_checkpoint.append(keras.callbacks.ReduceLROnPlateau(
            monitor=monitor, factor=recipe.decay_rate, patience=recipe.plateau_patience, verbose=0))
    if cfg.early_stopping:
        before_checkpoint.append(keras.callbacks.EarlyStopping(
            monitor=monitor, patience=cfg.early_stopping, restore_best_weights=True))
    params = {"epochs": recipe.epochs, "steps": steps, "verbose": cfg.verbose if chief else 0}
    early = keras.callbacks.CallbackList(before_checkpoint, model=prep.train_model, **params)
    user = keras.callbacks.CallbackList(list(cfg.callbacks or []), model=prep.train_model, **params)
    return early, user


def _train_epochs(cfg, args, dist, info, prep, loop, checkpointer, epoch_var, done):
    """The loop engine: epochs ``done..epochs-1`` -> (this process's history, seconds)."""
    steps, chief, epochs = prep.steps_per_epoch, info.is_chief, args.recipe.epochs
    dist_train = _distribute(dist, pipeline.training_data(args, prep))
    dist_val = _distribute(dist, prep.bundle.val) if prep.bundle.val is not None else None
    early, user = _epoch_callbacks(cfg, args, prep, steps, chief)
    show = chief and cfg.verbose > 0
    history, started = {}, time.perf_counter()
    prep.train_model.stop_training = False
    early.on_train_begin()
    user.on_train_begin()
    with _summary_writers(args.run_dir / "logs", chief) as writers:
        for epoch in range(done, epochs):
            early.on_epoch_begin(epoch)
            user.on_epoch_begin(epoch)
            epoch_started = time.perf_counter()
            progbar = None
            if show:
                from keras_cnn._compat.keras_ import print_progress  # where fit writes its heading

                print_progress(f"Epoch {epoch + 1}/{epochs}")
                progbar = keras.utils.Progbar(steps, verbose=cfg.verbose, stateful_metrics=loop.metric_names())
            logs = loop.logs(loop.run_epoch(dist_train, train=True, progbar=progbar if cfg.verbose == 1 else None))
            if dist_val is not None:
                logs.update(loop.logs(loop.run_epoch(dist_val, train=False), prefix="val_"))
            logs["learning_rate"] = _learning_rate(prep.optimizer)
            logs["epoch_seconds"] = time.perf_counter() - epoch_started
            if not np.isfinite(logs["loss"]):
                prep.train_model.stop_training = True  # as keras.callbacks.TerminateOnNaN
            early.on_epoch_end(epoch, logs)
            if chief:
                append_history(args.run_dir / HISTORY_FILE, epoch, logs)
                _write_summaries(writers, epoch, logs)
            epoch_var.assign(epoch + 1)
            checkpointer.save(epoch + 1)
            for key, value in {"epoch": epoch, **logs}.items():
                history.setdefault(key, []).append(value)
            if progbar is not None:
                progbar.update(steps, values=list(logs.items()), finalize=True)
            user.on_epoch_end(epoch, logs)
            if prep.train_model.stop_training:
                break
    early.on_train_end()
    user.on_train_end()
    return history, time.perf_counter() - started
