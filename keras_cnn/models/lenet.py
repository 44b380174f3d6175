"""LeNet-5 (LeCun, Bottou, Bengio & Haffner, 1998, "Gradient-Based Learning Applied to Document
Recognition").

32x32x1 -> conv 5x5 x6 -> 28x28x6 -> avg-pool 2/2 -> 14x14x6 -> conv 5x5 x16 -> 10x10x16
-> avg-pool 2/2 -> 5x5x16 = 400 -> FC 120 -> FC 84 -> 10-way output: 61,706 parameters.
"""

from __future__ import annotations

import keras

from keras_cnn._validation import check_choice
from keras_cnn.layers.conv import ConvBN
from keras_cnn.models._common import check_width_multiplier, scale_width, start
from keras_cnn.models.identity import registered_builder

# The architecture as data: conv (filters, kernel) each followed by a 2x2/2 average pool,
# then the hidden fully connected widths.
LENET5_CONVS = ((6, 5), (16, 5))
LENET5_FC = (120, 84)
ACTIVATIONS = ("tanh", "relu", "sigmoid")


@registered_builder("lenet5")
def LeNet5(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    name="lenet5",
    dropout=0.0,
    width_multiplier=1.0,
    activation="tanh",
):
    """LeNet-5 (LeCun et al., 1998), the modern reading used in the lecture notes.

    C1 conv 5x5 x6 -> S2 avg-pool -> C3 conv 5x5 x16 -> S4 avg-pool -> F5 120 -> F6 84 ->
    output. With ``classes=10``: exactly 61,706 parameters.

    Deviations from the paper (as in the lecture): S2/S4 are plain 2x2 average pools (the
    paper's subsampling had a trainable coefficient and bias per map, then a sigmoid); C3 is
    connected to all six S2 maps (the paper used a sparse connection table); C5 is a dense layer
    on the 400 flattened features (the same as the paper's 5x5 conv on a 5x5 map); the output is
    a dense softmax instead of Euclidean RBF units.

    Args:
        include_top: flatten + FC 120 + FC 84 + classifier. Default True.
        weights: None or the path of a weights file (no pretrained weights exist). Default None.
        input_tensor: optional Keras tensor to use as the input. Default None.
        input_shape: optional (H, W, C); default (32, 32, 1); C may be 1 or 3; at least 16x16.
        pooling: None, "avg" or "max" global pooling when ``include_top=False``. Default None.
        classes: number of classes. Default 10.
        classifier_activation: activation of the output layer. Default "softmax".
        name: model name. Default "lenet5".
        dropout: dropout rate after each hidden FC layer (not in the paper). Default 0.0.
        width_multiplier: scales the conv widths (6, 16) and FC widths (120, 84). Default 1.0.
        activation: "tanh" (the paper), "relu" or "sigmoid". Default "tanh".

    Returns:
        A `keras.Model`.

    Example:
        >>> model = LeNet5()
        >>> model.count_params()
        61706
    """
    build, x = start("lenet5", locals())
    wm = check_width_multiplier(width_multiplier)
    check_choice("activation", activation, ACTIVATIONS)
    # 32x32x1
    for i, (filters, kernel) in enumerate(LENET5_CONVS, start=1):
        x = ConvBN(
            scale_width(filters, wm), kernel, padding="valid", use_bn=False, activation=activation,
            name=f"conv{i}",
        )(x)
        x = keras.layers.AveragePooling2D(2, strides=2, name=f"pool{i}")(x)
    # 32 -> conv1 28x28x6 -> pool1 14x14x6 -> conv2 10x10x16 -> pool2 5x5x16
    fc = [(f"fc{i}", scale_width(units, wm)) for i, units in enumerate(LENET5_FC, start=1)]  # after 400 features
    x = build.classifier(x, fc=fc, fc_activation=activation)
    return build.finish(x)
