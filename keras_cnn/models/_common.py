"""Pieces every builder shares: keras.applications' argument rules, inputs, heads, weights.

The rules and messages are those of keras.applications (``obtain_input_shape``,
``validate_activation``, the ``weights``/``classes`` checks), so a model that works there works
here; we add checks keras lacks (``pooling``, ``dropout``).
"""

from __future__ import annotations

import dataclasses
import os

import keras

from keras_cnn._compat import keras_ as keras_compat
from keras_cnn._validation import check_choice, check_fraction
from keras_cnn.layers.identity import ModelIdentity
from keras_cnn.models.specs import WeightsFileNotFoundError, WeightsSpec, weights_name

POOLINGS = (None, "avg", "max")


def validate_common(*, include_top, weights, classes, pooling, classifier_activation, dropout=0.0, twin=None,
                    arch=None):
    """keras.applications' validation of the shared arguments, plus ``pooling`` and ``dropout``.

    ``weights`` may also name pretrained weights of ``arch`` (see `keras_cnn.models.list_weights`)
    or be their record (a `WeightsSpec`, the typed form); a path that does not exist is refused as
    such (FileNotFoundError naming ``weights``). A registered name is always the record, whatever
    files the working directory holds (`keras_cnn.models.specs.weights_name`).

    Returns:
        What to load: None, the `WeightsSpec` a name means for this build, or the path.
    """
    if not isinstance(include_top, bool):
        raise ValueError(f"`include_top` must be True or False. Received: include_top={include_top!r}")
    named = weights_name(weights) is not None
    if weights is not None and not named:
        if not isinstance(weights, (str, os.PathLike)):
            raise ValueError(
                "The `weights` argument should be either `None` (random initialization), `imagenet` "
                "(pre-training on ImageNet), a weights name (keras_cnn.models.list_weights()) or its "
                f"WeightsSpec, or the path to the weights file to be loaded. Received: weights={weights!r}"
            )
        if not os.path.exists(weights):
            raise WeightsFileNotFoundError(
                f"`weights` file does not exist: {os.fspath(weights)!r}. Accepted: None, 'imagenet', a "
                f"weights name (keras_cnn.models.list_weights()) or an existing file. Received: weights={weights!r}"
            )
    resolved = weights
    if named:
        resolved = resolve_weights_name(weights, arch=arch, twin=twin)
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError(
            'If using `weights="imagenet"` with `include_top=True`, `classes` should be 1000. '
            f"Received: classes={classes}"
        )
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ValueError(f"`classes` must be a positive int. Received: classes={classes!r}")
    check_choice("pooling", pooling, POOLINGS)
    check_fraction("dropout", dropout)
    if include_top:
        keras_compat.validate_activation(classifier_activation, weights)
    return resolved


def resolve_weights_name(weights, *, arch, twin):
    """The `WeightsSpec` a weights name means for this build.

    "imagenet" is the network's default pretrained weights for this layout: keras.applications'
    file for a keras.applications twin, else the first other source (e.g. timm's torchvision
    weights for a torchvision-layout network).

    Raises:
        ValueError: no such weights for this network, or keras.applications weights for a build
            that is not layer for layer the keras.applications model.
    """
    from keras_cnn.models.specs import MODEL_SPECS, WEIGHTS_SPECS, get_weights_spec, list_weights

    name = weights_name(weights)
    shown = name if isinstance(weights, WeightsSpec) else weights
    if arch not in MODEL_SPECS:
        raise ValueError(
            "Pretrained weights exist only for the registry networks with the default architecture "
            f"arguments. Received: weights={shown!r} for a custom {arch or 'network'} build; use "
            "weights=None or a file path."
        )
    if name == "imagenet":
        own = [WEIGHTS_SPECS[n] for n in list_weights(arch)]
        usable = [w for w in own if (w.source == "keras.applications") == (twin is not None)]
        if not usable:
            twins = sorted({s.builder_path.rpartition(':')[2] for s in MODEL_SPECS.values() if s.twin})
            raise ValueError(
                f"No ImageNet weights for this {arch} build. "
                + ("keras.applications' weights fit only the layer-for-layer twins "
                   f"({', '.join(twins)}) with their default arguments. " if own else "")
                + f"Known weights for {arch}: {[w.name for w in own] or 'none'}. "
                f"Received: weights='imagenet'; use weights=None or a file path."
            )
        return usable[0]
    record = get_weights_spec(weights if isinstance(weights, WeightsSpec) else name, arch=arch)
    if record.source == "keras.applications" and twin is None:
        raise ValueError(
            f"The weights {record.name!r} are keras.applications' and fit only the layer-for-layer "
            f"twin with its default arguments; this {arch} build differs. Received: weights={shown!r}"
        )
    return record


def with_weights_build_args(arch, weights, kwargs):
    """``kwargs`` plus the builder arguments the weights name ``weights`` needs, with a `UserWarning`
    saying what was added (`keras_cnn.models.specs.merge_weights_build_args`, which also refuses a
    contradiction). For the library paths that build a registry network from ``weights``."""
    import warnings

    from keras_cnn.models.specs import merge_weights_build_args

    kwargs, notice = merge_weights_build_args(arch, weights, kwargs)
    if notice:
        warnings.warn(notice, UserWarning, stacklevel=3)  # at the caller of load_base / feature_extractor
    return kwargs


def make_inputs(input_shape, input_tensor, *, default_size, min_size, include_top, weights, channels=3):
    """Return ``(img_input, model_inputs)`` following keras.applications.

    ``img_input`` has passed through the `ModelIdentity` layer (a pass-through that records
    what the network is; `keras_cnn.models.identity.registered_builder` fills it in).

    ``input_shape`` defaults to ``(default_size, default_size, channels)``; it is checked
    against ``min_size`` and, with a top, must be fully specified.
    """
    if input_shape is None and input_tensor is not None and keras.backend.is_keras_tensor(input_tensor):
        input_shape = tuple(input_tensor.shape[1:])
    if input_shape is None and channels != 3:
        input_shape = (default_size, default_size, channels)
    if input_shape is not None:
        input_shape = tuple(input_shape)
    input_shape = keras_compat.obtain_input_shape(
        input_shape,
        default_size=default_size,
        min_size=min_size,
        data_format="channels_last",
        require_flatten=include_top,
        weights=weights,
    )
    if input_tensor is None:
        img_input = keras.layers.Input(shape=input_shape, name="input_layer")
        return ModelIdentity()(img_input), img_input
    if not keras.backend.is_keras_tensor(input_tensor):
        img_input = keras.layers.Input(tensor=input_tensor, shape=input_shape)
    else:
        img_input = input_tensor
    sources = keras.utils.get_source_inputs(input_tensor)
    return ModelIdentity()(img_input), sources[0] if len(sources) == 1 else sources


def pooled_features(x, pooling):
    """Apply ``pooling`` ("avg", "max" or None) to a feature map, as keras.applications does."""
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


#: The loader `finish_model` calls: ``load(model, weights, *, arch, include_top)`` returning the
#: `WeightsSpec` whose preprocessing the model now expects (None: the network's own). The models
#: sit below `keras_cnn.weights` and never import it: importing `keras_cnn.weights` installs its
#: `load_into` here, and `keras_cnn._registration` imports `keras_cnn.weights` as soon as Keras is
#: loaded, so the loader is in place before any builder can run.
_WEIGHTS_LOADER = {}


def install_weights_loader(load):
    """Install the function builders load their ``weights`` with (`keras_cnn.weights` does, on import)."""
    _WEIGHTS_LOADER["load"] = load


def finish_model(inputs, outputs, *, name, weights, arch, include_top, aux_outputs=None):
    """Create the Functional model, with auxiliary outputs if any, and load ``weights``.

    ``weights``: None, a `WeightsSpec` or a path (what :func:`validate_common` returned).
    With auxiliary heads the model returns a dict ``{"predictions": ..., "aux1": ..., ...}``;
    `keras_cnn.training.strip_aux` turns it back into the single-output inference model.
    """
    if aux_outputs:
        outputs = {"predictions": outputs, **aux_outputs}
    model = keras.Model(inputs, outputs, name=name)
    record = None
    if weights is not None:
        if "load" not in _WEIGHTS_LOADER:
            raise RuntimeError(
                "No weights loader is installed: keras_cnn.weights installs it when imported "
                "(keras_cnn._registration imports it once Keras is loaded)."
            )
        record = _WEIGHTS_LOADER["load"](model, weights, arch=arch, include_top=include_top)
    _record_weights(model, arch, weights, record)
    return model


def _record_weights(model, arch, weights, record):
    """Write the weights' name and the preprocessing they expect into the identity layer.

    ``record``: the `WeightsSpec` the loader reported (for a timm file, the network's default timm
    record), or None (the network's own preprocessing).
    """
    from keras_cnn.layers.identity import IDENTITY_LAYER_NAME
    from keras_cnn.models.specs import MODEL_SPECS

    try:
        layer = model.get_layer(IDENTITY_LAYER_NAME)
    except ValueError:
        return
    spec = MODEL_SPECS.get(arch)
    if weights is None:
        label = None
    elif isinstance(weights, WeightsSpec):
        label = weights.name
    else:
        label = f"file:{os.path.basename(os.fspath(weights))}"
    layer.weights_source = label
    layer.preprocessing = record.preprocessing if record is not None else (spec.preprocessing if spec else None)


def check_aux(aux_logits, include_top, arch):
    if not isinstance(aux_logits, bool):
        raise ValueError(f"`aux_logits` must be True or False. Received: aux_logits={aux_logits!r}")
    if aux_logits and not include_top:
        raise ValueError(
            f"{arch}: auxiliary classifiers need the classification top. "
            "Received: aux_logits=True with include_top=False"
        )


def check_width_multiplier(width_multiplier):
    """Validate the ``width_multiplier`` knob (a number > 0) and return it as a float."""
    ok = isinstance(width_multiplier, (int, float)) and not isinstance(width_multiplier, bool)
    if not ok or not width_multiplier > 0:
        raise ValueError(
            f"`width_multiplier` must be a number > 0. Received: width_multiplier={width_multiplier!r}"
        )
    return float(width_multiplier)


def scale_width(channels, width_multiplier):
    """``channels * width_multiplier``, rounded to the nearest int, at least 1."""
    return max(1, int(round(channels * width_multiplier)))


@dataclasses.dataclass
class Build:
    """One network being built: keras.applications' shared arguments, validated once.

    Every builder starts with :func:`start` and ends with :meth:`classifier` + :meth:`finish`,
    so the argument rules, the input, the top and the weights are written once for the zoo.
    """

    arch: str
    include_top: bool
    weights: object
    pooling: object
    classes: int
    classifier_activation: object
    dropout: float
    name: str
    inputs: object

    def classifier(self, x, *, fc=None, fc_activation="relu", regularizer=None):
        """The top, or the ``pooling`` of the features when ``include_top=False``.

        Args:
            x: the last feature map.
            fc: None for global average pooling -> dropout "top_dropout" -> "predictions" (the
                ResNet / GoogLeNet / Inception top); else ``[(name, units), ...]`` hidden dense
                layers after "flatten", each followed by dropout "<name>_dropout" (LeNet,
                AlexNet, VGG; an empty list puts "top_dropout" after "flatten").
            fc_activation: activation of the hidden dense layers.
            regularizer: kernel regularizer of the classifier.
        """
        if not self.include_top:
            return pooled_features(x, self.pooling)
        if fc is None:
            x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        else:
            x = keras.layers.Flatten(name="flatten")(x)
            for fc_name, units in fc:
                x = keras.layers.Dense(units, activation=fc_activation, name=fc_name)(x)
                if self.dropout:
                    x = keras.layers.Dropout(self.dropout, name=f"{fc_name}_dropout")(x)
        if self.dropout and not fc:
            x = keras.layers.Dropout(self.dropout, name="top_dropout")(x)
        return keras.layers.Dense(
            self.classes, activation=self.classifier_activation, kernel_regularizer=regularizer, name="predictions"
        )(x)

    def finish(self, x, aux_outputs=None):
        """The Functional model, its weights loaded (see :func:`finish_model`)."""
        return finish_model(
            self.inputs, x, name=self.name or self.arch, weights=self.weights, arch=self.arch,
            include_top=self.include_top, aux_outputs=aux_outputs or None,
        )


def start(arch, args, *, twin=None, default_size=None, min_size=None):
    """Validate a builder's keras.applications arguments and make its input.

    Args:
        arch: registry name (sizes default to its spec), or a custom build's name.
        args: the builder's ``locals()`` (``include_top``, ``weights``, ``input_tensor``,
            ``input_shape``, ``pooling``, ``classes``, ``classifier_activation``, ``name``,
            ``dropout``).
        twin: the keras.applications class this build is layer for layer, or None.
        default_size, min_size: override the spec's (variants such as a small stem).

    Returns:
        ``(build, x)``: a :class:`Build` and the input tensor (after the identity layer).
    """
    from keras_cnn.models.specs import MODEL_SPECS

    spec = MODEL_SPECS.get(arch)
    weights = validate_common(
        arch=arch, include_top=args["include_top"], weights=args["weights"], classes=args["classes"],
        pooling=args["pooling"], classifier_activation=args["classifier_activation"],
        dropout=args.get("dropout", 0.0), twin=twin,
    )
    x, inputs = make_inputs(
        args["input_shape"], args["input_tensor"],
        default_size=default_size or spec.default_size, min_size=min_size or spec.min_size,
        include_top=args["include_top"], weights=weights, channels=spec.channels if spec else 3,
    )
    build = Build(
        arch=arch, include_top=args["include_top"], weights=weights, pooling=args["pooling"],
        classes=args["classes"], classifier_activation=args["classifier_activation"],
        dropout=args.get("dropout", 0.0), name=args["name"], inputs=inputs,
    )
    return build, x
