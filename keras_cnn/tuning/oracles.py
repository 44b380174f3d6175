"""keras-tuner oracles with the bookkeeping our searches need.

The four search algorithms are keras-tuner's own (`RandomSearchOracle`, `HyperbandOracle`,
`BayesianOptimizationOracle`, `GridSearchOracle`); `make_oracle` returns one of them with a
mixin that adds:

* **which tuner ran each trial** (``tuner_id`` in every ``trial_<id>/trial.json`` and in
  ``oracle.json``), so that a distributed search shows which worker did what;
* **budget rejections are not crashes**: a candidate rejected before training because it is
  over the compute budget (`OVER_BUDGET_METRIC` reported for it) is a FAILED trial, but it
  neither counts towards nor resets keras-tuner's ``max_consecutive_failed_trials`` (which
  would otherwise abort a search after three rejections in a row), and it does not use up
  ``max_trials``: at most ``max_rejected`` (default ``REJECTED_PER_TRIAL * max_trials``)
  rejections are allowed on top, so a search of a mostly over-budget space still ends, and
  `search_summary` says which limit ended it;
* **grid search resumes**: keras-tuner 1.4's `GridSearchOracle` keeps its position in the grid
  in memory only, so a reloaded grid search stops at once; the mixin rebuilds it from the
  trials on disk;
* **a trial cap for Hyperband**, whose oracle otherwise ignores ``max_trials``.

Only the chief (or the single local process) runs an oracle; workers talk to it over gRPC.
"""

from __future__ import annotations

import functools
import json
import os
import warnings

import keras_tuner
from keras_tuner.engine import trial as trial_module

from keras_cnn._compat import keras_tuner_ as kt_compat
from keras_cnn._io import atomic_write_text
from keras_cnn._validation import check_choice, check_non_negative_int
from keras_cnn.tuning.report import SearchSummary

TUNERS = ("random", "hyperband", "bayesian", "grid")

# Metric a worker reports (value 1.0) for a candidate rejected as over the compute budget.
OVER_BUDGET_METRIC = "over_budget"
# Default budget rejections allowed per trial: a rejection costs one model build and profile
# (well under a second for the tiny spaces, a few seconds for 224px Inception), a trial a training.
REJECTED_PER_TRIAL = 50


def is_over_budget(trial):
    """Whether ``trial`` was rejected before training for exceeding the compute budget."""
    return trial.status == trial_module.TrialStatus.FAILED and trial.metrics.exists(OVER_BUDGET_METRIC)


def save_json(path, obj):
    """Write ``obj`` as JSON to ``path`` atomically (local paths; others as keras-tuner does)."""
    path = os.fspath(path)
    if "://" in path:
        return kt_compat.save_json(path, obj)
    text = json.dumps(obj)
    atomic_write_text(path, text)
    return text


class _BookkeepingMixin(kt_compat.OracleHooks):
    """Adds tuner-id records, budget-aware failure counting and a trial cap to an oracle."""

    def _init_bookkeeping(self, max_rejected=None):
        # trial_id -> id of the tuner that ran (or is running) it.
        self.trial_tuner_ids = {}
        # At most this many budget rejections on top of `max_trials` (so a search whose
        # space is mostly over budget still ends).
        if max_rejected is None:
            max_rejected = REJECTED_PER_TRIAL * self.max_trials if self.max_trials else 0
        self.max_rejected = max_rejected

    def rejected_count(self):
        """Number of trials rejected for the compute budget."""
        return sum(1 for t in self.trials.values() if is_over_budget(t))

    @keras_tuner.synchronized
    def create_trial(self, tuner_id):
        # Oracle.create_trial stops at `max_trials` trials (Hyperband included, see
        # HyperbandOracle below). Budget rejections do not use up `max_trials`: the cap is
        # raised by their number while the base class decides; after `max_rejected` of them
        # the search stops (`search_summary` says so).
        cap = self.max_trials
        if cap and tuner_id not in self.ongoing_trials:
            rejected = self.rejected_count()
            self.max_trials = len(self.trials) if rejected >= self.max_rejected else cap + rejected
        try:
            trial = super().create_trial(tuner_id)
        finally:
            self.max_trials = cap
        if trial.status == trial_module.TrialStatus.RUNNING:
            self.trial_tuner_ids[trial.trial_id] = tuner_id
            self.write_trial(trial)
            self.save()
        return trial

    def search_summary(self):
        """A `SearchSummary` of the trials so far and the limit that ends (or ended) the search."""
        rejected = self.rejected_count()
        completed = sum(1 for t in self.trials.values() if t.status == trial_module.TrialStatus.COMPLETED)
        failed = sum(1 for t in self.trials.values()
                     if t.status in (trial_module.TrialStatus.FAILED, trial_module.TrialStatus.INVALID)
                     and not is_over_budget(t))
        counted = len(self.trials) - rejected
        if self.max_trials and counted >= self.max_trials:
            cause = "max_trials"
        elif self.max_trials and rejected >= self.max_rejected:
            cause = "max_rejected"
        else:
            cause = "exhausted"
        return SearchSummary(completed, failed, rejected, self.max_trials, self.max_rejected, cause)

    def remaining_trials(self):
        if not self.max_trials:
            return None
        return self.max_trials - (len(self.trials) - min(self.rejected_count(), self.max_rejected))

    @keras_tuner.synchronized
    def update_trial(self, trial_id, metrics, step=0):
        # A rejected candidate reports a NaN objective; numpy warns about its "best" value.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="All-NaN", category=RuntimeWarning)
            return super().update_trial(trial_id, metrics, step=step)

    def check_consecutive_failures(self):
        # As keras-tuner's, but trials rejected for the budget are neither failures nor
        # successes: they cost no training and say nothing about crashes.
        if not self.max_consecutive_failed_trials:
            return
        consecutive = 0
        for trial_id in self.end_order:
            trial = self.trials[trial_id]
            if is_over_budget(trial):
                continue
            if trial.status == trial_module.TrialStatus.FAILED:
                consecutive += 1
            else:
                consecutive = 0
            if consecutive == self.max_consecutive_failed_trials:
                raise RuntimeError(
                    "Number of consecutive failures exceeded the limit "
                    f"of {self.max_consecutive_failed_trials}.\n" + (trial.message or "")
                )

    def write_trial(self, trial):
        # keras-tuner's trial.json plus the id of the tuner that ran it (Trial.load ignores it).
        state = trial.get_state()
        state["tuner_id"] = getattr(self, "trial_tuner_ids", {}).get(trial.trial_id)
        save_json(os.path.join(kt_compat.trial_dir(self, trial.trial_id), "trial.json"), state)

    def save(self):
        # As keras-tuner's, but atomic: a search killed while saving can still be resumed.
        save_json(kt_compat.oracle_state_path(self), self.get_state())

    def get_state(self):
        state = super().get_state()
        state["keras_cnn_trial_tuner_ids"] = dict(self.trial_tuner_ids)
        return state

    def set_state(self, state):
        super().set_state(state)
        self.trial_tuner_ids = dict(state.get("keras_cnn_trial_tuner_ids", {}))


class RandomSearchOracle(_BookkeepingMixin, keras_tuner.oracles.RandomSearchOracle):
    """keras-tuner's random search with our bookkeeping."""

    def __init__(self, *args, max_rejected=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_bookkeeping(max_rejected)


class BayesianOptimizationOracle(_BookkeepingMixin, keras_tuner.oracles.BayesianOptimizationOracle):
    """keras-tuner's Gaussian-process Bayesian optimisation with our bookkeeping."""

    def __init__(self, *args, max_rejected=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_bookkeeping(max_rejected)


class HyperbandOracle(_BookkeepingMixin, keras_tuner.oracles.HyperbandOracle):
    """keras-tuner's Hyperband with our bookkeeping and a ``max_trials`` cap."""

    def __init__(self, *args, max_trials=None, max_rejected=None, **kwargs):
        super().__init__(*args, **kwargs)
        # The base Oracle stops creating trials at `max_trials`; HyperbandOracle does not pass
        # it on, so without this a search runs until its brackets are exhausted.
        self.max_trials = max_trials
        self._init_bookkeeping(max_rejected)


class GridSearchOracle(_BookkeepingMixin, keras_tuner.oracles.GridSearchOracle):
    """keras-tuner's grid search with our bookkeeping, resumable after an interruption."""

    def __init__(self, *args, max_rejected=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_bookkeeping(max_rejected)

    def set_state(self, state):
        super().set_state(state)
        self._needs_rebuild = True

    def reload(self):
        super().reload()
        self._rebuild_grid_position()

    def _rebuild_grid_position(self):
        """Rebuild the ordered list of tried grid points (kept in memory only by keras-tuner)."""
        if not getattr(self, "_needs_rebuild", False):
            return
        self._needs_rebuild = False
        tried = [tid for tid in self.start_order if tid in self.trials]
        if not tried:
            return
        ordered = sorted(
            tried,
            key=functools.cmp_to_key(
                lambda a, b: kt_compat.grid_compare(
                    self, self.trials[a].hyperparameters.values, self.trials[b].hyperparameters.values
                )
            ),
        )
        order = kt_compat.grid_linked_list()
        previous = None
        for trial_id in ordered:
            order.insert(trial_id, previous)
            previous = trial_id
        # Every tried point may still have an untried successor.
        kt_compat.set_grid_order(self, order, ordered)


_ORACLES = {
    "random": RandomSearchOracle,
    "hyperband": HyperbandOracle,
    "bayesian": BayesianOptimizationOracle,
    "grid": GridSearchOracle,
}


def make_oracle(
    tuner,
    *,
    objective,
    max_trials,
    seed=0,
    max_epochs=1,
    hyperband_factor=3,
    max_consecutive_failed_trials=3,
    max_rejected=None,
):
    """A keras-tuner oracle for ``tuner`` with our bookkeeping (see the module docstring).

    Args:
        tuner: "random", "hyperband", "bayesian" or "grid".
        objective: a `keras_tuner.Objective` (or name).
        max_trials: number of trials of the search (Hyperband: a cap on its brackets).
        seed: the oracle's random seed. Default 0.
        max_epochs: Hyperband's ``max_epochs`` (the most epochs one model trains). Default 1.
        hyperband_factor: Hyperband's reduction factor. Default 3.
        max_consecutive_failed_trials: stop the search after this many crashed trials in a
            row (budget rejections excluded). Default 3.
        max_rejected: budget rejections allowed on top of ``max_trials``. Default
            ``REJECTED_PER_TRIAL * max_trials`` (50 per trial).

    Returns:
        An `Oracle`.
    """
    check_choice("tuner", tuner, TUNERS)
    if max_rejected is not None:
        check_non_negative_int("max_rejected", max_rejected)
    common = dict(
        objective=objective,
        seed=seed,
        max_consecutive_failed_trials=max_consecutive_failed_trials,
        max_rejected=max_rejected,
    )
    if tuner == "hyperband":
        # Unbounded iterations: the search ends at `max_trials`.
        return HyperbandOracle(
            max_epochs=max_epochs, factor=hyperband_factor, hyperband_iterations=None, max_trials=max_trials, **common
        )
    return _ORACLES[tuner](max_trials=max_trials, **common)
