"""`tune`: search an architecture family with keras-tuner, report, export the best model.

The driver behind ``keras-cnn tune``: data -> hyper-model -> oracle + `CNNTuner` -> search
(local, or one process of a distributed chief/worker search) -> results table and plot ->
the best trial's model evaluated on the test split, saved and exported for TF Serving.

Project directory (``directory/project_name``), besides keras-tuner's own files
(``oracle.json``, ``<tuner_id>.json``, ``trial_<id>/trial.json`` + ``checkpoint.weights.h5``):

* ``tune_config.json`` - what the search is (family, data, search space, ...); a rerun with a
  different one is refused unless ``overwrite=True``;
* ``results.csv``, ``results.txt``, ``accuracy_vs_macs.png`` - see `keras_cnn.tuning.report`;
* ``best.json`` - the best trial, its hyper-parameters, cost and test metrics, the export path;
* ``best_model.keras`` + ``class_names.json`` - the best inference model (raw pixels in).

Resuming: rerunning the same call continues an interrupted search (keras-tuner reloads the
oracle; finished trials are not run again, the trial that was running is retried, and the total
stays ``max_trials``). Raising ``max_trials`` extends a finished search.
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
CONFIG_FILE = "tune_config.json"
BEST_FILE = "best.json"
logger = logging.getLogger("keras_cnn.tuning")


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
            completed, failed, rejected and the cause), or None on a worker.
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


def _check_config(project_dir, config, overwrite):
    path = project_dir / CONFIG_FILE
    if path.is_file() and not overwrite:
        try:
            old = json.loads(path.read_text())
        except ValueError:
            old = None
        if old is not None and old != config:
            changed = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
            raise ValueError(
                f"{project_dir} holds a different search (changed: {', '.join(changed)}). "
                "Use another `project_name`, or `overwrite=True` to start it over."
            )


def tune(
    family,
    data="digits",
    *,
    tuner="random",
    max_trials=10,
    epochs=2,
    directory="runs/tune",
    project_name=None,
    max_macs=None,
    max_params=None,
    seed=0,
    export=True,
    export_dir="saved_models",
    export_name=None,
    export_version=None,
    image_size=None,
    channels=3,
    max_examples=None,
    batch_size=32,
    validation_split=0.1,
    overwrite=False,
    distributed=None,
    oracle_ip=None,
    oracle_port=None,
    tuner_id=None,
    search_space=None,
    objective="val_accuracy",
    hyperband_factor=3,
    max_consecutive_failed_trials=3,
    verbose=1,
    fit_verbose=0,
    progress=None,
    floor=None,
    export_below_floor=False,
    max_rejected=None,
):
    """Search a family's architecture space with keras-tuner; report; export the best model.

    Candidates come from the family's hyper-model (`InceptionHyperModel`, `ResNetHyperModel`,
    `VGGHyperModel`); each is profiled first and, if it is over the compute budget
    (``max_macs`` / ``max_params``), rejected without training (status REJECTED in the table;
    it does not count as one of the ``max_trials``, and costs only a model build; at most
    ``max_rejected`` rejections end the search early, with a warning). The others train for
    ``epochs`` (Hyperband: up to ``epochs``, in rounds) and are scored by validation accuracy.
    The best trial's checkpoint (retrained for ``epochs`` when it is not on this machine) is
    evaluated on the test split, saved and exported like `keras_cnn.training.train` does.

    Args:
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
        overwrite: start over, deleting an existing search of the same project (ignored on a
            worker, which never deletes the shared directory). Default False: resume it.
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

    Returns:
        A `TuneResult`.

    Raises:
        ValueError: an invalid argument, ``directory/project_name`` holds another search, or
            the compute budget is below the smallest candidate (before any trial runs).

    Example:
        >>> result = tune("vgg", "digits", tuner="random", max_trials=5, epochs=2,
        ...               max_macs=5_000_000, export=False)
        >>> print(result.table)
    """
    family = _ALIASES.get(family, family)
    check_choice("family", family, sorted(FAMILIES))
    check_choice("tuner", tuner, TUNERS)
    check_positive_int("max_trials", max_trials)
    check_positive_int("epochs", epochs)
    check_positive_int("batch_size", batch_size)
    check_non_negative_int("seed", seed)
    check_choice("verbose", verbose, (0, 1))
    check_choice("fit_verbose", fit_verbose, (0, 1, 2))
    check_choice("channels", channels, (1, 3))
    if max_examples is not None:
        check_positive_int("max_examples", max_examples)
    budget = Budget(_check_optional_positive("max_macs", max_macs), _check_optional_positive("max_params", max_params))
    if floor is not None and (isinstance(floor, bool) or not isinstance(floor, (int, float)) or not 0 <= floor < 1):
        raise ValueError(f"`floor` must be None or an accuracy in [0, 1). Received: floor={floor!r}")
    for name, flag in (("export", export), ("overwrite", overwrite), ("export_below_floor", export_below_floor)):
        if not isinstance(flag, bool):
            raise ValueError(f"`{name}` must be True or False. Received: {name}={flag!r}")
    if search_space is not None and not isinstance(search_space, dict):
        raise ValueError(
            f"`search_space` must be a dict of hyper-model arguments. Received: search_space={search_space!r}"
        )
    if progress is not None and not callable(progress):
        raise ValueError(f"`progress` must be callable. Received: progress={progress!r}")
    role, env = resolve_distributed(distributed, oracle_ip=oracle_ip, oracle_port=oracle_port, tuner_id=tuner_id)
    project_name = project_name or f"{family}_{tuner}"
    project_dir = Path(directory) / project_name
    size = _image_size(image_size, data)
    if role == "worker":
        overwrite = False  # never delete the directory the chief and the other workers share

    from keras_cnn.data import load_data

    keras.utils.set_random_seed(seed)
    bundle = load_data(
        data,
        image_size=size,
        channels=channels,
        batch_size=batch_size,
        validation_split=validation_split,
        seed=seed,
        max_examples=max_examples,
    )
    from keras_cnn.training.pipeline import check_bundle

    check_bundle(bundle, data)  # the run pipeline's data checks: two classes or more, skipped files named
    if bundle.val is None:
        raise ValueError(
            "The search needs a validation split (its objective is measured there). "
            f"Received: validation_split={validation_split!r} for data={data!r}"
        )
    class_names = [str(c) for c in bundle.class_names]
    image_shape = tuple(int(d) for d in bundle.image_shape)
    hypermodel = get_hypermodel(family, image_shape, len(class_names), **(search_space or {}))
    check_budget_fits(budget, hypermodel, family)  # before any trial, before the search directory is written
    if export and role != "worker":  # an export name serving another model: refused before the search
        from keras_cnn.export.saved_model import check_export_name

        check_export_name(export_dir, export_name or f"{family}_tuned", image_shape, class_names,
                          version=export_version)
    config = {
        "family": family,
        "tuner": tuner,
        "data": os.fspath(data) if isinstance(data, (str, os.PathLike)) else str(data),
        "image_shape": list(image_shape),
        "num_classes": len(class_names),
        "max_examples": max_examples,
        "validation_split": validation_split,
        "seed": seed,
        "epochs": epochs,
        "objective": objective,
        "search_space": json.loads(json.dumps(search_space or {}, default=list)),
    }
    if role != "worker":
        _check_config(project_dir, config, overwrite)

    worker_records = []

    def on_progress(record):
        if record.status != "RUNNING":
            worker_records.append(record)
        if progress is not None:
            progress(record)

    objective_obj = keras_tuner_objective(objective)
    # keras-tuner's per-trial display follows `verbose`; its "Reloading Tuner from ..." line
    # does not, so it is silenced here when verbose=0.
    quiet = contextlib.redirect_stdout(io.StringIO()) if verbose == 0 else contextlib.nullcontext()
    with _environment(env):
        oracle = make_oracle(
            tuner,
            objective=objective_obj,
            max_trials=max_trials,
            seed=seed + 1,
            max_epochs=epochs,
            hyperband_factor=hyperband_factor,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
            max_rejected=max_rejected,
        )
        with quiet:
            search = CNNTuner(
                hypermodel,
                oracle,
                budget=budget,
                progress=on_progress,
                fit_verbose=fit_verbose,
                seed=seed,
                directory=str(directory),
                project_name=project_name,
                overwrite=overwrite,
            )
        if role != "worker":
            atomic_write_json(project_dir / CONFIG_FILE, config)
        search.search(bundle.train, validation_data=bundle.val, epochs=epochs, verbose=verbose)
        tid = search.tuner_id
        if role == "worker":
            return TuneResult(project_dir=project_dir, role=role, tuner_id=tid, trials=worker_records)

        records = search.trial_records()
        timed = {r.trial_id: r.seconds for r in worker_records}
        for rec in records:
            if rec.seconds is None:
                rec.seconds = timed.get(rec.trial_id)
        title = f"{family} on {config['data']}: {tuner} search"
        report = write_report(records, project_dir, max_macs=budget.max_macs, title=title)
        table = format_table(records, max_rejected_rows=10)
        best_trials = [t for t in oracle.get_best_trials(1) if t.status == "COMPLETED"]
        result = TuneResult(
            project_dir=project_dir, role=role, tuner_id=tid, trials=records, table=table, report=report,
            summary=oracle.search_summary(),
        )
        if not best_trials:
            return result
        best_trial = best_trials[0]
        result.best = next(r for r in records if r.trial_id == best_trial.trial_id)
        result.model = _best_model(search, best_trial, bundle, epochs, seed)
        floor_check = accuracy_floor(bundle.val, floor)  # compared in correct examples, not floats
        best_acc = result.best.val_accuracy
        result.floor, result.below_floor = floor_check.rate, not floor_check.beaten_by(best_acc)
        if result.below_floor:
            logger.warning(
                "tune: the best trial's validation accuracy %s (%s of %d right) does not beat the floor %.4f (%s: "
                "beating it takes %d)%s",
                "n/a" if best_acc is None else f"{best_acc:.4f}", floor_check.correct(best_acc), floor_check.examples,
                result.floor, floor_check.source, floor_check.needed,
                "; exported anyway (export_below_floor=True)" if export and export_below_floor
                else "; not exported (export_below_floor=True exports it)" if export else "",
            )
        result.metrics, result.export_path = _finish_best(
            result,
            bundle=bundle,
            class_names=class_names,
            config=config,
            export=export and (not result.below_floor or export_below_floor),
            export_dir=export_dir,
            export_name=export_name or f"{family}_tuned",
            export_version=export_version,
            floor_figures=floor_check.to_dict(best_acc),
        )
        return result


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


def _finish_best(result, *, bundle, class_names, config, export, export_dir, export_name, export_version,
                 floor_figures):
    """Evaluate, save and (maybe) export the best model; write best.json. Returns (metrics, path)."""
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
    atomic_write_json(
        project_dir / BEST_FILE,
        {
            **result.best.to_dict(),
            "test_metrics": {k: v for k, v in metrics.items() if k != "confusion_matrix"},
            "export_path": None if export_path is None else str(export_path),
            **floor_figures,
            "search": result.summary.to_dict(),
        },
    )
    return metrics, export_path
