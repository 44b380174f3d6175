"""keras-tuner `HyperModel`s whose search spaces are the architecture choices of the lectures.

Each hyper-model declares, with keras-tuner's *conditional* hyper-parameters
(``hp.conditional_scope``/``parent_name``), the knobs that the papers themselves varied, and
builds the network through our builders and layers, raw pixels in (a `Preprocess` layer
first), with the data's input shape and number of classes:

* `InceptionHyperModel` (GoogLeNet, Szegedy et al., 2015, and the factorisations of
  "Rethinking the Inception Architecture", Szegedy et al., 2016): module width multiplier,
  modules per stage, the 5x5 branch as a plain 5x5 / two stacked 3x3 / an asymmetric
  1x5 + 5x1 pair, the 1x1 reduction ratio, the auxiliary classifiers on or off (their loss
  weight is searched only when they are on) and label smoothing.
* `ResNetHyperModel` (He et al., 2016): depth 18 / 34 / 50, the block kind following the depth
  (basic for 18/34, bottleneck for 50, as in the paper) or searched, width and weight decay.
* `VGGHyperModel` (Simonyan & Zisserman, 2015): number of blocks, convolutions per block
  (each conditional on the block existing), base width (doubling per block, as VGG's
  64-128-256-512), hidden FC width, dropout and batch normalisation.

All of them also search the optimiser (Adam / SGD / RMSProp, each with its own conditional
parameters) and the learning rate (log scale, one decade per grid step). Every choice list is
a constructor argument, so a search can be narrowed (a one-value list pins a knob) or made tiny
for tests.

Example:
    >>> hm = VGGHyperModel((32, 32, 1), 10, blocks=(2, 3), base_widths=(8, 16))
    >>> model = hm.build(keras_tuner.HyperParameters())   # compiled, raw pixels in
"""

from __future__ import annotations

import contextlib

import keras
import keras_tuner

from keras_cnn._validation import check_choice, check_positive_int
from keras_cnn.layers.preprocess import MODES as PREPROCESSING_MODES
from keras_cnn.layers.preprocess import Preprocess

OPTIMIZERS = ("adam", "sgd", "rmsprop")
# Each optimiser's own hyper-parameters (choices, default first); active only with it.
OPTIMIZER_PARAMS = {
    "sgd_momentum": (0.9, 0.0),
    "sgd_nesterov": (False, True),
    "rmsprop_rho": (0.9, 0.99),
    "adam_beta_1": (0.9, 0.8),
}
MAIN_OUTPUT = "predictions"


def _choices(arg, values, *, kind=None, low=None):
    """Validate a non-empty sequence of choices (de-duplicated, order kept) and return a list.

    With ``kind=(int, float)`` the values are returned as floats (keras-tuner's ``Choice``
    takes values of one type only).
    """
    try:
        values = list(values)
    except TypeError:
        values = None
    if not values:
        raise ValueError(f"`{arg}` must be a non-empty sequence of choices. Received: {arg}={values!r}")
    out = []
    for v in values:
        if kind is not None and (isinstance(v, bool) or not isinstance(v, kind)):
            raise ValueError(f"`{arg}` must contain {_kind_name(kind)} values. Received: {arg}={values!r}")
        if low is not None and not v >= low:
            raise ValueError(f"`{arg}` values must be >= {low}. Received: {arg}={values!r}")
        if kind == (int, float):
            v = float(v)
        if v not in out:
            out.append(v)
    return out


def _kind_name(kind):
    if isinstance(kind, tuple):
        return " or ".join(k.__name__ for k in kind)
    return kind.__name__


def _bools(arg, values):
    values = _choices(arg, values)
    if any(not isinstance(v, bool) for v in values):
        raise ValueError(f"`{arg}` must contain True and/or False. Received: {arg}={values!r}")
    return values


def _choice(hp, name, values, **kwargs):
    """``hp.Choice`` that also works for one value (a pinned knob) and booleans."""
    if all(isinstance(v, bool) for v in values):
        if len(values) == 1:
            return hp.Fixed(name, values[0], **kwargs)
        return hp.Boolean(name, default=values[0], **kwargs)
    return hp.Choice(name, values, default=values[0], **kwargs)


class CNNHyperModel(keras_tuner.HyperModel):
    """Base class: the shared training search space and the raw-pixel model wrapper.

    Subclasses implement `declare_architecture` (declare the architecture hyper-parameters,
    return the builder's keyword arguments) and `build_network` (build the `keras.Model` on the
    preprocessed input tensor).

    The model returned by `build` is compiled: categorical cross-entropy with the searched
    label smoothing on one-hot labels (`fit` one-hots the integer labels), accuracy on the main
    output; with auxiliary heads the model outputs a dict and each head's loss is weighted by
    the searched ``aux_loss_weight``.

    Args:
        input_shape: ``(H, W, C)`` of the raw images.
        num_classes: number of classes.
        preprocessing: the `Preprocess` mode of the first layer; default None: "tf" (scale to
            [-1, 1]; the searched networks are trained from scratch, so no ImageNet statistics).
        optimizers: optimiser choices among "adam", "sgd", "rmsprop". Default all three.
        learning_rate: ``(min, max)`` of the learning rate, searched on a log scale with one
            decade per step (so a grid search visits 1e-4, 1e-3, ...). Default (1e-4, 1e-1).
        label_smoothing: label-smoothing choices (Szegedy et al., 2016). Default (0.0, 0.1).
        optimizer_params: overrides of `OPTIMIZER_PARAMS`, the choices of each optimiser's own
            hyper-parameters (``sgd_momentum``, ``sgd_nesterov`` — searched only with momentum —,
            ``rmsprop_rho``, ``adam_beta_1``); a one-value tuple pins one.
        name: optional name of the hyper-model.
        tunable: add the hyper-parameters to the search space. Default True.
    """

    #: Recipe family used for the defaults `keras_cnn.training.get_recipe` knows.
    recipe_family = "default"
    #: Name of the tuned model.
    model_name = "tuned"

    def __init__(
        self,
        input_shape,
        num_classes,
        *,
        preprocessing=None,
        optimizers=OPTIMIZERS,
        learning_rate=(1e-4, 1e-1),
        label_smoothing=(0.0, 0.1),
        optimizer_params=None,
        name=None,
        tunable=True,
    ):
        super().__init__(name=name, tunable=tunable)
        try:
            shape = tuple(int(s) for s in input_shape)
        except (TypeError, ValueError):
            shape = ()
        if len(shape) != 3 or any(s <= 0 for s in shape):
            raise ValueError(f"`input_shape` must be (H, W, C) positive ints. Received: input_shape={input_shape!r}")
        self.input_shape = shape
        self.num_classes = check_positive_int("num_classes", num_classes)
        self.preprocessing = check_choice("preprocessing", preprocessing or "tf", PREPROCESSING_MODES)
        if self.preprocessing in ("caffe", "torch") and shape[-1] != 3:
            raise ValueError(
                f"`preprocessing`={self.preprocessing!r} needs 3-channel (RGB) images. "
                f"Received: input_shape={shape}"
            )
        self.optimizers = _choices("optimizers", optimizers)
        for opt in self.optimizers:
            check_choice("optimizers", opt, OPTIMIZERS)
        try:
            lo, hi = (float(v) for v in learning_rate)
        except (TypeError, ValueError):
            lo = hi = -1.0
        if not 0 < lo <= hi:
            raise ValueError(
                f"`learning_rate` must be (min, max) with 0 < min <= max. Received: learning_rate={learning_rate!r}"
            )
        self.learning_rate = (lo, hi)
        self.label_smoothing = _choices("label_smoothing", label_smoothing, kind=(int, float), low=0.0)
        if any(v >= 1 for v in self.label_smoothing):
            raise ValueError(
                f"`label_smoothing` values must be in [0, 1). Received: label_smoothing={label_smoothing!r}"
            )
        params = dict(optimizer_params or {})
        unknown = sorted(set(params) - set(OPTIMIZER_PARAMS))
        if unknown:
            raise ValueError(
                f"`optimizer_params` keys must be among {sorted(OPTIMIZER_PARAMS)}. "
                f"Received: optimizer_params={params!r}"
            )
        self.optimizer_params = {}
        for key, default in OPTIMIZER_PARAMS.items():
            values = params.get(key, default)
            if key == "sgd_nesterov":
                self.optimizer_params[key] = _bools(f"optimizer_params[{key!r}]", values)
            else:
                self.optimizer_params[key] = _choices(f"optimizer_params[{key!r}]", values, kind=(int, float), low=0.0)
        self._declare_only = False

    # ------------------------------------------------------------------ to override
    def declare_architecture(self, hp):
        """Declare the architecture hyper-parameters; return the builder's keyword arguments."""
        raise NotImplementedError

    def build_network(self, inputs, x, arch):
        """Return the network (a `keras.Model` from ``inputs``) built on the preprocessed ``x``."""
        raise NotImplementedError

    def aux_loss_weight(self, hp, arch):
        """Declare and return the auxiliary-loss weight (0 when the model has no aux heads)."""
        return 0.0

    # ------------------------------------------------------------------ shared
    def declare_training(self, hp, arch):
        """Declare the optimiser, learning rate and label smoothing; return their values.

        The optimiser's own parameters are conditional on it: ``sgd_momentum`` and
        ``sgd_nesterov`` (the latter only with momentum) for SGD, ``rmsprop_rho`` for RMSProp,
        ``adam_beta_1`` for Adam.
        """
        optimizer = _choice(hp, "optimizer", self.optimizers)
        params = self.optimizer_params
        kwargs = {}
        if "sgd" in self.optimizers:
            with hp.conditional_scope("optimizer", ["sgd"]):
                momentum = _choice(hp, "sgd_momentum", params["sgd_momentum"])
                with_momentum = [m for m in params["sgd_momentum"] if m > 0]
                nesterov = False
                if with_momentum:
                    # Nesterov momentum means something only with momentum.
                    with hp.conditional_scope("sgd_momentum", with_momentum):
                        nesterov = _choice(hp, "sgd_nesterov", params["sgd_nesterov"])
            if optimizer == "sgd":
                kwargs = {"momentum": float(momentum), "nesterov": bool(nesterov) if momentum else False}
        if "rmsprop" in self.optimizers:
            with hp.conditional_scope("optimizer", ["rmsprop"]):
                rho = _choice(hp, "rmsprop_rho", params["rmsprop_rho"])
            if optimizer == "rmsprop":
                kwargs = {"rho": float(rho)}
        if "adam" in self.optimizers:
            with hp.conditional_scope("optimizer", ["adam"]):
                beta_1 = _choice(hp, "adam_beta_1", params["adam_beta_1"])
            if optimizer == "adam":
                kwargs = {"beta_1": float(beta_1)}
        lo, hi = self.learning_rate
        if lo == hi:
            learning_rate = hp.Fixed("learning_rate", lo)
        else:
            default = 1e-3 if lo <= 1e-3 <= hi else lo
            learning_rate = hp.Float("learning_rate", lo, hi, sampling="log", step=10, default=default)
        smoothing = _choice(hp, "label_smoothing", self.label_smoothing)
        return {
            "optimizer": optimizer,
            "optimizer_kwargs": kwargs,
            "learning_rate": float(learning_rate),
            "label_smoothing": float(smoothing),
            "aux_loss_weight": float(self.aux_loss_weight(hp, arch)),
        }

    @contextlib.contextmanager
    def declaring(self):
        """Within this context `build` declares the hyper-parameters and returns None.

        keras-tuner builds the hyper-model several times before the search to discover every
        conditional hyper-parameter; declaring them is enough, so the tuner skips the (costly)
        model construction here.
        """
        previous, self._declare_only = self._declare_only, True
        try:
            yield
        finally:
            self._declare_only = previous

    def build(self, hp):
        """Build and compile the model for the hyper-parameter values of ``hp``.

        Returns:
            A compiled `keras.Model` taking raw 0..255 pixels (None inside `declaring`).
        """
        arch = self.declare_architecture(hp)
        training = self.declare_training(hp, arch)
        if self._declare_only:
            return None
        inputs = keras.Input(shape=self.input_shape, name="pixels")
        x = Preprocess(self.preprocessing, name="preprocess")(inputs)
        model = self.build_network(inputs, x, arch)
        self.compile(model, training)
        return model

    def compile(self, model, training):
        """Compile ``model`` with the training choices returned by `declare_training`."""
        from keras_cnn.training.recipes import build_optimizer, get_recipe

        recipe = get_recipe(
            self.recipe_family,
            optimizer=training["optimizer"],
            learning_rate=training["learning_rate"],
            optimizer_kwargs=training["optimizer_kwargs"],
            schedule="constant",
            warmup_epochs=0.0,
            reference_batch_size=None,
            label_smoothing=training["label_smoothing"],
            aux_loss_weight=training["aux_loss_weight"],
            # Regularisation is the builders' (e.g. ResNet's L2 `weight_decay`), not the
            # optimizer's decoupled decay of the paper recipes.
            weight_decay=0.0,
        )
        optimizer = build_optimizer(recipe, steps_per_epoch=1)
        from keras_cnn.training.engine import compile_model

        return compile_model(
            model, optimizer, label_smoothing=training["label_smoothing"],
            aux_loss_weight=training["aux_loss_weight"],
        )

    def prepare(self, dataset, model):
        """Map a dataset of ``(pixels, int labels)`` to the targets ``model`` trains on."""
        from keras_cnn.training.engine import one_hot_targets

        return one_hot_targets(dataset, model)

    def fit(self, hp, model, x, *args, validation_data=None, **kwargs):
        """A trial's training: the run pipeline's ``fit`` engine (one-hot targets, ``model.fit``)."""
        from keras_cnn.training.engine import fit_engine

        if args:
            raise TypeError(f"fit() takes the training data only as a positional argument. Received: {args!r}")
        return fit_engine(model, x, validation=validation_data, **kwargs)

    @staticmethod
    def inference_model(model):
        """The single-output inference model (auxiliary heads dropped)."""
        from keras_cnn.training.network import strip_aux

        return strip_aux(model)

    def _network(self, builder, inputs, x, **kwargs):
        """Call a keras.applications-style ``builder`` on the preprocessed tensor ``x``."""
        model = builder(
            include_top=True,
            weights=None,
            input_tensor=x,
            classes=self.num_classes,
            name=self.model_name,
            **kwargs,
        )
        if len(model.inputs) == 1 and model.inputs[0] is inputs:
            # Same layers; the input as one tensor rather than a one-element list (so that
            # ``model(x)`` takes a plain batch without a structure warning).
            return keras.Model(inputs, model.output, name=model.name)
        # The builder did not take the tensor as its input: nest it.
        base = builder(
            include_top=True,
            weights=None,
            input_shape=self.input_shape,
            classes=self.num_classes,
            name=self.model_name,
            **kwargs,
        )
        return keras.Model(inputs, base(x), name=self.model_name)


class VGGHyperModel(CNNHyperModel):
    """VGG-style networks (Simonyan & Zisserman, 2015): 3x3 convs, 2x2 pools, doubling widths.

    Hyper-parameters: ``blocks`` (number of conv blocks, each ending in a 2x2/2 max-pool);
    ``convs_block{i}`` for i = 1..max(blocks), each active only when the network has at least
    ``i`` blocks (conditional on ``blocks``); ``base_width`` (block i has
    ``min(base_width * 2 ** (i - 1), 8 * base_width)`` filters, as 64-128-256-512-512);
    ``fc_units`` (one hidden FC layer); ``dropout`` after it; ``batch_norm`` (VGG-BN); plus the
    optimiser, learning rate and label smoothing of `CNNHyperModel`.

    Args:
        input_shape: ``(H, W, C)``; every block halves H and W, so ``2 ** max(blocks)`` must not
            exceed them.
        num_classes: number of classes.
        blocks: choices for the number of blocks. Default (2, 3, 4).
        convs_per_block: choices for the convolutions in each block. Default (1, 2, 3).
        base_widths: choices for the first block's width. Default (16, 32, 64).
        fc_units: choices for the hidden FC width. Default (128, 512).
        dropout: choices for the dropout rate. Default (0.0, 0.25, 0.5).
        batch_norm: choices for BN after each conv. Default (False, True).
        **kwargs: `CNNHyperModel` arguments (optimizers, learning_rate, label_smoothing, ...).
    """

    recipe_family = "vgg"
    model_name = "vgg_tuned"

    def __init__(
        self,
        input_shape,
        num_classes,
        *,
        blocks=(2, 3, 4),
        convs_per_block=(1, 2, 3),
        base_widths=(16, 32, 64),
        fc_units=(128, 512),
        dropout=(0.0, 0.25, 0.5),
        batch_norm=(False, True),
        **kwargs,
    ):
        super().__init__(input_shape, num_classes, **kwargs)
        self.blocks = _choices("blocks", blocks, kind=int, low=1)
        too_deep = [b for b in self.blocks if 2**b > min(self.input_shape[:2])]
        if too_deep:
            raise ValueError(
                f"`blocks` must leave at least 1x1 pixels: {max(too_deep)} blocks need inputs of at least "
                f"{2 ** max(too_deep)} px. Received: blocks={blocks!r} with input_shape={self.input_shape}"
            )
        self.convs_per_block = _choices("convs_per_block", convs_per_block, kind=int, low=1)
        self.base_widths = _choices("base_widths", base_widths, kind=int, low=1)
        self.fc_units = _choices("fc_units", fc_units, kind=int, low=1)
        self.dropout = _choices("dropout", dropout, kind=(int, float), low=0.0)
        if any(d >= 1 for d in self.dropout):
            raise ValueError(f"`dropout` values must be in [0, 1). Received: dropout={dropout!r}")
        self.batch_norm = _bools("batch_norm", batch_norm)

    def declare_architecture(self, hp):
        num_blocks = hp.Choice("blocks", self.blocks, default=self.blocks[0])
        convs = []
        for i in range(1, max(self.blocks) + 1):
            # Block i exists only in networks of at least i blocks.
            parents = [b for b in self.blocks if b >= i]
            with hp.conditional_scope("blocks", parents):
                n = hp.Choice(f"convs_block{i}", self.convs_per_block, default=self.convs_per_block[0])
            if i <= num_blocks:
                convs.append(n)
        base = hp.Choice("base_width", self.base_widths, default=self.base_widths[0])
        widths = [min(base * 2**i, 8 * base) for i in range(num_blocks)]
        return {
            "config": tuple(zip(convs, widths)),
            "fc_units": (hp.Choice("fc_units", self.fc_units, default=self.fc_units[0]),),
            "dropout": float(hp.Choice("dropout", self.dropout, default=self.dropout[0])),
            "batch_norm": bool(_choice(hp, "batch_norm", self.batch_norm)),
        }

    def build_network(self, inputs, x, arch):
        from keras_cnn.models.vgg import build_vgg

        arch = dict(arch)
        config = arch.pop("config")
        return self._network(build_vgg, inputs, x, config=config, **arch)


def _auto_stem(input_shape, stem):
    """"small" (stride-1 stem, for CIFAR-sized inputs) below 64 px, else "imagenet"."""
    if stem is not None:
        return check_choice("stem", stem, ("imagenet", "small"))
    return "small" if min(input_shape[:2]) < 64 else "imagenet"


class InceptionHyperModel(CNNHyperModel):
    """GoogLeNet-style Inception networks (Szegedy et al., 2015; factorisations of 2016).

    Hyper-parameters: ``width_multiplier`` (every module's channels); ``modules_stage3``,
    ``modules_stage4``, ``modules_stage5`` (Inception modules at the three grids; the paper has
    2, 5, 2); ``five_by_five`` ("plain" 5x5, "stacked" two 3x3 — 18 instead of 25 multiplies
    per position — or "asymmetric" 1x5 + 5x1, section 3 of the 2016 paper);
    ``reduction_ratio`` (scales the 1x1 reductions before the 3x3 and 5x5 branches, the
    bottleneck of Szegedy et al. 2015, section 4); ``aux_logits`` (the two auxiliary classifiers) and, only when
    they are on, ``aux_loss_weight`` (paper: 0.3); ``batch_norm``; ``dropout``; plus the
    optimiser, learning rate and ``label_smoothing`` (0.1 in the 2016 paper) of `CNNHyperModel`.
    The auxiliary heads are dropped at inference, so they cost no MACs in the budget.

    Args:
        input_shape: ``(H, W, C)``.
        num_classes: number of classes.
        width_multipliers: choices. Default (0.25, 0.5, 1.0).
        modules_per_stage: three choice lists, for stages 3, 4 and 5.
            Default ((1, 2), (2, 5), (1, 2)).
        five_by_five: choices among "plain", "stacked", "asymmetric". Default all three.
        reduction_ratios: choices. Default (0.5, 1.0).
        aux_logits: choices. Default (False, True).
        aux_loss_weights: choices, used when ``aux_logits`` is True. Default (0.1, 0.3, 0.5).
        batch_norm: choices. Default (False,) (the paper has none).
        dropout: choices. Default (0.4,) (paper).
        stem: "imagenet", "small" or None (auto: "small" below 64 px). Default None.
        **kwargs: `CNNHyperModel` arguments.
    """

    recipe_family = "googlenet"
    model_name = "googlenet_tuned"

    def __init__(
        self,
        input_shape,
        num_classes,
        *,
        width_multipliers=(0.25, 0.5, 1.0),
        modules_per_stage=((1, 2), (2, 5), (1, 2)),
        five_by_five=("plain", "stacked", "asymmetric"),
        reduction_ratios=(0.5, 1.0),
        aux_logits=(False, True),
        aux_loss_weights=(0.1, 0.3, 0.5),
        batch_norm=(False,),
        dropout=(0.4,),
        stem=None,
        **kwargs,
    ):
        super().__init__(input_shape, num_classes, **kwargs)
        self.width_multipliers = _choices("width_multipliers", width_multipliers, kind=(int, float), low=1e-9)
        try:
            stages = [list(c) for c in modules_per_stage]
        except TypeError:
            stages = []
        if len(stages) != 3:
            raise ValueError(
                "`modules_per_stage` must be three choice lists (stages 3, 4, 5), e.g. ((1, 2), (2, 5), (1, 2)). "
                f"Received: modules_per_stage={modules_per_stage!r}"
            )
        self.modules_per_stage = [_choices("modules_per_stage", c, kind=int, low=1) for c in stages]
        self.five_by_five = _choices("five_by_five", five_by_five)
        for v in self.five_by_five:
            check_choice("five_by_five", v, ("plain", "stacked", "asymmetric"))
        self.reduction_ratios = _choices("reduction_ratios", reduction_ratios, kind=(int, float), low=1e-9)
        self.aux_logits = _bools("aux_logits", aux_logits)
        self.aux_loss_weights = _choices("aux_loss_weights", aux_loss_weights, kind=(int, float), low=0.0)
        self.batch_norm = _bools("batch_norm", batch_norm)
        self.dropout = _choices("dropout", dropout, kind=(int, float), low=0.0)
        if any(d >= 1 for d in self.dropout):
            raise ValueError(f"`dropout` values must be in [0, 1). Received: dropout={dropout!r}")
        self.stem = _auto_stem(self.input_shape, stem)

    def declare_architecture(self, hp):
        modules = tuple(
            hp.Choice(f"modules_stage{s}", c, default=c[0]) for s, c in zip((3, 4, 5), self.modules_per_stage)
        )
        return {
            "width_multiplier": float(_choice(hp, "width_multiplier", self.width_multipliers)),
            "modules_per_stage": modules,
            "five_by_five": hp.Choice("five_by_five", self.five_by_five, default=self.five_by_five[0]),
            "reduction_ratio": float(_choice(hp, "reduction_ratio", self.reduction_ratios)),
            "aux_logits": bool(_choice(hp, "aux_logits", self.aux_logits)),
            "use_bn": bool(_choice(hp, "batch_norm", self.batch_norm)),
            "dropout": float(hp.Choice("dropout", self.dropout, default=self.dropout[0])),
            "stem": self.stem,
        }

    def aux_loss_weight(self, hp, arch):
        if True not in self.aux_logits:
            return 0.0
        # Searched only when the auxiliary heads exist.
        with hp.conditional_scope("aux_logits", [True]):
            weight = hp.Choice("aux_loss_weight", self.aux_loss_weights, default=self.aux_loss_weights[0])
        return float(weight) if arch["aux_logits"] else 0.0

    def build_network(self, inputs, x, arch):
        from keras_cnn.models.googlenet import GoogLeNet

        return self._network(GoogLeNet, inputs, x, **arch)


class ResNetHyperModel(CNNHyperModel):
    """Residual networks (He et al., 2016) of depth 18, 34 or 50.

    Hyper-parameters: ``depth``; the block kind follows the depth as in the paper (basic
    3x3-3x3 blocks for 18/34, bottleneck 1x1-3x3-1x1 for 50) or, with
    ``block_kind="search"``, is its own hyper-parameter ``block`` (so e.g. a 34-layer stage
    layout with bottleneck blocks is a candidate); ``width_multiplier``; ``weight_decay`` (the
    paper's 1e-4 is L2 on every kernel, see `keras_cnn.models.resnet.build_resnet`); plus the
    optimiser, learning rate and label smoothing of `CNNHyperModel`.

    Args:
        input_shape: ``(H, W, C)``.
        num_classes: number of classes.
        depths: choices among 18, 34, 50. Default (18, 34, 50).
        block_kind: "depth" (the paper's kind for each depth) or "search". Default "depth".
        width_multipliers: choices. Default (0.25, 0.5, 1.0).
        weight_decays: choices. Default (0.0, 1e-4, 5e-4).
        stem: "imagenet", "small" or None (auto: "small" below 64 px). Default None.
        **kwargs: `CNNHyperModel` arguments.
    """

    recipe_family = "resnet"
    model_name = "resnet_tuned"

    def __init__(
        self,
        input_shape,
        num_classes,
        *,
        depths=(18, 34, 50),
        block_kind="depth",
        width_multipliers=(0.25, 0.5, 1.0),
        weight_decays=(0.0, 1e-4, 5e-4),
        stem=None,
        **kwargs,
    ):
        super().__init__(input_shape, num_classes, **kwargs)
        self.depths = _choices("depths", depths, kind=int)
        for d in self.depths:
            check_choice("depths", d, (18, 34, 50))
        self.block_kind = check_choice("block_kind", block_kind, ("depth", "search"))
        self.width_multipliers = _choices("width_multipliers", width_multipliers, kind=(int, float), low=1e-9)
        self.weight_decays = _choices("weight_decays", weight_decays, kind=(int, float), low=0.0)
        self.stem = _auto_stem(self.input_shape, stem)

    def declare_architecture(self, hp):
        from keras_cnn.models.specs import RESNET_DEPTHS

        depth = hp.Choice("depth", self.depths, default=self.depths[0])
        kind, stage_depths = RESNET_DEPTHS[depth]
        if self.block_kind == "search":
            kind = hp.Choice("block", ["basic", "bottleneck"], default="basic")
        return {
            "depth": (kind, tuple(stage_depths)),
            "width_multiplier": float(_choice(hp, "width_multiplier", self.width_multipliers)),
            "weight_decay": float(hp.Choice("weight_decay", self.weight_decays, default=self.weight_decays[0])),
            "stem": self.stem,
        }

    def build_network(self, inputs, x, arch):
        from keras_cnn.models.resnet import build_resnet

        arch = dict(arch)
        depth = arch.pop("depth")
        return self._network(build_resnet, inputs, x, depth=depth, **arch)


FAMILIES = {}


def register_hypermodel(family, cls):
    """Make ``cls`` the hyper-model of ``family`` for `get_hypermodel` and `keras_cnn.tuning.tune`."""
    FAMILIES[family] = cls
    return cls


register_hypermodel("inception", InceptionHyperModel)
register_hypermodel("resnet", ResNetHyperModel)
register_hypermodel("vgg", VGGHyperModel)


def get_hypermodel(family, input_shape, num_classes, **kwargs):
    """The hyper-model of ``family`` ("inception", "resnet", "vgg") for this data.

    Args:
        family: one of `FAMILIES` (aliases: "googlenet" for "inception").
        input_shape: ``(H, W, C)`` of the raw images.
        num_classes: number of classes.
        **kwargs: the hyper-model's arguments (search-space choices).

    Returns:
        A `CNNHyperModel`.
    """
    family = _ALIASES.get(family, family)
    check_choice("family", family, sorted(FAMILIES))
    return FAMILIES[family](input_shape, num_classes, **kwargs)


_ALIASES = {"googlenet": "inception", "inception_v1": "inception"}

