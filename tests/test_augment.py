"""Augmentation: spec parsing, the layers of keras_cnn.layers.augment, the augmenter model."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cnn.data.augment import (
    AUGMENTATIONS,
    build_augmenter,
    compute_pca_stats,
    cpu_augment,
    describe_placement,
    parse_augment_spec,
)
from keras_cnn.layers.augment import PCAColorAugmentation, RandomColorShift, RandomPerImageCrop, RandomWarp
from tests.conftest import assert_keras_roundtrip

SHAPE = (16, 16, 3)
# fb.resnet.torch's ImageNet eigenvalues (pixels in [0, 1]); identity eigenvectors keep tests readable.
RGB_STATS = (np.array([0.2175, 0.0188, 0.0045], "float32"), np.eye(3, dtype="float32"))


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    """Overrides conftest's fixture: same reset, without clear_session's gc.collect (~1 s a test)."""
    keras.utils.set_random_seed(0)
    yield
    keras.backend.clear_session(free_memory=False)


def _images(n=8, shape=SHAPE, low=0.0, high=255.0, seed=0):
    return np.random.RandomState(seed).uniform(low, high, (n, *shape)).astype("float32")


def _same_image_batch(n=8, shape=SHAPE):
    """n copies of one image with structure everywhere (a crop or flip of it always changes it)."""
    h, w, c = shape
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    base = np.stack([(xx * 13 + yy * 7 + k * 40) % 256 for k in range(c)], axis=-1).astype("float32")
    return np.repeat(base[None], n, axis=0)


# ------------------------------------------------------------------------------------------ spec
def test_parse_spec_full_example():
    got = parse_augment_spec("flip,crop,rotate=15,shear=0.1,warp,color_shift=20,pca=0.1")
    assert got == [
        ("flip", "horizontal"),
        ("crop", 0.8),
        ("rotate", 15.0),
        ("shear", 0.1),
        ("warp", 0.05),
        ("color_shift", 20.0),
        ("pca", 0.1),
    ]


def test_parse_spec_defaults_aliases_and_empty():
    assert parse_augment_spec("translate, zoom ,Mirror=vertical, colour-shift=5") == [
        ("translate", 0.1),
        ("zoom", 0.1),
        ("flip", "vertical"),
        ("color_shift", 5.0),
    ]
    assert parse_augment_spec(None) == []
    assert parse_augment_spec("") == []
    assert parse_augment_spec("none") == []
    assert parse_augment_spec([("rotate", 30), "crop=0.9"]) == [("rotate", 30.0), ("crop", 0.9)]


@pytest.mark.parametrize(
    "spec, bad",
    [
        ("flip,blur", "'blur'"),
        ("rotate=abc", "'rotate=abc'"),
        ("crop=1.5", "'crop=1.5'"),
        ("crop=0", "'crop=0'"),
        ("flip=diagonal", "'flip=diagonal'"),
        ("rotate=", "'rotate='"),
        ("flip,flip", "more than once"),
        ("warp=nan", "'warp=nan'"),
    ],
)
def test_parse_spec_errors_name_token_and_list_names(spec, bad):
    with pytest.raises(ValueError) as info:
        parse_augment_spec(spec)
    message = str(info.value)
    assert bad in message
    for name in AUGMENTATIONS:
        assert name in message


def test_parse_spec_rejects_non_string():
    with pytest.raises(ValueError, match="augment"):
        parse_augment_spec(42)


# ------------------------------------------------------------------------ every technique, layer
ALL_NAMES = list(AUGMENTATIONS)


def _augmenter(name, seed=0, shape=SHAPE):
    value = {"crop": 0.6, "rotate": 30, "shear": 0.3, "warp": 0.1, "translate": 0.2, "zoom": 0.3}.get(name)
    spec = name if value is None else f"{name}={value}"
    return build_augmenter(spec, image_shape=shape, pca_stats=RGB_STATS, seed=seed)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_each_technique_augments_in_training_and_is_identity_at_inference(name):
    x = _same_image_batch()
    aug = _augmenter(name)  # pca: shift ~ 255 * 0.1 * 0.2175 = 5.5 px
    assert aug.name == "augmenter"
    assert [layer.name for layer in aug.layers] == [f"augment_{name}"]
    y = np.asarray(aug(x, training=True))
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.abs(y - x).max() > 1.0  # it did something
    np.testing.assert_array_equal(np.asarray(aug(x, training=False)), x)
    # Reproducible: a fresh augmenter with the same seed gives the same images, another seed others.
    np.testing.assert_allclose(np.asarray(_augmenter(name, seed=0)(x, training=True)), y, atol=1e-4)
    assert np.abs(np.asarray(_augmenter(name, seed=5)(x, training=True)) - y).max() > 1.0


def test_per_image_crop_offsets_differ_within_a_batch():
    x = _same_image_batch(8)
    y = np.asarray(RandomPerImageCrop((0.6, 0.9), seed=3)(x, training=True))
    flat = y.reshape(8, -1)
    distances = np.abs(flat[:, None] - flat[None]).max(axis=-1)
    assert np.all(distances[~np.eye(8, dtype=bool)] > 1.0)  # every pair differs
    assert y.min() >= x.min() - 1e-3 and y.max() <= x.max() + 1e-3  # no fill, only resampling


def test_per_image_crop_keeps_the_box_inside_and_full_scale_is_identity():
    x = _same_image_batch(4)
    np.testing.assert_allclose(np.asarray(RandomPerImageCrop((1.0, 1.0), seed=1)(x, training=True)), x, atol=1e-3)
    # A bright square at the centre survives every crop of side >= 0.8 (object not lost).
    img = np.zeros((16, 32, 32, 1), "float32")
    img[:, 12:20, 12:20] = 255.0
    y = np.asarray(RandomPerImageCrop(0.8, seed=2)(img, training=True))
    assert np.all(y.reshape(16, -1).max(axis=1) > 200.0)


def test_pca_colour_adds_a_constant_vector_in_the_eigenvector_span_with_the_right_scale():
    rng = np.random.RandomState(0)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    eigvals = np.array([0.03, 0.01, 0.0])
    layer = PCAColorAugmentation(eigvals, q, sigma=0.1, seed=7)
    x = _images(512, (4, 4, 3), low=100.0, high=150.0)
    d = np.asarray(layer(x, training=True), "float64") - x
    # constant over the pixels of each image
    per_image = d.reshape(512, -1, 3)
    assert np.abs(per_image - per_image[:, :1]).max() < 1e-3
    shift = per_image[:, 0]  # [512, 3]
    coeffs = shift @ q / 255.0  # coordinates along p_i, in [0, 1] units
    np.testing.assert_allclose(coeffs[:, 2], 0.0, atol=1e-5)  # in the span of p_1, p_2
    alphas = coeffs[:, :2] / eigvals[:2]
    assert np.all(np.abs(alphas.mean(axis=0)) < 0.02)
    np.testing.assert_allclose(alphas.std(axis=0), 0.1, rtol=0.15)
    assert np.abs(alphas[:, 0] - alphas[:, 1]).max() > 1e-3  # independent alphas per component


def test_pca_colour_on_grayscale_scales_by_the_single_eigenvalue_and_checks_channels():
    layer = PCAColorAugmentation([0.04], [[1.0]], sigma=0.1, seed=0)
    x = _images(64, (3, 3, 1), low=100.0, high=150.0)
    d = np.asarray(layer(x, training=True)) - x
    alphas = d.reshape(64, -1)[:, 0] / 255.0 / 0.04
    assert np.abs(d.reshape(64, -1) - d.reshape(64, -1)[:, :1]).max() < 1e-3
    assert 0.06 < alphas.std() < 0.14
    with pytest.raises(ValueError, match="channel"):
        PCAColorAugmentation(*RGB_STATS)(np.zeros((1, 4, 4, 1), "float32"), training=True)
    with pytest.raises(ValueError, match="pca_stats"):
        build_augmenter("pca", image_shape=(8, 8, 1), pca_stats=RGB_STATS)
    with pytest.raises(ValueError, match="pca_stats"):
        build_augmenter("pca", image_shape=(8, 8, 3))
    with pytest.raises(ValueError, match="eigvecs"):
        PCAColorAugmentation([0.1, 0.2, 0.3], np.eye(2))


def test_color_shift_is_a_per_image_per_channel_constant_within_bound():
    x = _images(64, (5, 5, 3), low=60.0, high=190.0)
    d = np.asarray(RandomColorShift(20.0, seed=1)(x, training=True)) - x
    per_image = d.reshape(64, -1, 3)
    assert np.abs(per_image - per_image[:, :1]).max() < 1e-3
    offsets = per_image[:, 0]
    assert np.abs(offsets).max() <= 20.0 + 1e-4
    assert offsets.std() > 5.0  # spread over the range, not a constant
    assert np.abs(offsets[:, 0] - offsets[:, 1]).max() > 1.0  # channels independent
    clipped = np.asarray(RandomColorShift(50.0, seed=1)(np.full((8, 2, 2, 3), 250.0), training=True))
    assert clipped.max() <= 255.0


def test_warp_moves_pixels_but_keeps_constants_and_zero_is_identity():
    x = _same_image_batch(4)
    y = np.asarray(RandomWarp(0.1, seed=0)(x, training=True))
    assert np.abs(y - x).max() > 1.0
    assert np.abs(y[0] - y[1]).max() > 1.0  # a different field per image
    flat = np.full((2, 16, 16, 3), 77.0, "float32")
    np.testing.assert_allclose(np.asarray(RandomWarp(0.2, seed=0)(flat, training=True)), flat, atol=1e-3)
    np.testing.assert_allclose(np.asarray(RandomWarp(0.0, seed=0)(x, training=True)), x, atol=1e-3)


def test_layers_validate_arguments():
    for make in (
        lambda: RandomPerImageCrop(1.5),
        lambda: RandomPerImageCrop((0.9, 0.5)),
        lambda: RandomWarp(0.9),
        lambda: RandomWarp(0.1, grid_size=1),
        lambda: RandomColorShift(-1),
        lambda: PCAColorAugmentation([-0.1], [[1.0]]),
        lambda: RandomColorShift(10, seed="x"),
    ):
        with pytest.raises(ValueError):
            make()


@pytest.mark.parametrize(
    "layer",
    [
        RandomPerImageCrop((0.7, 0.9), interpolation="nearest", seed=3),
        RandomWarp(0.07, grid_size=3, seed=4),
        RandomColorShift(12.0, value_range=None, seed=5),
        PCAColorAugmentation([0.2, 0.02, 0.004], np.eye(3), sigma=0.2, pixel_scale=1.0, seed=6),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_layer_config_roundtrip_reproduces_the_random_stream(layer):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    x = _same_image_batch(3)
    first = np.asarray(layer(x, training=True))
    np.testing.assert_allclose(np.asarray(clone(x, training=True)), first, atol=1e-4)
    # the seed generator advances: a second call draws new transformations
    assert np.abs(np.asarray(layer(x, training=True)) - first).max() > 1e-3


@pytest.mark.slow
def test_custom_layers_compile_with_xla():
    layers = [
        RandomPerImageCrop(seed=1),
        RandomWarp(seed=2),
        RandomColorShift(seed=3),
        PCAColorAugmentation(*RGB_STATS, seed=4),
    ]
    x = tf.constant(_same_image_batch(2))

    @tf.function(jit_compile=True)
    def augment(images):
        for layer in layers:
            images = layer(images, training=True)
        return images

    y = augment(x).numpy()
    assert y.shape == x.shape and np.abs(y - x.numpy()).max() > 1.0
    assert np.abs(augment(x).numpy() - y).max() > 1e-3  # new draws on every call


def test_unbatched_image_is_supported():
    x = _same_image_batch(1)[0]
    y = np.asarray(RandomColorShift(20, seed=0)(x, training=True))
    assert y.shape == x.shape and np.abs(y - x).max() > 0


# ------------------------------------------------------------------------------- the augmenter
FULL_SPEC = "flip,crop,rotate=15,shear=0.1,translate,zoom,warp,color_shift=20,pca=0.1"


def test_full_augmenter_runs_on_grayscale_and_rgb():
    gray_stats = compute_pca_stats(_images(4, (8, 8, 1)))
    for shape, stats in (((16, 16, 1), gray_stats), (SHAPE, RGB_STATS)):
        aug = build_augmenter(FULL_SPEC, image_shape=shape, pca_stats=stats, seed=1)
        assert [layer.name for layer in aug.layers] == [f"augment_{n}" for n in ALL_NAMES]
        assert all(layer.dtype_policy.name == "float32" for layer in aug.layers)
        x = _same_image_batch(4, shape)
        y = np.asarray(aug(x, training=True))
        assert y.shape == x.shape and np.abs(y - x).max() > 1.0
        np.testing.assert_array_equal(np.asarray(aug(x, training=False)), x)


def test_empty_spec_gives_an_identity_augmenter():
    aug = build_augmenter("", image_shape=SHAPE)
    x = _images(2)
    np.testing.assert_array_equal(np.asarray(aug(x, training=True)), x)


def test_build_augmenter_validates_shape_and_seed():
    with pytest.raises(ValueError, match="image_shape"):
        build_augmenter("flip", image_shape=(16, 16))
    with pytest.raises(ValueError, match="seed"):
        build_augmenter("flip", image_shape=SHAPE, seed=1.5)


def _train_model(aug, shape=SHAPE):
    core = keras.Sequential(
        [
            keras.Input(shape),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Conv2D(2, 3),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3),
        ],
        name="core",
    )
    inputs = keras.Input(shape)
    return core, keras.Model(inputs, core(aug(inputs)), name="train_model")


@pytest.mark.slow
def test_full_spec_trains_inside_the_compiled_step_and_round_trips(tmp_path):
    aug = build_augmenter(FULL_SPEC, image_shape=SHAPE, pca_stats=RGB_STATS, seed=0)
    core, model = _train_model(aug)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss, jit_compile=False)
    x, y = _images(8), np.arange(8) % 3
    before = [w.copy() for w in core.get_weights()]
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(np.abs(a - b).max() > 0 for a, b in zip(before, core.get_weights()))
    # inference: the augmenter is the identity, so the training model equals the core model
    np.testing.assert_allclose(model.predict(x, verbose=0), core.predict(x, verbose=0), atol=1e-5)
    loaded = assert_keras_roundtrip(model, x, tmp_path)
    loaded_aug = loaded.get_layer("augmenter")
    assert [type(layer).__name__ for layer in loaded_aug.layers] == [type(layer).__name__ for layer in aug.layers]
    assert loaded_aug.get_layer("augment_pca").get_config()["eigvals"] == pytest.approx(list(RGB_STATS[0]))
    assert loaded_aug.get_layer("augment_crop").get_config()["seed"] == aug.get_layer("augment_crop").seed


def test_augmenter_runs_in_a_tf_function_training_step():
    aug = build_augmenter("flip,crop,warp,color_shift", image_shape=SHAPE, seed=0)
    core, model = _train_model(aug)
    optimizer = keras.optimizers.SGD(0.1)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    x, y = tf.constant(_images(4)), tf.constant([0, 1, 2, 0])

    @tf.function(jit_compile=False)
    def step(images, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(images, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    # in training mode the model sees augmented images; in inference mode it is the core model
    assert np.abs(np.asarray(model(x, training=True)) - np.asarray(core(x))).max() > 1e-4
    np.testing.assert_allclose(np.asarray(model(x, training=False)), np.asarray(core(x)), atol=1e-5)
    first, second = float(step(x, y)), float(step(x, y))
    assert np.isfinite(first) and np.isfinite(second) and first != second


# ------------------------------------------------------------------------------ PCA statistics
def test_compute_pca_stats_matches_numpy_on_arrays_and_datasets():
    rng = np.random.RandomState(0)
    mix = np.array([[40.0, 0, 0], [30.0, 10.0, 0], [20.0, 5.0, 3.0]])
    pixels = 128 + rng.normal(size=(4096, 3)) @ mix.T
    images = pixels.reshape(64, 8, 8, 3).astype("float32")
    vals, vecs = compute_pca_stats(images)
    assert vals.shape == (3,) and vecs.shape == (3, 3)
    ref = np.linalg.eigvalsh(np.cov((pixels / 255.0).T, bias=True))[::-1]
    np.testing.assert_allclose(vals, ref, rtol=1e-3)
    assert np.all(np.diff(vals) <= 0)
    cov = np.cov((images.reshape(-1, 3) / 255.0).T, bias=True)
    np.testing.assert_allclose(cov @ vecs, vecs * vals, atol=1e-5)  # columns are eigenvectors
    np.testing.assert_allclose(vecs.T @ vecs, np.eye(3), atol=1e-5)
    ds = tf.data.Dataset.from_tensor_slices((images, np.zeros(64, "int32"))).batch(10)
    vals_ds, vecs_ds = compute_pca_stats(ds)
    np.testing.assert_allclose(vals_ds, vals, rtol=1e-4)
    np.testing.assert_allclose(np.abs(vecs_ds), np.abs(vecs), atol=1e-4)
    vals_raw, _ = compute_pca_stats(images, pixel_scale=1.0)
    np.testing.assert_allclose(vals_raw, vals * 255.0**2, rtol=1e-4)


def test_compute_pca_stats_grayscale_and_errors():
    x = _images(4, (6, 6, 1))
    vals, vecs = compute_pca_stats(x)
    np.testing.assert_allclose(vals, [np.var(x / 255.0)], rtol=1e-4)
    np.testing.assert_allclose(np.abs(vecs), [[1.0]])
    with pytest.raises(ValueError, match="images_or_dataset"):
        compute_pca_stats([1, 2, 3])
    with pytest.raises(ValueError, match="no pixels"):
        compute_pca_stats(np.zeros((0, 4, 4, 3), "float32"))


# -------------------------------------------------------------------------- CPU path, placement
@pytest.mark.slow
def test_cpu_augment_is_seeded_and_keeps_labels():
    x, y = _same_image_batch(8), np.arange(8, dtype="int32")
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    aug = build_augmenter("flip,crop,color_shift", image_shape=SHAPE, seed=0)

    def run(seed):
        return [(a, b) for a, b in cpu_augment(ds, aug, seed=seed).as_numpy_iterator()]

    first, again, other = run(3), run(3), run(4)
    for (a, b), (c, d) in zip(first, again):
        np.testing.assert_allclose(a, c, atol=1e-4)
        np.testing.assert_array_equal(b, d)
    assert np.concatenate([b for _, b in first]).tolist() == list(range(8))
    assert np.abs(first[0][0] - x[:4]).max() > 1.0
    assert np.abs(first[0][0] - other[0][0]).max() > 1.0
    images_only = next(cpu_augment(ds.map(lambda a, b: a), "flip,crop", seed=0).as_numpy_iterator())
    assert images_only.shape == (4, *SHAPE)
    with pytest.raises(ValueError, match="dataset"):
        cpu_augment(x, aug)


def test_describe_placement_lists_devices_and_image_ops():
    placement = describe_placement(build_augmenter("flip,rotate,crop", image_shape=(8, 8, 3)))
    assert placement and all("device:" in device for device in placement)
    ops = {op for ops_ in placement.values() for op in ops_}
    assert "ImageProjectiveTransformV3" in ops
    if not tf.config.list_physical_devices("GPU"):
        assert all("CPU" in device for device in placement)
