"""Every private name of Keras, TensorFlow and keras-tuner that keras_cnn touches, in one place.

One module per dependency: ``keras_.py`` (``keras.src`` and private Keras attributes),
``tensorflow_.py`` (``tensorflow.python`` and private TF attributes), ``keras_tuner_.py``
(``keras_tuner.src``). Each accessor carries a comment saying why the public API does not
suffice and the upstream issue, if any. ``tests/test_compat.py`` touches every accessor, so an
upgrade that moves a name fails there, loudly, rather than deep inside a training run.

No other module of keras_cnn imports ``keras.src``, ``keras_tuner.src`` or ``tensorflow.python``
(``tests/test_compat.py`` greps the package to keep it so).
"""
