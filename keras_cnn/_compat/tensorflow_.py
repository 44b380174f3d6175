"""Private names of tensorflow used by keras_cnn, each explained (see keras_cnn/_compat/__init__.py)."""

from __future__ import annotations


def eager_context_initialized():
    """True once TensorFlow's eager context exists in this process (an op ran, a device was listed).

    Why private: ``MultiWorkerMirroredStrategy`` must be created before the context is initialised
    (collective ops are configured at start-up), and the public API only says so by raising
    *after* the cluster wait; keras_cnn checks first so that a user is told at once instead of
    waiting for the peers. TensorFlow has no public "is the context initialised" query
    (tensorflow/tensorflow#37233 asks for context introspection). Upstream name:
    ``tensorflow.python.eager.context.context()._initialized``.
    """
    from tensorflow.python.eager import context

    return bool(context.context()._initialized)
