"""`tune`: search an architecture family with keras-tuner, report, export the best model.

The driver behind ``keras-cnn tune``: data -> hyper-model -> oracle + `CNNTuner` -> search
(local, or one process of a distributed chief/worker search) -> results table and plot ->
the best trial's model evaluated on the test split, saved and exported for TF Serving.

A search is a run of the one lifecycle (`keras_cnn.training.lifecycle`, `TuneRun`): its project
directory (``directory/project_name``) is locked by the chief (or the local search) and holds,
besides keras-tuner's own files (``oracle.json``, ``<tuner_id>.json``, ``trial_<id>/...``):

* ``config.json`` - the search's fingerprint (family, tuner, data with its content fingerprint,
  image size, budget, search space, epochs, seed, ...): a rerun with another one is refused,
  naming the fields that differ (``resume=False`` starts over);
* ``results.csv``, ``results.txt``, ``accuracy_vs_macs.png`` - see `keras_cnn.tuning.report`;
* ``best.json`` (written last: the search is finished) - every trial, the best one, its
  hyper-parameters, cost and test metrics, the export path;
* ``best_model.keras`` + ``class_names.json`` - the best inference model (raw pixels in);
* ``README.txt``.

Rerunning the same call: a finished search returns its stored result (nothing trained, nothing
exported); an interrupted one resumes (keras-tuner reloads the oracle; finished trials are not
run again, the trial that was running is retried, and the total stays ``max_trials``). Raising
``max_trials`` extends a finished search.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import os
import socket
from pathlib import Path

import keras

from keras_cnn._io import atomic_write_json
from keras_cnn._validation import check_choice, check_non_negative_int, check_positive_int
from keras_cnn.training import rundir
from keras_cnn.training.config import build_config
from keras_cnn.training.lifecycle import Lifecycle, complete
from keras_cnn.tuning.hypermodels import FAMILIES, _ALIASES, get_hypermodel
from keras_cnn.tuning.oracles import TUNERS, make_oracle
from keras_cnn.tuning.report import accuracy_floor, format_table, write_report
from keras_cnn.tuning.tuner import Budget, CNNTuner, TrialRecord, check_budget_fits

ROLES = ("chief", "worker")
ENV_TUNER_ID = "KERASTUNER_TUNER_ID"
ENV_ORACLE_IP = "KERASTUNER_ORACLE_IP"
ENV_ORACLE_PORT = "KERASTUNER_ORACLE_PORT"
DEFAULT_ORACLE_IP = "127.0.0.1"
DEFAULT_ORACLE_PORT = 8000
BEST_FILE = "best.json"
logger = logging.getLogger(__name__)


@dataclasses.dataclass
class TuneResult:
    """What `tune` returns.

    Attributes:
        project_dir: the search's directory (``directory/project_name``).
        role: "local", "chief" or "worker".
        tuner_id: this process's tuner id.
        trials: a `TrialRecord` per trial of the search (chief/local), or those this worker
            ran (worker).
        best: the best completed trial (None on a worker, or if no trial completed).
        table: the results table as text (empty on a worker).
        report: ``{"csv", "table", "plot"}`` paths (empty on a worker).
        model: the best inference model (raw pixels in, no auxiliary heads), or None.
        metrics: the best model's metrics on the test split (validation split if no test).
        export_path: the SavedModel version directory, or None.
        floor: the validation accuracy the best trial had to beat to be exported (default:
            the majority-class rate of the validation split), or None on a worker.
        below_floor: the best trial did not beat ``floor``, that is did not get at least one
            more validation example right than ``floor`` times their number (then it is not
            exported unless ``export_below_floor=True``).
        summary: how the search ended (`keras_cnn.tuning.report.SearchSummary`: trials
            completed, failed, rejected and the cause), or None on a worker and for the stored
            result of a finished search (then best.json's "search" holds it).
        status: "searched" (trials ran in this call, or none were left) or "finished" (the stored
            result of a finished search: nothing trained, nothing exported).
    """

    project_dir: Path
    role: str
    tuner_id: str
    trials: list
    best: TrialRecord | None = None
    table: str = ""
    report: dict = dataclasses.field(default_factory=dict)
    model: keras.Model | None = None
    metrics: dict = dataclasses.field(default_factory=dict)
    export_path: Path | None = None
    floor: float | None = None
    below_floor: bool = False
    status: str = "searched"
    summary: object = None

    @property
    def best_hyperparameters(self):
        """The best trial's hyper-parameter values (empty dict if none)."""
        return dict(self.best.hyperparameters) if self.best else {}


def _check_optional_positive(arg, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"`{arg}` must be None or a number > 0. Received: {arg}={value!r}")
    return value


def _image_size(value, data):
    from keras_cnn.training.evaluate import parse_image_size

    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    size = parse_image_size(value)
    if size is None and data == "digits":
        return (32, 32)  # the 8x8 digits upsampled, as LeNet-5's 32x32 input
    return size


def resolve_distributed(distributed=None, *, oracle_ip=None, oracle_port=None, tuner_id=None, environ=None):
    """The keras-tuner environment of this process's role in a distributed search.

    keras-tuner's protocol: every process gets ``KERASTUNER_TUNER_ID`` (the chief's contains
    "chief"), ``KERASTUNER_ORACLE_IP`` and ``KERASTUNER_ORACLE_PORT`` (the chief listens there,
    workers connect there).

    Args:
        distributed: None (read the environment: distributed if ``KERASTUNER_ORACLE_IP`` is
            set, as keras-tuner does), "chief" or "worker".
        oracle_ip: the chief's address; default ``$KERASTUNER_ORACLE_IP`` or 127.0.0.1.
        oracle_port: the chief's port; default ``$KERASTUNER_ORACLE_PORT`` or 8000.
        tuner_id: this process's id; default ``$KERASTUNER_TUNER_ID``, else "chief" for the
            chief and ``worker-<host>-<pid>`` for a worker.
        environ: the environment to read (default ``os.environ``).

    Returns:
        ``(role, env)``: role "local", "chief" or "worker"; env the variables to set (empty
        for "local").

    Raises:
        ValueError: an inconsistent role and tuner id, or a bad port.
    """
    environ = os.environ if environ is None else environ
    if distributed is None:
        if ENV_ORACLE_IP not in environ:
            if oracle_ip is not None or oracle_port is not None:
                raise ValueError(
                    "`oracle_ip`/`oracle_port` need `distributed`='chief' or 'worker'. "
                    f"Received: oracle_ip={oracle_ip!r}, oracle_port={oracle_port!r}, distributed=None"
                )
            return "local", {}
        tid = tuner_id or environ.get(ENV_TUNER_ID)
        if not tid:
            raise ValueError(f"{ENV_ORACLE_IP} is set but {ENV_TUNER_ID} is not: give every tuner an id.")
        distributed = "chief" if "chief" in tid else "worker"
    check_choice("distributed", distributed, ROLES)
    ip = oracle_ip or environ.get(ENV_ORACLE_IP) or DEFAULT_ORACLE_IP
    port = oracle_port if oracle_port is not None else environ.get(ENV_ORACLE_PORT, DEFAULT_ORACLE_PORT)
    try:
        port_num = int(port)
    except (TypeError, ValueError):
        port_num = -1
    if isinstance(port, bool) or not 0 < port_num < 65536:
        raise ValueError(f"`oracle_port` must be a port number in 1..65535. Received: oracle_port={port!r}")
    tid = tuner_id or environ.get(ENV_TUNER_ID)
    if not tid:
        tid = "chief" if distributed == "chief" else f"worker-{socket.gethostname()}-{os.getpid()}"
    if (distributed == "chief") != ("chief" in tid):
        raise ValueError(
            "keras-tuner tells the chief by 'chief' in its tuner id: the chief's id must contain it and a "
            f"worker's must not. Received: distributed={distributed!r}, tuner_id={tid!r}"
        )
    return distributed, {ENV_TUNER_ID: tid, ENV_ORACLE_IP: ip, ENV_ORACLE_PORT: str(port_num)}


@contextlib.contextmanager
def _environment(env):
    """Set ``env`` in ``os.environ`` for the duration (keras-tuner reads it at any time)."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclasses.dataclass(frozen=True)
class TuneConfig:
    """Everything a search is asked to do (`tune`, ``keras-cnn tune``).

    Attributes:
        family: "inception" (alias "googlenet"), "resnet" or "vgg".
        data: a `keras_cnn.data.load_data` source. Default "digits".
        tuner: "random", "hyperband", "bayesian" or "grid". Default "random".
        max_trials: number of trials (Hyperband: the cap on its brackets). Default 10.
        epochs: epochs per trial (Hyperband: the most one model trains). Default 2.
        directory: root of the search directories. Default "runs/tune".
        project_name: the search's directory name. Default ``"<family>_<tuner>"``.
        max_macs: largest multiply-accumulates per example of a candidate (None: no limit).
        max_params: largest parameter count of a candidate (None: no limit).
        seed: seed of the oracle (keras-tuner's seed is ``seed + 1``; it treats 0 as "random"),
            of the data split and of every trial's weight initialisation. Default 0.
        export: export the best model for TF Serving. Default True.
        export_dir: export root. Default "saved_models".
        export_name: served model name. Default ``"<family>_tuned"``.
        export_version: export version. Default: the next free one.
        image_size: ``(H, W)``, "H,W" or an int; default 32x32 for "digits", else the source's.
        channels: image channels (1 or 3). Default 3 (the families are RGB networks).
        max_examples: use at most this many examples per split (quick runs).
        batch_size: batch size. Default 32.
        validation_split: fraction of the training data for validation (the objective's
            split). Default 0.1.
        resume: reuse the project directory when it holds this search: a finished one returns
            its stored result, an interrupted one resumes, another search is refused naming the
            fields. False: start over (the directory's files are removed first; ignored on a
            worker, which never deletes the directory the chief shares). Default True.
        distributed: None (local, or the role keras-tuner's environment variables give),
            "chief" (serve the oracle; run no trial) or "worker" (run trials for the chief).
        oracle_ip: the chief's address (default ``$KERASTUNER_ORACLE_IP`` or 127.0.0.1).
        oracle_port: the chief's port (default ``$KERASTUNER_ORACLE_PORT`` or 8000).
        tuner_id: this process's tuner id (default ``$KERASTUNER_TUNER_ID``, "chief", or
            ``worker-<host>-<pid>``).
        search_space: keyword arguments of the hyper-model narrowing or widening its choices,
            e.g. ``{"depths": (18,), "width_multipliers": (0.25, 0.5)}``.
        objective: the metric to maximise. Default "val_accuracy".
        hyperband_factor: Hyperband's reduction factor. Default 3.
        max_consecutive_failed_trials: stop after this many crashed trials in a row (budget
            rejections do not count). Default 3.
        verbose: keras-tuner's per-trial display (0 off, 1 on). Default 1.
        fit_verbose: ``model.fit`` verbosity within trials (0, 1, 2). Default 0.
        progress: optional ``callable(TrialRecord)``, called when a trial of this process
            starts (status "RUNNING") and ends.
        floor: the validation accuracy the best trial must beat to be exported. Default None:
            the majority-class rate of the validation split (what always answering the most
            frequent class scores). Below it the best model is saved but not exported, with a
            warning.
        export_below_floor: export the best model even when it does not beat ``floor``.
        max_rejected: the most candidates rejected for the budget on top of ``max_trials``
            before the search stops. Default 50 per trial.
    """

    family: str
    data: object = "digits"
    tuner: str = "random"
    max_trials: int = 10
    epochs: int = 2
    directory: object = "runs/tune"
    project_name: str | None = None
    max_macs: object = None
    max_params: object = None
    seed: int = 0
    export: bool = True
    export_dir: object = "saved_models"
    export_name: str | None = None
    export_version: int | None = None
    image_size: object = None
    channels: int = 3
    max_examples: int | None = None
    batch_size: int = 32
    validation_split: float = 0.1
    resume: bool = True
    distributed: str | None = None
    oracle_ip: str | None = None
    oracle_port: object = None
    tuner_id: str | None = None
    search_space: dict | None = None
    objective: str = "val_accuracy"
    hyperband_factor: int = 3
    max_consecutive_failed_trials: int = 3
    verbose: int = 1
    fit_verbose: int = 0
    progress: object = None
    floor: float | None = None
    export_below_floor: bool = False
    max_rejected: int | None = None


def tune(family_or_config=dataclasses.MISSING, data=dataclasses.MISSING, **fields):
    """Search a family's architecture space with keras-tuner; report; export the best model.

    Candidates come from the family's hyper-model (`InceptionHyperModel`, `ResNetHyperModel`,
    `VGGHyperModel`); each is profiled first and, if it is over the compute budget
    (``max_macs`` / ``max_params``), rejected without training (status REJECTED in the table;
    it does not count as one of the ``max_trials``, and costs only a model build; at most
    ``max_rejected`` rejections end the search early, with a warning). The others train for
    ``epochs`` (Hyperband: up to ``epochs``, in rounds) and are scored by validation accuracy.
    The best trial's checkpoint (retrained for ``epochs`` when it is not on this machine) is
    evaluated on the test split, saved and exported like `keras_cnn.training.train` does.

    The search is a run of the one lifecycle (see the module docstring): rerun, a finished search
    returns its stored result, an interrupted one resumes, another one is refused.

    Args:
        family_or_config: the family ("inception", "resnet", "vgg") or a `TuneConfig` (then
            nothing else is passed).
        data: the data source (default "digits").
        **fields: the other fields of `TuneConfig` (tuner, max_trials, epochs, max_macs, ...:
            each is documented there).

    Returns:
        A `TuneResult`.

    Raises:
        ValueError: an invalid argument, ``directory/project_name`` holds another search or is
            in use by another process, or the compute budget is below the smallest candidate
            (before any trial runs).

    Example:
        >>> result = tune("vgg", "digits", tuner="random", max_trials=5, epochs=2,
        ...               max_macs=5_000_000, export=False)
        >>> print(result.table)
    """
    if isinstance(family_or_config, TuneConfig):
        if data is not dataclasses.MISSING or fields:
            raise TypeError("tune(config) takes no other argument; use dataclasses.replace(config, ...)")
        return TuneRun(family_or_config).execute()
    return TuneRun(build_config(TuneConfig, {"family": family_or_config, "data": data}, fields)).execute()


def check_tune_config(cfg):
    """Check every field of ``cfg`` (no TensorFlow op runs) -> ``(cfg with the family's canonical
    name, Budget)``."""
    cfg = dataclasses.replace(cfg, family=_ALIASES.get(cfg.family, cfg.family))
    check_choice("family", cfg.family, sorted(FAMILIES))
    check_choice("tuner", cfg.tuner, TUNERS)
    for name in ("max_trials", "epochs", "batch_size"):
        check_positive_int(name, getattr(cfg, name))
    check_non_negative_int("seed", cfg.seed)
    check_choice("verbose", cfg.verbose, (0, 1))
    check_choice("fit_verbose", cfg.fit_verbose, (0, 1, 2))
    check_choice("channels", cfg.channels, (1, 3))
    if cfg.max_examples is not None:
        check_positive_int("max_examples", cfg.max_examples)
    budget = Budget(_check_optional_positive("max_macs", cfg.max_macs),
                    _check_optional_positive("max_params", cfg.max_params))
    floor = cfg.floor
    if floor is not None and (isinstance(floor, bool) or not isinstance(floor, (int, float)) or not 0 <= floor < 1):
        raise ValueError(f"`floor` must be None or an accuracy in [0, 1). Received: floor={floor!r}")
    for name in ("export", "resume", "export_below_floor"):
        if not isinstance(getattr(cfg, name), bool):
            raise ValueError(f"`{name}` must be True or False. Received: {name}={getattr(cfg, name)!r}")
    if cfg.search_space is not None and not isinstance(cfg.search_space, dict):
        raise ValueError(
            f"`search_space` must be a dict of hyper-model arguments. Received: search_space={cfg.search_space!r}"
        )
    if cfg.progress is not None and not callable(cfg.progress):
        raise ValueError(f"`progress` must be callable. Received: progress={cfg.progress!r}")
    return cfg, budget


class TuneRun(Lifecycle):
    """A search's steps of the one lifecycle (`keras_cnn.training.lifecycle`). A worker of a
    distributed search neither locks nor checks the directory: the chief owns it."""

    result_file = BEST_FILE
    dir_arg = "project_name"

    def __init__(self, cfg):
        if not isinstance(cfg, TuneConfig):
            raise TypeError(f"`config` must be a TuneConfig. Received: {type(cfg).__name__}")
        self.cfg, self.budget = check_tune_config(cfg)
        self.role, self.env = resolve_distributed(cfg.distributed, oracle_ip=cfg.oracle_ip,
                                                  oracle_port=cfg.oracle_port, tuner_id=cfg.tuner_id)
        self.project_name = cfg.project_name or f"{self.cfg.family}_{cfg.tuner}"
        self.run_dir = Path(cfg.directory) / self.project_name
        self.resume = cfg.resume or self.role == "worker"
        self.size = _image_size(cfg.image_size, cfg.data)

    def fingerprint(self):
        cfg = self.cfg
        fields = ("family", "tuner", "channels", "max_examples", "validation_split", "batch_size", "seed", "epochs",
                  "objective", "hyperband_factor")
        return {
            "kind": "tune", **{name: getattr(cfg, name) for name in fields}, "data": rundir.data_fingerprint(cfg.data),
            "image_size": None if self.size is None else list(self.size), "max_macs": self.budget.max_macs,
            "max_params": self.budget.max_params,
            "search_space": json.loads(json.dumps(cfg.search_space or {}, default=list)),
        }

    def finished_digest(self):
        return rundir.digest({**self.fingerprint(), "max_trials": self.cfg.max_trials})

    def open(self, stack):
        stack.enter_context(_environment(self.env))  # keras-tuner reads it at any time
        if self.role == "worker":
            return rundir.RunState("new")
        return super().open(stack)

    def finished(self, state):
        stored = dict(state.metrics)
        records = [TrialRecord(**r) for r in stored.get("trials", [])]
        best = next((r for r in records if r.trial_id == stored.get("trial_id")), None)
        report = {key: self.run_dir / name for key, name in
                  (("csv", "results.csv"), ("table", "results.txt"), ("plot", "accuracy_vs_macs.png"))
                  if (self.run_dir / name).is_file()}
        model = None
        if best is not None:
            import keras_cnn.layers  # noqa: F401  (registers the custom layers for loading)

            model = keras.models.load_model(self.run_dir / "best_model.keras", compile=False)
        export = stored.get("export_path")
        return TuneResult(
            project_dir=self.run_dir, role=self.role, tuner_id=stored.get("tuner_id") or "tuner0", trials=records,
            best=best, table=format_table(records), report=report, model=model,
            metrics=dict(stored.get("test_metrics") or {}), export_path=Path(export) if export else None,
            floor=stored.get("floor"), below_floor=bool(stored.get("below_floor")), status="finished",
        )

    def prepare(self, state):
        from keras_cnn.data import load_data
        from keras_cnn.training.pipeline import check_bundle

        cfg = self.cfg
        keras.utils.set_random_seed(cfg.seed)
        bundle = load_data(cfg.data, image_size=self.size, channels=cfg.channels, batch_size=cfg.batch_size,
                           validation_split=cfg.validation_split, seed=cfg.seed, max_examples=cfg.max_examples)
        check_bundle(bundle, cfg.data)  # the run pipeline's data checks: two classes or more, skipped files named
        if bundle.val is None:
            raise ValueError(
                "The search needs a validation split (its objective is measured there). "
                f"Received: validation_split={cfg.validation_split!r} for data={cfg.data!r}"
            )
        class_names = [str(c) for c in bundle.class_names]
        image_shape = tuple(int(d) for d in bundle.image_shape)
        hypermodel = get_hypermodel(cfg.family, image_shape, len(class_names), **(cfg.search_space or {}))
        check_budget_fits(self.budget, hypermodel, cfg.family)  # before any trial, before the directory is written
        if cfg.export and self.role != "worker":  # an export name serving another model: refused before the search
            from keras_cnn.export.saved_model import check_export_name

            check_export_name(cfg.export_dir, cfg.export_name or f"{cfg.family}_tuned", image_shape, class_names,
                              version=cfg.export_version)
        return bundle, class_names, hypermodel

    def begin(self, prepared, state):
        if self.role == "worker":
            return
        if state.status == "new":
            rundir.clear_run_dir(self.run_dir)  # start over: keras-tuner's files too (the lock stays)
        bundle, class_names, _ = prepared
        config = {"family": self.cfg.family, "tuner": self.cfg.tuner, "data": _data_name(self.cfg.data),
                  "image_shape": [int(d) for d in bundle.image_shape], "num_classes": len(class_names),
                  "max_trials": self.cfg.max_trials, rundir.FINGERPRINT_KEY: self.fingerprint()}
        rundir.start_run_dir(self.run_dir, config, state=state, result_file=BEST_FILE)
        if state.status == "resume":
            logger.info("%s: resuming the search (same settings and data)", self.run_dir)

    def engine(self, prepared, state):
        """The search -> ``(CNNTuner, oracle, records of this process's trials)``."""
        cfg, (bundle, _, hypermodel) = self.cfg, prepared
        worker_records = []

        def on_progress(record):
            if record.status != "RUNNING":
                worker_records.append(record)
            if cfg.progress is not None:
                cfg.progress(record)

        oracle = make_oracle(
            cfg.tuner, objective=keras_tuner_objective(cfg.objective), max_trials=cfg.max_trials, seed=cfg.seed + 1,
            max_epochs=cfg.epochs, hyperband_factor=cfg.hyperband_factor,
            max_consecutive_failed_trials=cfg.max_consecutive_failed_trials, max_rejected=cfg.max_rejected,
        )
        # keras-tuner's per-trial display follows `verbose`; its "Reloading Tuner from ..." line
        # does not, so it is silenced here when verbose=0.
        quiet = contextlib.redirect_stdout(io.StringIO()) if cfg.verbose == 0 else contextlib.nullcontext()
        with quiet:
            search = CNNTuner(hypermodel, oracle, budget=self.budget, progress=on_progress, fit_verbose=cfg.fit_verbose,
                              seed=cfg.seed, directory=str(cfg.directory), project_name=self.project_name,
                              overwrite=False)
        search.search(bundle.train, validation_data=bundle.val, epochs=cfg.epochs, verbose=cfg.verbose)
        return search, oracle, worker_records

    def finish(self, prepared, outcome):
        cfg, (bundle, class_names, _) = self.cfg, prepared
        search, oracle, worker_records = outcome
        if self.role == "worker":
            return TuneResult(project_dir=self.run_dir, role=self.role, tuner_id=search.tuner_id, trials=worker_records)
        records = search.trial_records()
        timed = {r.trial_id: r.seconds for r in worker_records}
        for rec in records:
            if rec.seconds is None:
                rec.seconds = timed.get(rec.trial_id)
        title = f"{cfg.family} on {_data_name(cfg.data)}: {cfg.tuner} search"
        result = TuneResult(
            project_dir=self.run_dir, role=self.role, tuner_id=search.tuner_id, trials=records,
            table=format_table(records, max_rejected_rows=10),
            report=write_report(records, self.run_dir, max_macs=self.budget.max_macs, title=title),
            summary=oracle.search_summary(),
        )
        stored = {"trials": [r.to_dict() for r in records], "tuner_id": search.tuner_id,
                  "search": result.summary.to_dict()}
        best_trials = [t for t in oracle.get_best_trials(1) if t.status == "COMPLETED"]
        if best_trials:
            stored.update(self._finish_best(result, search, best_trials[0], bundle, class_names))
        stored[rundir.DIGEST_KEY] = self.finished_digest()
        complete(self.run_dir, stored, title=f"keras-cnn tune: {title}", keep_checkpoints=True, result_file=BEST_FILE)
        return result

    def _finish_best(self, result, search, best_trial, bundle, class_names):
        """The best trial's model, its floor check, evaluation, save and export -> best.json's fields."""
        cfg = self.cfg
        result.best = next(r for r in result.trials if r.trial_id == best_trial.trial_id)
        result.model = _best_model(search, best_trial, bundle, cfg.epochs, cfg.seed)
        floor_check = accuracy_floor(bundle.val, cfg.floor)  # compared in correct examples, not floats
        best_acc = result.best.val_accuracy
        result.floor, result.below_floor = floor_check.rate, not floor_check.beaten_by(best_acc)
        if result.below_floor:
            logger.warning(
                "tune: the best trial's validation accuracy %s (%s of %d right) does not beat the floor %.4f (%s: "
                "beating it takes %d)%s",
                "n/a" if best_acc is None else f"{best_acc:.4f}", floor_check.correct(best_acc), floor_check.examples,
                result.floor, floor_check.source, floor_check.needed,
                "; exported anyway (export_below_floor=True)" if cfg.export and cfg.export_below_floor
                else "; not exported (export_below_floor=True exports it)" if cfg.export else "",
            )
        config = {"family": cfg.family, "tuner": cfg.tuner, "data": _data_name(cfg.data),
                  "image_shape": [int(d) for d in bundle.image_shape]}
        result.metrics, result.export_path, stored = _finish_best(
            result, bundle=bundle, class_names=class_names, config=config,
            export=cfg.export and (not result.below_floor or cfg.export_below_floor),
            export_dir=cfg.export_dir, export_name=cfg.export_name or f"{cfg.family}_tuned",
            export_version=cfg.export_version,
        )
        return {**stored, **floor_check.to_dict(best_acc)}


def _data_name(data):
    return os.fspath(data) if isinstance(data, (str, os.PathLike)) else str(data)



def keras_tuner_objective(name):
    """A maximised `keras_tuner.Objective` for an accuracy-like metric, else minimised."""
    import keras_tuner

    if not isinstance(name, str) or not name:
        raise ValueError(f"`objective` must be a metric name such as 'val_accuracy'. Received: objective={name!r}")
    direction = "max" if ("acc" in name or "auc" in name) else "min"
    return keras_tuner.Objective(name, direction=direction)


def _best_model(search, best_trial, bundle, epochs, seed):
    """The best trial's inference model: its best checkpoint, or retrained if not on disk."""
    hypermodel = search.hypermodel
    if search.has_checkpoint(best_trial.trial_id):
        model = search.load_model(best_trial)
    else:
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        model = hypermodel.build(best_trial.hyperparameters)
        trial_epochs = int(best_trial.hyperparameters.values.get("tuner/epochs", epochs))
        hypermodel.fit(best_trial.hyperparameters, model, bundle.train, validation_data=bundle.val,
                       epochs=trial_epochs, verbose=0)
    return hypermodel.inference_model(model)


def _finish_best(result, *, bundle, class_names, config, export, export_dir, export_name, export_version):
    """Evaluate, save and (maybe) export the best model -> (metrics, export path, best.json's fields)."""
    from keras_cnn.training.evaluate import compute_metrics

    project_dir = result.project_dir
    split, dataset = ("test", bundle.test) if bundle.test is not None else ("val", bundle.val)
    metrics = compute_metrics(result.model, dataset, class_names)
    metrics["split"] = split
    from keras_cnn.training.pipeline import save_keras_model

    save_keras_model(result.model, project_dir / "best_model.keras")  # the run pipeline's save (usual permissions)
    atomic_write_json(project_dir / "class_names.json", class_names)

    previous = {}
    if (project_dir / BEST_FILE).is_file():
        try:
            previous = json.loads((project_dir / BEST_FILE).read_text())
        except ValueError:
            previous = {}
    export_path = None
    if export:
        old = previous.get("export_path")
        if previous.get("trial_id") == result.best.trial_id and old and Path(old).is_dir() and export_version is None:
            export_path = Path(old)  # this best model is exported already (a rerun of a finished search)
        else:
            from keras_cnn.export import export_for_serving

            export_path = Path(
                export_for_serving(
                    result.model,
                    export_dir,
                    name=export_name,
                    version=export_version,
                    class_names=class_names,
                    metadata={
                        "tuned": True,
                        "family": config["family"],
                        "tuner": config["tuner"],
                        "data": config["data"],
                        "image_shape": config["image_shape"],
                        "trial_id": result.best.trial_id,
                        "hyperparameters": result.best.hyperparameters,
                        "val_accuracy": result.best.val_accuracy,
                        "accuracy": metrics["accuracy"],
                        "params": result.best.params,
                        "macs": result.best.macs,
                        "project_dir": str(project_dir),
                    },
                )
            )
    stored = {
        **result.best.to_dict(),
        "test_metrics": {k: v for k, v in metrics.items() if k != "confusion_matrix"},
        "export_path": None if export_path is None else str(export_path),
    }
    return metrics, export_path, stored
