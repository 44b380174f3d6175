"""Private names of keras used by keras_cnn, each explained (see keras_cnn/_compat/__init__.py)."""

from __future__ import annotations


def obtain_input_shape(*args, **kwargs):
    """keras.applications' input-shape rule (defaults, minimum size, messages).

    Why private: keras exports no public equivalent; the builders reuse it so that an
    ``input_shape`` accepted or refused by keras.applications is accepted or refused here with
    the same message. Lives in ``keras.src.applications.imagenet_utils``.
    """
    from keras.src.applications import imagenet_utils

    return imagenet_utils.obtain_input_shape(*args, **kwargs)


def validate_activation(classifier_activation, weights):
    """keras.applications' ``classifier_activation`` check (private, same reason as above)."""
    from keras.src.applications import imagenet_utils

    return imagenet_utils.validate_activation(classifier_activation, weights)


def keras_home():
    """The Keras cache root (``$KERAS_HOME`` or ``~/.keras``) as `keras.utils.get_file` uses it.

    Why private: the resolved folder is only exposed as ``keras.src.backend.config.keras_home``;
    we need it to tell a user exactly where to put a weights file when offline.
    """
    from keras.src.backend import config

    return config.keras_home()


def validate_file(path, file_hash):
    """`keras.utils.get_file`'s own hash check (md5 or sha256 inferred from the hash length).

    Why private: lives in ``keras.src.utils.file_utils``; reusing it checks a cached file exactly
    as keras.applications would, without hashing the file a second way.
    """
    from keras.src.utils import file_utils

    return file_utils.validate_file(path, file_hash)


def to_snake_case(name):
    """Keras' automatic layer naming ("Conv2D" -> "conv2d"), used to order auto-named layers.

    Why private: ``keras.src.utils.naming`` is the rule Keras names layers by; matching it exactly
    is what lets weight porting sort keras.applications' auto-named layers in creation order.
    """
    from keras.src.utils import naming

    return naming.to_snake_case(name)


def flatten_layers(layer, recursive=True):
    """Sub-layers of ``layer`` (``layer`` itself excluded), in tracking order; all nested ones
    with ``recursive=True``, else only its direct children.

    Why private: ``Layer._flatten_layers`` is how Keras itself walks nested layers; the public
    ``Model.layers`` lists only the top level, and a nested block (a ResidualBlock inside a model
    inside a transfer model) must be found by name for freezing and for feature taps.
    """
    return list(layer._flatten_layers(include_self=False, recursive=recursive))


def compute_output_spec(fn, *args, **kwargs):
    """Run ``fn`` on symbolic KerasTensors (no data, no graph execution), as Keras does to infer
    a layer's output shape.

    Why private: ``keras.src.backend.compute_output_spec`` is the backend's symbolic tracer; the
    cost analysis traces a whole model with it to see every nested layer's input and output
    shapes without running a convolution. No public API gives nested call shapes.
    """
    from keras.src import backend

    return backend.compute_output_spec(fn, *args, **kwargs)


def producing_layer(tensor):
    """The layer whose call produced symbolic ``tensor`` (a KerasTensor of a Functional model).

    Why private: Keras 3 has no public accessor for the layer behind a KerasTensor;
    ``_keras_history`` (layer, node index, tensor index) is what Keras' own Functional graph
    walking uses. `keras_cnn.export` needs it to tell whether a model ends in logits (a linear
    last layer), so that the served signature adds a softmax. Raises AttributeError, IndexError
    or ValueError when there is none.
    """
    return tensor._keras_history[0]


def disable_optimizer_gradient_all_reduce(optimizer):
    """Make a Keras optimizer under a ``tf.distribute`` strategy apply gradients as given.

    Keras' TensorFlow optimizer clips each replica's gradient and only then all-reduces it
    (``_all_reduce_sum_gradients`` inside ``apply``), so ``clipnorm`` would act on partial
    gradients. keras_cnn's multi-worker loop all-reduces first and hands the optimizer the
    global gradient; the optimizer's own reduction is turned off here. Why private: Keras 3 has
    no public switch for it (keras-team/keras#20585: ``fit`` under MultiWorkerMirroredStrategy).

    Raises:
        RuntimeError: this Keras version's optimizer has no such hook.
    """
    import keras

    if not hasattr(optimizer, "_all_reduce_sum_gradients"):
        raise RuntimeError(
            "This Keras version's optimizer has no `_all_reduce_sum_gradients`; keras_cnn's multi-worker "
            f"loop supports Keras 3.15. Received: keras {keras.__version__}"
        )
    optimizer._all_reduce_sum_gradients = lambda grads_and_vars: list(grads_and_vars)
    return optimizer


def set_trainable(layer, value):
    """``layer.trainable = value``, propagated to every sub-layer even when the flag is unchanged.

    Why not the plain assignment: on the TensorFlow backend ``KerasAutoTrackable.__setattr__``
    returns early when the attribute already ``is`` the value (its "self.x = self.x" short
    circuit), and ``True`` / ``False`` are singletons, so ``layer.trainable = False`` on a layer
    whose own flag is already False never reaches ``Layer.trainable``'s setter, which is what
    passes the flag down to the sub-layers and their variables. A layer rebuilt from a config
    with ``trainable=False`` (``.keras`` loading, ``clone_model``) is exactly that case. The
    property's setter is called directly.
    """
    type(layer).trainable.fset(layer, bool(value))


def untrack(layer, *children):
    """Stop ``layer`` tracking the sub-layers ``children`` (they leave its weights and its saved state).

    Why private: a layer tracks every layer assigned to one of its attributes, through the private
    ``Layer._tracker``; Keras has no public way to drop a sub-layer made in ``__init__`` and found
    unneeded in ``build`` (`keras_cnn.layers.ResidualBlock` with ``shortcut="auto"`` resolving to
    the identity shortcut). Setting the attribute to None afterwards does not untrack it.
    """
    for child in children:
        layer._tracker.untrack(child)


def print_progress(message):
    """Write one line of training progress where Keras writes its own (``model.fit``'s "Epoch 1/3").

    Why private: `keras.utils.Progbar` prints the bar but has no heading; the heading goes through
    ``keras.src.utils.io_utils.print_msg``, which writes to stdout, or to absl logging after
    ``keras.config.disable_interactive_logging()``, exactly as ``fit`` does. Progress is Keras'
    display, governed by ``verbose``; messages meant for the user go to the ``keras_cnn`` logger.
    """
    from keras.src.utils import io_utils

    io_utils.print_msg(message)
