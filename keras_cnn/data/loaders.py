"""Datasets as ``tf.data`` pipelines of raw pixels: the embedded digits, tensorflow-datasets, folders.

LeNet-5 was trained on handwritten digits (LeCun, Bottou, Bengio & Haffner, "Gradient-Based
Learning Applied to Document Recognition", Proc. IEEE 1998); the embedded default source is
scikit-learn's 8x8 handwritten digits (UCI "optdigits"), which ships with scikit-learn and so
works offline. Any tensorflow-datasets image-classification set and any folder of images work
the same way.

Every pipeline yields ``(images, labels)`` batches: images float32 raw pixels in [0, 255] with
shape ``[B, H, W, C]``, labels int32 ``[B]``. Preprocessing (scaling, mean subtraction) is a layer
inside the model, so trained and exported models take raw pixels.

Splits. A source's own train/validation/test splits are used when present; a missing one is
carved from the training data: ``test_split`` and ``validation_split`` are fractions of the data
they are carved from (stratified by class for digits and folders). The carved *test* split is
fixed - it never depends on ``seed`` - so that changing the training seed never moves test
images into training; the validation split follows ``seed``.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, field

import numpy as np

from keras_cnn._validation import check_choice, check_fraction, check_positive_int

__all__ = ["DataBundle", "DataOptions", "load_data"]

#: Digit class names of the embedded default source.
DIGIT_CLASSES = [str(i) for i in range(10)]
#: Random state of every carved test split (fixed, independent of ``seed``).
TEST_SPLIT_SEED = 0
#: ``cache=True`` keeps a split in memory only below this many bytes of decoded float32 pixels.
MEMORY_CACHE_LIMIT = 2 * 1024**3
#: ``DataBundle.arrays`` refuses splits above this size.
ARRAYS_LIMIT = 4 * 1024**3
#: Smallest shuffle buffer (images) for decoded pixels (the buffer is capped at 512 MiB otherwise).
DECODED_SHUFFLE_BUFFER = 1024


@dataclass
class DataBundle:
    """The splits of a dataset as batched ``tf.data`` pipelines, with their metadata.

    Attributes:
        train: batched dataset of ``(images float32 [B, H, W, C] in 0..255, labels int32 [B])``,
            shuffled every epoch when ``shuffle=True``.
        val: same for the validation split, or None (not shuffled).
        test: same for the test split, or None (not shuffled).
        class_names: label index -> class name (the trainer stores them with the model).
        image_shape: ``(H, W, C)`` of every image.
        num_train, num_val, num_test: examples per split (0 for a missing split).
        skipped: number of corrupt/unreadable files skipped (folders only).
        source: the source string as given (``"digits"``, ``"tfds:NAME"`` or the folder path).
        skipped_files: the paths of the skipped files.
    """

    train: object
    val: object
    test: object
    class_names: list
    image_shape: tuple
    num_train: int
    num_val: int
    num_test: int
    skipped: int = 0
    source: str = ""
    skipped_files: list = field(default_factory=list)
    # split -> (x, y) arrays, or a function returning the decoded, unshuffled, unbatched dataset.
    _unbatched: dict = field(default_factory=dict, repr=False)

    @property
    def num_classes(self):
        """Number of classes (``len(class_names)``)."""
        return len(self.class_names)

    def arrays(self, split="train"):
        """Return the whole split as NumPy ``(x float32 [N, H, W, C], y int32 [N])``, in a fixed order.

        For small sets (PCA statistics, feature caching, tests); the order does not follow the
        training shuffle.

        Raises:
            ValueError: an unknown or missing split, or a split over 4 GiB of pixels.
        """
        check_choice("split", split, ("train", "val", "test"))
        source = self._unbatched.get(split)
        count = {"train": self.num_train, "val": self.num_val, "test": self.num_test}[split]
        if source is None:
            raise ValueError(
                f"`split` {split!r} is not part of this bundle (source={self.source!r}). Received: split={split!r}"
            )
        size = count * int(np.prod(self.image_shape)) * 4
        if size > ARRAYS_LIMIT:
            raise ValueError(
                f"`split` {split!r} holds {count} images ({size / 1024**3:.1f} GiB as float32); arrays() is for small "
                f"sets - iterate bundle.{split} instead. Received: split={split!r}"
            )
        if isinstance(source, tuple):
            return source[0].copy(), source[1].copy()
        xs, ys = [], []
        for x, y in source().batch(256).as_numpy_iterator():
            xs.append(x)
            ys.append(y)
        if not xs:
            return np.zeros((0, *self.image_shape), "float32"), np.zeros((0,), "int32")
        return np.concatenate(xs).astype("float32"), np.concatenate(ys).astype("int32")


# --------------------------------------------------------------------------------------- helpers
def _check_image_size(image_size):
    if image_size is None:
        return None
    if isinstance(image_size, str):
        parts = [p.strip() for p in image_size.lower().replace("x", ",").split(",") if p.strip()]
        try:
            image_size = tuple(int(p) for p in parts)
        except ValueError:
            image_size = ()
        if len(image_size) == 1:
            image_size = image_size * 2
    elif isinstance(image_size, numbers.Integral) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    ok = isinstance(image_size, (tuple, list)) and len(image_size) == 2
    ok = ok and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in image_size)
    if not ok:
        raise ValueError(
            f"`image_size` must be None, a positive int or (height, width) of positive ints. Received: image_size={image_size!r}"
        )
    return (int(image_size[0]), int(image_size[1]))


def _split_indices(labels, fraction, random_state, *, arg=None, value=None):
    """Split ``range(len(labels))`` into (rest, carved) with ``fraction`` carved, stratified if possible.

    With ``arg`` (the argument that asked for the split, ``value`` its value), a positive
    fraction that carves no example is an error rather than a silently missing split.
    """
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels)
    n = len(labels)
    indices = np.arange(n)
    n_take = int(round(fraction * n))
    if fraction > 0 and n_take == 0 and arg is not None:
        what = arg.replace("_split", "")
        raise ValueError(
            f"`{arg}`={value!r} of {n} examples leaves the {what} split empty; use more examples (`max_examples`), "
            f"a larger `{arg}`, or {arg}=0 for no {what} split. Received: {arg}={value!r}"
        )
    if fraction <= 0 or n_take == 0:
        return indices, indices[:0]
    if n_take >= n:
        raise ValueError(
            f"the split fractions leave no training data ({n} examples, {n_take} carved). "
            f"Received: fraction={fraction!r}"
        )
    classes, counts = np.unique(labels, return_counts=True)
    stratify = labels if counts.min() >= 2 and n_take >= len(classes) and n - n_take >= len(classes) else None
    rest, taken = train_test_split(indices, test_size=n_take, random_state=random_state, stratify=stratify)
    return np.sort(rest), np.sort(taken)


def _subsample(labels, max_examples):
    """Indices of a fixed (seed-independent) stratified subsample of at most ``max_examples``."""
    n = len(labels)
    if max_examples is None or max_examples >= n:
        return np.arange(n)
    rest, taken = _split_indices(labels, max_examples / n, TEST_SPLIT_SEED)
    return taken


def _cache_mode(cache, count, image_shape):
    """Return None (no cache), "" (memory) or a file prefix."""
    if cache is False or cache is None:
        return None
    if isinstance(cache, (str, os.PathLike)):
        return os.fspath(cache)
    size = count * int(np.prod(image_shape)) * 4
    return "" if size <= MEMORY_CACHE_LIMIT else None


def _shuffle_buffer(count, image_shape):
    """Whole split when its decoded pixels fit in 512 MiB, else as many images as fit (>= 1024)."""
    per_image = int(np.prod(image_shape)) * 4
    return int(min(count, max(DECODED_SHUFFLE_BUFFER, (512 * 1024**2) // per_image)))


def _finish(
    ds, *, decode, count, image_shape, training, shuffle, batch_size, seed, cache, cache_suffix, decoded_input=False
):
    """Decode, cache, shuffle, batch and prefetch one split (``ds`` is unbatched).

    ``decode`` maps an element of ``ds`` to ``(float32 image, int32 label)`` (None: already done);
    ``decoded_input`` says that the elements of ``ds`` are already pixels (tfds), so shuffling
    before ``decode`` is not cheaper than after.
    """
    import tensorflow as tf

    autotune = tf.data.AUTOTUNE
    mode = _cache_mode(cache, count, image_shape)
    do_shuffle = training and shuffle and count > 1
    if mode is None and decode is not None and not decoded_input:
        # File paths are cheap: shuffle all of them each epoch, then decode.
        if do_shuffle:
            ds = ds.shuffle(count, seed=seed, reshuffle_each_iteration=True)
        ds = ds.map(decode, num_parallel_calls=autotune)
    else:
        if decode is not None:
            ds = ds.map(decode, num_parallel_calls=autotune)
        if mode is not None:
            ds = ds.cache(mode if mode == "" else f"{mode}_{cache_suffix}")
        if do_shuffle:
            ds = ds.shuffle(_shuffle_buffer(count, image_shape), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(autotune)


def _to_channels(image, channels):
    """float32 [H, W, c] with c in 1..4 -> [H, W, channels] (gray <-> RGB luma, alpha dropped).

    Written without ``tf.cond`` (a gather and a weighted sum), which keeps tracing cheap.
    """
    import tensorflow as tf

    colour = tf.shape(image)[-1] >= 3
    rgb = tf.gather(image, tf.where(colour, tf.constant([0, 1, 2]), tf.constant([0, 0, 0])), axis=-1)
    if channels == 3:
        return tf.ensure_shape(rgb, [None, None, 3])
    # ITU-R 601 luma, as tf.image.rgb_to_grayscale; a gray image keeps its only channel.
    weights = tf.where(colour, tf.constant([0.2989, 0.5870, 0.1140]), tf.constant([1.0, 0.0, 0.0]))
    return tf.ensure_shape(tf.reduce_sum(rgb * weights, axis=-1, keepdims=True), [None, None, 1])


def _resize(image, image_size):
    import tensorflow as tf

    image = tf.image.resize(image, image_size, method="bilinear", antialias=True)
    return tf.clip_by_value(image, 0.0, 255.0)


def _check_fractions(validation_split, test_split):
    validation_split = check_fraction("validation_split", validation_split)
    test_split = check_fraction("test_split", test_split)
    if validation_split + test_split >= 1.0:
        raise ValueError(
            "`validation_split` + `test_split` must be < 1 so that training data remains. "
            f"Received: validation_split={validation_split!r}, test_split={test_split!r}"
        )
    return validation_split, test_split


# --------------------------------------------------------------------------------------- public
@dataclass(frozen=True)
class DataOptions:
    """How `load_data` reads a source; every field is also a keyword of `load_data`.

    Attributes:
        image_size: output ``(height, width)`` (an int for a square, or "HxW"); None keeps the
            source's size (digits 8x8; a folder or tfds set whose images differ in size needs it).
            LeNet-5 wants 32.
        channels: 1 or 3 (grayscale is repeated to RGB; RGB is converted to luma; alpha dropped);
            None keeps the source's (digits 1; folders 3 if any image has colour).
        batch_size: examples per batch. Default 32.
        validation_split: fraction carved for validation when the source has none. Default 0.1;
            0 for no validation split.
        test_split: fraction carved for the (fixed) test split when the source has none.
            Default 0.2; 0 for none.
        seed: seed of the shuffling and of the carved validation split. Default 0.
        shuffle: shuffle the training split every epoch. Default True.
        cache: True (in memory where it fits), False, or a file-path prefix for an on-disk cache.
        data_dir: tensorflow-datasets data directory. Default None (tfds' default).
        on_corrupt: "skip" (count and drop unreadable images) or "error". Default "skip".
        max_examples: read at most this many examples from each split of the source (a fixed
            stratified subsample for digits and folders, the first ones for tfds), before
            validation/test are carved; for quick runs. Default None (all).
        download: for "tfds:NAME", download and prepare a dataset that ``data_dir`` lacks
            (default True); False reads only what is prepared (an error otherwise).
    """

    image_size: object = None
    channels: int | None = None
    batch_size: int = 32
    validation_split: float = 0.1
    test_split: float = 0.2
    seed: int = 0
    shuffle: bool = True
    cache: object = True
    data_dir: object = None
    on_corrupt: str = "skip"
    max_examples: int | None = None
    download: bool = True


def _data_options(options, fields):
    """``options`` (a `DataOptions` or None) with the keyword ``fields`` applied."""
    import dataclasses

    known = {f.name for f in dataclasses.fields(DataOptions)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise TypeError(f"load_data() got an unexpected keyword argument {unknown[0]!r}; "
                        f"its options are: {', '.join(sorted(known))}")
    if options is not None and not isinstance(options, DataOptions):
        raise ValueError(f"`options` must be a DataOptions or None. Received: options={options!r}")
    return dataclasses.replace(options or DataOptions(), **fields)


def load_data(source="digits", options=None, **fields):
    """Load a dataset as batched ``tf.data`` pipelines of raw pixels.

    The data side of the lectures' classic networks; LeNet-5's digits (LeCun et al., 1998) are the
    embedded default: scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes), pixels
    0..16 rescaled to 0..255, with a fixed stratified test split (``test_split`` = 20 %).

    Sources:
        * ``"digits"`` - the embedded digits (works offline; ``data_dir`` is ignored).
        * ``"tfds:NAME"`` - any tensorflow-datasets image-classification set, read with
          ``tfds.builder(NAME, data_dir=data_dir)`` (the registered builder, or a prepared dataset
          directory ``data_dir/NAME/VERSION/`` of any builder) and ``tfds.load(...,
          as_supervised=True)``; class names from the label feature; its
          ``train``/``validation``/``test`` splits when present, a missing validation/test split
          carved from ``train`` (contiguous example ranges, so fixed). A dataset not yet prepared
          in ``data_dir`` is downloaded and prepared first (``download=True``); without network
          that fails at once with an error saying where to put the prepared files.
        * a directory ``root/<class>/*.jpg|png|bmp|gif|webp`` (classes = sorted folder names) or
          ``root/<split>/<class>/*`` with splits ``train``, ``val``/``validation``, ``test``.
          Every file is decoded once up front: unreadable ones are skipped and counted
          (``bundle.skipped``), or raise with ``on_corrupt="error"``.

    The pipeline decodes, converts channels, resizes (bilinear, antialiased), caches (in memory
    when the split fits in 2 GiB of float32, or in files under ``cache`` when it is a path),
    shuffles the training split each epoch (seeded), batches and prefetches (AUTOTUNE).

    Args:
        source: see above. Default "digits".
        options: a `DataOptions` (None: the defaults).
        **fields: any `DataOptions` field by keyword (``image_size=32, batch_size=64, ...``),
            applied over ``options``; each is documented there.

    Returns:
        `DataBundle`.

    Raises:
        ValueError: unknown source string, bad argument, bad split fractions, empty folder or
            folder without class folders/images, corrupt file with ``on_corrupt="error"``,
            unknown tfds dataset or one that is not image classification, a tfds dataset that is
            not prepared and cannot be downloaded (no network, or ``download=False``).
        FileNotFoundError: a directory source that does not exist.

    Example:
        >>> bundle = load_data("digits", image_size=32, batch_size=64)
        >>> bundle.image_shape, bundle.class_names[:3]
        ((32, 32, 1), ['0', '1', '2'])
    """
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str) or not source:
        raise ValueError(
            f"`source` must be 'digits', 'tfds:NAME' or a directory path. Received: source={source!r}"
        )
    opts = _data_options(options, fields)
    image_size = _check_image_size(opts.image_size)
    channels = check_choice("channels", opts.channels, (None, 1, 3))
    batch_size, seed, shuffle, cache, max_examples = (opts.batch_size, opts.seed, opts.shuffle, opts.cache,
                                                       opts.max_examples)
    check_positive_int("batch_size", batch_size)
    validation_split, test_split = _check_fractions(opts.validation_split, opts.test_split)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"`seed` must be an int. Received: seed={seed!r}")
    if not isinstance(shuffle, bool):
        raise ValueError(f"`shuffle` must be a bool. Received: shuffle={shuffle!r}")
    if not (isinstance(cache, bool) or isinstance(cache, (str, os.PathLike))):
        raise ValueError(f"`cache` must be a bool or a file-path prefix. Received: cache={cache!r}")
    check_choice("on_corrupt", opts.on_corrupt, ("skip", "error"))
    if max_examples is not None:
        check_positive_int("max_examples", max_examples)
    if not isinstance(opts.download, bool):
        raise ValueError(f"`download` must be a bool. Received: download={opts.download!r}")
    options = dict(
        image_size=image_size,
        channels=channels,
        batch_size=batch_size,
        validation_split=validation_split,
        test_split=test_split,
        seed=seed,
        shuffle=shuffle,
        cache=cache,
        max_examples=max_examples,
    )
    if source == "digits":
        return _load_digits(**options)
    if source.startswith("tfds:"):
        name = source[len("tfds:"):].strip()
        if not name:
            raise ValueError(f"`source` 'tfds:NAME' needs a dataset name, e.g. 'tfds:mnist'. Received: source={source!r}")
        return _load_tfds(source, name, data_dir=opts.data_dir, download=opts.download, **options)
    if os.path.isdir(source):
        return _load_directory(source, on_corrupt=opts.on_corrupt, **options)
    if os.path.exists(source):
        raise FileNotFoundError(f"`source` must be a directory of images, not a file. Received: source={source!r}")
    looks_like_path = os.sep in source or "/" in source or source.startswith((".", "~"))
    if looks_like_path:
        raise FileNotFoundError(f"`source` directory does not exist. Received: source={source!r}")
    raise ValueError(
        "`source` must be 'digits', 'tfds:NAME' (a tensorflow-datasets name, e.g. 'tfds:mnist') or an existing "
        f"directory of images. Received: source={source!r}"
    )


def _bundle(splits, *, image_shape, batching, decode=None, decoded_input=False, **about):
    """The `DataBundle` of ``splits`` ``{split: (unbatched dataset, count, re-readable unbatched)}``.

    Each split is decoded, cached, shuffled (train only), batched and prefetched by `_finish`;
    ``batching`` holds its ``batch_size``, ``shuffle``, ``seed`` and ``cache``; ``about`` the
    bundle's other fields (``source``, ``class_names``, ``skipped_files``).
    """
    datasets, counts, unbatched = {}, {}, {}
    for split in ("train", "val", "test"):
        if split not in splits:
            datasets[split], counts[split] = None, 0
            continue
        ds, counts[split], unbatched[split] = splits[split]
        datasets[split] = _finish(ds, decode=decode, decoded_input=decoded_input, count=counts[split],
                                  image_shape=image_shape, training=split == "train", cache_suffix=split, **batching)
    skipped_files = list(about.pop("skipped_files", ()))
    return DataBundle(train=datasets["train"], val=datasets["val"], test=datasets["test"],
                      class_names=list(about.pop("class_names")), image_shape=image_shape,
                      num_train=counts["train"], num_val=counts["val"], num_test=counts["test"],
                      skipped=len(skipped_files), skipped_files=skipped_files, _unbatched=unbatched, **about)


def _load_digits(*, image_size, channels, batch_size, validation_split, test_split, seed, shuffle, cache, max_examples):
    import tensorflow as tf
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = digits.images.astype("float32") * (255.0 / 16.0)  # [N, 8, 8], 0..16 -> 0..255
    y = digits.target.astype("int32")
    keep = _subsample(y, max_examples)
    x, y = x[keep], y[keep]
    x = x[..., None]
    if image_size is not None and image_size != x.shape[1:3]:
        x = _resize(tf.convert_to_tensor(x), image_size).numpy()
    if channels == 3:
        x = np.repeat(x, 3, axis=-1)
    x = np.ascontiguousarray(x, dtype="float32")
    rest, test_idx = _split_indices(y, test_split, TEST_SPLIT_SEED, arg="test_split", value=test_split)
    parts = {}
    if len(test_idx):
        parts["test"] = (x[test_idx], y[test_idx])
    pool = 1.0 - test_split
    train_idx, val_idx = _split_indices(
        y[rest], validation_split / pool, seed, arg="validation_split", value=validation_split
    )
    train_idx, val_idx = rest[train_idx], rest[val_idx]
    parts["train"] = (x[train_idx], y[train_idx])
    if len(val_idx):
        parts["val"] = (x[val_idx], y[val_idx])
    image_shape = tuple(int(d) for d in x.shape[1:])
    splits = {name: (tf.data.Dataset.from_tensor_slices(part), len(part[1]), part) for name, part in parts.items()}
    # The arrays are already in memory: caching them again would only double the memory.
    return _bundle(splits, image_shape=image_shape, source="digits", class_names=DIGIT_CLASSES,
                   batching=dict(batch_size=batch_size, seed=seed, shuffle=shuffle, cache=False))


# ------------------------------------------------------------------------------------- folders
def _load_directory(
    root, *, on_corrupt, image_size, channels, batch_size, validation_split, test_split, seed, shuffle, cache, max_examples
):
    import tensorflow as tf

    from keras_cnn.data.directory import FolderSplit, scan_directory, validate_files

    class_names, raw = scan_directory(root)
    # Cap each source split first (fixed subsample) so that validation decodes only what is used.
    for name, split in raw.items():
        keep = _subsample(np.asarray(split.labels), max_examples)
        raw[name] = FolderSplit([split.paths[i] for i in keep], [split.labels[i] for i in keep])
    skipped_files = []
    for name in list(raw):
        raw[name], skipped = validate_files(raw[name], on_corrupt=on_corrupt)
        skipped_files.extend(skipped)
        if not raw[name].paths:
            raise ValueError(
                f"`source` has no readable images in its {name!r} split ({len(skipped)} unreadable files skipped). "
                f"Received: source={root!r}"
            )
    shapes = [s for split in raw.values() for s in split.shapes]
    if image_size is None:
        sizes = sorted({s[:2] for s in shapes})
        if len(sizes) > 1:
            raise ValueError(
                f"`image_size` is required: the images in {root!r} differ in size (e.g. {sizes[0]} and {sizes[-1]}). "
                "Received: image_size=None"
            )
        image_size = sizes[0]
    if channels is None:
        channels = 3 if any(s[2] >= 3 for s in shapes) else 1
    image_shape = (*image_size, channels)

    # Carve the missing splits from train: test fixed, validation from `seed`.
    train = raw["train"]
    labels = np.asarray(train.labels)
    index = np.arange(len(labels))
    pool = 1.0
    if "test" not in raw and test_split > 0:
        index, test_idx = _split_indices(labels, test_split, TEST_SPLIT_SEED, arg="test_split", value=test_split)
        raw["test"] = _take(train, test_idx)
        pool -= test_split
    if "val" not in raw and validation_split > 0:
        rel_train, rel_val = _split_indices(
            labels[index], validation_split / pool, seed, arg="validation_split", value=validation_split
        )
        raw["val"] = _take(train, index[rel_val])
        index = index[rel_train]
    raw["train"] = _take(train, index)

    def decode(path, label):
        data = tf.io.read_file(path)
        image = tf.io.decode_image(data, channels=0, expand_animations=False, dtype=tf.uint8)
        image = _to_channels(tf.cast(image, tf.float32), channels)
        return _resize(image, image_size), label

    splits = {}
    for split, part in raw.items():
        if part.paths:
            base = tf.data.Dataset.from_tensor_slices((tf.constant(part.paths), tf.constant(part.labels, tf.int32)))
            splits[split] = (base, len(part.paths),
                             lambda base=base: base.map(decode, num_parallel_calls=tf.data.AUTOTUNE))
    return _bundle(splits, image_shape=image_shape, decode=decode, source=root, class_names=class_names,
                   skipped_files=skipped_files,
                   batching=dict(batch_size=batch_size, seed=seed, shuffle=shuffle, cache=cache))


def _take(split, indices):
    from keras_cnn.data.directory import FolderSplit

    return FolderSplit(
        [split.paths[i] for i in indices], [split.labels[i] for i in indices], [split.shapes[i] for i in indices]
    )


# --------------------------------------------------------------------------------------- tfds
def _tfds_counts(info, split):
    try:
        return int(info.splits[split].num_examples)
    except (KeyError, TypeError, AttributeError):
        return None


def _count(ds):
    import tensorflow as tf

    n = int(ds.cardinality())
    if n >= 0:
        return n
    return int(ds.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1))


# tfds' own mirror of prepared datasets; tfds asks it first, so it is what `download_and_prepare` needs.
TFDS_PROBE_HOST = ("storage.googleapis.com", 443)


def _network_error(host=TFDS_PROBE_HOST, timeout=5.0):
    """None if a TCP connection to ``host`` opens within ``timeout`` s, else why not (a string).

    tfds retries every failed download 10 times with back-off (minutes, per file) before it gives
    up; one connection attempt up front turns "no network" into an immediate, clear error.
    """
    import socket

    try:
        socket.create_connection(host, timeout=timeout).close()
    except OSError as error:
        return f"{type(error).__name__}: {error}"
    return None


def _cannot_download(source, name, builder, data_dir, why):
    where = data_dir if data_dir is not None else "tfds' default data_dir (~/tensorflow_datasets)"
    manual = os.path.join(str(data_dir or "~/tensorflow_datasets"), "downloads", "manual")
    return ValueError(
        f"`source` {source!r}: cannot download tensorflow-datasets dataset {name!r} into data_dir={where} ({why}). "
        f"Prepare it where there is network - `tfds build {name} --data_dir DIR` or "
        f"`tfds.load({name!r}, data_dir=DIR)` - and copy DIR/{name.split('/')[0]}/ into {where}, so that "
        f"{builder.data_dir} holds dataset_info.json and the record files; datasets that tfds cannot "
        f"download itself take their source files in {manual}. Received: source={source!r}, data_dir={data_dir!r}"
    )


def _not_prepared(source, name, data_dir, builder):
    return ValueError(
        f"`source` {source!r}: tensorflow-datasets dataset {name!r} is not prepared in data_dir={data_dir!r} "
        f"({builder.data_dir}) and download=False. Received: source={source!r}"
    )


def _prepared_builder(source, name, data_dir, download):
    """The tfds builder of ``name`` with its data prepared in ``data_dir`` (downloaded if need be)."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as error:
        raise ValueError(
            f"`source` names no known tensorflow-datasets dataset ({name!r}; data_dir={data_dir!r}). "
            f"Received: source={source!r}"
        ) from error
    # `is_prepared` logs an absl warning about a version folder that is not there (as in any fresh
    # data_dir): ask it only about a folder that exists.
    if not download or (builder.data_path.exists() and builder.is_prepared()):
        return builder  # not prepared and download=False: tfds.load(download=False) says so
    why = _network_error()
    if why is not None:
        raise _cannot_download(source, name, builder, data_dir, f"no network: {why}")
    try:
        builder.download_and_prepare()
    except (OSError, tfds.download.DownloadError) as error:
        raise _cannot_download(source, name, builder, data_dir, f"{type(error).__name__}: {error}") from error
    return builder


def _tfds_features(source, info, image_size, channels):
    """The class names and ``(H, W, C)`` of a tfds image-classification dataset (refused otherwise)."""
    supervised = info.supervised_keys or ("image", "label")
    image_key, label_key = supervised[0], supervised[1]
    label_feature = info.features[label_key] if label_key in info.features else None
    image_feature = info.features[image_key] if image_key in info.features else None
    names = getattr(label_feature, "names", None)
    native = tuple(getattr(image_feature, "shape", ()) or ())
    if not names or len(native) != 3:
        raise ValueError(
            f"`source` {source!r} is not an image-classification dataset (needs an image feature [H, W, C] and a "
            f"ClassLabel). Received: source={source!r}"
        )
    if image_size is None:
        if native[0] is None or native[1] is None:
            raise ValueError(
                f"`image_size` is required: {source!r} has images of varying size. Received: image_size=None"
            )
        image_size = (int(native[0]), int(native[1]))
    if channels is None:
        channels = int(native[2]) if native[2] in (1, 3) else 3
    return list(names), (*image_size, channels)


def _tfds_plan(source, info, validation_split, test_split, max_examples):
    """``{split: (tfds read instruction, examples)}``: the source's splits, the missing ones carved."""
    # Plan the splits as tfds read instructions (absolute example ranges are deterministic).
    available = set(info.splits.keys()) or {"train", "test"}  # no split metadata (e.g. mock data)
    n_train = _tfds_counts(info, "train")

    def capped(split):
        n = _tfds_counts(info, split)
        if max_examples is not None and (n is None or n > max_examples):
            return f"{split}[:{max_examples}]", (max_examples if n is None else min(n, max_examples))
        return split, n

    plan = {}
    train_total = n_train if max_examples is None or n_train is None else min(n_train, max_examples)
    start, end = 0, train_total
    val_name = "validation" if "validation" in available else ("val" if "val" in available else None)
    if "test" in available:
        plan["test"] = capped("test")
    elif test_split > 0 and train_total:
        n_test = int(round(test_split * train_total))
        if n_test:
            plan["test"] = (f"train[{end - n_test}:{end}]", n_test)
            end -= n_test
    if val_name is not None:
        plan["val"] = capped(val_name)
    elif validation_split > 0 and train_total:
        n_val = int(round(validation_split * train_total))
        if n_val:
            plan["val"] = (f"train[{end - n_val}:{end}]", n_val)
            end -= n_val
    if train_total is None:
        plan["train"] = capped("train")
    else:
        if end <= start:
            raise ValueError(
                f"the split fractions leave no training data in {source!r}. "
                f"Received: validation_split={validation_split!r}, test_split={test_split!r}"
            )
        plan["train"] = ("train" if (start, end) == (0, n_train) else f"train[{start}:{end}]", end - start)
    return plan


def _load_tfds(source, name, *, data_dir, download, **options):
    import tensorflow as tf
    import tensorflow_datasets as tfds

    seed, shuffle, batch_size, cache = (options[k] for k in ("seed", "shuffle", "batch_size", "cache"))

    builder = _prepared_builder(source, name, data_dir, download)
    common = dict(data_dir=data_dir, as_supervised=True, with_info=True, download=False)
    try:
        _, info = tfds.load(name, split="train", **common)
    except AssertionError as error:  # tfds: "Dataset ... not found in data_dir" with download=False
        raise _not_prepared(source, name, data_dir, builder) from error
    except (KeyError, ValueError) as error:
        raise ValueError(
            f"`source` {source!r}: tensorflow-datasets could not load a 'train' split with as_supervised=True "
            f"({type(error).__name__}: {error}). Received: source={source!r}"
        ) from error

    names, image_shape = _tfds_features(source, info, options["image_size"], options["channels"])
    image_size, channels = image_shape[:2], image_shape[2]
    plan = _tfds_plan(source, info, options["validation_split"], options["test_split"], options["max_examples"])

    def convert(image, label):
        image = _to_channels(tf.cast(image, tf.float32), channels)
        return _resize(image, image_size), tf.cast(label, tf.int32)

    splits = {}
    for split, (instruction, n) in plan.items():
        training = split == "train"
        read_config = tfds.ReadConfig(shuffle_seed=seed) if training and shuffle else None
        ds = tfds.load(name, split=instruction, shuffle_files=training and shuffle, read_config=read_config,
                       **{**common, "with_info": False})
        splits[split] = (ds, n if n is not None else _count(ds), lambda instruction=instruction: tfds.load(
            name, split=instruction, shuffle_files=False, **{**common, "with_info": False}
        ).map(convert, num_parallel_calls=tf.data.AUTOTUNE))
    return _bundle(splits, image_shape=image_shape, decode=convert, decoded_input=True, source=source,
                   class_names=names, batching=dict(batch_size=batch_size, seed=seed, shuffle=shuffle, cache=cache))
