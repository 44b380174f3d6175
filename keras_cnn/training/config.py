"""What a training run is asked to do (`RunConfig`) and its checked form (`RunArgs`, `check`).

A run's arguments are written once, here: `keras_cnn.training.train`, `train_multi_worker` and
`keras-cnn train` build a `RunConfig` from them. The config is frozen: `check` resolves every
fact once (the recipe, the augmentation, where augmentation runs, the image size, the run
directory) into `RunArgs` and never changes the config.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from keras_cnn._validation import check_choice, check_non_negative_int, check_positive_int
from keras_cnn.training.recipes import Recipe, get_recipe

STRATEGIES = ("default", "mirrored", "multi_worker")
AUGMENT_ON = ("auto", "device", "cpu")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything a training run is asked to do.

    Attributes:
        model: registered model name (``keras_cnn.list_models()``). Default "lenet5".
        data: a ``keras_cnn.data.load_data`` source ("digits", "tfds:NAME", a directory) or a
            ``DataBundle`` (used as it is: its batching, splits and image size). Default "digits".
        epochs: epochs (default: the recipe's).
        batch_size: global batch size (default: the recipe's).
        augment: augmentation spec, e.g. "flip,crop,rotate=15,pca=0.1" (default: the recipe's;
            "none" or "" for none).
        augment_on: "auto" (default: "device" when a GPU is visible, else "cpu", the faster path
            on each), "device" (first layer of the training model, inside the compiled step) or
            "cpu" (a tf.data map with AUTOTUNE).
        image_size: ``(H, W)``, "H,W" or an int (default: the model's default size).
        out_dir: run directory (default ``runs/<model>``).
        recipe: None (the family's), a `Recipe`, a family name, or a dict of overrides.
        mixed_precision: train under the "mixed_float16" policy (restored afterwards; outputs
            cast to float32; the saved model is float32).
        jit_compile: compile the train step with XLA. Keras falls back to no XLA (with a
            warning) when a layer cannot be compiled; ``metrics["jit_compile"]`` records what was used.
        seed: random seed (weights, shuffling, augmentation).
        export: export a SavedModel for TF Serving at the end.
        export_dir: export root; the model goes to ``export_dir/<name>/<version>/``.
        export_name: the served model's name (default: ``model``).
        export_version: export version (default: the exporter's next free version).
        early_stopping: stop after this many epochs without validation-loss improvement and
            restore the best weights (None: off).
        resume: reuse ``out_dir`` when it holds this run (same fingerprint, see
            `keras_cnn.training.rundir`): an unfinished one resumes from its checkpoint, a
            finished one returns its stored result (nothing trained or exported); another run
            there is refused. False: start over (the old run's files are replaced).
        verbose: Keras ``fit`` verbosity (0, 1, 2).
        max_examples: use at most this many examples (quick runs).
        validation_split: fraction of the training data held out for validation.
        model_kwargs: extra builder keywords (``width_multiplier``, ``stem``, ...).
        strategy: "default", "mirrored" (``tf.distribute.MirroredStrategy``), "multi_worker"
            (``MultiWorkerMirroredStrategy`` from ``TF_CONFIG``, with the custom loop of
            `keras_cnn.training.distributed`) or a ``tf.distribute.Strategy``; model and
            optimizer are created in its scope.
        callbacks: extra Keras callbacks, run after the built-in ones (the multi-worker loop runs
            them on every worker after the epoch's checkpoint).
        keep_checkpoints: keep ``out_dir/checkpoints`` after the run finished (default: removed,
            with a notice).
        communication: "auto", "ring" or "nccl": the multi-worker strategy's collectives.
        cluster_timeout: with ``strategy="multi_worker"``: seconds to wait for the other workers
            of ``TF_CONFIG`` (a line every 10 s names those not reachable yet). Default 300.
    """

    model: str = "lenet5"
    data: object = "digits"
    epochs: int | None = None
    batch_size: int | None = None
    augment: object = None
    augment_on: str = "auto"
    image_size: object = None
    out_dir: object = None
    recipe: object = None
    mixed_precision: bool = False
    jit_compile: bool = False
    seed: int = 0
    export: bool = True
    export_dir: object = "saved_models"
    export_name: str | None = None
    export_version: int | None = None
    early_stopping: int | None = None
    resume: bool = True
    verbose: int = 1
    max_examples: int | None = None
    validation_split: float = 0.1
    model_kwargs: dict | None = None
    strategy: object = "default"
    callbacks: list | None = None
    keep_checkpoints: bool = False
    communication: str = "auto"
    cluster_timeout: float = 300.0


def build_config(cls, positional, fields):
    """``cls(**positional, **fields)`` for a keyword wrapper (``train("lenet5", "digits", epochs=3)``):
    a positional argument given again by keyword is an error naming it."""
    positional = {k: v for k, v in positional.items() if v is not dataclasses.MISSING}
    both = sorted(set(positional) & set(fields))
    if both:
        raise TypeError(f"{cls.__name__}: {', '.join(both)} given twice (positionally and by keyword)")
    return cls(**positional, **fields)


@dataclasses.dataclass
class TrainResult:
    """What `keras_cnn.training.train` returns.

    Attributes:
        run_dir: the run directory.
        model: the inference model (raw pixels in, single output, float32).
        history: ``{metric: [per-epoch values]}`` over every finished epoch, resumed ones too.
        metrics: the held-out metrics written to ``metrics.json``.
        export_path: the SavedModel directory, or None with ``export=False``.
        recipe: the `Recipe` used.
        status: "trained" (from scratch), "resumed" (from a checkpoint) or "finished" (the run
            directory held this run, finished: its stored result, nothing trained or exported).
    """

    run_dir: Path
    model: object
    history: dict
    metrics: dict
    export_path: Path | None = None
    recipe: Recipe | None = None
    status: str = "trained"


@dataclasses.dataclass(frozen=True)
class RunArgs:
    """The checked arguments of a run (`check`): every fact resolved once."""

    entry: object
    recipe: Recipe
    spec: str | None
    parsed_augment: list
    size: tuple
    run_dir: Path
    aux: bool
    augment_on: str  # "device" or "cpu": where the augmentation really runs


def _resolve_recipe(model, recipe, epochs, batch_size):
    if recipe is None:
        resolved = get_recipe(model)
    elif isinstance(recipe, Recipe):
        resolved = recipe
    elif isinstance(recipe, dict):
        resolved = get_recipe(model, **recipe)
    elif isinstance(recipe, str):
        resolved = get_recipe(recipe)
    else:
        raise ValueError(
            f"`recipe` must be None, a Recipe, a family name or a dict of overrides. Received: recipe={recipe!r}"
        )
    overrides = {}
    if epochs is not None:
        overrides["epochs"] = check_positive_int("epochs", epochs)
    if batch_size is not None:
        overrides["batch_size"] = check_positive_int("batch_size", batch_size)
    return get_recipe(resolved, **overrides) if overrides else resolved


def _check_augment(augment, recipe):
    """The augmentation spec to use (None for none) and its parsed form."""
    spec = recipe.augment if augment is None else augment
    if spec is False or spec is None:
        return None, []
    if not isinstance(spec, str):
        raise ValueError(f"`augment` must be a spec string like 'flip,crop,rotate=15'. Received: augment={augment!r}")
    if spec.strip().lower() in ("", "none", "off", "false"):
        return None, []
    from keras_cnn.data.augment import parse_augment_spec

    try:
        parsed = parse_augment_spec(spec)
    except ValueError as err:
        msg = str(err)
        if "augment" not in msg:
            msg = f"`augment` is not a valid spec: {msg}. Received: augment={spec!r}"
        raise ValueError(msg) from err
    return spec, parsed


def check_flags(cfg, names):
    """Each of ``names`` is a bool on ``cfg``."""
    for name in names:
        flag = getattr(cfg, name)
        if not isinstance(flag, bool):
            raise ValueError(f"`{name}` must be True or False. Received: {name}={flag!r}")


def check_cluster_timeout(timeout):
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"`cluster_timeout` must be a number of seconds > 0. Received: cluster_timeout={timeout!r}")
    return timeout


def _check_scalars(cfg):
    check_choice("augment_on", cfg.augment_on, AUGMENT_ON)
    check_non_negative_int("seed", cfg.seed)
    check_choice("verbose", cfg.verbose, (0, 1, 2))
    if cfg.early_stopping is not None:
        check_positive_int("early_stopping", cfg.early_stopping)
    if cfg.max_examples is not None:
        check_positive_int("max_examples", cfg.max_examples)
    if cfg.model_kwargs is not None and not isinstance(cfg.model_kwargs, dict):
        raise ValueError(f"`model_kwargs` must be a dict. Received: model_kwargs={cfg.model_kwargs!r}")
    check_flags(cfg, ("mixed_precision", "jit_compile", "export", "resume", "keep_checkpoints"))
    if not (isinstance(cfg.strategy, str) or hasattr(cfg.strategy, "scope")):
        raise ValueError(f"`strategy` must be one of {STRATEGIES} or a tf.distribute.Strategy. "
                         f"Received: strategy={cfg.strategy!r}")
    if isinstance(cfg.strategy, str):
        check_choice("strategy", cfg.strategy, STRATEGIES)
    check_cluster_timeout(cfg.cluster_timeout)


def check(cfg):
    """Check every argument of ``cfg`` (no TensorFlow op runs) -> `RunArgs`.

    Raises:
        ValueError: naming the argument, the value and what is accepted.
    """
    from keras_cnn.models.registry import get_model_spec, list_models

    if not isinstance(cfg, RunConfig):
        raise TypeError(f"`config` must be a RunConfig. Received: {type(cfg).__name__}")
    if not isinstance(cfg.model, str) or cfg.model not in list_models():
        raise ValueError(
            f"`model` must be a registered model name (see keras_cnn.list_models()). Received: model={cfg.model!r}"
        )
    entry = get_model_spec(cfg.model)
    recipe = _resolve_recipe(cfg.model, cfg.recipe, cfg.epochs, cfg.batch_size)
    _check_scalars(cfg)
    from keras_cnn.data.augment import resolve_augment_on
    from keras_cnn.training.evaluate import parse_image_size
    from keras_cnn.training.network import check_model_kwargs

    check_model_kwargs(cfg.model, cfg.model_kwargs)
    spec, parsed_augment = _check_augment(cfg.augment, recipe)
    size = parse_image_size(cfg.image_size) or (entry.default_size, entry.default_size)
    run_dir = Path(cfg.out_dir) if cfg.out_dir is not None else Path("runs") / cfg.model
    aux = bool(entry.aux_heads) and recipe.aux_loss_weight > 0
    # "auto": the faster path here (tf.data map on a CPU, in the step on a GPU); the run records it.
    augment_on = resolve_augment_on(cfg.augment_on) if spec else cfg.augment_on
    return RunArgs(entry, recipe, spec, parsed_augment, size, run_dir, aux, augment_on)
