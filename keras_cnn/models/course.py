"""The small ConvNet of the lecture notes (Ng, Convolutional Neural Networks, deeplearning.ai, week 1).

39x39x3 -> conv 3x3/1 x10 -> 37x37x10 -> conv 5x5/2 x20 -> 17x17x20 -> conv 5x5/2 x40
-> 7x7x40 = 1960 features -> softmax. Every conv layer is convolution + bias + activation;
its parameters are ``(f * f * n_c_prev + 1) * n_c`` (the first one: ``(3*3*3+1)*10 = 280``)
and its output size ``floor((n + 2p - f) / s) + 1``.
"""

from __future__ import annotations


from keras_cnn._validation import check_choice
from keras_cnn.layers.conv import ConvBN
from keras_cnn.models._common import check_width_multiplier, scale_width, start
from keras_cnn.models.identity import registered_builder

# (filters, kernel, stride) per conv layer; all "valid" (p = 0).
COURSE_CONVNET = ((10, 3, 1), (20, 5, 2), (40, 5, 2))
ACTIVATIONS = ("relu", "tanh", "sigmoid")


@registered_builder("course_convnet")
def CourseConvNet(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    name="course_convnet",
    dropout=0.0,
    width_multiplier=1.0,
    activation="relu",
):
    """The lecture's example ConvNet (Andrew Ng, "Convolutional Neural Networks", week 1).

    Three "valid" convolutions (3x3/1 x10, 5x5/2 x20, 5x5/2 x40), flatten, and a softmax
    (logistic for 2 classes) on the 7x7x40 = 1960 features of a 39x39x3 image.

    Notes: the lecture names no activation; ReLU is used by default. ``classes`` defaults to 10
    (not keras.applications' 1000): the net is meant for small data sets such as the digits.

    Args:
        include_top: flatten + dense classifier on top. Default True.
        weights: None or the path of a weights file (no pretrained weights exist). Default None.
        input_tensor: optional Keras tensor to use as the input. Default None.
        input_shape: optional (H, W, C); default (39, 39, 3); at least 15x15.
        pooling: None, "avg" or "max" global pooling when ``include_top=False``. Default None.
        classes: number of classes. Default 10.
        classifier_activation: activation of the output layer. Default "softmax".
        name: model name. Default "course_convnet".
        dropout: dropout rate before the classifier. Default 0.0.
        width_multiplier: scales the conv widths (10, 20, 40). Default 1.0.
        activation: "relu", "tanh" or "sigmoid" after every conv. Default "relu".

    Returns:
        A `keras.Model`.

    Example:
        >>> model = CourseConvNet()
        >>> model.get_layer("flatten").output.shape
        (None, 1960)
    """
    build, x = start("course_convnet", locals())
    wm = check_width_multiplier(width_multiplier)
    check_choice("activation", activation, ACTIVATIONS)
    # 39x39x3
    for i, (filters, kernel, stride) in enumerate(COURSE_CONVNET, start=1):
        x = ConvBN(
            scale_width(filters, wm), kernel, strides=stride, padding="valid", use_bn=False,
            activation=activation, name=f"conv{i}",
        )(x)
    # 39 -> 37x37x10 -> 17x17x20 -> 7x7x40
    x = build.classifier(x, fc=[])
    return build.finish(x)
