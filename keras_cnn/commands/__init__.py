"""One module per `keras-cnn` sub-command; each exposes ``register(subparsers)``."""
