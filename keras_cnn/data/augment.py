"""Data augmentation: one spec string, one Keras model that runs inside the training step.

Every technique of the lectures' data augmentation (Ng, CNN course, week 2; Krizhevsky, Sutskever &
Hinton, "ImageNet Classification with Deep Convolutional Neural Networks", NIPS 2012,
section 4.1): mirroring, random cropping, rotation, shearing, local warping, colour shifting and
PCA colour augmentation, plus translation and zoom.

One spec string serves the CLI and the API::

    "flip,crop,rotate=15,shear=0.1,warp,color_shift=20,pca=0.1"

`build_augmenter` turns it into a ``keras.Sequential`` named "augmenter". On the accelerator path
the trainer puts it as the first layer of the *training* model, so the augmentation is traced
into the compiled train step and runs on the GPU/TPU next to the model; its layers are the
identity when ``training=False``, and the inference/export model never contains it.
`cpu_augment` is the classic alternative: the same augmenter in a ``tf.data`` ``map`` on the CPU.

Accepted names (value = default for a bare name; the layers are applied in this order, whatever
the order of the spec):

* ``flip`` (``horizontal``; or ``vertical``, ``horizontal_and_vertical``) - mirroring,
  ``keras.layers.RandomFlip``;
* ``crop`` (0.8) - per-image random crop keeping at least this side fraction, resized back,
  `keras_cnn.layers.RandomPerImageCrop`;
* ``rotate`` (15) - rotation up to +-degrees, ``keras.layers.RandomRotation``;
* ``shear`` (0.1) - shear up to this fraction in x and y, ``keras.layers.RandomShear``;
* ``translate`` (0.1) - shift up to this fraction of H and W, ``keras.layers.RandomTranslation``;
* ``zoom`` (0.1) - zoom in/out up to this fraction, ``keras.layers.RandomZoom``;
* ``warp`` (0.05) - local warping, control-point displacement as a fraction of the side,
  `keras_cnn.layers.RandomWarp`;
* ``color_shift`` (20) - per-image, per-channel offsets up to +-value in 0..255 units,
  `keras_cnn.layers.RandomColorShift`;
* ``pca`` (0.1) - AlexNet PCA colour augmentation, sigma of the alphas; needs ``pca_stats``,
  `keras_cnn.layers.PCAColorAugmentation`.

Geometric layers fill with ``reflect``. Grayscale images: ``color_shift`` becomes a brightness
offset and ``pca`` needs 1-channel statistics (``compute_pca_stats`` returns them).

Where the ops run: `describe_placement` executes the augmenter once in a fresh ``tf.function``
and returns the device of every op, as TensorFlow placed it. For a log of every placement
decision, call ``tf.debugging.set_log_device_placement(True)`` before building the model.

Note on XLA: this package's layers (crop, warp, color_shift, pca) compile with XLA, but Keras'
geometric layers (rotate, shear, translate, zoom) use ``ImageProjectiveTransformV3``, which XLA
lacks, and declare ``supports_jit = False``: with any of them in the augmenter, compile the
training model with ``jit_compile=False`` (or "auto", which Keras then resolves to False).
Reproducibility: the same seed gives the same images in the same compile mode; TensorFlow's
stateless RNG may pick another algorithm under XLA, so XLA and non-XLA draws differ.
"""

from __future__ import annotations

import math
from collections import defaultdict

import keras
import numpy as np

from keras_cnn._validation import check_choice, parse_shape
from keras_cnn.layers.augment import PCAColorAugmentation, RandomColorShift, RandomPerImageCrop, RandomWarp

__all__ = [
    "AUGMENTATIONS",
    "build_augmenter",
    "compute_pca_stats",
    "cpu_augment",
    "describe_placement",
    "parse_augment_spec",
    "resolve_augment_on",
]

_FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical")

# name -> (default, low, high, low_inclusive, description). Order = application order.
AUGMENTATIONS = {
    "flip": ("horizontal", None, None, None, "mirroring mode: " + "|".join(_FLIP_MODES)),
    "crop": (0.8, 0.0, 1.0, False, "smallest crop side fraction, in (0, 1]"),
    "rotate": (15.0, 0.0, 180.0, False, "max rotation in degrees, in (0, 180]"),
    "shear": (0.1, 0.0, 1.0, False, "max shear fraction, in (0, 1]"),
    "translate": (0.1, 0.0, 1.0, False, "max shift as a fraction of the side, in (0, 1]"),
    "zoom": (0.1, 0.0, 1.0, False, "max zoom fraction, in (0, 1]"),
    "warp": (0.05, 0.0, 0.5, False, "control-point displacement fraction, in (0, 0.5]"),
    "color_shift": (20.0, 0.0, 255.0, False, "max per-channel offset in 0..255 units, in (0, 255]"),
    "pca": (0.1, 0.0, 10.0, False, "sigma of the PCA alphas, in (0, 10]"),
}
_ALIASES = {"mirror": "flip", "rotation": "rotate", "colour_shift": "color_shift", "pca_color": "pca"}


def _spec_error(token, why):
    accepted = ", ".join(f"{name}[={default}]" for name, (default, *_r) in AUGMENTATIONS.items())
    return ValueError(
        f"`augment` has an invalid entry {token!r}: {why}. Accepted names (default value in brackets): "
        f"{accepted}. Example: 'flip,crop=0.8,rotate=15,pca=0.1'. Received: augment={token!r}"
    )


def _parse_value(name, raw, token):
    default, low, high, low_inclusive, what = AUGMENTATIONS[name]
    if raw is None:
        return default
    if name == "flip":
        value = str(raw).strip().lower()
        if value not in _FLIP_MODES:
            raise _spec_error(token, f"flip must be one of {list(_FLIP_MODES)}")
        return value
    if isinstance(raw, bool):
        raise _spec_error(token, f"{name} takes a number ({what})")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise _spec_error(token, f"{name} takes a number ({what})") from None
    in_range = math.isfinite(value) and (value > low if not low_inclusive else value >= low) and value <= high
    if not in_range:
        raise _spec_error(token, f"{name} must be {what}")
    return value


def parse_augment_spec(spec):
    """Parse an augmentation spec into ``[(name, value), ...]``.

    The data augmentation of the lectures (Ng, CNN course, week 2; Krizhevsky et al., 2012, section 4.1),
    written as one comma-separated string for the CLI and the API. A bare name takes its default
    (see the module docstring); ``name=value`` sets it. Names are case-insensitive and ``-``
    reads as ``_``; ``mirror``, ``rotation`` and ``colour_shift`` are accepted aliases.

    Args:
        spec: a string such as ``"flip,crop,rotate=15,shear=0.1,warp,color_shift=20,pca=0.1"``;
            None, ``""`` or ``"none"`` for no augmentation; or an already parsed sequence of
            names / ``(name, value)`` pairs (validated again).

    Returns:
        list of ``(name, value)``, in the order given, values converted (floats, or the flip mode).

    Raises:
        ValueError: naming the bad token and listing the accepted names, for an unknown name, a
            bad or out-of-range value, or a name given twice.

    Example:
        >>> parse_augment_spec("flip,rotate=10")
        [('flip', 'horizontal'), ('rotate', 10.0)]
    """
    if spec is None:
        return []
    if isinstance(spec, str):
        if spec.strip().lower() in ("", "none"):
            return []
        items = []
        for token in spec.split(","):
            token = token.strip()
            if not token:
                continue
            name, sep, raw = token.partition("=")
            items.append((token, name, raw.strip() if sep else None))
            if sep and not raw.strip():
                raise _spec_error(token, "missing value after '='")
    elif isinstance(spec, (list, tuple)):
        items = []
        for entry in spec:
            if isinstance(entry, str):
                name, sep, raw = entry.partition("=")
                items.append((entry, name, raw.strip() if sep else None))
            elif isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], str):
                items.append((f"{entry[0]}={entry[1]}", entry[0], entry[1]))
            else:
                raise _spec_error(str(entry), "expected a name or a (name, value) pair")
    else:
        raise ValueError(
            f"`augment` must be a spec string like 'flip,crop,rotate=15' or a list of (name, value). "
            f"Received: augment={spec!r}"
        )
    result, seen = [], set()
    for token, name, raw in items:
        key = name.strip().lower().replace("-", "_")
        key = _ALIASES.get(key, key)
        if key not in AUGMENTATIONS:
            raise _spec_error(token, f"unknown augmentation {name.strip()!r}")
        if key in seen:
            raise _spec_error(token, f"{key} is given more than once")
        seen.add(key)
        result.append((key, _parse_value(key, raw, token)))
    return result


def _check_pca_stats(pca_stats, channels):
    if pca_stats is None:
        raise ValueError(
            "`pca_stats` is required by the 'pca' augmentation: pass "
            "pca_stats=compute_pca_stats(training images). Received: pca_stats=None"
        )
    try:
        vals, vecs = pca_stats
        vals = np.asarray(vals, dtype="float64")
        vecs = np.asarray(vecs, dtype="float64")
    except (TypeError, ValueError):
        raise ValueError(
            f"`pca_stats` must be (eigvals, eigvecs) as returned by compute_pca_stats. Received: pca_stats={pca_stats!r}"
        ) from None
    if vals.shape != (channels,) or vecs.shape != (channels, channels):
        raise ValueError(
            f"`pca_stats` must hold {channels} eigenvalue(s) and a {channels}x{channels} eigenvector matrix for "
            f"images with {channels} channel(s). Received: eigvals shape {vals.shape}, eigvecs shape {vecs.shape}"
        )
    return vals, vecs


def build_augmenter(spec, *, image_shape, pca_stats=None, seed=0):
    """Build the augmentation model for a spec string.

    Data augmentation of the lectures (Ng, CNN course, week 2; Krizhevsky et al., 2012, section 4.1).
    Keras' own layers are used where they exist (``RandomFlip``, ``RandomRotation``,
    ``RandomShear``, ``RandomTranslation``, ``RandomZoom``), `keras_cnn.layers.augment` for the
    rest. The layers take raw 0..255 pixels, compute in float32 (even under a mixed-precision
    policy), are seeded (layer ``i`` gets ``seed + i``) and are the identity when
    ``training=False``. Put the result first in the *training* model::

        inputs = keras.Input(image_shape)
        train_model = keras.Model(inputs, model(augmenter(inputs)))

    Args:
        spec: augmentation spec (see `parse_augment_spec`); an empty spec gives an augmenter
            whose only layer is ``keras.layers.Identity``.
        image_shape: ``(H, W, C)`` of the images (raw pixels), or "H,W,C".
        pca_stats: ``(eigvals, eigvecs)`` from `compute_pca_stats`; required by "pca".
        seed: int seed (None for unseeded). Default 0.

    Returns:
        ``keras.Sequential`` named "augmenter", built for ``image_shape``; its layers are named
        ``augment_<name>``.

    Raises:
        ValueError: for a bad spec, image shape or seed, or missing/mismatched ``pca_stats``.

    Example:
        >>> aug = build_augmenter("flip,crop,rotate=15", image_shape=(32, 32, 3), seed=0)
        >>> aug(images, training=True)  # same shape, augmented
    """
    items = parse_augment_spec(spec)
    shape = parse_shape("image_shape", image_shape)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"`seed` must be None or an int. Received: seed={seed!r}")
    channels = shape[-1]
    values = dict(items)
    layers = []
    for index, name in enumerate(n for n in AUGMENTATIONS if n in values):
        value = values[name]
        layer_seed = None if seed is None else seed + index
        common = {"seed": layer_seed, "name": f"augment_{name}", "dtype": "float32"}
        if name == "flip":
            layer = keras.layers.RandomFlip(value, **common)
        elif name == "crop":
            layer = RandomPerImageCrop((value, 1.0), **common)
        elif name == "rotate":
            layer = keras.layers.RandomRotation(value / 360.0, fill_mode="reflect", **common)
        elif name == "shear":
            # (0, v), not v: Keras 3.15 stores a float v as (-v, v), which its from_config rejects;
            # RandomShear flips the sign per image anyway, so (0, v) gives the same [-v, v] shears.
            layer = keras.layers.RandomShear(
                x_factor=(0.0, value), y_factor=(0.0, value), fill_mode="reflect", **common
            )
        elif name == "translate":
            layer = keras.layers.RandomTranslation(value, value, fill_mode="reflect", **common)
        elif name == "zoom":
            layer = keras.layers.RandomZoom(value, fill_mode="reflect", **common)
        elif name == "warp":
            layer = RandomWarp(value, **common)
        elif name == "color_shift":
            layer = RandomColorShift(value, **common)
        else:  # pca
            vals, vecs = _check_pca_stats(pca_stats, channels)
            layer = PCAColorAugmentation(vals, vecs, sigma=value, **common)
        layers.append(layer)
    if not layers:  # an empty Sequential cannot be called; keep the augmenter a valid identity model
        layers.append(keras.layers.Identity(name="augment_none", dtype="float32"))
    return keras.Sequential([keras.Input(shape), *layers], name="augmenter")


def compute_pca_stats(images_or_dataset, *, pixel_scale=255.0, max_batches=None):
    """Eigenvalues and eigenvectors of the per-pixel colour covariance of a training set.

    The statistics of AlexNet's PCA colour augmentation (Krizhevsky et al., 2012, section 4.1:
    "PCA on the set of RGB pixel values throughout the ImageNet training set"). Computed once,
    streaming (sums in float64), from the training images only.

    Units: pixels are divided by ``pixel_scale`` first, so with the package's raw 0..255 data and
    the default 255 the statistics are those of pixels in [0, 1] - the units
    `keras_cnn.layers.PCAColorAugmentation` expects (with the same ``pixel_scale``), and those of
    the published ImageNet values (eigenvalues ~ [0.2175, 0.0188, 0.0045]).

    Args:
        images_or_dataset: a NumPy array ``[N, H, W, C]`` (or ``[H, W, C]``), or a ``tf.data``
            dataset of image batches or of ``(images, labels, ...)`` tuples.
        pixel_scale: the pixel value that counts as 1.0. Default 255.0.
        max_batches: for a dataset, read at most this many elements. Default None (all).

    Returns:
        ``(eigvals, eigvecs)``: float32 arrays ``[C]`` in descending order and ``[C, C]`` whose
        columns are the matching unit eigenvectors (C = 3 for RGB, 1 for grayscale).

    Raises:
        ValueError: for an empty input, an unsupported type or a bad ``pixel_scale``.

    Example:
        >>> vals, vecs = compute_pca_stats(bundle.arrays("train")[0])
        >>> aug = build_augmenter("pca=0.1", image_shape=bundle.image_shape, pca_stats=(vals, vecs))
    """
    if isinstance(pixel_scale, bool) or not isinstance(pixel_scale, (int, float)) or not pixel_scale > 0:
        raise ValueError(f"`pixel_scale` must be a positive number. Received: pixel_scale={pixel_scale!r}")
    bad_batches = isinstance(max_batches, bool) or not isinstance(max_batches, int) or max_batches <= 0
    if max_batches is not None and bad_batches:
        raise ValueError(f"`max_batches` must be None or a positive int. Received: max_batches={max_batches!r}")
    count, total, outer = 0, None, None

    def add(batch):
        nonlocal count, total, outer
        arr = np.asarray(batch, dtype="float64")
        if arr.ndim < 3:
            raise ValueError(
                f"`images_or_dataset` must hold images [N, H, W, C] or [H, W, C]. Received: an array of shape {arr.shape}"
            )
        pixels = arr.reshape(-1, arr.shape[-1]) / float(pixel_scale)
        if total is None:
            total = np.zeros(pixels.shape[1])
            outer = np.zeros((pixels.shape[1], pixels.shape[1]))
        elif pixels.shape[1] != total.shape[0]:
            raise ValueError(f"`images_or_dataset` mixes {total.shape[0]} and {pixels.shape[1]} channels.")
        count += pixels.shape[0]
        total += pixels.sum(axis=0)
        outer += pixels.T @ pixels

    if isinstance(images_or_dataset, np.ndarray) or _is_tensor(images_or_dataset):
        add(images_or_dataset)
    elif _is_dataset(images_or_dataset):
        for index, element in enumerate(images_or_dataset.as_numpy_iterator()):
            if max_batches is not None and index >= max_batches:
                break
            add(element[0] if isinstance(element, (tuple, list)) else element)
    else:
        raise ValueError(
            "`images_or_dataset` must be a NumPy array of images or a tf.data.Dataset. "
            f"Received: images_or_dataset of type {type(images_or_dataset).__name__}"
        )
    if not count:
        raise ValueError("`images_or_dataset` holds no pixels: compute the statistics on a non-empty training set.")
    mean = total / count
    cov = outer / count - np.outer(mean, mean)
    cov = (cov + cov.T) / 2.0
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1]
    vals = np.clip(vals[order], 0.0, None)
    vecs = vecs[:, order]
    # Deterministic sign: the largest component of every eigenvector is positive.
    signs = np.sign(vecs[np.argmax(np.abs(vecs), axis=0), np.arange(vecs.shape[1])])
    vecs = vecs * np.where(signs == 0, 1.0, signs)
    return vals.astype("float32"), vecs.astype("float32")


def _is_dataset(obj):
    import tensorflow as tf

    return isinstance(obj, tf.data.Dataset)


def _is_tensor(obj):
    import tensorflow as tf

    return isinstance(obj, tf.Tensor)


def _reseed(config, seed, counter):
    """Copy a serialized Keras object, replacing every ``seed`` entry by ``seed + i``."""
    if isinstance(config, dict):
        out = {}
        for key, value in config.items():
            if key == "seed" and (value is None or isinstance(value, int)) and not isinstance(value, bool):
                out[key] = seed + counter[0]
                counter[0] += 1
            else:
                out[key] = _reseed(value, seed, counter)
        return out
    if isinstance(config, list):
        return [_reseed(v, seed, counter) for v in config]
    return config


def cpu_augment(dataset, augmenter, seed=None, *, num_parallel_calls=None):
    """Apply an augmenter in a ``tf.data`` ``map`` on the CPU (the classic input-pipeline path).

    The data augmentation of the lectures (Ng, CNN course, week 2), for users who prefer augmenting in
    the input pipeline (e.g. when the accelerator is the bottleneck). The default path of this
    package runs the augmenter inside the training step instead (see `build_augmenter`).

    Args:
        dataset: a batched ``tf.data.Dataset`` of images or of ``(images, labels, ...)`` tuples
            (only the images are changed).
        augmenter: a Keras model/layer from `build_augmenter`, or a spec string (built here for
            the dataset's image shape; "pca" then needs a built augmenter).
        seed: int to re-seed: the map uses a copy of ``augmenter`` whose layers get
            ``seed, seed + 1, ...`` (``augmenter`` itself is not touched). None uses
            ``augmenter`` as it is (its own seed generators, which advance as it runs).
        num_parallel_calls: passed to ``map``. Default None: sequential, so that a seeded
            pipeline gives the same images on every run; ``tf.data.AUTOTUNE`` is faster but the
            order in which the parallel calls draw random numbers is not reproducible.

    Returns:
        the mapped dataset (augmented images, same structure).

    Example:
        >>> train = cpu_augment(bundle.train, build_augmenter("flip,crop", image_shape=(32, 32, 1)), seed=0)
    """
    if not _is_dataset(dataset):
        raise ValueError(f"`dataset` must be a tf.data.Dataset. Received: dataset of type {type(dataset).__name__}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"`seed` must be None or an int. Received: seed={seed!r}")
    spec = dataset.element_spec
    image_spec = spec[0] if isinstance(spec, tuple) else spec
    if isinstance(augmenter, (str, list, tuple)):
        augmenter = build_augmenter(augmenter, image_shape=tuple(image_spec.shape[-3:]), seed=seed)
    elif not isinstance(augmenter, keras.layers.Layer):
        raise ValueError(
            f"`augmenter` must be a Keras layer/model from build_augmenter or a spec string. "
            f"Received: augmenter of type {type(augmenter).__name__}"
        )
    elif seed is not None:
        config = _reseed(keras.saving.serialize_keras_object(augmenter), seed, [0])
        augmenter = keras.saving.deserialize_keras_object(config)

    def apply(*element):
        images = augmenter(element[0], training=True)
        if len(element) == 1:
            return images
        return (images, *element[1:])

    if isinstance(spec, tuple):
        return dataset.map(apply, num_parallel_calls=num_parallel_calls)
    return dataset.map(lambda images: apply(images), num_parallel_calls=num_parallel_calls)


def describe_placement(augmenter, *, image_shape=None, batch_size=2):
    """Run ``augmenter`` once in a fresh ``tf.function`` and report the device of every op.

    Shows that the augmentation (Ng, CNN course, week 2) runs on the accelerator: on a GPU machine the
    image ops are listed under ``.../device:GPU:0``. For TensorFlow's own per-op log instead,
    call ``tf.debugging.set_log_device_placement(True)`` before running the model.

    Args:
        augmenter: a Keras layer/model (e.g. from `build_augmenter`) or a spec string.
        image_shape: ``(H, W, C)``; taken from the augmenter's input when None.
        batch_size: images in the probe batch. Default 2.

    Returns:
        dict: device name -> sorted list of the op types TensorFlow placed there (e.g.
        ``{"/job:localhost/replica:0/task:0/device:GPU:0": ["ImageProjectiveTransformV3", ...]}``).

    Example:
        >>> describe_placement(build_augmenter("flip,rotate", image_shape=(32, 32, 3)))
    """
    import tensorflow as tf

    from keras_cnn._compat import tensorflow_ as tf_compat

    if isinstance(augmenter, (str, list, tuple)):
        if image_shape is None:
            raise ValueError("`image_shape` is required when `augmenter` is a spec string. Received: image_shape=None")
        augmenter = build_augmenter(augmenter, image_shape=image_shape, seed=0)
    if image_shape is None:
        try:
            image_shape = tuple(augmenter.input_shape[1:])
        except (AttributeError, ValueError):
            raise ValueError("`image_shape` is required for an augmenter without a defined input.") from None
    shape = parse_shape("image_shape", image_shape)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"`batch_size` must be a positive int. Received: batch_size={batch_size!r}")
    probe = tf.random.uniform((batch_size, *shape), 0.0, 255.0, seed=0)
    step = tf.function(lambda x: augmenter(x, training=True))
    placement = defaultdict(set)
    metadata = tf_compat.run_metadata_of(step, probe)
    for function_graph in metadata.function_graphs:
        for graph in function_graph.partition_graphs:
            for node in graph.node:
                if node.op not in ("_Arg", "_Retval", "NoOp"):
                    placement[node.device].add(node.op)
    return {device: sorted(ops) for device, ops in sorted(placement.items())}


AUGMENT_ON_CHOICES = ("auto", "device", "cpu")


def resolve_augment_on(augment_on="auto"):
    """Where the augmentation runs: "auto" -> "device" when a GPU is visible, else "cpu".

    On a GPU the augmenter belongs inside the compiled step (it runs next to the model and the
    host stays free); on a CPU-only machine the step and the augmentation share the same cores, and
    a ``tf.data`` ``map`` with AUTOTUNE overlaps them better: on a 2-core CPU a LeNet-5 step kept
    75 % of its rate with the ``map`` against 61 % on-device (``apps/benchmarks/pipeline.py``,
    ``apps/benchmarks/results/cpu.md``; one run, without an A/A control).

    Args:
        augment_on: "auto", "device" or "cpu"; "device" and "cpu" are returned unchanged.

    Returns:
        "device" or "cpu".

    Raises:
        ValueError: ``augment_on`` is none of the three.
    """
    check_choice("augment_on", augment_on, AUGMENT_ON_CHOICES)
    if augment_on != "auto":
        return augment_on
    import tensorflow as tf

    return "device" if tf.config.list_physical_devices("GPU") else "cpu"
