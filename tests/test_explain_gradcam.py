"""Grad-CAM (Selvaraju et al., 2017): localisation on a synthetic task, and the paper's equations.

The task: 48x48 images of low noise with four 9x9 shapes, all drawn at the same brightness, each
in its own cell of a 4x4 grid at a random offset. Both classes carry pluses and hollow squares
(the distractors); the positive class has an "X" in place of one of them (the evidence). Neither
brightness nor the number of shapes tells the classes apart, so a heat map can only find the X by
what the network learned.

Figures measured with this file's fixtures (course_convnet, 4 epochs on 3,000 images, 400 test
images, default layer conv3: a 9x9 grid; seed 0): the Grad-CAM peak falls inside the X's box for
0.575 of the correctly classified positives, within 3 px of it for 0.98; on layer conv2 (21x21)
inside the box for 0.895. A uniformly random heat map: 0.03; the same network untrained: 0.05.
"""

import numpy as np
import pytest

import keras

from keras_cnn.explain import grad_cam, grad_cam_details, overlay
from keras_cnn.training.network import build_network

SIZE, BOX, CELL = 48, 9, 12
TRAINED_IN_BOX = 0.5        # measured 0.575 (a 9x9 map upsampled to 48x48)
TRAINED_NEAR_BOX = 0.9      # within 3 px; measured 0.98
CONV2_IN_BOX = 0.8          # measured 0.895
BASELINE_IN_BOX = 0.15      # random heat map measured 0.03, untrained network 0.05


def _mask(kind):
    m = np.zeros((BOX, BOX), bool)
    i = np.arange(BOX)
    if kind == "x":
        m[i, i] = m[i, BOX - 1 - i] = True
    elif kind == "plus":
        m[BOX // 2, :] = m[:, BOX // 2] = True
    else:  # hollow square
        m[0, :] = m[-1, :] = m[:, 0] = m[:, -1] = True
    return m


def make_task(n, seed):
    """``(images (n, 48, 48, 3) in 0..255, labels, evidence boxes (r0, c0, r1, c1))``."""
    rng = np.random.RandomState(seed)
    x = rng.uniform(0, 60, (n, SIZE, SIZE)).astype("float32")
    y = np.arange(n) % 2
    boxes = np.zeros((n, 4), int)
    for k in range(n):
        cells = rng.choice(16, 4, replace=False)
        kinds = [("plus", "square")[rng.randint(2)] for _ in range(4)]
        if y[k]:
            kinds[0] = "x"
        for j, (kind, cell) in enumerate(zip(kinds, cells)):
            r0 = (cell // 4) * CELL + rng.randint(0, CELL - BOX + 1)
            c0 = (cell % 4) * CELL + rng.randint(0, CELL - BOX + 1)
            x[k, r0:r0 + BOX, c0:c0 + BOX][_mask(kind)] = 230.0
            if j == 0 and y[k]:
                boxes[k] = (r0, c0, r0 + BOX, c0 + BOX)
    return np.repeat(x[..., None], 3, axis=-1), y, boxes


def peak_distance(maps, boxes):
    """Pixels between each map's peak and its box (0: inside)."""
    out = []
    for m, (r0, c0, r1, c1) in zip(maps, boxes):
        r, c = np.unravel_index(np.argmax(m), m.shape)
        out.append(max(r0 - r, r - (r1 - 1), 0) + max(c0 - c, c - (c1 - 1), 0))
    return np.array(out)


@pytest.fixture(scope="module")
def task():
    keras.utils.set_random_seed(0)
    x_train, y_train, _ = make_task(3000, 0)
    x_test, y_test, boxes = make_task(400, 1)
    net = build_network("course_convnet", image_shape=(SIZE, SIZE, 3), classes=2)
    net.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    net.fit(x_train, y_train, epochs=4, batch_size=64, verbose=0)
    predicted = net.predict(x_test, verbose=0).argmax(-1)
    positives = (y_test == 1) & (predicted == 1)
    return net, x_test, y_test, boxes, positives


def independent_grad_cam(model, x, layer, classes):
    """Selvaraju et al. 2017, eq. 1-2, written from the paper for a flat model with a softmax Dense."""
    import tensorflow as tf

    head = model.get_layer("predictions")
    probe = keras.Model(model.inputs, [model.get_layer(layer).output, head.input])
    kernel, bias = (np.asarray(w, "float64") for w in head.get_weights())
    x = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        a, h = probe(x, training=False)
        logits = tf.matmul(h, tf.constant(kernel, tf.float32)) + tf.constant(bias, tf.float32)  # y^c before softmax
        y_c = tf.reduce_sum(logits * tf.one_hot(classes, logits.shape[-1]), axis=1)
    grads = tape.gradient(y_c, a).numpy().astype("float64")
    a = a.numpy().astype("float64")
    alpha = grads.sum(axis=(1, 2)) / (a.shape[1] * a.shape[2])       # eq. 1: (N, K)
    cam = np.maximum(np.einsum("nk,nijk->nij", alpha, a), 0.0)        # eq. 2
    up = tf.image.resize(cam[..., None].astype("float32"), x.shape[1:3], method="bilinear").numpy()[..., 0]
    peak = up.max(axis=(1, 2), keepdims=True)
    return np.where(peak > 0, up / np.where(peak > 0, peak, 1), 0.0)


@pytest.mark.slow
def test_the_peak_falls_on_the_evidence_not_the_distractors(task):
    net, x, y, boxes, positives = task
    assert positives.sum() >= 150  # the network learned the task (200 positives)
    result = grad_cam_details(net, x[positives])
    assert result.layer == "conv3"  # course_convnet's last stage tap (its spec)
    assert result.heatmaps.shape == (positives.sum(), SIZE, SIZE)
    distance = peak_distance(result.heatmaps, boxes[positives])
    assert (distance == 0).mean() >= TRAINED_IN_BOX
    assert (distance <= 3).mean() >= TRAINED_NEAR_BOX
    finer = grad_cam(net, x[positives], layer="conv2")
    assert (peak_distance(finer, boxes[positives]) == 0).mean() >= CONV2_IN_BOX


@pytest.mark.slow
def test_a_random_heat_map_and_an_untrained_network_score_far_lower(task):
    net, x, y, boxes, positives = task
    rng = np.random.RandomState(3)
    random_maps = rng.uniform(size=(positives.sum(), SIZE, SIZE))
    assert (peak_distance(random_maps, boxes[positives]) == 0).mean() <= BASELINE_IN_BOX
    keras.utils.set_random_seed(1)
    untrained = build_network("course_convnet", image_shape=(SIZE, SIZE, 3), classes=2)
    maps = grad_cam(untrained, x[y == 1], class_index=1)
    assert (peak_distance(maps, boxes[y == 1]) == 0).mean() <= BASELINE_IN_BOX


@pytest.mark.slow
@pytest.mark.parametrize("layer", ["conv3", "conv2"])
def test_matches_an_independent_grad_cam_on_the_same_layer(task, layer):
    net, x, y, boxes, positives = task
    x = x[:24]
    classes = (np.arange(24) + 1) % 2  # explain the other class for half of them
    ours = grad_cam(net, x, class_index=classes, layer=layer)
    np.testing.assert_allclose(ours, independent_grad_cam(net, x, layer, classes), atol=2e-5)


def _small_net(classes=3, **kwargs):
    return build_network("course_convnet", image_shape=(39, 39, 3), classes=classes, **kwargs)


def _images(n=3, size=39, seed=0):
    return np.random.RandomState(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


def test_transfer_model_finds_its_base_taps_and_matches_the_paper():
    from keras_cnn.transfer import build_transfer_model

    model = build_transfer_model("course_convnet", 4, input_shape=(39, 39, 3), dropout=0.0)
    result = grad_cam_details(model, _images())
    assert result.layer == "conv3"
    # The same computation written out: pixels -> preprocess -> base (conv3, output) -> pool -> dense.
    import tensorflow as tf

    base = model.get_layer("course_convnet")
    probe = keras.Model(base.inputs, [base.get_layer("conv3").output, base.output])
    head = model.get_layer("predictions")
    x = tf.constant(_images())
    with tf.GradientTape() as tape:
        a, out = probe(model.get_layer("preprocess")(x), training=False)
        logits = head.kernel * 1.0
        logits = tf.matmul(model.get_layer("features")(out), logits) + head.bias
        score = tf.gather(logits, result.class_index, axis=1, batch_dims=1)
    grads = tape.gradient(score, a)
    cam = tf.nn.relu(tf.reduce_sum(tf.reduce_mean(grads, axis=(1, 2), keepdims=True) * a, axis=-1))[..., None]
    cam = tf.image.resize(cam, (39, 39))[..., 0].numpy()
    cam = cam / np.maximum(cam.max(axis=(1, 2), keepdims=True), 1e-12)
    np.testing.assert_allclose(result.heatmaps, cam, atol=2e-5)
    np.testing.assert_allclose(result.probabilities, model(x).numpy(), atol=1e-6)


@pytest.mark.slow
def test_aux_head_network_explains_its_main_output():
    model = build_network("googlenet", image_shape=(64, 64, 3), classes=3, aux_logits=True,
                          model_kwargs={"width_multiplier": 0.25})
    x = _images(2, 64)
    result = grad_cam_details(model, x)
    assert result.layer == "inception_5b"
    np.testing.assert_allclose(result.probabilities, model(x, training=False)["predictions"].numpy(), atol=1e-5)
    assert result.heatmaps.shape == (2, 64, 64) and np.isfinite(result.heatmaps).all()


def test_mixed_precision_model_gives_float32_maps_like_its_float32_twin():
    net = _small_net()
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        half = _small_net()
    finally:
        keras.config.set_dtype_policy(previous)
    half.set_weights(net.get_weights())
    x = _images()
    maps, maps16 = grad_cam(net, x), grad_cam(half, x)
    assert maps16.dtype == np.float32 and np.isfinite(maps16).all()
    assert np.abs(maps - maps16).max() < 0.05


def test_reloaded_model_keeps_its_default_layer(tmp_path):
    net = _small_net()
    net.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(grad_cam(loaded, _images()), grad_cam(net, _images()), atol=1e-6)


def test_a_model_keras_cnn_did_not_build_needs_a_layer():
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, name="conv"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2, activation="softmax")])
    with pytest.raises(ValueError, match=r"`layer` is required.*not built by keras_cnn"):
        grad_cam(model, _images(2, 16))
    maps = grad_cam(model, _images(2, 16), layer="conv")
    assert maps.shape == (2, 16, 16)


@pytest.mark.parametrize("kwargs, message", [
    (dict(layer="nope"), r"`layer` 'nope' is not a layer"),
    (dict(layer="predictions"), r"`layer` must have a \(H, W, C\) feature map"),
    (dict(class_index=3), r"`class_index` must be .* in 0\.\.2"),
    (dict(class_index=[0, 1]), r"`class_index` must be"),
])
def test_bad_arguments_name_themselves(kwargs, message):
    with pytest.raises(ValueError, match=message):
        grad_cam(_small_net(), _images(), **kwargs)


def test_images_that_do_not_fit_the_model_are_refused():
    with pytest.raises(ValueError, match=r"`images` must be .* \(39, 39, 3\)"):
        grad_cam(_small_net(), _images(2, 32))


def test_overlay_blends_the_colormap_over_the_image():
    import matplotlib

    image = np.full((4, 5), 100.0)
    heat = np.zeros((4, 5))
    heat[1, 2] = 1.0
    out = overlay(image, heat, alpha=0.5)
    assert out.shape == (4, 5, 3) and out.dtype == np.uint8
    hot = np.array(matplotlib.colormaps["jet"](1.0)[:3]) * 255
    np.testing.assert_allclose(out[1, 2], np.rint(0.5 * 100 + 0.5 * hot), atol=1)
    assert not np.array_equal(out[0, 0], out[1, 2])
    with pytest.raises(ValueError, match="`heatmap`"):
        overlay(image, np.zeros((3, 3)))
