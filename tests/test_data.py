"""keras_cnn.data.load_data: the embedded digits, image folders and tensorflow-datasets."""

import keras
import numpy as np
import pytest
from PIL import Image

from keras_cnn.data import DataBundle, load_data


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    """Overrides conftest's fixture: same reset, without clear_session's gc.collect (~1 s a test)."""
    keras.utils.set_random_seed(0)
    yield
    keras.backend.clear_session(free_memory=False)


def _collect(ds):
    xs, ys = zip(*ds.as_numpy_iterator())
    return np.concatenate(xs), np.concatenate(ys)


# ---------------------------------------------------------------------------------------- digits
def test_digits_default_pipeline_shapes_range_and_fixed_stratified_test_split():
    bundle = load_data("digits", image_size=32, batch_size=64, seed=0)
    assert isinstance(bundle, DataBundle)
    assert bundle.source == "digits" and bundle.class_names == [str(i) for i in range(10)]
    assert bundle.image_shape == (32, 32, 1) and bundle.num_classes == 10 and bundle.skipped == 0
    assert bundle.num_train + bundle.num_val + bundle.num_test == 1797
    assert bundle.num_test == 359 and bundle.num_val == 180  # 20 % and 10 % of the whole set
    x, y = next(iter(bundle.train))
    assert x.shape == (64, 32, 32, 1) and x.dtype.name == "float32" and y.dtype.name == "int32"
    x_test, y_test = bundle.arrays("test")
    assert x_test.shape == (359, 32, 32, 1) and x_test.min() == 0.0 and x_test.max() == 255.0
    # stratified: every class holds ~20 % of its examples in the test split
    all_counts = np.bincount(np.concatenate([bundle.arrays(s)[1] for s in ("train", "val", "test")]), minlength=10)
    np.testing.assert_allclose(np.bincount(y_test, minlength=10), all_counts * 0.2, atol=1.0)
    # the test split is fixed; the validation split and the shuffle follow the seed
    other = load_data("digits", image_size=32, batch_size=64, seed=1)
    np.testing.assert_array_equal(other.arrays("test")[0], x_test)
    assert not np.array_equal(other.arrays("val")[1], bundle.arrays("val")[1])
    again = load_data("digits", image_size=32, batch_size=64, seed=0)
    np.testing.assert_array_equal(next(iter(again.train))[1], y)
    epoch1, epoch2 = _collect(bundle.train)[1], _collect(bundle.train)[1]
    assert sorted(epoch1) == sorted(epoch2) and not np.array_equal(epoch1, epoch2)  # reshuffled per epoch
    assert bundle.val is not None and _collect(bundle.test)[0].shape[0] == 359


def test_digits_native_size_channels_and_max_examples():
    from sklearn.datasets import load_digits

    bundle = load_data("digits", channels=3, validation_split=0.0, test_split=0.25, max_examples=200, shuffle=False)
    assert bundle.image_shape == (8, 8, 3) and bundle.val is None and bundle.num_val == 0
    assert (bundle.num_train, bundle.num_test) == (150, 50)
    x, y = bundle.arrays("train")
    np.testing.assert_array_equal(x[..., 0], x[..., 2])  # gray repeated to RGB
    # pixels are the digits' 0..16 values times 255/16
    digits = load_digits()
    ref = {tuple((img * 255.0 / 16.0).ravel().astype("float32")) for img in digits.images}
    assert all(tuple(img[..., 0].ravel()) in ref for img in x[:10])
    x_first, _ = _collect(bundle.train)
    np.testing.assert_array_equal(x_first, x)  # shuffle=False keeps the fixed order


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(source="mnist"), "source='mnist'"),
        (dict(source=""), "source"),
        (dict(test_split=1.2), "test_split=1.2"),
        (dict(validation_split=-0.1), "validation_split=-0.1"),
        (dict(validation_split=0.5, test_split=0.5), "validation_split"),
        (dict(channels=2), "channels=2"),
        (dict(image_size=(0, 4)), "image_size"),
        (dict(batch_size=0), "batch_size=0"),
        (dict(on_corrupt="ignore"), "on_corrupt='ignore'"),
        (dict(max_examples=0), "max_examples=0"),
        (dict(source="tfds:"), "tfds:NAME"),
        (dict(cache=3), "cache=3"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match.replace("(", r"\(").replace("[", r"\[")):
        load_data(**kwargs)


# --------------------------------------------------------------------------------------- folders
COLOURS = {"cat": (200, 30, 30), "dog": (30, 200, 30), "fox": (30, 30, 200)}


def _write_image(path, colour, size=(10, 12), mode="RGB", fmt=None):
    """A solid image of ``colour`` with a one-pixel marker, so that no two files are equal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = size
    array = np.zeros((h, w, 3), "uint8") + np.array(colour, "uint8")
    array[0, 0] = (len(path.name) * 17) % 256
    image = Image.fromarray(array)
    if mode != "RGB":
        image = image.convert(mode)
    image.save(path, format=fmt)


def _class_folder(root, per_class=6, ext=".png"):
    for name, colour in COLOURS.items():
        for i in range(per_class):
            _write_image(root / name / f"{name}_{i}{ext}", colour)
    return root


def _colour_labels(x):
    """Class index of each image from its dominant channel (cat=R, dog=G, fox=B)."""
    return np.argmax(x[:, 5, 5, :], axis=-1)


@pytest.mark.slow
def test_folder_of_classes_labels_splits_and_skips_corrupt_files(tmp_path):
    root = _class_folder(tmp_path / "animals", per_class=10)
    (root / "cat" / "broken.jpg").write_bytes(b"not a jpeg at all")
    (root / "dog" / "empty.png").write_bytes(b"")
    (root / "dog" / "notes.txt").write_text("ignored: not an image extension")
    bundle = load_data(root, batch_size=4, validation_split=0.2, test_split=0.2, seed=0)
    assert bundle.class_names == ["cat", "dog", "fox"]
    assert bundle.skipped == 2
    assert sorted(p.rsplit("/", 1)[-1] for p in bundle.skipped_files) == ["broken.jpg", "empty.png"]
    assert bundle.image_shape == (10, 12, 3)  # native size, RGB
    assert (bundle.num_train, bundle.num_val, bundle.num_test) == (18, 6, 6)
    for split in ("train", "val", "test"):
        x, y = bundle.arrays(split)
        assert x.dtype == np.float32 and y.dtype == np.int32
        np.testing.assert_array_equal(_colour_labels(x), y)  # labels match the folders
        assert np.bincount(y, minlength=3).tolist() == [len(y) // 3] * 3  # stratified
    x, y = _collect(bundle.train)
    assert x.shape == (18, 10, 12, 3) and sorted(y.tolist()) == sorted(bundle.arrays("train")[1].tolist())
    # PNG is lossless and the size is native: the pixels are exactly the file's
    np.testing.assert_array_equal(x[0, 5, 5], np.array(COLOURS[bundle.class_names[y[0]]], "float32"))
    # the fixed test split does not depend on the seed
    other = load_data(root, batch_size=4, validation_split=0.2, test_split=0.2, seed=7)
    np.testing.assert_array_equal(other.arrays("test")[0], bundle.arrays("test")[0])
    with pytest.raises(ValueError, match="broken.jpg"):
        load_data(root, on_corrupt="error")


def test_folder_resize_channels_and_formats(tmp_path):
    root = tmp_path / "mixed"
    _write_image(root / "a" / "x.jpg", (120, 120, 120), size=(20, 30))
    _write_image(root / "a" / "y.bmp", (120, 120, 120), size=(12, 12), fmt="BMP")
    _write_image(root / "b" / "z.png", (10, 250, 10), size=(16, 16), mode="RGBA")
    _write_image(root / "b" / "w.gif", (10, 250, 10), size=(8, 8), fmt="GIF")
    with pytest.raises(ValueError, match="image_size"):
        load_data(root, test_split=0.0, validation_split=0.0)  # sizes differ
    bundle = load_data(root, image_size=(8, 6), test_split=0.0, validation_split=0.0, shuffle=False)
    assert bundle.image_shape == (8, 6, 3) and bundle.test is None and bundle.num_train == 4
    x, y = bundle.arrays("train")
    assert x.shape == (4, 8, 6, 3) and 0.0 <= x.min() and x.max() <= 255.0
    assert y.tolist() == [0, 0, 1, 1]
    gray = load_data(root, image_size="8x8", channels=1, test_split=0.0, validation_split=0.0, shuffle=False)
    xg, _ = gray.arrays("train")
    assert xg.shape == (4, 8, 8, 1)
    # RGB -> luma: the green images are brighter than their red/blue channels and below pure green
    assert 100.0 < xg[2, 4, 4, 0] < 250.0


def test_folder_grayscale_native_channels_and_file_cache(tmp_path):
    root = tmp_path / "gray"
    for c in ("0", "1"):
        for i in range(3):
            _write_image(root / c / f"{i}.png", (40 + 100 * int(c),) * 3, size=(6, 6), mode="L")
    cache = tmp_path / "cache" / "pix"
    cache.parent.mkdir()
    bundle = load_data(root, test_split=0.0, validation_split=0.0, cache=str(cache), batch_size=2)
    assert bundle.image_shape == (6, 6, 1)
    x, y = _collect(bundle.train)
    assert x.shape == (6, 6, 6, 1)
    np.testing.assert_array_equal(x[:, 3, 3, 0], np.where(y == 1, 140.0, 40.0))
    assert any(p.name.startswith("pix_train") for p in cache.parent.iterdir())


def test_folder_with_split_subfolders(tmp_path):
    root = tmp_path / "splits"
    _class_folder(root / "train", per_class=10)
    _class_folder(root / "test", per_class=2)
    _write_image(root / "validation" / "dog" / "v.png", COLOURS["dog"])
    bundle = load_data(root, validation_split=0.4, test_split=0.4)  # fractions unused: splits exist
    assert (bundle.num_train, bundle.num_val, bundle.num_test) == (30, 1, 6)
    assert bundle.arrays("val")[1].tolist() == [1]
    np.testing.assert_array_equal(_colour_labels(bundle.arrays("test")[0]), bundle.arrays("test")[1])
    # without a validation folder it is carved from train (a fraction of train)
    only = tmp_path / "only"
    _class_folder(only / "train", per_class=10)
    _class_folder(only / "test", per_class=2)
    carved = load_data(only, validation_split=0.1)
    assert (carved.num_train, carved.num_val, carved.num_test) == (27, 3, 6)
    # a test class that train lacks is an error
    _write_image(only / "test" / "owl" / "o.png", (1, 2, 3))
    with pytest.raises(ValueError, match="owl"):
        load_data(only)


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="source"):
        load_data(str(tmp_path / "missing"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="empty"):
        load_data(empty)
    flat = tmp_path / "flat"
    _write_image(flat / "a.png", (1, 2, 3))
    with pytest.raises(ValueError, match="no class folders"):
        load_data(flat)
    no_images = tmp_path / "no_images"
    (no_images / "cat").mkdir(parents=True)
    (no_images / "cat" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="no image files"):
        load_data(no_images)
    all_bad = tmp_path / "all_bad"
    (all_bad / "cat").mkdir(parents=True)
    (all_bad / "cat" / "a.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="no readable images"):
        load_data(all_bad)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(FileNotFoundError, match="not a file"):
        load_data(a_file)
    bundle = load_data("digits", max_examples=50)
    with pytest.raises(ValueError, match="split"):
        bundle.arrays("holdout")


# ----------------------------------------------------------------------------- tensorflow-datasets
def _tfds_builder(name, splits, shape=(12, 10, 3)):
    """A tiny image-classification tfds builder; tfds.load finds it prepared under data_dir."""
    import tensorflow_datasets as tfds

    class Builder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.FeaturesDict(
                    {
                        "image": tfds.features.Image(shape=shape),
                        "label": tfds.features.ClassLabel(names=["a", "b", "c"]),
                    }
                ),
                supervised_keys=("image", "label"),
            )

        def _split_generators(self, dl_manager):
            return {split: self._generate_examples(n, i) for i, (split, n) in enumerate(splits.items())}

        def _generate_examples(self, n, offset):
            for i in range(n):
                label = i % 3
                value = 40 + 80 * label
                image = np.full(shape, value, "uint8")
                image[0, 0, 0] = (i + 13 * offset) % 256
                yield f"{offset}-{i}", {"image": image, "label": label}

    Builder.name = name
    # A module name tfds cannot resolve: tfds 4.9 then skips its checksums-file lookup, which
    # needs the absent `importlib_resources` for a class defined in a package like `tests`.
    Builder.__module__ = "keras_cnn_test_tfds_builder"
    return Builder


@pytest.mark.slow
def test_tfds_source_reads_a_prepared_dataset_and_carves_splits(tmp_path):
    builder_cls = _tfds_builder("keras_cnn_tiny_shapes", {"train": 30, "test": 9})
    builder_cls(data_dir=str(tmp_path)).download_and_prepare()
    bundle = load_data("tfds:keras_cnn_tiny_shapes", data_dir=str(tmp_path), image_size=8, channels=1, batch_size=4)
    assert bundle.class_names == ["a", "b", "c"] and bundle.source == "tfds:keras_cnn_tiny_shapes"
    assert bundle.image_shape == (8, 8, 1)
    assert (bundle.num_train, bundle.num_val, bundle.num_test) == (27, 3, 9)  # val carved from train
    x, y = _collect(bundle.train)
    assert x.shape == (27, 8, 8, 1) and x.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_allclose(x[:, 4, 4, 0], 40 + 80 * y, atol=1.0)  # labels match pixels
    xt, yt = bundle.arrays("test")
    assert xt.shape == (9, 8, 8, 1) and sorted(np.bincount(yt).tolist()) == [3, 3, 3]
    native = load_data("tfds:keras_cnn_tiny_shapes", data_dir=str(tmp_path), validation_split=0.0, max_examples=12)
    assert native.image_shape == (12, 10, 3) and native.val is None
    assert (native.num_train, native.num_test) == (12, 9)
    with pytest.raises(ValueError, match="tfds:no_such_dataset_xyz"):
        load_data("tfds:no_such_dataset_xyz", data_dir=str(tmp_path))


@pytest.mark.slow
def test_tfds_source_with_all_three_splits_and_mock_data(tmp_path):
    import tensorflow_datasets as tfds

    builder_cls = _tfds_builder("keras_cnn_tiny_three", {"train": 12, "validation": 6, "test": 3}, shape=(8, 8, 1))
    builder_cls(data_dir=str(tmp_path)).download_and_prepare()
    bundle = load_data("tfds:keras_cnn_tiny_three", data_dir=str(tmp_path), validation_split=0.3, test_split=0.3)
    assert (bundle.num_train, bundle.num_val, bundle.num_test) == (12, 6, 3)
    assert bundle.image_shape == (8, 8, 1)
    # tfds.testing.mock_data: the real tfds.load path on a registered dataset (no download)
    with tfds.testing.mock_data(num_examples=6):
        mnist = load_data("tfds:mnist", image_size=(14, 14), batch_size=3, download=False)
        x, y = next(iter(mnist.train))
    assert mnist.class_names == [str(i) for i in range(10)] and mnist.image_shape == (14, 14, 1)
    assert x.shape == (3, 14, 14, 1) and x.dtype.name == "float32" and y.dtype.name == "int32"
    assert float(np.max(x)) <= 255.0 and mnist.num_train == 6 and mnist.num_test == 6
