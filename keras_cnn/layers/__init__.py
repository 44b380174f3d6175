"""Serializable building blocks shared by every family."""

from keras_cnn.layers.augment import PCAColorAugmentation, RandomColorShift, RandomPerImageCrop, RandomWarp
from keras_cnn.layers.conv import ConvBN, FactorizedConv
from keras_cnn.layers.identity import ModelIdentity
from keras_cnn.layers.inception import AuxiliaryClassifier, GridReduction, InceptionBlock
from keras_cnn.layers.preprocess import Preprocess
from keras_cnn.layers.residual import ResidualBlock

__all__ = [
    "AuxiliaryClassifier",
    "ConvBN",
    "FactorizedConv",
    "GridReduction",
    "InceptionBlock",
    "ModelIdentity",
    "PCAColorAugmentation",
    "Preprocess",
    "RandomColorShift",
    "RandomPerImageCrop",
    "RandomWarp",
    "ResidualBlock",
]
