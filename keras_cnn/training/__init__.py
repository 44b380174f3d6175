"""Training: the papers' recipes, the training loop with checkpoints, evaluation, plots.

Public API:
    * `Recipe`, `get_recipe`, `list_recipes`, `build_optimizer`, `EpochSchedule`: recipes as data.
    * `train` -> `TrainResult`: data -> model -> checkpoints -> metrics/plots -> export; a rerun
      resumes (same run fingerprint), reports a finished run, or refuses another run's directory.
    * `RunConfig` (the run's arguments, frozen; `keras_cnn.training.config`) and `run`
      (``train(config)``): every run goes through the one lifecycle (`keras_cnn.training.lifecycle`).
    * `fine_tune`, `run_transfer`, `TransferConfig`: transfer learning (`keras_cnn.training.transfer`).
    * `evaluate`: metrics of a run directory or a model on a held-out split.
    * `strip_aux`: the single-output inference model of a model with auxiliary heads.
    * `build_network`: raw pixels -> Preprocess -> registry model (what `train` trains).
    * `train_multi_worker`: MultiWorkerMirroredStrategy custom loop (Keras' fit fails under it).
    * `run_demo`: LeNet-5 on the embedded digits (>= 98% test accuracy), exported.
"""

from keras_cnn.training.demo import run_demo
from keras_cnn.training.distributed import cluster_info, multi_worker_strategy, train_multi_worker, worker_info
from keras_cnn.training.evaluate import compute_metrics, evaluate
from keras_cnn.training.network import build_network, strip_aux
from keras_cnn.training.recipes import (
    RECIPES,
    EpochSchedule,
    Recipe,
    build_optimizer,
    build_schedule,
    get_recipe,
    list_recipes,
)
from keras_cnn.training.config import RunConfig, TrainResult
from keras_cnn.training.trainer import run, train
from keras_cnn.training.transfer import TransferConfig, TransferResult, fine_tune, run_transfer

__all__ = [
    "RECIPES",
    "RunConfig",
    "EpochSchedule",
    "TransferConfig",
    "TransferResult",
    "Recipe",
    "TrainResult",
    "build_network",
    "build_optimizer",
    "build_schedule",
    "cluster_info",
    "multi_worker_strategy",
    "compute_metrics",
    "evaluate",
    "fine_tune",
    "get_recipe",
    "list_recipes",
    "run",
    "run_demo",
    "run_transfer",
    "strip_aux",
    "train",
    "train_multi_worker",
    "worker_info",
]
