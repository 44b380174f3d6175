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
