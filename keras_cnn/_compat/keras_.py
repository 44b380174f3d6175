"""Private names of keras used by keras_cnn, each explained (see keras_cnn/_compat/__init__.py)."""

from __future__ import annotations


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
