"""A keras-tuner search on a Ray cluster: the chief (oracle) and N tuner workers as Ray actors.

``keras-cnn tune ... --engine ray --workers N`` (or `tune_on_ray`) places keras-tuner's own
distributed search on Ray: one actor runs `keras_cnn.tuning.tune` as the chief (it serves the
oracle over gRPC at its node's address, runs no trial, and at the end writes the report,
evaluates, saves and exports the best model), N actors run it as workers (``tuner_id``
"worker-0".."worker-N-1"), with ``KERASTUNER_TUNER_ID`` / ``KERASTUNER_ORACLE_IP`` /
``KERASTUNER_ORACLE_PORT`` set from those roles, exactly as the hand-launched
``--distributed chief|worker`` processes. Search space, budget, floor and export are the local
search's.

Failures. A worker actor that dies is started again with the same tuner id (at most
``max_failures`` times in all); keras-tuner's oracle hands the new worker the trial its tuner id
was running, so that trial runs again, and finished trials are not rerun. When the driver is
stopped or killed, every actor ends with it; the search directory keeps the finished trials and
the same command resumes the search.

Storage: ``directory`` must be one directory every actor reaches (a shared file system on
several machines), as for `keras_cnn.training.ray_engine`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
from pathlib import Path

from keras_cnn.training.cluster import WorkerLostError
from keras_cnn.training.ray_engine import RayOptions, bundle_of, check_options, ray_cluster, reserve
from keras_cnn.tuning.search import TuneConfig

logger = logging.getLogger(__name__)

ROLE_ARGUMENTS = ("distributed", "oracle_ip", "oracle_port", "tuner_id")
USER_ERRORS = (ValueError, FileNotFoundError)

__all__ = ["TunerProcess", "tune_on_ray"]


class TunerProcess:
    """One keras-tuner process of the search, as a Ray actor (the chief or a worker)."""

    def address(self):
        """``(ip, port)`` where this actor's node can serve the oracle."""
        import ray

        ip = ray.util.get_node_ip_address()
        with socket.socket() as sock:
            sock.bind((ip, 0))
            return ip, sock.getsockname()[1]

    def pid(self):
        return os.getpid()

    def tune(self, family, data, fields):
        """`keras_cnn.tuning.tune` in this process -> its `TuneResult` without the model."""
        from keras_cnn.tuning import tune

        for var in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
            os.environ.pop(var, None)
        result = tune(family, data, **fields)
        result.model = None  # the best model is in project_dir/best_model.keras
        return result


def _absolute(fields, data):
    fields = dict(fields)
    for name, default in (("directory", "runs/tune"), ("export_dir", "saved_models")):
        fields[name] = str(Path(fields.get(name) or default).resolve())
    if isinstance(data, (str, os.PathLike)) and Path(data).is_dir():
        data = str(Path(data).resolve())
    return fields, data


def tune_on_ray(family, data="digits", *, ray=None, **fields):
    """`keras_cnn.tuning.tune` as one chief and ``ray.workers`` workers on a Ray cluster.

    Args:
        family, data, **fields: `keras_cnn.tuning.tune`'s arguments, except the role ones
            (``distributed``, ``oracle_ip``, ``oracle_port``, ``tuner_id``), which this sets.
        ray: `keras_cnn.training.ray_engine.RayOptions` (default: 2 workers on a local cluster
            started for the search). The chief takes ``cpus_per_worker`` CPUs and no GPU.

    Returns:
        The chief's `keras_cnn.tuning.TuneResult` (``model`` is None: the best model is
        ``project_dir/best_model.keras``).

    Raises:
        ValueError: a bad argument, or Ray not installed.
        ClusterTimeoutError: the chief and workers could not be placed within ``cluster_timeout``.
        WorkerLostError: workers died more than ``max_failures`` times.
        KeyboardInterrupt: SIGTERM / SIGINT (every actor is stopped; a rerun resumes the search).
    """
    if isinstance(family, TuneConfig):  # tune_on_ray(config, ray=...) as tune(config)
        if fields:
            raise TypeError("tune_on_ray(config) takes no other field; use dataclasses.replace(config, ...)")
        fields = {f.name: getattr(family, f.name) for f in dataclasses.fields(family) if f.name not in ("family", "data")}
        family, data = family.family, family.data
    options = check_options(ray if ray is not None else RayOptions())
    given = [name for name in ROLE_ARGUMENTS if fields.get(name) is not None]
    if given:
        raise ValueError(f"`{given[0]}` is set by engine 'ray' (the chief and workers are Ray actors). "
                         f"Received: {given[0]}={fields[given[0]]!r}")
    fields, data = _absolute({k: v for k, v in fields.items() if k not in ROLE_ARGUMENTS}, data)
    with ray_cluster(options) as ray_mod:
        chief_bundle = {"CPU": float(options.cpus_per_worker)}
        reserve(ray_mod, options, bundles=[chief_bundle] + [bundle_of(options)] * options.workers,
                what="tuner processes (the chief and the workers)")
        return _Search(ray_mod, options, family, data, fields).run()


class _Search:
    """The driver's view: start the chief, then the workers; restart lost workers; the chief's result."""

    def __init__(self, ray, options, family, data, fields):
        self.ray, self.options, self.family, self.data, self.fields = ray, options, family, data, fields
        self.actor_class = ray.remote(max_restarts=0)(TunerProcess)
        self.actors, self.refs, self.failures = {}, {}, 0

    def _start(self, name, role, address):
        resources = bundle_of(self.options) if role == "worker" else {"CPU": float(self.options.cpus_per_worker)}
        actor = self.actor_class.options(num_cpus=resources["CPU"], num_gpus=resources.get("GPU", 0)).remote()
        if address is None:
            address = self.ray.get(actor.address.remote(), timeout=self.options.cluster_timeout)
        role_fields = {"distributed": role, "oracle_ip": address[0], "oracle_port": address[1], "tuner_id": name}
        self.actors[name] = actor
        self.refs[name] = actor.tune.remote(self.family, self.data, {**self.fields, **role_fields})
        return address

    def run(self):
        try:
            address = self._start("chief", "chief", None)
            logger.info("tuning chief (oracle) at %s:%s; starting %d worker(s)", *address, self.options.workers)
            for i in range(self.options.workers):
                self._start(f"worker-{i}", "worker", address)
            return self._wait(address)
        except self.ray.exceptions.RayError as err:  # the chief lost, or a tuner failed: one clear error
            detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise WorkerLostError(f"A tuner process of the search failed ({type(err).__name__}: {detail}). The same command "
                                  "resumes the search.") from None
        finally:
            for actor in self.actors.values():
                self.ray.kill(actor)

    def _get(self, name):
        """The result of actor ``name``: its error re-raised as ours (argument errors as they are)."""
        try:
            return self.ray.get(self.refs.pop(name))
        except self.ray.exceptions.RayTaskError as err:
            if isinstance(err.cause, USER_ERRORS):
                raise err.cause from None
            raise

    def _wait(self, address):
        while True:
            by_ref = {ref: name for name, ref in self.refs.items()}
            ready, _ = self.ray.wait(list(by_ref), num_returns=1)
            name = by_ref[ready[0]]
            try:
                result = self._get(name)
            except self.ray.exceptions.RayActorError as err:
                if name == "chief":
                    raise WorkerLostError(f"The tuning chief (oracle) was lost: {err}. The same command resumes "
                                          "the search.") from None
                self._restart(name, address, err)
                continue
            if name == "chief":
                return result

    def _restart(self, name, address, err):
        self.failures += 1
        limit = self.options.max_failures
        if limit != -1 and self.failures > limit:
            raise WorkerLostError(
                f"Tuner {name} was lost and workers failed {self.failures} times, more than "
                f"max_failures={limit!r}. The same command resumes the search."
            ) from err
        logger.warning("tuner %s was lost (%s); starting it again (failure %d of %s): its running trial runs "
                       "again", name, type(err).__name__, self.failures, "any" if limit == -1 else limit)
        self._start(name, "worker", address)
