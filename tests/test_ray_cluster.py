"""The Ray engine on a real Ray cluster on this machine: a head and one more node (`ray start`),
started here and stopped by their PIDs; no Ray process may be left behind."""

import contextlib
import csv
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("ray.train.tensorflow")

pytestmark = [pytest.mark.slow, pytest.mark.heavy]

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
           "RAY_USAGE_STATS_ENABLED": "0", "TF_CPP_MIN_LOG_LEVEL": "2",
           # This machine's memory is shared with other jobs: Ray's own memory monitor must not kill
           # the test's workers when the machine as a whole runs high (the kernel's limits still hold).
           "RAY_memory_monitor_refresh_ms": "0"}
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
        shutil.rmtree(temp_dir, ignore_errors=True)
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
    print(f"\n2 Ray workers: test accuracy {metrics['accuracy']:.4f}, {metrics['fit_seconds']:.1f} s in the loop; "
          f"one process: {single:.4f}")
    assert abs(metrics["accuracy"] - single) <= ACCURACY_TOLERANCE, (metrics["accuracy"], single)
    assert metrics["fingerprint_digest"] == json.loads((tmp_path / "one" / "metrics.json").read_text())[
        "fingerprint_digest"]  # the same run: one fingerprint whatever launches it

    again = _cli(cluster, _ray_train(cluster, tmp_path / "ray"))
    assert again.returncode == 0 and "stored result of the finished run" in again.stdout, again.stdout[-2000:]


def _driver(cluster, what, directory, record, kill_when):
    """Run tests/ray_drivers.py WHAT; kill the worker whose recorded event ``kill_when`` accepts, 0.3 s
    after it (mid-epoch / mid-trial, most of the time) -> (the driver's JSON result, the killed event, seconds)."""
    killed = {}

    def watch():
        while not killed:
            for line in record.read_text().splitlines() if record.is_file() else []:
                event = json.loads(line)
                if kill_when(event):
                    time.sleep(0.3)
                    os.kill(event["pid"], signal.SIGKILL)
                    killed.update(event, killed_at=time.time())
                    return
            time.sleep(0.2)

    threading.Thread(target=watch, daemon=True).start()
    started = time.time()
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("ray_drivers.py")), what, cluster["address"],
                           str(directory), str(record)], capture_output=True, text=True, timeout=1200,
                          env={**cluster["env"], "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert killed, "no worker was killed"
    return json.loads(proc.stdout.strip().splitlines()[-1]), killed, time.time() - started


def test_a_killed_worker_is_restarted_and_every_epoch_runs_once(cluster, tmp_path):
    record = tmp_path / "epochs.jsonl"
    result, killed, total = _driver(
        cluster, "train", tmp_path / "run", record,
        lambda e: e["task"] == "worker:1" and e["event"] == "begin" and e["epoch"] == 1)
    events = [json.loads(line) for line in record.read_text().splitlines()]
    chief = [e for e in events if e["task"] == "worker:0"]
    chief_ends = [e["epoch"] for e in chief if e["event"] == "end"]
    assert chief_ends == [0, 1, 2, 3], events  # every epoch finished exactly once
    # The kill lands where it lands (an epoch of LeNet-5 on digits takes about a second): whatever
    # epoch was running then begins again, and no epoch that had finished before the kill does.
    finished_before = {e["epoch"] for e in chief if e["event"] == "end" and e["time"] < killed["killed_at"]}
    begun_after = [e["epoch"] for e in chief if e["event"] == "begin" and e["time"] > killed["killed_at"]]
    assert begun_after and not finished_before & set(begun_after), events
    assert begun_after == sorted(begun_after) and set(begun_after) == set(range(begun_after[0], 4)), events
    resumed = min(e["time"] for e in events if e["event"] == "begin" and e["time"] > killed["killed_at"])
    print(f"\nepochs begun (chief): {[e['epoch'] for e in chief if e['event'] == 'begin']}; finished: {chief_ends}; "
          f"worker:1 killed {killed['killed_at'] - killed['time']:.1f} s after it began epoch {killed['epoch']}; "
          f"epoch {begun_after[0]} began again {resumed - killed['killed_at']:.1f} s after the kill; "
          f"whole run {total:.1f} s")
    assert result["status"] == "resumed" and result["epochs"] == 4
    assert len({e["pid"] for e in events if e["task"] == "worker:1"}) == 2  # a new worker process


def test_sigterm_on_the_driver_stops_every_worker_and_the_run_resumes(cluster, tmp_path):
    args = _ray_train(cluster, tmp_path / "run")
    code = "import sys\nfrom keras_cnn.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    log = tmp_path / "driver.log"  # a file, not a pipe: nothing may block the driver's output
    driver = subprocess.Popen([sys.executable, "-c", code, *args], stdout=open(log, "w"), stderr=subprocess.STDOUT,
                              env={**cluster["env"], "PYTHONUNBUFFERED": "1"})
    history = tmp_path / "run" / "history.csv"
    deadline = time.monotonic() + 600
    try:
        while not (history.is_file() and len(history.read_text().splitlines()) >= 2):  # one epoch finished
            assert time.monotonic() < deadline and driver.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
        assert _workers_alive()
        driver.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        driver.wait(timeout=30)
        while _workers_alive():
            assert time.monotonic() - stopped < 30, _workers_alive()
            time.sleep(0.5)
    finally:
        if driver.poll() is None:
            driver.kill()  # by its PID: never leave it behind
            driver.wait()
    print(f"driver and workers gone {time.monotonic() - stopped:.1f} s after SIGTERM")
    assert driver.returncode != 0
    first_epoch = history.read_text().splitlines()[:2]
    again = _cli(cluster, args)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    rows = history.read_text().splitlines()
    assert rows[:2] == first_epoch and len(rows) == 1 + EPOCHS  # resumed: epoch 1 kept as it was, not run again


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


def test_a_lost_tuner_worker_is_restarted_and_its_trial_runs_again(cluster, tmp_path):
    record = tmp_path / "trials.jsonl"
    result, killed, total = _driver(cluster, "tune", tmp_path / "tune", record,
                                    lambda e: e["status"] == "RUNNING")  # the first worker to start a trial
    events = [json.loads(line) for line in record.read_text().splitlines()]
    again = [e for e in events if e["trial_id"] == killed["trial_id"] and e["status"] == "RUNNING"]
    assert [e["tuner_id"] for e in again] == [killed["tuner_id"]] * 2 and again[1]["pid"] != killed["pid"], events
    completed = [e["trial_id"] for e in events if e["status"] == "COMPLETED"]
    assert len(completed) == 3 and len(set(completed)) == 3, events  # each trial finished once
    assert result["completed"] == sorted(completed)
    print(f"\ntrial {killed['trial_id']} lost with {killed['tuner_id']} and run again; search {total:.1f} s")
