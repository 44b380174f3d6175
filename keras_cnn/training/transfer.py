"""Transfer learning: the three regimes of the lectures (Ng, CNN course, week 2: transfer learning).

"Download the code *and the weights*", then, by the amount of data you have:

1. ``"small"``: freeze the whole pretrained network, replace its softmax by your own and train
   only that -- optionally computing the frozen features once (``precompute=True``) and
   training the head on them;
2. ``"medium"``: freeze the early layers and train the last few plus the new softmax -- the
   more data, the fewer layers frozen (``freeze_until=<stage or layer>`` or
   ``trainable_blocks=N``);
3. ``"large"``: use the pretrained weights as the initialisation and train everything.

`fine_tune` runs the usual two-phase schedule: first the new head alone on the frozen base
(``head_epochs`` at ``head_lr``), then -- for "medium" and "large" -- the regime's layers are
unfrozen and trained together with the head at a lower rate (``fine_tune_epochs`` at
``fine_tune_lr``), so that the random head does not wreck the pretrained weights.

BatchNormalization (a Keras detail the notes do not mention): a layer with ``trainable=False``
runs BatchNormalization in inference mode in Keras 3 (moving statistics used, not updated).
With ``freeze_bn=True`` (default for "small" and "medium") every BN layer of the base stays
frozen and the base is called with ``training=False``, so BN keeps its pretrained statistics
and the base's own dropout is off even in the layers being fine-tuned -- the recipe Keras
recommends for small data. "large" trains BN too (``freeze_bn=False``).

Freezing works on the base's *units*: its top-level layers (a `ResidualBlock`, an
`InceptionBlock`, a `ConvBN`, a Dense ...). ``trainable_blocks=N`` counts units that hold
weights, from the end.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import keras
import numpy as np

from keras_cnn._compat import keras_ as keras_compat
from keras_cnn._validation import check_choice, check_fraction, check_non_negative_int, check_positive_int
from keras_cnn.training import rundir
from keras_cnn.training.lifecycle import Lifecycle

logger = logging.getLogger(__name__)

__all__ = [
    "REGIMES",
    "FreezePlan",
    "PhaseInfo",
    "TransferConfig",
    "TransferResult",
    "apply_regime",
    "build_transfer_model",
    "feature_model",
    "fine_tune",
    "freeze_points",
    "load_base",
    "run_transfer",
]

REGIMES = ("small", "medium", "large")
POOLINGS = ("avg", "max", "flatten")


def _check_regime(regime):
    return check_choice("regime", regime, REGIMES)


# --------------------------------------------------------------------------------------------
# The base network.


def feature_model(model, layer=None):
    """``model`` without its classifier: the features its softmax was reading.

    Args:
        model: a `keras.Model` with a classification top (e.g. a trained ``model.keras``).
        layer: name of the layer whose output becomes the output; default: the input of the
            last Dense layer (named "predictions" if there is one), walking back through
            parameter-free layers (Dropout, Activation) in front of it.

    Returns:
        A Functional `keras.Model` sharing ``model``'s layers and weights.

    Example:
        >>> base = feature_model(keras.models.load_model("runs/lenet5/model.keras"))  # 84 features
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"`model` must be a keras.Model. Received: model={model!r}")
    if layer is not None:
        names = [lay.name for lay in model.layers]
        if layer not in names:
            raise ValueError(f"`layer` must be a layer of {model.name!r}, one of {names}. Received: layer={layer!r}")
        return keras.Model(model.inputs, model.get_layer(layer).output, name=f"{model.name}_features")
    dense = [lay for lay in model.layers if isinstance(lay, keras.layers.Dense)]
    nested = [lay for lay in model.layers if isinstance(lay, keras.Model)]
    if not dense and len(nested) == 1 and model.layers[-1] is nested[0] and len(model.inputs) == 1:
        # e.g. with_preprocessing(net): Input -> Preprocess -> net. Rebuild the chain with the
        # headless inner network.
        inner = feature_model(nested[0])
        inputs = keras.Input(shape=tuple(model.input_shape[1:]), name=model.layers[0].name)
        x = inputs
        for lay in model.layers[1:-1]:
            x = lay(x)
        return keras.Model(inputs, inner(x), name=f"{model.name}_features")
    if not dense:
        raise ValueError(
            f"`model` {model.name!r} has no Dense classifier to remove; pass it as the base as it is, "
            "or name the feature layer with layer=."
        )
    top = next((lay for lay in dense if lay.name == "predictions"), dense[-1])
    tensor = top.input
    while True:
        history = getattr(tensor, "_keras_history", None)
        op = history[0] if history else None
        if isinstance(op, (keras.layers.Dropout, keras.layers.Activation)) and not op.weights:
            tensor = op.input
            continue
        break
    return keras.Model(model.inputs, tensor, name=f"{model.name}_features")


def load_base(base, *, weights=None, input_shape=None, strip_top=True, model_kwargs=None):
    """Resolve ``base`` into a headless `keras.Model` and its registry name (or None).

    A registry name is built with the builder arguments its ``weights`` need
    (`keras_cnn.models.specs.merge_weights_build_args`): ``load_base("resnet50",
    weights="timm:resnet50.tv_in1k")`` builds ``keras_layout=False``, torchvision's layout of those
    weights, and says so with a `UserWarning`; ``model_kwargs`` that contradict them are an error.

    Args:
        base: a registry name (built with ``include_top=False``), a path to a ``.keras`` model
            (its classifier removed with `feature_model` when ``strip_top``), or a `keras.Model`
            (used as it is).
        weights: for a registry name: None, "imagenet" (the default weights of the layout
            built), a weights name (``keras_cnn.models.list_weights()``, e.g.
            "timm:resnet50.tv_in1k") or a weights file path.
        input_shape: for a registry name: (H, W, C); default the entry's default size.
        strip_top: remove the classifier of a loaded ``.keras`` model. Default True.
        model_kwargs: for a registry name: further builder arguments, e.g.
            ``{"keras_layout": False}`` for a timm ResNet-50 safetensors file. Default None.

    Returns:
        ``(model, arch)``.

    Raises:
        ValueError: an unknown ``base``; ``weights`` or ``model_kwargs`` for a base that is not a
            registry name; ``model_kwargs`` that set what `load_base` sets itself, that the builder
            does not take, or that contradict what ``weights`` need.
    """
    from keras_cnn.models.registry import get_model_spec, list_models

    text = os.fspath(base) if isinstance(base, (str, os.PathLike)) else None
    if model_kwargs is not None and text not in list_models():
        raise ValueError(
            "`model_kwargs` applies to a registry name; a .keras file or a keras.Model is built already. "
            f"Received: base={base!r}, model_kwargs={model_kwargs!r}"
        )
    if isinstance(base, keras.Model):
        return base, _identity_arch(base)
    if text is not None:
        if text in list_models():
            entry = get_model_spec(text)
            if input_shape is None:
                input_shape = (entry.default_size, entry.default_size, entry.channels)
            from keras_cnn.models._common import with_weights_build_args

            kwargs = with_weights_build_args(text, weights, _check_base_kwargs(text, model_kwargs))
            try:
                model = entry.builder(include_top=False, weights=weights, input_shape=tuple(input_shape), **kwargs)
            except TypeError as err:  # an argument the builder does not take, or of the wrong kind
                if not model_kwargs:
                    raise
                raise ValueError(
                    f"`model_kwargs` could not build {text!r}: {err}. Received: model_kwargs={model_kwargs!r}"
                ) from err
            return model, text
        if os.path.isfile(text):
            if weights is not None:
                raise ValueError(
                    "`weights` applies to a registry name; a .keras file brings its own. "
                    f"Received: base={text!r}, weights={weights!r}"
                )
            from keras_cnn._io import load_keras_model

            model = load_keras_model(text, arg="base")
            return (feature_model(model) if strip_top else model), _identity_arch(model)
    raise ValueError(
        "`base` must be a registry name, a path to a .keras model or a keras.Model. "
        f"Received: base={base!r}. Known names: {list_models()}"
    )


#: Builder arguments `load_base` sets itself (a headless base at ``input_shape`` with ``weights``).
_BASE_SETS = ("include_top", "weights", "input_shape", "input_tensor", "classes", "classifier_activation",
              "pooling", "aux_logits")


def _check_base_kwargs(arch, model_kwargs):
    """``model_kwargs`` for the headless base ``arch``: a dict of arguments its builder takes."""
    if model_kwargs is None:
        return {}
    if not isinstance(model_kwargs, dict):
        raise ValueError(f"`model_kwargs` must be a dict. Received: model_kwargs={model_kwargs!r}")  # noqa: TRY004 - the CLI reports ValueError
    own = sorted(k for k in model_kwargs if k in _BASE_SETS)
    if own:
        raise ValueError(
            f"`model_kwargs` may not set {', '.join(own)}: the transfer base is built headless "
            f"(include_top=False) at `input_shape` with `weights`. Received: model_kwargs={model_kwargs!r}"
        )
    from keras_cnn.training.network import check_model_kwargs

    return check_model_kwargs(arch, model_kwargs)  # the builder's signature, as training checks it


def _contains_preprocess(model):
    from keras_cnn.layers.preprocess import Preprocess

    return any(isinstance(layer, Preprocess) for layer in keras_compat.flatten_layers(model))


def _identity_arch(model):
    """The registry name recorded in ``model`` (keras_cnn identity), or None."""
    from keras_cnn.models.identity import model_identity

    identity = model_identity(model)
    return identity.arch if identity is not None else None


# --------------------------------------------------------------------------------------------
# Freezing.


@dataclasses.dataclass
class FreezePlan:
    """Which parts of the base train in a regime.

    Attributes:
        regime: "small", "medium" or "large".
        frozen: base units (top-level layer names) whose weights are frozen.
        trainable: base units that train.
        freeze_bn: whether every BatchNormalization of the base is frozen (inference mode).
        trainable_weights: number of trainable weight tensors of the whole model.
    """

    regime: str
    frozen: list
    trainable: list
    freeze_bn: bool
    trainable_weights: int = 0


def _units(base):
    """Top-level layers of ``base`` that hold weights, in order."""
    return [layer for layer in base.layers if layer.weights]


def freeze_points(base, arch=None):
    """Accepted ``freeze_until`` values: stage name -> unit name, then every weighted unit.

    Args:
        base: the base `keras.Model`.
        arch: registry name, for its stage names (default: recognised from the layer names).

    Returns:
        dict ``{accepted name: top-level layer name}``.
    """
    from keras_cnn.models.registry import get_model_spec

    points = {}
    arch = arch or _identity_arch(base)
    top_names = {layer.name for layer in base.layers}
    if arch is not None:
        for stage, layer in get_model_spec(arch).stages.items():
            if layer in top_names:
                points[stage] = layer
    for layer in _units(base):
        points[layer.name] = layer.name
    return points


def _resolve_freeze_until(base, freeze_until, arch):
    points = freeze_points(base, arch)
    if freeze_until in points:
        return points[freeze_until]
    # A sub-layer's name (keras.applications names such as "conv4_block6_out" live inside
    # our composite blocks): freeze through the unit that contains it.
    for layer in base.layers:
        if layer.name == freeze_until:
            return layer.name
        if any(sub.name == freeze_until for sub in keras_compat.flatten_layers(layer)):
            return layer.name
    raise ValueError(
        "`freeze_until` must name a stage or a layer of the base (everything up to and including "
        f"it is frozen). Accepted: {list(points)} (or a sub-layer name inside one of them). "
        f"Received: freeze_until={freeze_until!r}"
    )


def _find_base(model):
    """The nested base model inside a transfer model, or ``model`` itself."""
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return nested[0] if len(nested) == 1 else model


def apply_regime(model, regime, *, base=None, freeze_until=None, trainable_blocks=None, freeze_bn=None, arch=None):
    """Set ``trainable`` on the base of ``model`` for ``regime``; the head always trains.

    Call before ``compile`` (Keras reads ``trainable`` when it compiles).

    Args:
        model: a model from `build_transfer_model` (or any model whose one nested
            `keras.Model` is the base).
        regime: "small" (freeze the whole base), "medium" (freeze up to ``freeze_until``, or
            all but the last ``trainable_blocks`` units) or "large" (train everything).
        base: the base inside ``model``; default its single nested `keras.Model`.
        freeze_until: "medium": stage name (the registry entry's ``stages``), top-level layer
            name, or the name of a layer inside one (e.g. keras' "conv4_block6_out");
            everything up to and including it is frozen.
        trainable_blocks: "medium": number of weighted units, counted from the end, to train.
        freeze_bn: keep every BatchNormalization of the base frozen (inference mode). Default:
            True for "small" and "medium", False for "large".
        arch: registry name of the base, for stage names.

    Returns:
        A `FreezePlan`.

    Raises:
        ValueError: unknown ``regime``; for "medium" neither or both of ``freeze_until`` and
            ``trainable_blocks``, an unknown ``freeze_until`` or a bad ``trainable_blocks``.
    """
    regime = _check_regime(regime)
    base = base if base is not None else _find_base(model)
    units = _units(base)
    if regime == "medium":
        if (freeze_until is None) == (trainable_blocks is None):
            raise ValueError(
                "regime='medium' needs exactly one of `freeze_until` (a stage or layer name) and "
                f"`trainable_blocks` (units to train, from the end; the base has {len(units)}). "
                f"Received: freeze_until={freeze_until!r}, trainable_blocks={trainable_blocks!r}"
            )
        if trainable_blocks is not None:
            check_positive_int("trainable_blocks", trainable_blocks)
            if trainable_blocks > len(units):
                raise ValueError(
                    f"`trainable_blocks` must be at most the number of weighted units of the base "
                    f"({len(units)}). Received: trainable_blocks={trainable_blocks}"
                )
            frozen_units = units[: len(units) - trainable_blocks]
        else:
            last = _resolve_freeze_until(base, freeze_until, arch)
            names = [layer.name for layer in base.layers]
            cut = names.index(last)
            frozen_units = [layer for layer in units if names.index(layer.name) <= cut]
    elif freeze_until is not None or trainable_blocks is not None:
        raise ValueError(
            f"`freeze_until` and `trainable_blocks` apply to regime='medium'. Received: regime={regime!r}, "
            f"freeze_until={freeze_until!r}, trainable_blocks={trainable_blocks!r}"
        )
    else:
        frozen_units = units if regime == "small" else []
    if freeze_bn is None:
        freeze_bn = regime != "large"
    # Everything trainable again first (whatever an earlier freeze left inside the blocks), then
    # the plan; set_trainable passes each flag down even where the layer's own flag is unchanged.
    keras_compat.set_trainable(model, True)
    frozen_ids = {id(layer) for layer in frozen_units}
    for layer in base.layers:
        keras_compat.set_trainable(layer, id(layer) not in frozen_ids)
    if freeze_bn:
        for layer in keras_compat.flatten_layers(base):
            if isinstance(layer, keras.layers.BatchNormalization):
                keras_compat.set_trainable(layer, False)
    return FreezePlan(
        regime=regime,
        frozen=[layer.name for layer in frozen_units],
        trainable=[layer.name for layer in units if id(layer) not in frozen_ids],
        freeze_bn=bool(freeze_bn),
        trainable_weights=len(model.trainable_weights),
    )


# --------------------------------------------------------------------------------------------
# The transfer model.


def build_transfer_model(base, num_classes, regime="small", *, pooling="avg", name=None, **fields):
    """A pretrained base with a new softmax head, frozen for ``regime``.

    ``pixels -> [Preprocess] -> base -> features (global pool) -> [Dropout] -> predictions``.
    The base is one nested layer named as the base model; "features" is the pooled feature
    vector the head reads (what ``precompute`` caches).

    Args:
        base: registry name (built headless with ``weights``), path to a ``.keras`` model (its
            classifier removed), or a headless `keras.Model`.
        num_classes: classes of the new softmax.
        regime: "small", "medium" or "large" (see `apply_regime`). Default "small".
        pooling: "avg", "max" or "flatten", for a base that outputs a feature map. Default "avg".
        name: model name. Default "<base>_transfer".
        **fields: these fields of `TransferConfig` (the others do not apply here):
        freeze_until: "medium": freeze through this stage / layer.
        trainable_blocks: "medium": train the last N weighted units.
        dropout: dropout before the new classifier. Default 0.2.
        preprocessing: "auto" (the registry entry's mode, unless the base already contains a
            `Preprocess` layer; ValueError if the base is not recognised), None (none: the base
            takes what you feed it), or "tf" / "caffe" / "torch" / "unit". Default "auto".
        freeze_bn: see `apply_regime`. With True the base is called with ``training=False``.
        weights: for a registry name: None, "imagenet", a weights name or a path; the builder
            arguments a weights name needs are added (see `load_base`).
        input_shape: for a registry name: the input (H, W, C).
        arch: registry name of a `keras.Model` base (for preprocessing and stage names).
        model_kwargs: for a registry name: further builder arguments (see `load_base`).

    Returns:
        The compiled-ready `keras.Model` (not compiled), with ``trainable`` set for ``regime``.

    Example:
        >>> model = build_transfer_model("resnet50", 5, "medium", freeze_until="conv4",
        ...                              weights="imagenet", input_shape=(224, 224, 3))
    """
    return _build_transfer_model(base, num_classes, TransferConfig(regime=regime, **fields), pooling=pooling,
                                 name=name)


def _build_transfer_model(base, num_classes, cfg, *, pooling="avg", name=None):
    from keras_cnn.layers.preprocess import MODES, Preprocess

    regime = _check_regime(cfg.regime)
    freeze_until, trainable_blocks, dropout, preprocessing = (
        cfg.freeze_until, cfg.trainable_blocks, cfg.dropout, cfg.preprocessing)
    freeze_bn, arch = cfg.freeze_bn, cfg.arch
    check_positive_int("num_classes", num_classes)
    check_fraction("dropout", dropout)
    check_choice("pooling", pooling, POOLINGS)
    base_model, base_arch = load_base(base, weights=cfg.weights, input_shape=cfg.input_shape,
                                      model_kwargs=cfg.model_kwargs)
    arch = arch or base_arch
    if preprocessing == "auto":
        if _contains_preprocess(base_model):
            mode = None
        else:
            from keras_cnn.weights import expected_preprocessing

            try:
                mode = expected_preprocessing(base_model, arch)
            except ValueError:
                raise ValueError(
                    "preprocessing='auto' needs to know the network: pass arch=<registry name>, "
                    f"preprocessing=<one of {list(MODES)}>, or preprocessing=None if the base takes "
                    f"your pixels as they are. Received: base {base_model.name!r} (not built by keras_cnn)"
                ) from None
    elif preprocessing is None:
        mode = None
    else:
        mode = check_choice("preprocessing", preprocessing, MODES + ("auto", None))
    if freeze_bn is None:
        freeze_bn = regime != "large"

    inputs = keras.Input(shape=tuple(base_model.input_shape[1:]), name="pixels")
    x = Preprocess(mode, name="preprocess")(inputs) if mode else inputs
    x = base_model(x, training=False) if freeze_bn else base_model(x)
    if len(x.shape) == 4:
        pool = {
            "avg": keras.layers.GlobalAveragePooling2D,
            "max": keras.layers.GlobalMaxPooling2D,
            "flatten": keras.layers.Flatten,
        }[pooling]
        x = pool(name="features")(x)
    elif len(x.shape) == 2:
        x = keras.layers.Identity(name="features")(x)
    else:
        raise ValueError(f"The base must output a feature map or a vector. Received: output shape {x.shape}")
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs, name=name or f"{base_model.name}_transfer")
    apply_regime(
        model, regime, base=base_model, freeze_until=freeze_until, trainable_blocks=trainable_blocks,
        freeze_bn=freeze_bn, arch=arch,
    )
    return model


def _is_transfer_model(model):
    names = {layer.name for layer in model.layers}
    return "features" in names and "predictions" in names and any(isinstance(lay, keras.Model) for lay in model.layers)


def _head_layers(model):
    """The layers after "features": the head (dropout, predictions)."""
    names = [layer.name for layer in model.layers]
    return model.layers[names.index("features") + 1 :]


# --------------------------------------------------------------------------------------------
# Training.


@dataclasses.dataclass(frozen=True)
class TransferConfig:
    """Everything a transfer run is asked to do: `fine_tune` (in memory) and `run_transfer`
    (``keras-cnn transfer``: a run directory through the one lifecycle).

    Attributes:
        base: registry name, path to a ``.keras`` model (its classifier removed) or a headless
            `keras.Model` (`fine_tune` only).
        data: a `keras_cnn.data.load_data` source (`run_transfer`); `fine_tune` takes its data
            as an argument. Default "digits".
        regime: "small", "medium" or "large". Default "small".
        num_classes: default: the data's class names, or ``max(y) + 1``.
        head_epochs: phase 1 epochs. Default 5.
        fine_tune_epochs: phase 2 epochs (ignored for "small"). Default 5.
        head_lr: phase 1 learning rate. Default 1e-3.
        fine_tune_lr: phase 2 learning rate, at most ``head_lr``. Default ``head_lr / 10``.
        batch_size: for array data, feature caching and loading a source. Default 32.
        freeze_until, trainable_blocks, freeze_bn: see `apply_regime`.
        dropout: dropout before the new classifier. Default 0.2.
        preprocessing: see `build_transfer_model`. Default "auto".
        precompute: phase 1 on cached features of the frozen part. Default False.
        optimizer: "adam", "sgd" (momentum 0.9), "rmsprop" or "adamw". Default "adam".
        weights: for a registry name: None, "imagenet", a weights name or a file (see `load_base`).
        input_shape: for a registry name: the input (H, W, C) (`run_transfer` derives it from
            ``image_size``).
        arch: registry name of a `keras.Model` base (for preprocessing and stage names).
        model_kwargs: for a registry name: further builder arguments (see `load_base`).
        shuffle: shuffle array data each epoch. Default True.
        callbacks: Keras callbacks for both phases.
        seed: if set, ``keras.utils.set_random_seed(seed)`` first (`run_transfer`: default 0).
        verbose: Keras fit verbosity. Default 0.
        run_eagerly: compile with ``run_eagerly`` (faster for tiny models and a few steps).
        image_size: `run_transfer`: the input size ``(H, W)`` or ``(H, W, C)`` (default: the
            network's, or the ``.keras`` model's).
        max_examples: `run_transfer`: read at most this many examples per split.
        validation_split: `run_transfer`: fraction of the training data for validation. Default 0.1.
        out_dir: `run_transfer`: the run directory (default ``runs/transfer_<base>_<regime>``).
        resume: `run_transfer`: reuse ``out_dir`` when it holds this run (finished: its stored
            result; interrupted: resume at the phase and epoch it reached; another run: refused).
            False: start over. Default True.
        keep_checkpoints: `run_transfer`: keep the checkpoints once the run finished.
    """

    base: object = None
    data: object = "digits"
    regime: str = "small"
    num_classes: int | None = None
    head_epochs: int = 5
    fine_tune_epochs: int = 5
    head_lr: float = 1e-3
    fine_tune_lr: float | None = None
    batch_size: int = 32
    freeze_until: str | None = None
    trainable_blocks: int | None = None
    dropout: float = 0.2
    preprocessing: object = "auto"
    freeze_bn: bool | None = None
    precompute: bool = False
    optimizer: str = "adam"
    weights: object = None
    input_shape: tuple | None = None
    arch: str | None = None
    model_kwargs: dict | None = None
    shuffle: bool = True
    callbacks: list | None = None
    seed: int | None = None
    verbose: int = 0
    run_eagerly: bool = False
    image_size: object = None
    max_examples: int | None = None
    validation_split: float = 0.1
    out_dir: object = None
    resume: bool = True
    keep_checkpoints: bool = False


@dataclasses.dataclass
class PhaseInfo:
    """One phase of `fine_tune`.

    Attributes:
        name: "head" or "fine_tune".
        epochs: epochs run.
        learning_rate: the optimizer's learning rate.
        plan: the `FreezePlan` in force.
        precomputed: whether the head trained on cached features.
        history: ``{metric: [per-epoch values]}``.
    """

    name: str
    epochs: int
    learning_rate: float
    plan: FreezePlan
    precomputed: bool = False
    history: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class TransferResult:
    """What `fine_tune` and `run_transfer` return.

    Attributes:
        model: the trained transfer model (raw pixels in when preprocessing is inside).
        regime: "small", "medium" or "large".
        phases: the `PhaseInfo` of each phase run, in order.
        metrics: ``{"val_accuracy": ..., "test_accuracy": ..., "test_loss": ...}`` for the splits
            given (`run_transfer`: everything ``metrics.json`` holds).
        class_names: from the data, if it had them.
        run_dir: `run_transfer`: the run directory.
        status: `run_transfer`: "trained", "resumed" or "finished" (the stored result; nothing trained).
    """

    model: keras.Model
    regime: str
    phases: list
    metrics: dict
    class_names: list = None
    run_dir: object = None
    status: str = "trained"

    @property
    def history(self):
        """Every phase's history, concatenated per metric."""
        out = {}
        for phase in self.phases:
            for key, values in phase.history.items():
                out.setdefault(key, []).extend(values)
        return out


def _split_data(data):
    """-> (train, val, test, class_names); each split a tf.data.Dataset or an (x, y) tuple."""
    if hasattr(data, "train") and hasattr(data, "class_names"):
        return data.train, getattr(data, "val", None), getattr(data, "test", None), list(data.class_names)
    if isinstance(data, dict):
        return data.get("train"), data.get("val"), data.get("test"), data.get("class_names")
    if isinstance(data, (tuple, list)) and len(data) == 2 and not isinstance(data[0], (tuple, list)):
        return (data[0], data[1]), None, None, None
    if (
        isinstance(data, (tuple, list))
        and 1 <= len(data) <= 3
        and all(d is None or (isinstance(d, (tuple, list)) and len(d) == 2) for d in data)
    ):
        parts = [tuple(d) if d is not None else None for d in data] + [None] * (3 - len(data))
        return parts[0], parts[1], parts[2], None
    try:
        import tensorflow as tf

        if isinstance(data, tf.data.Dataset):
            return data, None, None, None
    except ImportError:  # pragma: no cover
        pass
    raise ValueError(
        "`data` must be a keras_cnn.data.DataBundle, a tf.data.Dataset of (images, labels) "
        "batches, an (x, y) pair of arrays, or ((x, y), (x_val, y_val)[, (x_test, y_test)]). "
        f"Received: data of type {type(data).__name__}"
    )


def _fit(model, split, cfg, *, epochs, validation, callbacks, phase_dir=None):
    """One phase: the run pipeline's ``fit`` engine (`keras_cnn.training.engine.fit_engine`).

    With ``phase_dir`` (a run directory's ``checkpoints/<phase>``) the phase checkpoints every
    epoch (``BackupAndRestore``) and logs its history there (``history.csv``): a rerun restores
    it and trains only the epochs left (none when the phase had finished).
    """
    from keras_cnn.training.engine import fit_engine

    callbacks = list(callbacks or [])
    if phase_dir is not None:
        from keras_cnn.training.callbacks import read_history, trim_history

        phase_dir.mkdir(parents=True, exist_ok=True)
        done = rundir.backup_epoch(phase_dir.parent.parent, checkpoint_dir=phase_dir)
        trim_history(phase_dir / rundir.HISTORY_FILE, done)  # rows of an epoch killed before its checkpoint
        callbacks = [keras.callbacks.CSVLogger(str(phase_dir / rundir.HISTORY_FILE), append=True),
                     keras.callbacks.BackupAndRestore(str(phase_dir), delete_checkpoint=False), *callbacks]
    history = fit_engine(
        model, split, epochs=epochs, validation=validation, callbacks=callbacks, verbose=cfg.verbose,
        batch_size=cfg.batch_size, shuffle=cfg.shuffle,
    )
    if phase_dir is not None:
        logged = read_history(phase_dir / rundir.HISTORY_FILE)
        return {k: [float(v) for v in vals] for k, vals in logged.items() if k != "epoch"}
    return {k: [float(v) for v in vals] for k, vals in history.history.items()}


def _features(extractor, split, batch_size):
    """Run the frozen part once over a split: -> (features, labels) arrays."""
    if isinstance(split, tuple):
        x, y = split
        return np.asarray(extractor.predict(x, batch_size=batch_size, verbose=0)), np.asarray(y)
    feats, labels = [], []
    for xb, yb in split:
        feats.append(np.asarray(extractor(xb, training=False)))
        labels.append(np.asarray(yb))
    return np.concatenate(feats), np.concatenate(labels)


def _compile(model, learning_rate, optimizer, run_eagerly=False):
    from keras_cnn.training.recipes import OPTIMIZERS

    check_choice("optimizer", optimizer, OPTIMIZERS)
    opt = {
        "sgd": lambda: keras.optimizers.SGD(learning_rate, momentum=0.9),
        "rmsprop": lambda: keras.optimizers.RMSprop(learning_rate),
        "adam": lambda: keras.optimizers.Adam(learning_rate),
        "adamw": lambda: keras.optimizers.AdamW(learning_rate),
    }[optimizer]()
    from keras_cnn.training.engine import compile_model

    compile_model(model, opt, run_eagerly=run_eagerly)  # the compile of every training path


def _num_classes(train, class_names):
    if class_names:
        return len(class_names)
    if isinstance(train, tuple):
        return int(np.max(train[1])) + 1
    raise ValueError("`num_classes` is needed when `data` carries no class names. Received: num_classes=None")


def fine_tune(model_or_base, data, regime="small", **fields):
    """Transfer a pretrained network to ``data`` in one of the three regimes, in two phases.

    Phase 1 ("head"): the whole base frozen, the new head trained for ``head_epochs`` at
    ``head_lr`` -- on features computed once by the frozen part when ``precompute=True``.
    Phase 2 ("fine_tune", regimes "medium" and "large" only): the regime's layers unfrozen
    (`apply_regime`), the model recompiled with a fresh optimizer at the lower
    ``fine_tune_lr`` and trained for ``fine_tune_epochs``. "small" stops after phase 1.

    Args:
        model_or_base: a model from `build_transfer_model`, or a base for it (registry name,
            ``.keras`` path, headless `keras.Model`).
        data: a `keras_cnn.data.DataBundle` (its train / val / test splits), a
            ``tf.data.Dataset`` of (images, labels) batches, an ``(x, y)`` pair, or
            ``((x, y), (x_val, y_val)[, (x_test, y_test)])``.
        regime: "small", "medium" or "large". Default "small".
        **fields: the other fields of `TransferConfig` (head_epochs, head_lr, freeze_until,
            precompute, weights, seed, ...: each is documented there).

    Returns:
        `TransferResult`.

    Example:
        >>> bundle = keras_cnn.data.load_data("digits", image_size=32)
        >>> result = fine_tune("runs/lenet5/model.keras", bundle, "medium", trainable_blocks=2)
        >>> result.metrics["test_accuracy"]
    """
    cfg = TransferConfig(base=model_or_base, regime=regime, **fields)
    return _fine_tune(model_or_base, data, check_schedule(cfg))


def check_schedule(cfg):
    """``cfg`` with its schedule checked and ``fine_tune_lr`` resolved (``head_lr / 10`` by default).

    Raises:
        ValueError: naming the argument, the value and what is accepted.
    """
    _check_regime(cfg.regime)
    check_non_negative_int("head_epochs", cfg.head_epochs)
    check_non_negative_int("fine_tune_epochs", cfg.fine_tune_epochs)
    check_positive_int("batch_size", cfg.batch_size)
    for arg in ("head_lr", "fine_tune_lr"):
        value = getattr(cfg, arg)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise ValueError(f"`{arg}` must be a number > 0. Received: {arg}={value!r}")
    fine_tune_lr = cfg.head_lr / 10 if cfg.fine_tune_lr is None else cfg.fine_tune_lr
    if fine_tune_lr > cfg.head_lr:
        raise ValueError(
            "`fine_tune_lr` must not exceed `head_lr`: unfrozen pretrained layers are trained at a "
            f"lower rate. Received: head_lr={cfg.head_lr}, fine_tune_lr={fine_tune_lr}"
        )
    from keras_cnn.training.recipes import OPTIMIZERS

    check_choice("optimizer", cfg.optimizer, OPTIMIZERS)
    return dataclasses.replace(cfg, fine_tune_lr=fine_tune_lr)


def _transfer_model(model_or_base, train, class_names, cfg):
    """The model to train: ``model_or_base`` when it is a transfer model, else one built on it."""
    if isinstance(model_or_base, keras.Model) and _is_transfer_model(model_or_base):
        model = model_or_base
        if cfg.weights is not None or cfg.model_kwargs is not None:
            raise ValueError(
                "`weights` and `model_kwargs` build a registry-name base; this transfer model is built "
                f"already. Received: weights={cfg.weights!r}, model_kwargs={cfg.model_kwargs!r}"
            )
        if cfg.num_classes is not None and cfg.num_classes != model.output_shape[-1]:
            raise ValueError(
                f"`num_classes` does not match the model's head ({model.output_shape[-1]}). "
                f"Received: num_classes={cfg.num_classes}"
            )
        return model
    freeze_bn = cfg.regime != "large" if cfg.freeze_bn is None else cfg.freeze_bn
    head_cfg = dataclasses.replace(cfg, regime="small", freeze_until=None, trainable_blocks=None, freeze_bn=freeze_bn)
    return _build_transfer_model(model_or_base, cfg.num_classes or _num_classes(train, class_names), head_cfg)


def _checked_model(model_or_base, train, class_names, cfg):
    """`_transfer_model` with the regime's arguments checked on it, before any training."""
    model = _transfer_model(model_or_base, train, class_names, cfg)
    apply_regime(
        model, cfg.regime, base=_find_base(model), freeze_until=cfg.freeze_until,
        trainable_blocks=cfg.trainable_blocks, freeze_bn=cfg.freeze_bn, arch=cfg.arch,
    )
    return model


def _check_data(data):
    """-> (train, val, test, class_names), with the run pipeline's data checks."""
    train, val, test, class_names = _split_data(data)
    if train is None:
        raise ValueError("`data` has no training split. Received: train=None")
    if hasattr(data, "train") and hasattr(data, "class_names"):
        from keras_cnn.training.pipeline import check_bundle

        check_bundle(data, getattr(data, "source", "bundle"), announce=False)  # the run pipeline's data checks
    elif class_names is not None and len(class_names) < 2:
        raise ValueError(f"`data` must have at least two classes. Received: class_names={list(class_names)!r}")
    return train, val, test, class_names


def _phase_dir(checkpoints, name):
    return None if checkpoints is None else Path(checkpoints) / name


def _head_phase(model, base, train, val, cfg, checkpoints):
    """Phase 1: the head alone on the frozen base (on cached features with ``precompute``)."""
    plan = apply_regime(model, "small", base=base, arch=cfg.arch)
    fit = dict(epochs=cfg.head_epochs, callbacks=cfg.callbacks, phase_dir=_phase_dir(checkpoints, "head"))
    if cfg.precompute:
        extractor = keras.Model(model.inputs, model.get_layer("features").output)
        f_train = _features(extractor, train, cfg.batch_size)
        f_val = _features(extractor, val, cfg.batch_size) if val is not None else None
        feat_in = keras.Input(shape=f_train[0].shape[1:], name="features_in")
        x = feat_in
        for layer in _head_layers(model):  # the same layers: training them trains the model's head
            x = layer(x)
        trained = keras.Model(feat_in, x, name=f"{model.name}_head")
        train, val = f_train, f_val
    else:
        trained = model
    _compile(trained, cfg.head_lr, cfg.optimizer, cfg.run_eagerly)
    history = _fit(trained, train, cfg, validation=val, **fit) if cfg.head_epochs else {}
    rate = float(trained.optimizer.learning_rate)
    return PhaseInfo("head", cfg.head_epochs, rate, plan, bool(cfg.precompute), history)


def _fine_tune_phase(model, base, train, val, cfg, checkpoints):
    """Phase 2: the regime's layers unfrozen, a fresh optimizer at the lower rate."""
    plan = apply_regime(
        model, cfg.regime, base=base, freeze_until=cfg.freeze_until, trainable_blocks=cfg.trainable_blocks,
        freeze_bn=cfg.freeze_bn, arch=cfg.arch,
    )
    _compile(model, cfg.fine_tune_lr, cfg.optimizer, cfg.run_eagerly)
    history = _fit(model, train, cfg, epochs=cfg.fine_tune_epochs, validation=val, callbacks=cfg.callbacks,
                   phase_dir=_phase_dir(checkpoints, "fine_tune"))
    return PhaseInfo("fine_tune", cfg.fine_tune_epochs, float(model.optimizer.learning_rate), plan, False, history)


def _fine_tune(model_or_base, data, cfg, *, checkpoints=None, model=None):
    """The transfer engine: both phases, then the held-out loss and accuracy (``cfg`` checked)."""
    if cfg.seed is not None:
        keras.utils.set_random_seed(cfg.seed)
    train, val, test, class_names = _check_data(data)
    model = model if model is not None else _checked_model(model_or_base, train, class_names, cfg)
    base = _find_base(model)
    phases = [_head_phase(model, base, train, val, cfg, checkpoints)]
    if cfg.regime != "small" and cfg.fine_tune_epochs:
        phases.append(_fine_tune_phase(model, base, train, val, cfg, checkpoints))
    if phases[-1].precomputed:  # the full model was never compiled: compile it to evaluate
        _compile(model, cfg.head_lr, cfg.optimizer, cfg.run_eagerly)
    from keras_cnn.training.engine import evaluate_engine

    metrics = {}
    for split_name, split in (("val", val), ("test", test)):
        if split is None:
            continue
        loss, acc = evaluate_engine(model, split, batch_size=cfg.batch_size)
        metrics[f"{split_name}_loss"], metrics[f"{split_name}_accuracy"] = float(loss), float(acc)
    return TransferResult(model=model, regime=cfg.regime, phases=phases, metrics=metrics, class_names=class_names)


# --------------------------------------------------------------------------------------------
# A transfer run: a run directory through the one lifecycle (``keras-cnn transfer``).


def run_transfer(config=None, **fields):
    """Transfer ``config.base`` to ``config.data`` in a run directory, through the one lifecycle
    (`keras_cnn.training.lifecycle`): a rerun of a finished run returns its stored result
    (nothing trained), an interrupted one resumes at the phase and epoch it reached, another run
    in ``out_dir`` is refused naming the fields that differ (``resume=False`` starts over).

    The run directory holds ``model.keras``, ``class_names.json``, ``metrics.json`` (both phases,
    their histories, held-out accuracy, per-class accuracy, confusion matrix), the learning
    curves, the confusion matrix, ``config.json`` and ``README.txt``.

    Args:
        config: a `TransferConfig` whose ``base`` is a registry name or a ``.keras`` file and
            whose ``data`` is a `keras_cnn.data.load_data` source; or None and **fields, its fields.

    Returns:
        A `TransferResult` with ``run_dir`` and ``status``.

    Raises:
        ValueError: an invalid argument (named), data with fewer than two classes, ``out_dir``
            holding another run or in use by another process.
    """
    if config is None:
        config = TransferConfig(**fields)
    elif fields:
        raise TypeError("run_transfer(config) takes no other argument; use dataclasses.replace(config, ...)")
    return TransferRun(config).execute()


def _image_size(value):
    """``(H, W)`` or None, and the channels given (or None)."""
    from keras_cnn.training.evaluate import parse_image_size

    if value is not None and isinstance(value, (tuple, list)) and len(value) == 3:
        return parse_image_size(tuple(value[:2])), int(value[2])
    return parse_image_size(value), None


def _check_channels(given, channels, what, value):
    if given is not None and given != channels:
        raise ValueError(f"`image_size` has {given} channels but {what} takes {channels}. Received: image_size={value!r}")


def resolve_base(cfg):
    """The base of a transfer run -> ``(base, input_shape or None, (H, W), channels)``: a registry
    name as it is, a ``.keras`` file loaded (its classifier removed) and checked against ``image_size``."""
    from keras_cnn.models.registry import get_model_spec, list_models

    size, given = _image_size(cfg.image_size)
    text = os.fspath(cfg.base) if isinstance(cfg.base, (str, os.PathLike)) else None
    if text is not None and text in list_models():
        entry = get_model_spec(text)
        _check_channels(given, entry.channels, text, cfg.image_size)
        size = size or (entry.default_size, entry.default_size)
        return text, (*size, entry.channels), size, entry.channels
    if text is None or not os.path.isfile(text):
        raise ValueError(f"`base` must be a registry name or a .keras model file. Received: base={cfg.base!r}. "
                         f"Known names: {list_models()}")
    if cfg.weights is not None:
        raise ValueError(f"`weights` applies to a registry name; {text!r} brings its own. "
                         f"Received: weights={cfg.weights!r}")
    from keras_cnn._io import load_keras_model

    model = feature_model(load_keras_model(text, arg="base"))  # its softmax removed
    height, width, channels = model.input_shape[1:]
    _check_channels(given, channels, repr(text), cfg.image_size)
    if height is None or width is None:
        if size is None:
            raise ValueError(f"{text!r} takes any input size; pass image_size. Received: image_size=None")
    elif size is not None and tuple(size) != (height, width):
        raise ValueError(f"{text!r} takes {height}x{width} inputs. Received: image_size={cfg.image_size!r}")
    return model, None, tuple(size or (height, width)), int(channels)


def _phase_record(phase):
    return {
        "name": phase.name, "epochs": phase.epochs, "learning_rate": phase.learning_rate,
        "precomputed": phase.precomputed, "frozen_units": phase.plan.frozen, "trainable_units": phase.plan.trainable,
        "freeze_bn": phase.plan.freeze_bn, "history": phase.history,
    }


def _phase_from_record(record, regime):
    plan = FreezePlan(regime, record["frozen_units"], record["trainable_units"], record["freeze_bn"])
    return PhaseInfo(record["name"], record["epochs"], record["learning_rate"], plan, record["precomputed"],
                     record["history"])


def history_by_epoch(history):
    """Both phases' history, one row per epoch (the learning curves' input)."""
    rows = len(next(iter(history.values()), []))
    return {"epoch": list(range(rows)), **history}


class TransferRun(Lifecycle):
    """`run_transfer`'s steps of the one lifecycle (`keras_cnn.training.lifecycle`)."""

    def __init__(self, cfg):
        if not isinstance(cfg, TransferConfig):
            raise TypeError(f"`config` must be a TransferConfig. Received: {type(cfg).__name__}")
        if not isinstance(cfg.data, (str, os.PathLike)):
            raise ValueError(f"`data` must be a source string or a directory. Received: data={cfg.data!r}")
        for name in ("resume", "keep_checkpoints", "precompute"):
            if not isinstance(getattr(cfg, name), bool):
                raise ValueError(f"`{name}` must be True or False. Received: {name}={getattr(cfg, name)!r}")
        if cfg.max_examples is not None:
            check_positive_int("max_examples", cfg.max_examples)
        seed = 0 if cfg.seed is None else check_non_negative_int("seed", cfg.seed)
        self.base, input_shape, self.size, self.channels = resolve_base(cfg)
        self.cfg = check_schedule(dataclasses.replace(cfg, seed=seed, input_shape=input_shape))
        self.base_name = os.path.splitext(os.path.basename(os.fspath(cfg.base)))[0]
        self.run_dir = Path(cfg.out_dir) if cfg.out_dir is not None else Path(
            "runs", f"transfer_{self.base_name}_{cfg.regime}")
        self.resume = cfg.resume

    def fingerprint(self):
        cfg = self.cfg
        base = os.fspath(cfg.base)
        weights = cfg.weights
        if isinstance(weights, (str, os.PathLike)) and os.path.isfile(weights):
            weights = rundir.file_fingerprint(weights)
        fields = ("regime", "freeze_until", "trainable_blocks", "freeze_bn", "head_epochs", "fine_tune_epochs",
                  "head_lr", "fine_tune_lr", "batch_size", "dropout", "preprocessing", "precompute", "optimizer",
                  "seed", "max_examples", "validation_split")
        return {
            "kind": "transfer", "base": rundir.file_fingerprint(base) if os.path.isfile(base) else base,
            "weights": weights, "model_kwargs": dict(cfg.model_kwargs or {}), "data": rundir.data_fingerprint(cfg.data),
            "image_size": list(self.size), **{name: getattr(cfg, name) for name in fields},
        }

    def finished(self, state):
        import keras_cnn.layers  # noqa: F401  (registers the custom layers for loading)

        metrics = dict(state.metrics)
        model = keras.models.load_model(self.run_dir / "model.keras", compile=False)
        phases = [_phase_from_record(p, metrics["regime"]) for p in metrics.get("phases", [])]
        return TransferResult(model, metrics["regime"], phases, metrics, metrics.get("class_names"),
                              run_dir=self.run_dir, status="finished")

    def prepare(self, state):
        from keras_cnn.data import load_data
        from keras_cnn.training.pipeline import check_bundle

        cfg = self.cfg
        keras.utils.set_random_seed(cfg.seed)
        bundle = load_data(
            os.fspath(cfg.data), image_size=self.size, channels=self.channels, batch_size=cfg.batch_size,
            seed=cfg.seed, max_examples=cfg.max_examples, validation_split=cfg.validation_split,
        )
        names = check_bundle(bundle, cfg.data)
        return bundle, _checked_model(self.base, bundle.train, names, cfg)

    def begin(self, prepared, state):
        checkpoints = self.run_dir / rundir.CHECKPOINT_DIR
        done = {phase: rundir.backup_epoch(self.run_dir, checkpoint_dir=checkpoints / phase)
                for phase in ("head", "fine_tune")}
        config = {"base": os.fspath(self.cfg.base), "data": os.fspath(self.cfg.data), "regime": self.cfg.regime,
                  rundir.FINGERPRINT_KEY: self.fingerprint()}
        rundir.start_run_dir(self.run_dir, config, state=state)
        if state.status == "resume" and any(done.values()):
            phase = "fine_tune" if done["fine_tune"] else "head"
            logger.info("%s: resuming phase %s after epoch %d (same run fingerprint)", self.run_dir, phase, done[phase])
        self.resumed = state.status == "resume" and any(done.values())

    def engine(self, prepared, state):
        bundle, model = prepared
        return _fine_tune(None, bundle, self.cfg, checkpoints=self.run_dir / rundir.CHECKPOINT_DIR, model=model)

    def finish(self, prepared, result):
        from keras_cnn.training.evaluate import compute_metrics
        from keras_cnn.training.lifecycle import complete
        from keras_cnn.training.pipeline import save_keras_model, save_outputs

        bundle, cfg = prepared[0], self.cfg
        summary = {
            "base": os.fspath(cfg.base), "weights": cfg.weights, "model_args": cfg.model_kwargs or {},
            "data": os.fspath(cfg.data), "regime": result.regime, "image_size": list(self.size),
            "num_train": bundle.num_train, "class_names": result.class_names,
            "phases": [_phase_record(p) for p in result.phases], **result.metrics,
        }
        split, held_out = ("test", bundle.test) if bundle.test is not None else ("val", bundle.val)
        if held_out is not None:
            held = compute_metrics(result.model, held_out, result.class_names)
            summary.update(split=split, accuracy=held["accuracy"], per_class_accuracy=held["per_class_accuracy"],
                           confusion_matrix=held["confusion_matrix"])
            save_outputs(self.run_dir, result.model, class_names=result.class_names, metrics={**held, "split": split},
                         history=history_by_epoch(result.history), name=f"transfer {self.base_name}",
                         data=summary["data"])
        else:
            from keras_cnn._io import atomic_write_json

            save_keras_model(result.model, self.run_dir / "model.keras")
            atomic_write_json(self.run_dir / "class_names.json", result.class_names)
        summary[rundir.DIGEST_KEY] = rundir.digest(self.fingerprint())
        complete(self.run_dir, summary, keep_checkpoints=cfg.keep_checkpoints,
                 report={"model": result.model, "data": bundle}, title=f"keras-cnn transfer: {summary['base']} -> {summary['data']}, regime {result.regime}")
        return dataclasses.replace(result, metrics=summary, run_dir=self.run_dir,
                                   status="resumed" if self.resumed else "trained")
