"""The Ray engine: the multi-worker run of `keras_cnn.training`, launched on a Ray cluster.

``keras-cnn train ... --engine ray --workers N`` (or `run_on_ray`) is a launcher, not another
training loop. Ray Train's ``TensorflowTrainer`` starts N worker actors and sets ``TF_CONFIG`` on
each (worker 0, Ray's rank 0, is the chief); every worker then runs the *same* run as
``keras-cnn train --strategy multi_worker`` launched by hand: `keras_cnn.training.run` with the
run's `RunConfig` and ``strategy="multi_worker"``, i.e. ``MultiWorkerMirroredStrategy`` and the
custom loop of `keras_cnn.training.distributed` (one fingerprint, chief-only writes, a checkpoint
after every epoch, the same export at the end).

Failures. When a worker dies, Ray Train stops the whole worker group and starts a new one
(``FailureConfig(max_failures)``), and the new workers resume from the run directory's last
epoch checkpoint, so every finished epoch runs once; the unfinished one runs again.

Storage. The run directory (``out_dir``) must be one directory that every worker reaches: any
path on a single machine; on several machines a shared file system (NFS, EFS, Filestore, a
mounted bucket). Each worker checks this before training: the chief writes a probe file into
the run directory's parent and every worker must read it. ``storage`` is Ray Train's own
``storage_path`` (its run records), a directory or a URI (``s3://``, ``gs://``).

Scheduling. Before the trainer starts, the N workers' resources are reserved with a placement
group; if the cluster cannot give them within ``cluster_timeout`` seconds (for example GPUs it
does not have) the run ends with `ClusterTimeoutError` naming what was asked and what the
cluster has, instead of waiting for ever.

Stopping. SIGTERM / SIGINT on the driver raise `KeyboardInterrupt` in it; leaving the run
shuts the Ray job down, which ends every worker actor; the run directory keeps the last epoch
checkpoint, and the same command resumes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import signal
import time
import uuid
from pathlib import Path

from keras_cnn.training.cluster import ClusterTimeoutError, WorkerLostError

logger = logging.getLogger(__name__)

EXTRA = "ray"
INSTALL_HINT = "pip install 'keras-cnn[ray]'"
PROBE_PREFIX = ".keras_cnn-storage-probe-"
USER_ERRORS = (ValueError, FileNotFoundError)
# Ray Train: worker prints go to the driver once (not also through its logger).
RAY_TRAIN_ENV = {"RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}

__all__ = ["RayOptions", "check_options", "require_ray", "run_on_ray", "train_on_ray"]


@dataclasses.dataclass(frozen=True)
class RayOptions:
    """Where and how a run is placed on a Ray cluster.

    Attributes:
        workers: number of training workers (Ray Train worker actors). Default 2.
        address: None (default): start a local Ray cluster for the run and stop it after;
            "auto": the running cluster of this machine (``ray start``); "HOST:PORT": a cluster's
            GCS address; "ray://HOST:10001": a Ray Client address.
        cpus_per_worker: CPUs reserved per worker. Default 1.
        gpus_per_worker: GPUs reserved per worker. Default 0.
        storage: Ray Train's ``storage_path`` (its run records): a directory or a URI. Default:
            Ray's (``~/ray_results``).
        max_failures: worker-group failures survived (-1: any number). Default 2.
        cluster_timeout: seconds to wait for the workers' resources, and for the workers to
            reach each other. Default 300.
    """

    workers: int = 2
    address: str | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    storage: str | None = None
    max_failures: int = 2
    cluster_timeout: float = 300.0


def _number(name, value, *, minimum, strict):
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or (value <= minimum if strict else value < minimum):
        bound = f"> {minimum}" if strict else f">= {minimum}"
        raise ValueError(f"`{name}` must be a number {bound}. Received: {name}={value!r}")


def check_options(options):
    """Check `RayOptions` (no Ray needed) -> the options.

    Raises:
        ValueError: naming the field, the value and what is accepted.
    """
    if not isinstance(options, RayOptions):
        raise ValueError(f"`ray` must be a RayOptions. Received: ray={options!r}")
    if isinstance(options.workers, bool) or not isinstance(options.workers, int) or options.workers < 1:
        raise ValueError(f"`workers` must be an integer >= 1. Received: workers={options.workers!r}")
    _number("cpus_per_worker", options.cpus_per_worker, minimum=0, strict=True)
    _number("gpus_per_worker", options.gpus_per_worker, minimum=0, strict=False)
    _number("cluster_timeout", options.cluster_timeout, minimum=0, strict=True)
    failures = options.max_failures
    if isinstance(failures, bool) or not isinstance(failures, int) or failures < -1:
        raise ValueError(f"`max_failures` must be an integer >= -1 (-1: no limit). Received: max_failures={failures!r}")
    address = options.address
    if address is not None and (not isinstance(address, str) or not address.strip()
                                or (address != "auto" and ":" not in address)):
        raise ValueError(
            "`ray_address` must be 'auto', 'HOST:PORT' or 'ray://HOST:PORT' (none: a local cluster for the run). "
            f"Received: ray_address={address!r}"
        )
    if options.storage is not None and (not isinstance(options.storage, (str, os.PathLike)) or not str(options.storage)):
        raise ValueError(f"`storage` must be a directory or a URI. Received: storage={options.storage!r}")
    return options


def require_ray():
    """Import Ray Train's TensorFlow trainer -> the ``ray`` module.

    Raises:
        ValueError: Ray is not installed (one line naming the extra).
    """
    try:
        import ray
        import ray.train.tensorflow  # noqa: F401
    except ImportError as err:
        raise ValueError(
            f"`engine` 'ray' needs Ray Train, which is not installed ({err.name or err}): {INSTALL_HINT}. "
            "Received: engine='ray'"
        ) from None
    return ray


# --------------------------------------------------------------------------------------------
# The driver: the cluster, the reservation, the trainer.
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def ray_cluster(options, *, namespace="keras_cnn"):
    """Connect to ``options.address``, or start a local cluster sized for the workers; always
    disconnect (stopping the local cluster) on the way out, also on SIGTERM / Ctrl-C."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    from keras_cnn import USER_TF_CPP_MIN_LOG_LEVEL

    # TensorFlow's C++ start-up lines, once per actor, unless the user asked for them.
    job_env = {"env_vars": {"TF_CPP_MIN_LOG_LEVEL": USER_TF_CPP_MIN_LOG_LEVEL or "2"}}
    if options.address is None:
        cpus = math.ceil(options.workers * options.cpus_per_worker) + 1  # +1: the tuning oracle / spare
        logger.info("starting a local Ray cluster (%d CPUs) for the run", cpus)
        ray.init(address="local", num_cpus=cpus, namespace=namespace, runtime_env=job_env, configure_logging=False)
    else:
        ray.init(address=options.address, namespace=namespace, runtime_env=job_env, configure_logging=False)
    try:
        with _signals_interrupt():
            yield ray
    finally:
        ray.shutdown()


@contextlib.contextmanager
def _signals_interrupt():
    """SIGTERM raises `KeyboardInterrupt` in the driver too (as Ctrl-C does), so that leaving the
    run shuts the Ray job and its workers down; the SIGINT handler Ray Train installs is removed
    afterwards."""
    import threading

    def interrupt(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def bundle_of(options):
    """The resources of one worker, as Ray names them."""
    bundle = {"CPU": float(options.cpus_per_worker)}
    if options.gpus_per_worker:
        bundle["GPU"] = float(options.gpus_per_worker)
    return bundle


def reserve(ray, options, *, bundles=None, what="training workers"):
    """Wait (at most ``options.cluster_timeout``) until the cluster can place ``bundles`` (default:
    one per worker), then release the reservation for the run to take.

    Raises:
        ClusterTimeoutError: naming the resources asked for and those the cluster has.
    """
    from ray.util.placement_group import placement_group, remove_placement_group

    bundles = [bundle_of(options)] * options.workers if bundles is None else bundles
    group = placement_group([dict(b) for b in bundles], strategy="PACK")
    try:
        ray.get(group.ready(), timeout=options.cluster_timeout)
    except ray.exceptions.GetTimeoutError:
        have = {k: v for k, v in sorted(ray.cluster_resources().items()) if k in ("CPU", "GPU")}
        raise ClusterTimeoutError(
            f"The Ray cluster could not place {len(bundles)} {what} ({', '.join(map(str, bundles))}) within "
            f"cluster_timeout={options.cluster_timeout!r} s: it has {have} in all on {len(ray.nodes())} node(s). "
            "Ask for less (workers, cpus_per_worker, gpus_per_worker) or add nodes."
        ) from None
    finally:
        remove_placement_group(group)


def _resolved(cfg):
    """The run's config with paths absolute (the workers' working directory is not the driver's)
    and the multi-worker strategy."""
    from keras_cnn.training import pipeline

    run_dir = Path(cfg.out_dir) if cfg.out_dir is not None else Path("runs") / cfg.model
    fields = {"out_dir": str(run_dir.resolve()), "strategy": "multi_worker"}
    if isinstance(cfg.export_dir, (str, os.PathLike)):
        fields["export_dir"] = str(Path(cfg.export_dir).resolve())
    if isinstance(cfg.data, (str, os.PathLike)) and Path(cfg.data).is_dir():
        fields["data"] = str(Path(cfg.data).resolve())
    if not isinstance(cfg.strategy, str) or cfg.strategy not in ("default", "multi_worker"):
        raise ValueError(
            "`strategy` must be 'multi_worker' (or left at 'default') with engine 'ray': each Ray worker runs "
            f"the multi-worker loop. Received: strategy={cfg.strategy!r}"
        )
    resolved = dataclasses.replace(cfg, **fields)
    pipeline.check(dataclasses.replace(resolved))  # argument errors now, before a cluster starts
    return resolved


def run_on_ray(cfg, options=None):
    """Run a `keras_cnn.training.RunConfig` on a Ray cluster, one multi-worker run over N workers.

    Args:
        cfg: the run's `RunConfig` (``strategy`` "default" or "multi_worker"; the run uses the
            multi-worker loop). ``cluster_timeout`` is taken from ``options``.
        options: `RayOptions` (default: 2 workers on a local cluster started for the run).

    Returns:
        A `keras_cnn.training.TrainResult` from the chief: ``model`` is None (the model is
        ``run_dir/model.keras``); ``history``, ``metrics``, ``export_path`` and ``status`` as
        `keras_cnn.training.train` returns them.

    Raises:
        ValueError: a bad argument, Ray not installed, or the run directory not reachable by
            every worker.
        ClusterTimeoutError: the workers could not be placed within ``cluster_timeout``.
        WorkerLostError: workers kept failing after ``max_failures`` restarts.
        KeyboardInterrupt: SIGTERM / SIGINT (the workers are stopped; the run resumes on a rerun).
    """
    options = check_options(options if options is not None else RayOptions())
    cfg = _resolved(dataclasses.replace(cfg, cluster_timeout=float(options.cluster_timeout)))
    with ray_cluster(options) as ray:
        reserve(ray, options)
        started = time.monotonic()
        report = _fit(ray, cfg, options)
    logger.info("Ray run of %d workers ended after %.1f s", options.workers, time.monotonic() - started)
    return _result(cfg, report)


def train_on_ray(model_or_config="lenet5", data="digits", *, ray=None, **fields):
    """`run_on_ray` with `keras_cnn.training.train`'s arguments (or a `RunConfig`).

    Example:
        >>> train_on_ray("lenet5", "digits", epochs=3, ray=RayOptions(workers=2))
    """
    from keras_cnn.training import RunConfig

    if isinstance(model_or_config, RunConfig):
        cfg = dataclasses.replace(model_or_config, **fields)
    else:
        cfg = RunConfig(model=model_or_config, data=data, **fields)
    return run_on_ray(cfg, ray)


class Results:
    """A Ray actor the chief hands its result to (Ray Train keeps only reports with a checkpoint)."""

    def __init__(self):
        self.report = None

    def put(self, report):
        self.report = report

    def get(self):
        return self.report


def _fit(ray, cfg, options):
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.tensorflow import TensorflowTrainer

    for name, value in RAY_TRAIN_ENV.items():  # read by Ray Train's controller and workers
        os.environ.setdefault(name, value)
    os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", str(float(options.cluster_timeout)))
    results = ray.remote(num_cpus=0)(Results).remote()
    trainer = TensorflowTrainer(
        worker_loop,
        train_loop_config={"config": cfg, "probe": f"{PROBE_PREFIX}{uuid.uuid4().hex}", "results": results},
        scaling_config=ScalingConfig(num_workers=options.workers, use_gpu=bool(options.gpus_per_worker),
                                     resources_per_worker=bundle_of(options)),
        run_config=RunConfig(
            name=f"keras_cnn-{Path(cfg.out_dir).name}-{uuid.uuid4().hex[:8]}",
            storage_path=None if options.storage is None else str(options.storage),
            failure_config=FailureConfig(max_failures=options.max_failures, controller_failure_limit=0),
        ),
    )
    try:
        outcome = trainer.fit()
    except Exception as err:  # noqa: BLE001 - Ray's TrainingFailedError and kin: one clear error
        if isinstance(err, KeyboardInterrupt):
            raise
        raise WorkerLostError(
            f"The Ray run failed after max_failures={options.max_failures!r} restart(s): "
            f"{str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}. The finished epochs are "
            f"checkpointed in {cfg.out_dir}: the same command resumes."
        ) from err
    report = ray.get(results.get.remote())
    if report is None and getattr(outcome, "error", None) is None:
        # Ray Train's own Ctrl-C handler aborts the run and returns: the workers are gone.
        raise KeyboardInterrupt("SIGINT")
    if report is None:
        raise WorkerLostError(f"The Ray run ended without a result from its chief (worker 0): {outcome.error}")
    if report.get("error"):
        kind = FileNotFoundError if report["error"] == "FileNotFoundError" else ValueError
        raise kind(report["message"])
    return report


def _result(cfg, report):
    from keras_cnn.training import TrainResult

    return TrainResult(
        run_dir=Path(report.get("run_dir", cfg.out_dir)), model=None, history=report.get("history", {}),
        metrics=report.get("metrics", {}),
        export_path=Path(report["export_path"]) if report.get("export_path") else None,
        status=report.get("status", "trained"),
    )


# --------------------------------------------------------------------------------------------
# The worker.
# --------------------------------------------------------------------------------------------


def check_shared_storage(run_dir, probe, *, rank, barrier):
    """Every worker must reach the run directory: the chief writes a probe file beside it, every
    worker reads it (``barrier()`` between the steps).

    Raises:
        ValueError: this worker does not see the chief's file (not a shared file system).
    """
    import socket

    path = Path(run_dir).parent / probe
    if rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(socket.gethostname())
    barrier()
    seen = path.is_file()
    barrier()
    if rank == 0:
        path.unlink(missing_ok=True)
    if not seen:
        raise ValueError(
            f"`out_dir` must be on a file system every Ray worker reaches (NFS, EFS, Filestore, a mounted bucket): "
            f"worker {rank} on {socket.gethostname()} does not see the file the chief wrote in {path.parent}. "
            f"Received: out_dir={str(run_dir)!r}"
        )


def _summary(result):
    """What the driver's `TrainResult` needs (the model stays in the run directory)."""
    return {
        "run_dir": str(result.run_dir), "status": result.status, "metrics": dict(result.metrics),
        "history": dict(result.history or {}),
        "export_path": str(result.export_path) if result.export_path is not None else None,
    }


def worker_loop(loop_config):
    """What each Ray Train worker runs: the shared-storage check, then `keras_cnn.training.run`
    with the multi-worker strategy (``TF_CONFIG`` is set by Ray Train), then one report.

    Argument errors are reported, not raised, so that Ray does not restart the workers for them.
    """
    os.environ.pop("TF_USE_LEGACY_KERAS", None)  # set by Ray Train for tf.keras; keras_cnn uses Keras 3
    logging.getLogger("tensorflow").setLevel(logging.WARNING)  # not a line per collective op
    import ray.train
    from ray.train.collective import barrier

    cfg = loop_config["config"]
    rank = ray.train.get_context().get_world_rank()
    try:
        check_shared_storage(cfg.out_dir, loop_config["probe"], rank=rank, barrier=barrier)
        from keras_cnn.training import run

        report = _summary(run(cfg))
    except USER_ERRORS as err:
        report = {"error": type(err).__name__, "message": str(err)}
    if rank == 0:
        ray.get(loop_config["results"].put.remote(report))
    ray.train.report({"status": report.get("status", "error")})
