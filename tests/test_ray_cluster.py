"""The Ray engine on a real Ray cluster on this machine: a head and one more node (`ray start`),
started here and stopped by their PIDs; no Ray process may be left behind."""

import contextlib
import csv
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("ray.train.tensorflow")

pytestmark = pytest.mark.slow

RAY = str(Path(sys.executable).parent / "ray")
EPOCHS = 3
# LeNet-5 on digits after 3 epochs: 2 Ray workers (the global batch split over 2 replicas, each
# augmenting its own half) against one process with the same loop; measured 0.91 and 0.92.
ACCURACY_TOLERANCE = 0.05


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _session_processes(temp_dir):
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return {int(line.split(None, 1)[0]): line for line in out.splitlines() if str(temp_dir) in line}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head (2 CPUs) and a second node (1 CPU) on 127.0.0.1, with token authentication."""
    temp_dir = Path(f"/tmp/kcray{_free_port()}")  # short: Ray's socket paths must stay under 108 bytes
    port = _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "RAY_USAGE_STATS_ENABLED": "0", "TF_CPP_MIN_LOG_LEVEL": "2"}
    logs = tmp_path_factory.mktemp("ray_logs")
    common = ["--block", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    head = subprocess.Popen(
        [RAY, "start", "--head", f"--port={port}", "--num-cpus=2", f"--dashboard-port={_free_port()}",
         f"--temp-dir={temp_dir}", *common],
        stdout=open(logs / "head.log", "w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    nodes = [head]
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and head.poll() is None, (logs / "head.log").read_text()
                time.sleep(1)
        nodes.append(subprocess.Popen(
            [RAY, "start", f"--address=127.0.0.1:{port}", "--num-cpus=1", *common],
            stdout=open(logs / "node.log", "w"), stderr=subprocess.STDOUT, env=env, start_new_session=True))
        yield {"address": f"127.0.0.1:{port}", "env": env, "temp_dir": temp_dir}
    finally:
        for proc in reversed(nodes):
            proc.send_signal(signal.SIGTERM)
        for proc in reversed(nodes):
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()
        time.sleep(3)
        left = _session_processes(temp_dir)
        for pid in left:  # by PID, only this cluster's processes (their arguments name its directory)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert not left, f"Ray processes left behind: {list(left.values())}"


def _cli(cluster, args, *, timeout=900):
    code = "import sys\nfrom keras_cnn.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout,
                          env={**cluster["env"], "PYTHONUNBUFFERED": "1"})


def _ray_train(cluster, out, *extra):
    return ["train", "lenet5", "--data", "digits", "--epochs", str(EPOCHS), "--out", str(out), "--no-export",
            "--verbose", "2", "--engine", "ray", "--workers", "2", "--ray-address", cluster["address"],
            "--cluster-timeout", "240", *extra]


def _workers_alive():
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "ray::RayTrainWorker" in line or "ray::TrainController" in line]


def test_two_workers_match_one_process_and_write_one_run_dir(cluster, tmp_path):
    proc = _cli(cluster, _ray_train(cluster, tmp_path / "ray"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "ray" / "metrics.json").read_text())
    assert metrics["num_workers"] == 2 and metrics["strategy"] == "multi_worker" and metrics["epochs"] == EPOCHS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ray"]  # one run directory, written by the chief
    with open(tmp_path / "ray" / "history.csv") as handle:
        assert [int(row["epoch"]) for row in csv.DictReader(handle)] == list(range(EPOCHS))

    one = _cli(cluster, ["train", "lenet5", "--data", "digits", "--epochs", str(EPOCHS), "--out",
                         str(tmp_path / "one"), "--no-export", "--strategy", "multi_worker", "--verbose", "0"])
    assert one.returncode == 0, one.stderr[-3000:]
    single = json.loads((tmp_path / "one" / "metrics.json").read_text())["accuracy"]
    assert abs(metrics["accuracy"] - single) <= ACCURACY_TOLERANCE, (metrics["accuracy"], single)
    assert metrics["fingerprint_digest"] == json.loads((tmp_path / "one" / "metrics.json").read_text())[
        "fingerprint_digest"]  # the same run: one fingerprint whatever launches it

    again = _cli(cluster, _ray_train(cluster, tmp_path / "ray"))
    assert again.returncode == 0 and "stored result of the finished run" in again.stdout, again.stdout[-2000:]


def test_a_killed_worker_is_restarted_and_every_epoch_runs_once(cluster, tmp_path, monkeypatch):
    from keras_cnn.training import RunConfig
    from keras_cnn.training.ray_engine import RayOptions, run_on_ray

    record = tmp_path / "epochs.jsonl"
    cfg = RunConfig(model="lenet5", data="digits", epochs=4, out_dir=str(tmp_path / "run"), export=False,
                    verbose=0, callbacks=[_epoch_recorder(str(record))])
    killed = {}

    def kill_worker_1_in_epoch_2():
        while not killed:
            for line in record.read_text().splitlines() if record.is_file() else []:
                event = json.loads(line)
                if event["task"] == "worker:1" and event["event"] == "begin" and event["epoch"] == 1:
                    time.sleep(1.0)  # mid-epoch
                    os.kill(event["pid"], signal.SIGKILL)
                    killed.update(pid=event["pid"], at=time.time())
                    return
            time.sleep(0.2)

    watcher = threading.Thread(target=kill_worker_1_in_epoch_2, daemon=True)
    watcher.start()
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN"):
        monkeypatch.setenv(name, cluster["env"][name])
    started = time.time()
    result = run_on_ray(cfg, RayOptions(workers=2, address=cluster["address"], max_failures=2, cluster_timeout=240))
    total = time.time() - started
    assert killed, "the worker was never killed"
    events = [json.loads(line) for line in record.read_text().splitlines()]
    chief_ends = [e["epoch"] for e in events if e["task"] == "worker:0" and e["event"] == "end"]
    begins = [e["epoch"] for e in events if e["task"] == "worker:0" and e["event"] == "begin"]
    assert chief_ends == [0, 1, 2, 3], events  # every epoch finished exactly once
    assert begins == [0, 1, 1, 2, 3], events  # the killed epoch began again; the finished one did not
    resumed = next(e["time"] for e in events if e["event"] == "begin" and e["epoch"] == 1 and e["pid"] != killed["pid"]
                   and e["time"] > killed["at"])
    first_begin = min(e["time"] for e in events if e["event"] == "begin" and e["epoch"] == 1)
    print(f"epochs seen (chief begin): {begins}; ends: {chief_ends}; killed after {killed['at'] - first_begin:.1f} s "
          f"of epoch 2; resumed {resumed - killed['at']:.1f} s after the kill; run {total:.1f} s")
    assert result.status == "resumed" and result.metrics["epochs"] == 4
    assert len({e["pid"] for e in events if e["task"] == "worker:1"}) == 2  # a new worker process


def _epoch_recorder(path):
    import keras

    class EpochRecorder(keras.callbacks.Callback):  # pickled by value (a local class) to the Ray workers
        def _write(self, event, epoch):
            task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
            line = json.dumps({"task": f"{task.get('type')}:{task.get('index')}", "pid": os.getpid(),
                               "event": event, "epoch": epoch, "time": time.time()})
            with open(path, "a") as handle:
                handle.write(line + "\n")

        def on_epoch_begin(self, epoch, logs=None):
            self._write("begin", epoch)

        def on_epoch_end(self, epoch, logs=None):
            self._write("end", epoch)

    return EpochRecorder()


def test_sigterm_on_the_driver_stops_every_worker_and_the_run_resumes(cluster, tmp_path):
    args = _ray_train(cluster, tmp_path / "run")
    code = "import sys\nfrom keras_cnn.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    driver = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env={**cluster["env"], "PYTHONUNBUFFERED": "1"})
    history = tmp_path / "run" / "history.csv"
    deadline = time.monotonic() + 600
    while not (history.is_file() and len(history.read_text().splitlines()) >= 2):  # one epoch finished
        assert time.monotonic() < deadline and driver.poll() is None, driver.stdout.read()[-3000:]
        time.sleep(0.5)
    assert _workers_alive()
    driver.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    driver.wait(timeout=30)
    while _workers_alive():
        assert time.monotonic() - stopped < 30, _workers_alive()
        time.sleep(0.5)
    print(f"driver and workers gone {time.monotonic() - stopped:.1f} s after SIGTERM")
    assert driver.returncode != 0
    again = _cli(cluster, args)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "resumed"


def test_a_worker_that_cannot_be_placed_is_an_error_within_the_cluster_timeout(cluster, tmp_path):
    started = time.monotonic()
    proc = _cli(cluster, [*_ray_train(cluster, tmp_path / "run")[:-2], "--cluster-timeout", "10",
                          "--gpus-per-worker", "1"], timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "could not place 2 training workers" in proc.stderr and "'GPU': 1.0" in proc.stderr, proc.stderr[-2000:]
    assert time.monotonic() - started < 120
    assert not (tmp_path / "run").exists()


SPACE = ["--space", "blocks=1", "--space", "convs_per_block=1", "--space", "base_widths=4,8", "--space", "fc_units=8",
         "--space", "dropout=0.0", "--space", "batch_norm=false", "--space", "optimizers=adam"]


def test_a_two_worker_search_finishes_exports_and_a_rerun_resumes(cluster, tmp_path):
    def search(trials):
        return ["tune", "vgg", "--data", "digits", "--tuner", "random", "--max-trials", str(trials), "--epochs", "1",
                "--image-size", "8", "--channels", "1", "--max-examples", "200", "--dir", str(tmp_path / "tune"),
                "--export-dir", str(tmp_path / "saved"), "--export-below-floor", *SPACE,
                "--engine", "ray", "--workers", "2", "--ray-address", cluster["address"]]

    first = _cli(cluster, search(3))
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    project = tmp_path / "tune" / "vgg_random"
    trials = sorted(project.glob("trial_*/trial.json"))
    assert len(trials) == 3
    tuners = {json.loads(t.read_text()).get("tuner_id") for t in trials}
    assert tuners <= {"worker-0", "worker-1"}, tuners
    assert (project / "best_model.keras").is_file() and list((tmp_path / "saved").glob("vgg_tuned/*/saved_model.pb"))
    stamps = {t: t.stat().st_mtime_ns for t in trials}

    second = _cli(cluster, search(4))  # the same search, one more trial: the finished ones are not rerun
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert len(list(project.glob("trial_*/trial.json"))) == 4
    assert all(t.stat().st_mtime_ns == stamp for t, stamp in stamps.items())


def test_a_lost_tuner_worker_is_restarted_and_its_trial_runs_again(cluster, tmp_path, monkeypatch):
    from keras_cnn.commands.tune import parse_space
    from keras_cnn.training.ray_engine import RayOptions
    from keras_cnn.tuning.ray_search import tune_on_ray

    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN"):
        monkeypatch.setenv(name, cluster["env"][name])
    record = tmp_path / "trials.jsonl"
    killed = {}

    def kill_worker_0_in_its_first_trial():
        while not killed:
            for line in record.read_text().splitlines() if record.is_file() else []:
                event = json.loads(line)
                if event["tuner_id"] == "worker-0" and event["status"] == "RUNNING":
                    time.sleep(1.0)
                    os.kill(event["pid"], signal.SIGKILL)
                    killed.update(event)
                    return
            time.sleep(0.2)

    threading.Thread(target=kill_worker_0_in_its_first_trial, daemon=True).start()
    result = tune_on_ray(
        "vgg", "digits", tuner="random", max_trials=3, epochs=1, image_size=8, channels=1, max_examples=200,
        directory=str(tmp_path / "tune"), export=False, verbose=0, progress=_trial_recorder(str(record)),
        search_space=parse_space([s for s in SPACE if s != "--space"]),
        ray=RayOptions(workers=2, address=cluster["address"], max_failures=1, cluster_timeout=240))
    assert killed, "the tuner worker was never killed"
    events = [json.loads(line) for line in record.read_text().splitlines()]
    again = [e for e in events if e["trial_id"] == killed["trial_id"] and e["status"] == "RUNNING"]
    assert [e["tuner_id"] for e in again] == ["worker-0", "worker-0"] and again[1]["pid"] != killed["pid"], events
    completed = [e["trial_id"] for e in events if e["status"] == "COMPLETED"]
    assert sorted(completed) == sorted(set(completed)) and len(completed) == 3, events  # each trial once
    assert len([r for r in result.trials if r.status == "COMPLETED"]) == 3


def _trial_recorder(path):
    def record(trial):  # pickled by value (a local function) to the tuner actors
        with open(path, "a") as handle:
            handle.write(json.dumps({"tuner_id": trial.tuner_id, "trial_id": trial.trial_id, "status": trial.status,
                                     "pid": os.getpid()}) + "\n")

    return record
