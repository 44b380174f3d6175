"""The command line starts instantly and quietly; `import keras_cnn` is cheap yet loading works.

* ``--help``, ``CMD --help``, ``list`` and argument errors never import TensorFlow (checked in a
  fresh interpreter), and ``keras-cnn --help`` takes <= 0.35x of ``python -c "import tensorflow"``
  measured in the same test;
* a command that needs TensorFlow leaves stderr empty (TensorFlow's C++ start-up lines are kept off
  it) unless the user set ``TF_CPP_MIN_LOG_LEVEL``;
* keras_cnn's classes are registered with Keras whenever Keras is loaded after ``import keras_cnn``
  (in either order, also when a keras_cnn module is what imports Keras), so
  ``keras.saving.load_model`` and `keras_cnn.load_model` read a saved model.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keras_cnn import cli
from keras_cnn.commands._args import check_image_channels, image_size

ROOT = Path(__file__).resolve().parents[1]


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def _python(code, timeout=300, **env):
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=_env(**env)
    )


_PROBE = """
import json, sys
from keras_cnn.cli import main
codes = []
for argv in json.loads(sys.argv[1] if len(sys.argv) > 1 else {argvs!r}):
    try:
        codes.append(main(argv))
    except SystemExit as stop:
        codes.append(stop.code)
print(json.dumps({{"codes": codes, "heavy": sorted(m for m in ("tensorflow", "keras") if m in sys.modules)}}),
      file=sys.__stdout__)
"""

LIGHT_ARGVS = [
    ["--help"],
    ["--version"],
    *[[cmd, "--help"] for cmd in ("demo", "train", "evaluate", "predict", "export", "verify-export", "summary",
                                 "cost", "list", "transfer", "tune")],
    ["list"],
    ["list", "--json", "--family", "resnet"],
    ["list", "--family", "nope"],  # ValueError -> exit 2
    ["train"],  # missing MODEL
    ["train", "resnet18", "--image-size", "0"],
    ["train", "resnet18", "--image-size", "3,4,5,6"],
    ["train", "resnet18", "--augment-on", "gpu"],
    ["nosuchcommand"],
]


def test_help_list_and_argument_errors_do_not_import_tensorflow():
    result = _python(_PROBE.format(argvs=json.dumps(LIGHT_ARGVS)))
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["heavy"] == [], f"imported {report['heavy']}"
    expected = [0, 0, *[0] * 11, 0, 0, 2, 2, 2, 2, 2, 2]
    assert report["codes"] == expected
    assert "argument --image-size: must be N (square), H,W or H,W,C" in result.stderr
    assert "keras-cnn list: error: `--family` must be one of" in result.stderr
    assert "Traceback" not in result.stderr


def test_list_without_tensorflow_shows_every_model_with_params():
    from keras_cnn.models.specs import get_model_spec, list_models

    result = subprocess.run([sys.executable, "-m", "keras_cnn", "list"], capture_output=True, text=True,
                            timeout=120, cwd=ROOT, env=_env())
    assert result.returncode == 0 and result.stderr == ""
    for name in list_models():
        line = next(line for line in result.stdout.splitlines() if line.startswith(name + " "))
        params = get_model_spec(name).num_params
        assert params and f"{params:,}" in line


def test_image_size_forms():
    assert image_size("32") == (32, 32)
    assert image_size("224,224") == (224, 224) and image_size("96x128") == (96, 128)
    assert image_size(" 299, 299, 3 ") == (299, 299, 3)
    for bad in ("0", "a,b", "1,2,3,4", "", "-5", "3.5"):
        with pytest.raises(Exception, match="must be N"):
            image_size(bad)
    assert check_image_channels((32, 32, 1), 1, "lenet5") == (32, 32)
    assert check_image_channels((32, 32), 3, "resnet18") == (32, 32) and check_image_channels(None, 3, "x") is None
    with pytest.raises(ValueError, match=r"`--image-size` has 3 channels but lenet5 takes 1.*32,32,3"):
        check_image_channels((32, 32, 3), 1, "lenet5")


@pytest.mark.slow
def test_help_is_at_most_035x_of_importing_tensorflow():
    def best(cmd, n):
        times = []
        for _ in range(n):
            start = time.perf_counter()
            subprocess.run(cmd, capture_output=True, timeout=300, cwd=ROOT, env=_env(), check=True)
            times.append(time.perf_counter() - start)
        return min(times)

    help_s = best([sys.executable, "-m", "keras_cnn", "--help"], 3)
    list_s = best([sys.executable, "-m", "keras_cnn", "list"], 3)
    tf_s = best([sys.executable, "-c", "import tensorflow"], 2)
    assert help_s <= 0.35 * tf_s, (help_s, tf_s)
    assert list_s <= 0.35 * tf_s, (list_s, tf_s)


@pytest.mark.slow
def test_a_tensorflow_command_keeps_stderr_clean_unless_asked():
    argv = [sys.executable, "-m", "keras_cnn", "summary", "lenet5", "--stages"]
    quiet = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=ROOT, env=_env())
    assert quiet.returncode == 0, quiet.stderr
    assert "61,706" in quiet.stdout and quiet.stderr == ""
    # The user's own TF_CPP_MIN_LOG_LEVEL is respected: TensorFlow prints what it prints.
    loud = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env=_env(TF_CPP_MIN_LOG_LEVEL="0"))
    assert loud.returncode == 0 and "61,706" in loud.stdout
    if not loud.stderr:
        pytest.skip("this TensorFlow build prints nothing at start-up; nothing to silence")


def test_tensorflow_import_errors_still_reach_the_user(tmp_path):
    (tmp_path / "tensorflow").mkdir()
    (tmp_path / "tensorflow" / "__init__.py").write_text(
        "import sys\nprint('broken tensorflow says why', file=sys.stderr)\nraise ImportError('broken on purpose')\n"
    )
    code = "import sys; sys.path.insert(0, sys.argv[1]); from keras_cnn.cli import import_tensorflow; import_tensorflow()"
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                            timeout=120, cwd=ROOT, env=_env())
    assert result.returncode != 0
    assert "broken tensorflow says why" in result.stderr and "broken on purpose" in result.stderr


_REGISTERED = (
    "import keras; print(all(keras.saving.get_registered_object(n) is not None for n in "
    "('keras_cnn>ConvBN', 'keras_cnn>EpochSchedule', 'keras_cnn>Preprocess')))"
)


@pytest.mark.slow
@pytest.mark.parametrize(
    "first",
    [
        "import keras_cnn; import sys; assert 'tensorflow' not in sys.modules",  # cheap import, Keras later
        "import keras; import keras_cnn",  # Keras first
        "from keras_cnn.layers import ConvBN",  # a keras_cnn module imports Keras itself
        "import keras_cnn.data.augment",
    ],
)
def test_classes_are_registered_whenever_keras_is_loaded(first):
    result = _python(f"{first}\n{_REGISTERED}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "True"


@pytest.mark.slow
def test_saved_model_loads_with_keras_after_import_keras_cnn_and_with_load_model(tmp_path):
    save = (
        "import keras_cnn, numpy as np\n"
        "model = keras_cnn.build_model('lenet5')\n"
        f"model.save({str(tmp_path / 'model.keras')!r})\n"
        f"np.save({str(tmp_path / 'x.npy')!r}, np.asarray(model(np.ones((1, 32, 32, 1), 'float32'))))\n"
    )
    assert _python(save).returncode == 0
    check = (
        "import sys, numpy as np\n"
        "import keras_cnn\n"
        "assert 'tensorflow' not in sys.modules\n"
        "import keras\n"
        f"a = keras.saving.load_model({str(tmp_path / 'model.keras')!r})\n"
        f"b = keras_cnn.load_model({str(tmp_path)!r})\n"
        f"ref = np.load({str(tmp_path / 'x.npy')!r})\n"
        "x = np.ones((1, 32, 32, 1), 'float32')\n"
        "np.testing.assert_allclose(np.asarray(a(x)), ref, atol=1e-6)\n"
        "np.testing.assert_allclose(np.asarray(b(x)), ref, atol=1e-6)\n"
        "print('ok')\n"
    )
    result = _python(check)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]


def test_load_model_names_a_missing_file(tmp_path):
    import keras_cnn

    with pytest.raises(FileNotFoundError, match=r"`filepath`.*model\.keras"):
        keras_cnn.load_model(tmp_path)


def test_augment_on_auto_is_the_default_and_follows_the_hardware():
    import tensorflow as tf

    from keras_cnn.data.augment import resolve_augment_on

    args = cli.build_parser().parse_args(["train", "lenet5"])
    assert args.augment_on == "auto"
    expected = "device" if tf.config.list_physical_devices("GPU") else "cpu"
    assert resolve_augment_on("auto") == resolve_augment_on() == expected
    assert resolve_augment_on("device") == "device" and resolve_augment_on("cpu") == "cpu"
    with pytest.raises(ValueError, match=r"`augment_on` must be one of \['auto', 'device', 'cpu'\]"):
        resolve_augment_on("gpu")


def test_parse_shape_example_matches_its_rank():
    from keras_cnn._validation import parse_shape

    with pytest.raises(ValueError, match=r"must be 2 positive ints like 224,224\. Received"):
        parse_shape("image_size", "32", ndim=2)
    with pytest.raises(ValueError, match=r"must be 3 positive ints like 224,224,3\. Received"):
        parse_shape("--input-shape", "1,2", ndim=3)


@pytest.mark.slow
def test_every_serializable_class_of_the_sources_is_registered_after_import_keras_cnn():
    import re

    declared = set()
    for path in (ROOT / "keras_cnn").rglob("*.py"):
        text = path.read_text()
        for match in re.finditer(r'register_keras_serializable\(package="keras_cnn"\)\s*\nclass (\w+)', text):
            declared.add(f"keras_cnn>{match.group(1)}")
    assert len(declared) >= 14
    code = (
        "import json, keras_cnn, keras\n"
        "print(json.dumps(sorted(k for k in keras.saving.get_custom_objects() if k.startswith('keras_cnn>'))))"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr[-2000:]
    registered = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert declared <= registered, sorted(declared - registered)
