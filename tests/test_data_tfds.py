"""`load_data("tfds:NAME")` through tensorflow-datasets' real builder path.

* a registered dataset (mnist) with no network: our "cannot download" error, at once;
* a registered `GeneratorBasedBuilder` defined in a module file, prepared in the test, read back
  by name like any catalogue dataset (its code path goes through `importlib_resources`, the
  dependency a fresh install lacked);
* `tfds.testing.mock_data` for cifar10 and mnist: shapes, classes, dtypes.
"""

import socket
import sys
import textwrap
import time

import numpy as np
import pytest

from keras_cnn.data import load_data

tfds = pytest.importorskip("tensorflow_datasets")


def _no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network unreachable (blocked by the test)")

    monkeypatch.setattr(socket, "create_connection", refuse)


def test_registered_dataset_without_network_fails_at_once_with_placement_help(tmp_path, monkeypatch):
    _no_network(monkeypatch)
    start = time.perf_counter()
    with pytest.raises(ValueError) as info:
        load_data("tfds:mnist", data_dir=str(tmp_path), image_size=28)
    took = time.perf_counter() - start
    message = str(info.value)
    assert "cannot download" in message and "'mnist'" in message
    assert f"data_dir={tmp_path}" in message
    builder_dir = tfds.builder("mnist", data_dir=str(tmp_path)).data_dir  # the registered builder's
    assert str(builder_dir) in message and "tfds build mnist --data_dir DIR" in message
    assert "network unreachable (blocked by the test)" in message
    assert took < 30  # tfds' own retries would take minutes
    assert not list(tmp_path.rglob("dataset_info.json"))  # nothing half-prepared


def test_a_fresh_data_dir_gets_no_warning_about_a_folder_that_is_not_there(tmp_path, monkeypatch, caplog):
    # tfds' `is_prepared` logged "Variant folder .../mnist/3.0.1 has no dataset_info.json" (absl) for a
    # folder that does not exist, before our own error.
    _no_network(monkeypatch)
    with caplog.at_level("WARNING"):
        with pytest.raises(ValueError, match="cannot download"):
            load_data("tfds:mnist", data_dir=str(tmp_path), image_size=28)
    assert [r.getMessage() for r in caplog.records if "Variant folder" in r.getMessage()] == []


def test_not_prepared_with_download_false_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"not prepared in data_dir=.*download=False"):
        load_data("tfds:mnist", data_dir=str(tmp_path), download=False)
    with pytest.raises(ValueError, match="`download` must be a bool"):
        load_data("tfds:mnist", download="no")


_BUILDER_MODULE = '''
import numpy as np
import tensorflow_datasets as tfds


class KerasCnnTfdsShapes(tfds.core.GeneratorBasedBuilder):
    """Three classes of flat grey squares; registered with tfds like any catalogue dataset."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {"image": tfds.features.Image(shape=(10, 12, 3)), "label": tfds.features.ClassLabel(names=["a", "b", "c"])}
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(24), "test": self._generate_examples(6)}

    def _generate_examples(self, n):
        for i in range(n):
            yield i, {"image": np.full((10, 12, 3), 40 + 80 * (i % 3), "uint8"), "label": i % 3}
'''


@pytest.mark.slow
def test_registered_builder_prepared_here_loads_by_name(tmp_path, monkeypatch):
    package = tmp_path / "kc_tfds_shapes"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent(_BUILDER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = __import__("kc_tfds_shapes")
    try:
        name = module.KerasCnnTfdsShapes.name
        assert name == "keras_cnn_tfds_shapes" and name in tfds.list_builders()
        data_dir = tmp_path / "data"
        builder = tfds.builder(name, data_dir=str(data_dir))  # the registered class, by name
        assert type(builder) is module.KerasCnnTfdsShapes
        assert str(builder.code_path).endswith("kc_tfds_shapes/__init__.py")
        builder.download_and_prepare()
        _no_network(monkeypatch)  # prepared: reading needs no network
        bundle = load_data(f"tfds:{name}", data_dir=str(data_dir), image_size=8, channels=1, batch_size=4)
        assert bundle.class_names == ["a", "b", "c"] and bundle.image_shape == (8, 8, 1)
        assert (bundle.num_train, bundle.num_val, bundle.num_test) == (22, 2, 6)
        x, y = bundle.arrays("test")
        assert x.shape == (6, 8, 8, 1) and x.dtype == np.float32
        np.testing.assert_allclose(x[:, 4, 4, 0], 40 + 80 * y, atol=1.0)
    finally:
        sys.modules.pop("kc_tfds_shapes", None)


@pytest.mark.slow
@pytest.mark.parametrize("name, shape", [("mnist", (28, 28, 1)), ("cifar10", (32, 32, 3))])
def test_mock_data_catalogue_shapes(name, shape):
    with tfds.testing.mock_data(num_examples=8):
        bundle = load_data(f"tfds:{name}", batch_size=4, download=False)
        x, y = next(iter(bundle.train))
    assert bundle.image_shape == shape and len(bundle.class_names) == 10  # mock metadata: names "0".."9"
    assert tuple(x.shape) == (4, *shape) and x.dtype.name == "float32" and y.dtype.name == "int32"
    assert 0.0 <= float(np.min(x)) and float(np.max(x)) <= 255.0
