"""Private names of keras_tuner used by keras_cnn, each explained (see keras_cnn/_compat/__init__.py)."""

from __future__ import annotations

# The public API of keras-tuner 1.4 exposes the tuners, oracles, HyperParameters, Objective,
# `keras_tuner.synchronized` and `keras_tuner.engine.trial.TrialStatus`; the names below are
# not exported. keras-tuner is pinned to the tested range in pyproject.toml.


def save_json(path, obj):
    """keras-tuner's ``save_json`` (writes through ``tf.io.gfile``: GCS and other remote paths).

    Why private: not exported; keras_cnn writes remote oracle / tuner state files the way
    keras-tuner reads them back. Upstream name: ``keras_tuner.src.utils.save_json``.
    """
    from keras_tuner.src import utils

    return utils.save_json(path, obj)


def is_chief_oracle():
    """Whether this process is the chief serving the oracle (``KERASTUNER_TUNER_ID == "chief"``).

    Why private: keras-tuner decides the distributed role in ``keras_tuner.src.distribute.utils``
    and exports no query; keras_cnn's tuner must agree with it exactly.
    """
    from keras_tuner.src.distribute import utils

    return utils.is_chief_oracle()


def debug_enabled():
    """keras-tuner's DEBUG switch (print a failed trial's traceback).

    Why private: ``keras_tuner.src.config.DEBUG`` is keras-tuner's own switch and not exported.
    """
    from keras_tuner.src import config

    return bool(config.DEBUG)


def tuner_callback(tuner, trial):
    """keras-tuner's per-epoch callback that reports a trial's metrics to the oracle.

    Why private: ``keras_tuner.src.engine.tuner_utils.TunerCallback`` is what ``Tuner.run_trial``
    uses internally; keras_cnn's ``run_trial`` (budget check, checkpoint of the best epoch) needs
    the same reporting, including for Hyperband's continued trials.
    """
    from keras_tuner.src.engine import tuner_utils

    return tuner_utils.TunerCallback(tuner, trial)


def _discard(*args, **kwargs):
    return None


def silence_condition_print():
    """Silence the stray ``print`` of keras-tuner 1.4's ``conditions.Parent.to_proto``.

    Why private: ``keras_tuner.src.engine.conditions.Parent.to_proto`` prints the first value of a
    conditional hyper-parameter's parent condition ("2", "sgd", ...) each time a search space is
    turned into its protobuf, which a distributed search does on every gRPC call (the chief
    sending trials and the space, a worker reporting a trial): hundreds of bare values on stdout.
    keras-tuner offers no switch for it. The module's global ``print`` is replaced by a no-op
    for that module only (it prints nothing else); the protobufs are unchanged. Idempotent.
    """
    from keras_tuner.src.engine import conditions

    conditions.print = _discard


def grid_linked_list():
    """An empty ``LinkedList`` of the grid-search oracle (its order of tried grid points).

    Why private: GridSearchOracle keeps that order in memory only; keras_cnn rebuilds it when a
    search is reloaded from disk (else a resumed grid search repeats points).
    """
    from keras_tuner.src.tuners import gridsearch

    return gridsearch.LinkedList()


def oracle_grpc():
    """``(OracleServicer, add_OracleServicer_to_server, exit_chief)`` of keras-tuner's gRPC oracle.

    Why private: keras-tuner only offers ``start_server``, which polls every 20 s before it
    notices the end of a search; keras_cnn serves the same servicer and polls faster.
    """
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief

    return oracle_chief.OracleServicer, protos.get_service_grpc().add_OracleServicer_to_server, oracle_chief.exit_chief


# Tuner / oracle internals. keras_cnn's CNNTuner runs its own search loop (a budget rejection is
# a one-line FAILED trial, not a traceback; the chief serves the oracle) and its oracles keep
# extra bookkeeping files; keras-tuner 1.4 has no public hooks for these (keras-team/keras-tuner
# exposes only search/run_trial/on_* callbacks). The private overrides that must keep their
# upstream names (``Tuner._populate_initial_space``, ``Oracle._save_trial``) stay in
# keras_cnn/tuning and are exercised by tests/test_tuning*.py.


def run_and_update_trial(tuner, trial, *fit_args, **fit_kwargs):
    """``tuner._run_and_update_trial``: run a trial and report its results to the oracle."""
    return tuner._run_and_update_trial(trial, *fit_args, **fit_kwargs)


def checkpoint_path(tuner, trial_id):
    """``tuner._get_checkpoint_fname``: where a trial's best-epoch weights are saved."""
    return tuner._get_checkpoint_fname(trial_id)


def is_worker(tuner):
    """``tuner._is_worker``: this tuner asks a chief oracle for trials (distributed search)."""
    return tuner._is_worker()


def tuner_state_path(tuner):
    """``tuner._get_tuner_fname``: the tuner's state file in the project directory."""
    return tuner._get_tuner_fname()


def trial_dir(oracle, trial_id):
    """``oracle._get_trial_dir``: a trial's directory in the project directory."""
    return oracle._get_trial_dir(trial_id)


def oracle_state_path(oracle):
    """``oracle._get_oracle_fname``: the oracle's state file."""
    return oracle._get_oracle_fname()


def grid_compare(oracle, values_a, values_b):
    """``GridSearchOracle._compare``: the grid order of two hyper-parameter value dicts (-1, 0, 1)."""
    return oracle._compare(values_a, values_b)


def set_grid_order(oracle, ordered_ids, populate_next):
    """Set GridSearchOracle's in-memory order of tried points (``_ordered_ids``) and the points
    whose successors are still to be tried (``_populate_next``), lost when a search is reloaded."""
    oracle._ordered_ids = ordered_ids
    oracle._populate_next = list(populate_next)


class OracleHooks:
    """Routes two private keras-tuner ``Oracle`` hooks to public-named methods of the subclass.

    Why private: keras-tuner offers no public hook for how a trial's ``trial.json`` is written
    (``Oracle._save_trial``: keras_cnn adds the id of the tuner that ran it, and writes it
    atomically) or for how consecutive failures are counted (``Oracle._check_consecutive_failures``:
    keras_cnn does not count candidates rejected for the compute budget as failures). A subclass
    defines ``write_trial(trial)`` and ``check_consecutive_failures()``; list this mixin before the
    keras-tuner oracle in the bases.
    """

    def _save_trial(self, trial):
        return self.write_trial(trial)

    def _check_consecutive_failures(self):
        return self.check_consecutive_failures()


class TunerHooks:
    """Routes keras-tuner's private ``Tuner._populate_initial_space`` to ``populate_initial_space``.

    Why private: keras-tuner builds the hyper-model repeatedly to discover conditional
    hyper-parameters and has no public hook around it; keras_cnn's hyper-models only declare their
    hyper-parameters there (no model is built). The subclass defines
    ``populate_initial_space(default)`` where ``default()`` runs keras-tuner's own.
    """

    def _populate_initial_space(self):
        return self.populate_initial_space(super()._populate_initial_space)
