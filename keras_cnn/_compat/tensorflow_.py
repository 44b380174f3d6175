"""Private names of tensorflow used by keras_cnn, each explained (see keras_cnn/_compat/__init__.py)."""

from __future__ import annotations


def convert_variables_to_constants_v2(concrete_function):
    """Freeze a ConcreteFunction: its captured variables become Const nodes, calls are inlined.

    Why private: TF 2 has no public freezing API (``tf.compat.v1.graph_util.
    convert_variables_to_constants`` needs a v1 Session holding the variables, which a Keras 3
    model does not have); ``tensorflow.python.framework.convert_to_constants`` is what TF's own
    TFLite converter uses. `keras_cnn.export` (``optimize=True``) needs the inference graph with
    the weights as constants to fold BatchNormalization into the preceding convolutions.
    """
    from tensorflow.python.framework import convert_to_constants

    return convert_to_constants.convert_variables_to_constants_v2(concrete_function)


def eager_context_initialized():
    """True once TensorFlow's eager context exists in this process (an op ran, a device was listed).

    Why private: ``MultiWorkerMirroredStrategy`` must be created before the context is initialised
    (collective ops are configured at start-up), and the public API only says so by raising
    *after* the cluster wait; keras_cnn checks first so that a user is told at once instead of
    waiting for the peers. TensorFlow has no public "is the context initialised" query
    (no upstream issue found). Upstream name:
    ``tensorflow.python.eager.context.context()._initialized``.
    """
    from tensorflow.python.eager import context

    return bool(context.context()._initialized)


def run_metadata_of(fn, *args):
    """Call ``fn(*args)`` with TensorFlow's run metadata on; return the ``RunMetadata`` proto.

    Why private: the partitioned graphs (which op ran on which device) are only exposed through
    ``tensorflow.python.eager.context``'s ``enable_run_metadata`` / ``export_run_metadata``;
    `keras_cnn.data.augment.describe_placement` uses them to show the augmentation runs on the GPU.
    """
    from tensorflow.python.eager import context

    context.enable_run_metadata()
    try:
        fn(*args)
        return context.export_run_metadata()
    finally:
        context.disable_run_metadata()


#: ``python -m`` module of TensorFlow's ``saved_model_cli``, the last resort when its console
#: script is not installed (a private module path: the script is TensorFlow's public entry point).
SAVED_MODEL_CLI_MODULE = "tensorflow.python.tools.saved_model_cli"
