import json

import pytest

from keras_cnn._io import atomic_dir, atomic_write_json
from keras_cnn._validation import check_choice, parse_shape


def test_atomic_dir_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "export" / "1"
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "half.txt").write_text("partial")
            raise RuntimeError("crash mid-write")
    assert not target.exists()
    assert list((tmp_path / "export").iterdir()) == []


def test_atomic_dir_refuses_overwrite_then_replaces(tmp_path):
    target = tmp_path / "1"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("first")
    with pytest.raises(FileExistsError):
        with atomic_dir(target):
            pass
    with atomic_dir(target, overwrite=True) as tmp:
        (tmp / "b.txt").write_text("second")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["1"]


def test_atomic_write_json_roundtrip(tmp_path):
    import numpy as np

    path = tmp_path / "m.json"
    atomic_write_json(path, {"acc": np.float32(0.5), "cm": np.eye(2, dtype=int)})
    assert json.loads(path.read_text()) == {"acc": 0.5, "cm": [[1, 0], [0, 1]]}


def test_validation_messages_name_argument():
    with pytest.raises(ValueError, match=r"`pooling` must be one of .*Received: pooling='mean'"):
        check_choice("pooling", "mean", (None, "avg", "max"))
    assert parse_shape("input_shape", "32,32,1") == (32, 32, 1)
    with pytest.raises(ValueError, match="input_shape"):
        parse_shape("input_shape", "32,32")
