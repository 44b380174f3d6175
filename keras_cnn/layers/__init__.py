"""Serializable building blocks shared by every family."""

from keras_cnn.layers.conv import ConvBN, FactorizedConv
from keras_cnn.layers.preprocess import Preprocess

__all__ = ["ConvBN", "FactorizedConv", "Preprocess"]
