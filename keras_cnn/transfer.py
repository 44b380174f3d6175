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
import os

import keras
import numpy as np

from keras_cnn._compat import keras_ as keras_compat
from keras_cnn._validation import check_choice, check_fraction, check_non_negative_int, check_positive_int

__all__ = [
    "REGIMES",
    "FreezePlan",
    "PhaseInfo",
    "TransferResult",
    "apply_regime",
    "build_transfer_model",
    "feature_model",
    "fine_tune",
    "freeze_points",
    "load_base",
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
    from keras_cnn.models.registry import get_model_entry, list_models

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
            entry = get_model_entry(text)
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
    from keras_cnn.models.registry import get_model_entry

    points = {}
    arch = arch or _identity_arch(base)
    top_names = {layer.name for layer in base.layers}
    if arch is not None:
        for stage, layer in get_model_entry(arch).stages.items():
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


def build_transfer_model(
    base,
    num_classes,
    regime="small",
    *,
    freeze_until=None,
    trainable_blocks=None,
    dropout=0.2,
    preprocessing="auto",
    freeze_bn=None,
    pooling="avg",
    weights=None,
    input_shape=None,
    arch=None,
    name=None,
    model_kwargs=None,
):
    """A pretrained base with a new softmax head, frozen for ``regime``.

    ``pixels -> [Preprocess] -> base -> features (global pool) -> [Dropout] -> predictions``.
    The base is one nested layer named as the base model; "features" is the pooled feature
    vector the head reads (what ``precompute`` caches).

    Args:
        base: registry name (built headless with ``weights``), path to a ``.keras`` model (its
            classifier removed), or a headless `keras.Model`.
        num_classes: classes of the new softmax.
        regime: "small", "medium" or "large" (see `apply_regime`). Default "small".
        freeze_until: "medium": freeze through this stage / layer.
        trainable_blocks: "medium": train the last N weighted units.
        dropout: dropout before the new classifier. Default 0.2.
        preprocessing: "auto" (the registry entry's mode, unless the base already contains a
            `Preprocess` layer; ValueError if the base is not recognised), None (none: the base
            takes what you feed it), or "tf" / "caffe" / "torch" / "unit". Default "auto".
        freeze_bn: see `apply_regime`. With True the base is called with ``training=False``.
        pooling: "avg", "max" or "flatten", for a base that outputs a feature map. Default "avg".
        weights: for a registry name: None, "imagenet", a weights name or a path; the builder
            arguments a weights name needs are added (see `load_base`).
        input_shape: for a registry name: the input (H, W, C).
        arch: registry name of a `keras.Model` base (for preprocessing and stage names).
        name: model name. Default "<base>_transfer".
        model_kwargs: for a registry name: further builder arguments (see `load_base`).

    Returns:
        The compiled-ready `keras.Model` (not compiled), with ``trainable`` set for ``regime``.

    Example:
        >>> model = build_transfer_model("resnet50", 5, "medium", freeze_until="conv4",
        ...                              weights="imagenet", input_shape=(224, 224, 3))
    """
    from keras_cnn.layers.preprocess import MODES, Preprocess

    regime = _check_regime(regime)
    check_positive_int("num_classes", num_classes)
    check_fraction("dropout", dropout)
    check_choice("pooling", pooling, POOLINGS)
    base_model, base_arch = load_base(base, weights=weights, input_shape=input_shape, model_kwargs=model_kwargs)
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
    """What `fine_tune` returns.

    Attributes:
        model: the trained transfer model (raw pixels in when preprocessing is inside).
        regime: "small", "medium" or "large".
        phases: the `PhaseInfo` of each phase run, in order.
        metrics: ``{"val_accuracy": ..., "test_accuracy": ..., "test_loss": ...}`` for the splits given.
        class_names: from the data, if it had them.
    """

    model: keras.Model
    regime: str
    phases: list
    metrics: dict
    class_names: list = None

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


def _fit(model, split, *, epochs, batch_size, shuffle, validation, callbacks, verbose):
    """One phase: the run pipeline's ``fit`` engine (`keras_cnn.training.pipeline.fit_engine`)."""
    from keras_cnn.training.pipeline import fit_engine

    history = fit_engine(
        model, split, epochs=epochs, validation=validation, callbacks=callbacks, verbose=verbose,
        batch_size=batch_size, shuffle=shuffle,
    )
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
    from keras_cnn.training.pipeline import compile_model

    compile_model(model, opt, run_eagerly=run_eagerly)  # the compile of every training path


def _num_classes(train, class_names):
    if class_names:
        return len(class_names)
    if isinstance(train, tuple):
        return int(np.max(train[1])) + 1
    raise ValueError("`num_classes` is needed when `data` carries no class names. Received: num_classes=None")


def fine_tune(
    model_or_base,
    data,
    regime="small",
    *,
    num_classes=None,
    head_epochs=5,
    fine_tune_epochs=5,
    head_lr=1e-3,
    fine_tune_lr=None,
    batch_size=32,
    freeze_until=None,
    trainable_blocks=None,
    dropout=0.2,
    preprocessing="auto",
    freeze_bn=None,
    precompute=False,
    optimizer="adam",
    weights=None,
    input_shape=None,
    arch=None,
    shuffle=True,
    callbacks=None,
    seed=None,
    verbose=0,
    run_eagerly=False,
    model_kwargs=None,
):
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
        num_classes: default: the data's class names, or ``max(y) + 1``.
        head_epochs: phase 1 epochs. Default 5.
        fine_tune_epochs: phase 2 epochs (ignored for "small"). Default 5.
        head_lr: phase 1 learning rate. Default 1e-3.
        fine_tune_lr: phase 2 learning rate, at most ``head_lr``. Default ``head_lr / 10``.
        batch_size: for array data and feature caching. Default 32.
        freeze_until, trainable_blocks, freeze_bn: see `apply_regime`.
        dropout, preprocessing: see `build_transfer_model`.
        precompute: phase 1 on cached features of the frozen part. Default False.
        optimizer: "adam", "sgd" (momentum 0.9), "rmsprop" or "adamw". Default "adam".
        weights, input_shape, arch, model_kwargs: for a registry-name base (see
            `build_transfer_model` and `load_base`).
        shuffle: shuffle array data each epoch. Default True.
        callbacks: Keras callbacks for both phases.
        seed: if set, ``keras.utils.set_random_seed(seed)`` first.
        verbose: Keras fit verbosity. Default 0 (the library never prints).
        run_eagerly: compile with ``run_eagerly`` (no graph tracing: faster for tiny models
            and a few steps, slower otherwise). Default False.

    Returns:
        `TransferResult`.

    Example:
        >>> bundle = keras_cnn.data.load_data("digits", image_size=32)
        >>> result = fine_tune("runs/lenet5/model.keras", bundle, "medium", trainable_blocks=2)
        >>> result.metrics["test_accuracy"]
    """
    regime = _check_regime(regime)
    check_non_negative_int("head_epochs", head_epochs)
    check_non_negative_int("fine_tune_epochs", fine_tune_epochs)
    check_positive_int("batch_size", batch_size)
    for arg, value in (("head_lr", head_lr), ("fine_tune_lr", fine_tune_lr)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise ValueError(f"`{arg}` must be a number > 0. Received: {arg}={value!r}")
    fine_tune_lr = head_lr / 10 if fine_tune_lr is None else fine_tune_lr
    if fine_tune_lr > head_lr:
        raise ValueError(
            "`fine_tune_lr` must not exceed `head_lr`: unfrozen pretrained layers are trained at a "
            f"lower rate. Received: head_lr={head_lr}, fine_tune_lr={fine_tune_lr}"
        )
    if seed is not None:
        keras.utils.set_random_seed(seed)
    train, val, test, class_names = _split_data(data)
    if train is None:
        raise ValueError("`data` has no training split. Received: train=None")
    if hasattr(data, "train") and hasattr(data, "class_names"):
        from keras_cnn.training.pipeline import check_bundle

        check_bundle(data, getattr(data, "source", "bundle"), announce=False)  # the run pipeline's data checks
    elif class_names is not None and len(class_names) < 2:
        raise ValueError(f"`data` must have at least two classes. Received: class_names={list(class_names)!r}")

    if isinstance(model_or_base, keras.Model) and _is_transfer_model(model_or_base):
        model = model_or_base
        if weights is not None or model_kwargs is not None:
            raise ValueError(
                "`weights` and `model_kwargs` build a registry-name base; this transfer model is built "
                f"already. Received: weights={weights!r}, model_kwargs={model_kwargs!r}"
            )
        if num_classes is not None and num_classes != model.output_shape[-1]:
            raise ValueError(
                f"`num_classes` does not match the model's head ({model.output_shape[-1]}). "
                f"Received: num_classes={num_classes}"
            )
    else:
        model = build_transfer_model(
            model_or_base,
            num_classes or _num_classes(train, class_names),
            "small",
            dropout=dropout,
            preprocessing=preprocessing,
            freeze_bn=regime != "large" if freeze_bn is None else freeze_bn,
            weights=weights,
            input_shape=input_shape,
            arch=arch,
            model_kwargs=model_kwargs,
        )
    base = _find_base(model)
    # Check the regime's arguments before any training.
    apply_regime(
        model, regime, base=base, freeze_until=freeze_until, trainable_blocks=trainable_blocks,
        freeze_bn=freeze_bn, arch=arch,
    )
    phases = []

    # Phase 1: the head alone.
    plan = apply_regime(model, "small", base=base, arch=arch)
    if precompute:
        extractor = keras.Model(model.inputs, model.get_layer("features").output)
        f_train = _features(extractor, train, batch_size)
        f_val = _features(extractor, val, batch_size) if val is not None else None
        feat_in = keras.Input(shape=f_train[0].shape[1:], name="features_in")
        x = feat_in
        for layer in _head_layers(model):  # the same layers: training them trains the model's head
            x = layer(x)
        head = keras.Model(feat_in, x, name=f"{model.name}_head")
        _compile(head, head_lr, optimizer, run_eagerly)
        history = _fit(
            head, f_train, epochs=head_epochs, batch_size=batch_size, shuffle=shuffle, validation=f_val,
            callbacks=callbacks, verbose=verbose,
        ) if head_epochs else {}
        lr_model = head
    else:
        _compile(model, head_lr, optimizer, run_eagerly)
        history = _fit(
            model, train, epochs=head_epochs, batch_size=batch_size, shuffle=shuffle, validation=val,
            callbacks=callbacks, verbose=verbose,
        ) if head_epochs else {}
        lr_model = model
    phases.append(
        PhaseInfo("head", head_epochs, float(lr_model.optimizer.learning_rate), plan, bool(precompute), history)
    )

    # Phase 2: unfreeze per regime, lower learning rate.
    if regime != "small" and fine_tune_epochs:
        plan = apply_regime(
            model, regime, base=base, freeze_until=freeze_until, trainable_blocks=trainable_blocks,
            freeze_bn=freeze_bn, arch=arch,
        )
        _compile(model, fine_tune_lr, optimizer, run_eagerly)
        history = _fit(
            model, train, epochs=fine_tune_epochs, batch_size=batch_size, shuffle=shuffle, validation=val,
            callbacks=callbacks, verbose=verbose,
        )
        phases.append(
            PhaseInfo("fine_tune", fine_tune_epochs, float(model.optimizer.learning_rate), plan, False, history)
        )

    if phases[-1].precomputed:  # the full model was never compiled: compile it to evaluate
        _compile(model, head_lr, optimizer, run_eagerly)
    from keras_cnn.training.pipeline import evaluate_engine

    metrics = {}
    for split_name, split in (("val", val), ("test", test)):
        if split is None:
            continue
        loss, acc = evaluate_engine(model, split, batch_size=batch_size)
        metrics[f"{split_name}_loss"], metrics[f"{split_name}_accuracy"] = float(loss), float(acc)
    return TransferResult(model=model, regime=regime, phases=phases, metrics=metrics, class_names=class_names)
