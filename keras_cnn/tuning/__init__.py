"""Architecture search with keras-tuner: hyper-models of the classic families, a compute
budget, four search algorithms, resumable and distributed searches, a results report.

Public API:
    * `tune` -> `TuneResult` (`TuneConfig`): the search driver behind ``keras-cnn tune``, a run of
      the one run lifecycle (`keras_cnn.training.lifecycle`).
    * `InceptionHyperModel`, `ResNetHyperModel`, `VGGHyperModel` (`CNNHyperModel`),
      `get_hypermodel`, `register_hypermodel`: the search spaces.
    * `CNNTuner`, `Budget`, `TrialRecord`: the keras-tuner `Tuner` that rejects over-budget
      candidates before training and clears the session between trials.
    * `make_oracle`, `TUNERS`: keras-tuner's random / Hyperband / Bayesian / grid oracles with
      our bookkeeping (tuner ids, budget-aware failure count, resumable grid).
    * `format_table`, `write_report`, `plot_accuracy_vs_macs`, `pareto_front`: the report.
    * `resolve_distributed`, `serve_oracle`: keras-tuner's chief/worker protocol.

Example:
    >>> from keras_cnn.tuning import tune
    >>> result = tune("resnet", "digits", tuner="bayesian", max_trials=8, epochs=3,
    ...               max_macs=20_000_000, search_space={"depths": (18, 34)})
    >>> print(result.table)
"""

from keras_cnn.tuning.hypermodels import (
    FAMILIES,
    CNNHyperModel,
    InceptionHyperModel,
    ResNetHyperModel,
    VGGHyperModel,
    get_hypermodel,
    register_hypermodel,
)
from keras_cnn.tuning.oracles import TUNERS, make_oracle
from keras_cnn.tuning.report import format_table, pareto_front, plot_accuracy_vs_macs, write_report
from keras_cnn.tuning.search import TuneConfig, TuneResult, resolve_distributed, tune
from keras_cnn.tuning.tuner import Budget, CNNTuner, TrialRecord, serve_oracle

__all__ = [
    "FAMILIES",
    "TUNERS",
    "Budget",
    "CNNHyperModel",
    "CNNTuner",
    "InceptionHyperModel",
    "ResNetHyperModel",
    "TrialRecord",
    "TuneConfig",
    "TuneResult",
    "VGGHyperModel",
    "format_table",
    "get_hypermodel",
    "make_oracle",
    "pareto_front",
    "plot_accuracy_vs_macs",
    "register_hypermodel",
    "resolve_distributed",
    "serve_oracle",
    "tune",
    "write_report",
]
