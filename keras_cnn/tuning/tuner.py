"""The keras-tuner `Tuner` that runs our trials: budget check, training, clean-up, progress.

`CNNTuner` is a `keras_tuner.Tuner` whose oracle is any of `keras_cnn.tuning.oracles`. For each
trial it

1. starts from a cleared Keras session (cleared at the start of the search and after every
   trial, so memory does not grow trial after trial),
2. builds the candidate and profiles it (`keras_cnn.analysis.profile`: parameters and
   multiply-accumulates of the inference model),
3. rejects it **before training** if it is over the compute budget: the trial is reported to
   the oracle with its cost and the ``over_budget`` marker, then ends as FAILED (keras-tuner's
   `FailedTrialError`, no retries); the oracle does not count it as a crash,
4. otherwise trains it (Hyperband's ``tuner/epochs``, ``tuner/initial_epoch`` and warm start
   from ``tuner/trial_id`` are honoured), checkpoints the best epoch, and reports the best
   epoch's metrics plus ``params`` and ``macs``.

Distributed tuning uses keras-tuner's own protocol (``KERASTUNER_TUNER_ID``,
``KERASTUNER_ORACLE_IP``, ``KERASTUNER_ORACLE_PORT``): the chief serves the oracle over gRPC
(`serve_oracle`, keras-tuner's servicer with a faster shutdown poll) and workers run trials.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
import traceback

import keras
import keras_tuner
from keras_tuner.engine import trial as trial_module

from keras_cnn._compat import keras_tuner_ as kt_compat

from keras_cnn.tuning.oracles import OVER_BUDGET_METRIC, is_over_budget, save_json
from keras_cnn.tuning.report import trial_order

OVER_BUDGET_PREFIX = "over compute budget:"
logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Budget:
    """A compute budget: the most multiply-accumulates and/or parameters a candidate may have.

    Attributes:
        max_macs: multiply-accumulates of one forward pass per example (None: no limit).
        max_params: parameters (None: no limit).
    """

    max_macs: int | None = None
    max_params: int | None = None

    def __post_init__(self):
        for arg in ("max_macs", "max_params"):
            value = getattr(self, arg)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise ValueError(f"`{arg}` must be None or a number > 0. Received: {arg}={value!r}")

    def violations(self, params, macs):
        """Human-readable reasons ``(params, macs)`` is over budget (empty when within it)."""
        out = []
        if self.max_macs is not None and macs > self.max_macs:
            out.append(f"MACs {macs:,} > max_macs {int(self.max_macs):,}")
        if self.max_params is not None and params > self.max_params:
            out.append(f"params {params:,} > max_params {int(self.max_params):,}")
        return out


@dataclasses.dataclass
class TrialRecord:
    """One trial of a search, as the results table shows it.

    Attributes:
        trial_id: keras-tuner's trial id ("0", "1", ... zero-padded).
        status: "RUNNING", "COMPLETED", "REJECTED" (over the compute budget, not trained),
            "FAILED" (crashed) or "INVALID".
        hyperparameters: the active hyper-parameter values (Hyperband's ``tuner/*`` included).
        val_accuracy: best validation accuracy of the trial (None unless completed).
        val_loss: validation loss at that epoch (None if unknown).
        params: parameters of the inference model (None if unknown).
        macs: multiply-accumulates per example of the inference model (None if unknown).
        tuner_id: the tuner (worker) that ran it ("tuner0" when not distributed).
        message: why it was rejected or failed (None otherwise).
        seconds: wall time of the trial on this tuner (None when not known here).
    """

    trial_id: str
    status: str
    hyperparameters: dict
    val_accuracy: float | None = None
    val_loss: float | None = None
    params: int | None = None
    macs: int | None = None
    tuner_id: str | None = None
    message: str | None = None
    seconds: float | None = None

    def to_dict(self):
        """A JSON-friendly dict."""
        return dataclasses.asdict(self)


def _metric(trial, name):
    if not trial.metrics.exists(name):
        return None
    value = trial.metrics.get_last_value(name)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def record_from_trial(trial, *, tuner_id=None, seconds=None):
    """A `TrialRecord` from a keras-tuner `Trial` as the oracle stores it."""
    status = trial.status
    if is_over_budget(trial):
        status = "REJECTED"
    params = _metric(trial, "params")
    macs = _metric(trial, "macs")
    score = trial.score if status == trial_module.TrialStatus.COMPLETED else None
    message = trial.message
    if message and status != "REJECTED":
        # keras-tuner stores the whole traceback; keep its last line.
        lines = [ln for ln in message.strip().splitlines() if ln.strip()]
        message = lines[-1] if lines else None
    return TrialRecord(
        trial_id=str(trial.trial_id),
        status=str(status),
        hyperparameters=dict(trial.hyperparameters.values),
        val_accuracy=None if score is None else float(score),
        val_loss=_metric(trial, "val_loss") if status == trial_module.TrialStatus.COMPLETED else None,
        params=None if params is None else int(params),
        macs=None if macs is None else int(macs),
        tuner_id=tuner_id,
        message=message,
        seconds=seconds,
    )


def _output_key(name, dict_output):
    """The history key of metric ``name`` of the main output ("val_accuracy" ->
    "val_predictions_accuracy" for a model with auxiliary heads)."""
    if not dict_output:
        return name
    prefix = "val_" if name.startswith("val_") else ""
    return f"{prefix}predictions_{name[len(prefix):]}"


class CNNTuner(kt_compat.TunerHooks, keras_tuner.Tuner):
    """keras-tuner `Tuner` for the `CNNHyperModel`s (see the module docstring).

    Args:
        hypermodel: a `keras_cnn.tuning.CNNHyperModel`.
        oracle: an oracle from `keras_cnn.tuning.oracles.make_oracle`.
        budget: a `Budget` (or None: no limit).
        progress: optional callable ``progress(record: TrialRecord)`` called when a trial
            starts training (status "RUNNING", after its budget check) and when it ends (a
            candidate rejected for the budget: once, "REJECTED"); the CLI prints a line per call.
        fit_verbose: ``model.fit`` verbosity inside trials. Default 0.
        seed: if set, every trial starts from ``keras.utils.set_random_seed(seed)`` (the same
            initialisation for the same architecture, whatever the trial order). Default None.
        idle_sleep: seconds a worker waits when the oracle has no trial ready. Default 0.5.
        **kwargs: `keras_tuner.Tuner` arguments (``directory``, ``project_name``,
            ``overwrite``, ``tuner_id``, ...).
    """

    def __init__(
        self, hypermodel, oracle, *, budget=None, progress=None, fit_verbose=0, seed=None, idle_sleep=0.5, **kwargs
    ):
        self.budget = budget or Budget()
        self.seed = seed
        self.progress = progress
        self.fit_verbose = fit_verbose
        self.idle_sleep = idle_sleep
        self._rejections = {}
        self._verbose = 1
        self._results = {}
        self._started = {}
        kt_compat.silence_condition_print()  # else a distributed search prints bare values on stdout
        super().__init__(oracle=oracle, hypermodel=hypermodel, **kwargs)

    # ---------------------------------------------------------------- search space
    def populate_initial_space(self, default):
        # keras-tuner builds the hyper-model repeatedly to discover the conditional
        # hyper-parameters; declaring them is enough (no model construction).
        declaring = getattr(self.hypermodel, "declaring", None)
        if declaring is None:
            return default()
        with declaring():
            return default()

    # ---------------------------------------------------------------- the search loop
    def search(self, *fit_args, **fit_kwargs):
        """Run the search (keras-tuner's loop; the chief serves the oracle instead).

        Args:
            *fit_args: the training dataset (raw pixels, integer labels).
            **fit_kwargs: ``validation_data`` (required: the objective is measured on it),
                ``epochs``, ``verbose`` (keras-tuner's per-trial display: 0 or 1),
                ``callbacks``.
        """
        verbose = fit_kwargs.pop("verbose", 1)
        self._verbose = verbose
        if not kt_compat.is_worker(self):
            self.oracle.verbose = verbose
        if kt_compat.is_chief_oracle():
            self.save()
            serve_oracle(self.oracle)
            self.save()
            self._log_end()
            return
        if kt_compat.is_worker(self):
            logger.info(
                "tuner %s: asking the chief oracle at %s:%s for trials",
                self.tuner_id,
                os.environ.get("KERASTUNER_ORACLE_IP"),
                os.environ.get("KERASTUNER_ORACLE_PORT"),
            )
        self.on_search_begin()
        while True:
            self.pre_create_trial()
            trial = self.oracle.create_trial(self.tuner_id)
            if trial.status == trial_module.TrialStatus.STOPPED:
                break
            if trial.status == trial_module.TrialStatus.IDLE:
                # The oracle waits for running trials (grid search, Hyperband rounds).
                time.sleep(self.idle_sleep)
                continue
            self.on_trial_begin(trial)
            self._run_trial_reporting(trial, *fit_args, **fit_kwargs)
            self.on_trial_end(trial)
        self.on_search_end()
        if not kt_compat.is_worker(self):
            self._log_end()

    def _log_end(self):
        """Say how the search ended; loudly when it ran fewer trials than asked for."""
        summary = self.oracle.search_summary()
        (logger.warning if summary.short else logger.info)("tune: %s", summary.describe())

    def _run_trial_reporting(self, trial, *fit_args, **fit_kwargs):
        # keras-tuner's `_try_run_and_update_trial`, except that a budget rejection gets a one-line message and no
        # traceback on stderr (a crash keeps both, printed only when verbose).
        try:
            kt_compat.run_and_update_trial(self, trial, *fit_args, **fit_kwargs)
            trial.status = trial_module.TrialStatus.COMPLETED
            return
        except Exception as err:
            if isinstance(err, keras_tuner.errors.FatalError):
                raise
            rejection = self._rejections.pop(trial.trial_id, None)
            if rejection is None and kt_compat.debug_enabled() and self._verbose:
                traceback.print_exc()
            if isinstance(err, keras_tuner.errors.FailedTrialError):
                trial.status = trial_module.TrialStatus.FAILED
            else:
                trial.status = trial_module.TrialStatus.INVALID
            trial.message = rejection or traceback.format_exc()

    def run_trial(self, trial, x, *, validation_data=None, epochs=1, callbacks=None, **unused):
        """Build, budget-check, train and evaluate one candidate.

        Returns:
            The best epoch's metrics (by the objective) plus ``params``, ``macs`` and
            ``epochs_trained`` (epochs run by this trial: fewer than ``tuner/epochs`` when
            Hyperband continues a previous trial).

        Raises:
            keras_tuner.errors.FailedTrialError: the candidate is over the budget (not trained).
        """
        if validation_data is None:
            raise keras_tuner.errors.FatalValueError("`validation_data` is required: the objective is measured on it.")
        hp = trial.hyperparameters
        if self.seed is not None:
            keras.utils.set_random_seed(self.seed)
        model = self.hypermodel.build(hp)
        prof = _profile(self.hypermodel.inference_model(model))
        params, macs = int(prof.total_params), int(prof.total_macs)
        reasons = self.budget.violations(params, macs)
        objective = self.oracle.objective.name
        if reasons:
            message = f"{OVER_BUDGET_PREFIX} " + "; ".join(reasons)
            # Record the cost and the marker with the oracle (also across gRPC), then fail the
            # trial without training: keras-tuner marks it FAILED and does not retry it.
            self.oracle.update_trial(
                trial.trial_id,
                {objective: float("nan"), "params": float(params), "macs": float(macs), OVER_BUDGET_METRIC: 1.0},
            )
            self._rejections[trial.trial_id] = message
            self._results[trial.trial_id] = {"params": params, "macs": macs}
            raise keras_tuner.errors.FailedTrialError(message)
        self._announce(trial)  # a rejected candidate gets one line (its rejection), a trained one two

        initial_epoch = 0
        values = hp.values
        if "tuner/epochs" in values:
            epochs = int(values["tuner/epochs"])
            initial_epoch = int(values.get("tuner/initial_epoch", 0))
        if values.get("tuner/trial_id") is not None:
            # Hyperband: continue from the best checkpoint of the previous round's trial.
            previous = kt_compat.checkpoint_path(self, values["tuner/trial_id"])
            if os.path.exists(previous):
                _load_checkpoint(model, previous)
            else:  # not on this machine's disk: train from scratch for the whole budget
                initial_epoch = 0

        dict_output = isinstance(model.output, dict)
        checkpoint = keras.callbacks.ModelCheckpoint(
            kt_compat.checkpoint_path(self, trial.trial_id),
            monitor=_output_key(objective, dict_output),
            mode=self.oracle.objective.direction,
            save_best_only=True,
            save_weights_only=True,
            verbose=0,
        )
        callbacks = list(callbacks or []) + [kt_compat.tuner_callback(self, trial), checkpoint]
        history = self.hypermodel.fit(
            hp,
            model,
            x,
            validation_data=validation_data,
            epochs=epochs,
            initial_epoch=initial_epoch,
            callbacks=callbacks,
            verbose=self.fit_verbose,
        )
        metrics = _best_epoch(history.history, objective, self.oracle.objective.direction, dict_output)
        trained = len(next(iter(history.history.values()), []))
        metrics.update({"params": float(params), "macs": float(macs), "epochs_trained": float(trained)})
        self._results[trial.trial_id] = metrics
        return metrics

    def load_model(self, trial):
        """The trial's model with its best checkpoint (the training model, aux heads kept)."""
        keras.backend.clear_session()
        model = self.hypermodel.build(trial.hyperparameters)
        _load_checkpoint(model, kt_compat.checkpoint_path(self, trial.trial_id))
        return model

    def has_checkpoint(self, trial_id):
        """Whether the best-epoch checkpoint of ``trial_id`` is on this machine's disk."""
        return os.path.exists(kt_compat.checkpoint_path(self, trial_id))

    # ---------------------------------------------------------------- events
    def on_search_begin(self):
        super().on_search_begin()
        keras.backend.clear_session()  # start from an empty session (names, graphs)

    def on_trial_begin(self, trial):
        super().on_trial_begin(trial)
        self._started[trial.trial_id] = time.perf_counter()

    def _announce(self, trial):
        """Report a trial as RUNNING to ``progress`` (once it is within the budget and trains)."""
        if self.progress is not None:
            self.progress(
                TrialRecord(
                    trial_id=str(trial.trial_id),
                    status="RUNNING",
                    hyperparameters=dict(trial.hyperparameters.values),
                    tuner_id=self.tuner_id,
                )
            )

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        # Drop this trial's graphs, models and optimizer state before the next one
        # (clear_session also runs the garbage collector).
        keras.backend.clear_session()
        if self.progress is not None:
            self.progress(self._local_record(trial))

    def _local_record(self, trial):
        started = self._started.pop(trial.trial_id, None)
        seconds = None if started is None else time.perf_counter() - started
        results = self._results.pop(trial.trial_id, {})
        status = trial.status
        message = trial.message
        if status == trial_module.TrialStatus.FAILED and message and message.startswith(OVER_BUDGET_PREFIX):
            status = "REJECTED"
        elif message:
            lines = [ln for ln in message.strip().splitlines() if ln.strip()]
            message = lines[-1] if lines else None
        objective = self.oracle.objective.name
        completed = status == trial_module.TrialStatus.COMPLETED
        return TrialRecord(
            trial_id=str(trial.trial_id),
            status=str(status),
            hyperparameters=dict(trial.hyperparameters.values),
            val_accuracy=results.get(objective) if completed else None,
            val_loss=results.get("val_loss") if completed else None,
            params=None if results.get("params") is None else int(results["params"]),
            macs=None if results.get("macs") is None else int(results["macs"]),
            tuner_id=self.tuner_id,
            message=message,
            seconds=seconds,
        )

    def save(self):
        # keras-tuner's save, written atomically.
        if not kt_compat.is_worker(self):
            self.oracle.save()
        save_json(kt_compat.tuner_state_path(self), self.get_state())

    # ---------------------------------------------------------------- results
    def trial_records(self):
        """A `TrialRecord` per trial known to the oracle, in trial-id order (chief/local only)."""
        oracle = self.oracle
        tuner_ids = getattr(oracle, "trial_tuner_ids", {})
        records = [
            record_from_trial(t, tuner_id=tuner_ids.get(t.trial_id))
            for t in oracle.trials.values()
        ]
        return sorted(records, key=lambda r: trial_order(r.trial_id))


def _load_checkpoint(model, path):
    """Load a trial checkpoint (weights and optimizer state) into a freshly built model."""
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.load_weights(path)


def _profile(model):
    from keras_cnn.analysis import profile

    return profile(model)


def _best_epoch(history, objective, direction, dict_output=False):
    """The logs of the best epoch by ``objective``; for a model with auxiliary heads the main
    output's ``accuracy``/``loss`` (and ``val_``) values are also given the plain names."""
    key = _output_key(objective, dict_output)
    values = history.get(key)
    if not values:
        raise keras_tuner.errors.FatalValueError(
            f"The objective {objective!r} is not in the training logs {sorted(history)}."
        )
    worst = -math.inf if direction == "max" else math.inf
    finite = [v if v == v else worst for v in values]  # NaN (diverged) ranks last
    pick = max if direction == "max" else min
    best = pick(range(len(finite)), key=finite.__getitem__)
    out = {name: float(series[best]) for name, series in history.items() if best < len(series)}
    for name in ("accuracy", "loss", "val_accuracy", "val_loss", objective):
        alias = _output_key(name, dict_output)
        if alias in history and best < len(history[alias]):
            out[name] = float(history[alias][best])
    return out


def serve_oracle(oracle, *, poll_seconds=0.5):
    """Serve ``oracle`` to the workers over gRPC until the search is over (the chief's job).

    keras-tuner's ``oracle_chief.start_server`` with its servicer, but polling every
    ``poll_seconds`` (instead of 20 s) for the moment every worker has been told to stop.
    Address from ``KERASTUNER_ORACLE_IP`` / ``KERASTUNER_ORACLE_PORT``.
    """
    from concurrent import futures

    import grpc

    servicer_class, add_servicer, exit_chief = kt_compat.oracle_grpc()

    address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = servicer_class(oracle)
    add_servicer(servicer, server)
    if server.add_insecure_port(address) == 0:
        raise OSError(f"The oracle could not listen on {address} (in use, or not an address of this machine).")
    server.start()
    logger.info("chief: serving the oracle at %s", address)
    try:
        while not (servicer.stop_triggered and exit_chief(oracle)):
            time.sleep(poll_seconds)
    finally:
        server.stop(grace=2).wait()


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def smallest_candidates(hypermodel, *, max_combinations=16):
    """The cheapest candidates of a hyper-model's search space: ``[(params, macs, values), ...]``.

    Every numeric choice is set to its smallest value (the families grow with each numeric
    architecture knob: blocks, convolutions per block, widths, units, depth, modules; training
    knobs such as dropout or the learning rate do not change the cost) and every non-numeric
    choice (booleans such as batch norm, block kinds) is tried in turn, at most
    ``max_combinations`` combinations. Sorted by MACs, then parameters.
    """
    import itertools

    hp = keras_tuner.HyperParameters()
    for _ in range(8):  # conditional knobs appear once their parents take their smallest values
        with hypermodel.declaring():
            hypermodel.build(hp)
        before = dict(hp.values)
        for knob in hp.space:
            values = list(getattr(knob, "values", None) or [])
            if values and all(_is_number(v) for v in values):
                hp.values[knob.name] = min(values)
            elif getattr(knob, "min_value", None) is not None:
                hp.values[knob.name] = knob.min_value
        if hp.values == before:
            break
    def enumerated(knob):  # booleans and non-numeric choices: tried in turn
        values = getattr(knob, "values", None)
        return type(knob).__name__ == "Boolean" or (values and not all(_is_number(v) for v in values))

    other = [(k.name, list(k.values) if getattr(k, "values", None) else [False, True])
             for k in hp.space if enumerated(k)]
    combos = list(itertools.islice(itertools.product(*[v for _, v in other]), max_combinations))
    found = []
    for combo in combos:
        candidate = hp.copy()
        for (name, _), value in zip(other, combo):
            candidate.values[name] = value
        prof = _profile(hypermodel.inference_model(hypermodel.build(candidate)))
        found.append((int(prof.total_params), int(prof.total_macs), dict(candidate.values)))
        keras.backend.clear_session(free_memory=False)
    return sorted(found, key=lambda item: (item[1], item[0]))


def check_budget_fits(budget, hypermodel, family):
    """Raise before any trial when even the cheapest candidate is over ``budget``.

    Raises:
        ValueError: naming the budget arguments and the smallest candidate's MACs and parameters.
    """
    if budget.max_macs is None and budget.max_params is None:
        return
    candidates = smallest_candidates(hypermodel)
    if any(not budget.violations(params, macs) for params, macs, _ in candidates):
        return
    params, macs, values = candidates[0]
    knobs = ", ".join(f"{k}={v}" for k, v in sorted(values.items()))
    raise ValueError(
        f"The compute budget is below every candidate of the {family!r} search space: its smallest candidate has "
        f"{macs:,} MACs and {params:,} params ({knobs}); "
        f"{'; '.join(budget.violations(params, macs))}. No trial was run. Raise `max_macs` / `max_params` or "
        f"widen `search_space`. Received: max_macs={budget.max_macs!r}, max_params={budget.max_params!r}"
    )
