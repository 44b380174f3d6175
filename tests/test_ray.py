"""The Ray engine without a cluster: its flags, its options, the missing extra, the RayJob manifest."""

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from keras_cnn.training.ray_engine import RayOptions, check_options

MANIFEST = Path(__file__).resolve().parents[1] / "apps" / "distributed" / "ray_job.yaml"


@pytest.mark.parametrize("field, value, words", [
    ("workers", 0, "`workers` must be an integer >= 1"),
    ("workers", True, "`workers` must be an integer >= 1"),
    ("cpus_per_worker", 0, "`cpus_per_worker` must be a number > 0"),
    ("gpus_per_worker", -1, "`gpus_per_worker` must be a number >= 0"),
    ("max_failures", -2, "`max_failures` must be an integer >= -1"),
    ("cluster_timeout", 0, "`cluster_timeout` must be a number > 0"),
    ("address", "nohost", "`ray_address` must be 'auto', 'HOST:PORT'"),
])
def test_options_refuse_bad_values(field, value, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(")) as err:
        check_options(RayOptions(**{field: value}))
    assert repr(value) in str(err.value)


def test_options_accept_a_cluster_address():
    options = RayOptions(workers=3, address="10.0.0.1:6379", cpus_per_worker=0.5, max_failures=-1)
    assert check_options(options) is options


def _cli(args, *, block_ray=False, timeout=120):
    code = "import sys\n"
    if block_ray:
        code += "sys.modules['ray'] = None  # as if the extra were not installed\n"
    code += "from keras_cnn.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_engine_ray_without_the_extra_is_one_line_naming_it(tmp_path):
    proc = _cli(["train", "lenet5", "--engine", "ray", "--workers", "2", "--out", str(tmp_path / "r")], block_ray=True)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "keras-cnn train" in line]
    assert lines == [lines[0]] and "pip install 'keras-cnn[ray]'" in lines[0] and "--engine" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_ray_flags_need_engine_ray(tmp_path):
    proc = _cli(["tune", "vgg", "--workers", "2", "--dir", str(tmp_path)])
    assert proc.returncode == 2
    assert "`--workers` places workers on a Ray cluster: it needs --engine ray" in proc.stderr
    assert "Traceback" not in proc.stderr


def _manifest_commands():
    import yaml

    docs = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]
    jobs = [d for d in docs if d.get("kind") == "RayJob"]
    assert jobs, "apps/distributed/ray_job.yaml must hold a RayJob"
    commands = []
    for job in jobs:
        assert job["apiVersion"].startswith("ray.io/")
        spec = job["spec"]
        assert spec["rayClusterSpec"]["headGroupSpec"] and spec["rayClusterSpec"]["workerGroupSpecs"]
        for line in spec["entrypoint"].split("&&"):
            words = shlex.split(line)
            if words and words[0] == "keras-cnn":
                commands.append(words[1:])
    return commands


def test_ray_job_manifest_runs_the_real_cli_flags():
    from keras_cnn.cli import build_parser

    commands = _manifest_commands()
    assert {c[0] for c in commands} == {"train", "tune"}, commands
    parser = build_parser()
    for words in commands:
        args = parser.parse_args(words)  # an unknown flag or bad value exits here
        assert args.engine == "ray" and args.ray_address == "auto" and args.workers >= 2, words
        storage = args.out if words[0] == "train" else args.dir
        assert storage.startswith("/mnt/"), f"the run directory must be on the shared volume: {words}"
