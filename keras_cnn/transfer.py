"""`keras_cnn.transfer`: the public name of `keras_cnn.training.transfer` (transfer learning:
the three regimes, `fine_tune`, `run_transfer`)."""

from keras_cnn.training.transfer import *  # noqa: F401,F403
from keras_cnn.training.transfer import __all__  # noqa: F401
