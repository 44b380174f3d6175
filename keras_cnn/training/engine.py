"""The ``fit`` engine of every single-process path: `train` (`keras_cnn.training.trainer`),
both phases of `keras_cnn.training.transfer.fine_tune` and the tuner's trials.

One compile (`compile_model`: categorical cross-entropy on one-hot targets, one loss per output
of a model with auxiliary heads), one target mapping (`one_hot_targets`), one ``fit``
(`fit_engine`) and one evaluation (`evaluate_engine`).
"""

from __future__ import annotations


def compile_model(model, optimizer, *, label_smoothing=0.0, aux_loss_weight=0.0, jit_compile=False,
                  run_eagerly=False):
    """The one compile of every ``fit`` path (`train`, both phases of ``fine_tune``, tuning trials).

    Categorical cross-entropy (with ``label_smoothing``) on one-hot targets; a dict-output model
    (auxiliary heads, Szegedy et al., 2015) gets one loss per output, the auxiliary ones weighted
    by ``aux_loss_weight``; accuracy is measured on the main output.
    """
    import keras

    from keras_cnn.training.network import MAIN_OUTPUT, output_names

    loss = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
    accuracy = keras.metrics.CategoricalAccuracy(name="accuracy")
    keys = output_names(model)
    if keys:
        kwargs = dict(
            loss={k: loss for k in keys},
            loss_weights={k: (1.0 if k == MAIN_OUTPUT else aux_loss_weight) for k in keys},
            metrics={MAIN_OUTPUT: [accuracy]},
        )
    else:
        kwargs = dict(loss=loss, metrics=[accuracy])
    model.compile(optimizer=optimizer, jit_compile=jit_compile, run_eagerly=run_eagerly, **kwargs)
    return model


def one_hot_targets(data, model):
    """``(pixels, int labels)`` -> the one-hot targets ``model`` trains on (one per output of a
    dict-output model). ``data``: a batched ``tf.data.Dataset``, an ``(x, y)`` pair of arrays, or None."""
    if data is None:
        return None
    import numpy as np
    import tensorflow as tf

    from keras_cnn.training.network import output_names

    depth = int(model.outputs[0].shape[-1])  # every output (main and auxiliary heads) has one per class
    keys = output_names(model)
    if isinstance(data, tuple):
        onehot = np.eye(depth, dtype="float32")[np.asarray(data[1]).reshape(-1).astype("int64")]
        return data[0], ({k: onehot for k in keys} if keys else onehot)

    def to_target(x, y):
        onehot = tf.one_hot(tf.cast(tf.reshape(y, [-1]), tf.int32), depth)
        return x, ({k: onehot for k in keys} if keys else onehot)

    return data.map(to_target, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def fit_engine(model, train, *, epochs, validation=None, callbacks=None, verbose=0, initial_epoch=0,
               batch_size=None, shuffle=True):
    """The ``fit`` engine of every single-process path: one-hot targets, then ``model.fit``.

    Args:
        train: a batched ``tf.data.Dataset`` of ``(pixels, int labels)`` (shuffled by itself) or an
            ``(x, y)`` pair of arrays (batched with ``batch_size``, shuffled when ``shuffle``).
        validation: the same kinds, or None.

    Returns:
        The Keras ``History``.
    """
    kwargs = dict(epochs=epochs, callbacks=list(callbacks or []), verbose=verbose, initial_epoch=initial_epoch)
    if validation is not None:
        kwargs["validation_data"] = one_hot_targets(validation, model)
    x, y = one_hot_targets(train, model) if isinstance(train, tuple) else (one_hot_targets(train, model), None)
    if y is not None:
        return model.fit(x, y, batch_size=batch_size, shuffle=shuffle, **kwargs)
    return model.fit(x, shuffle=False, **kwargs)  # the datasets shuffle themselves


def evaluate_engine(model, data, *, batch_size=None):
    """``(loss, accuracy)`` of a model compiled by `compile_model` on ``data`` (kinds as `fit_engine`)."""
    if isinstance(data, tuple):
        x, y = one_hot_targets(data, model)
        values = model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True)
    else:
        values = model.evaluate(one_hot_targets(data, model), verbose=0, return_dict=True)
    accuracy = values.get("accuracy", values.get("predictions_accuracy"))
    return float(values["loss"]), float(accuracy)
