"""Run a multi-worker `keras-cnn train` on this machine: N worker processes on 127.0.0.1.

Each worker gets its own TF_CONFIG (a free local port each) and runs
``python -m keras_cnn train <your arguments> --strategy multi_worker``. Worker output is
prefixed with ``[w0]``, ``[w1]``, ...; worker 0 is the chief (it prints the progress and writes the
run directory). If a worker fails, the others are stopped (synchronous training cannot go on
without it) and, with ``--restarts N``, all of them are started again, up to N times: they resume
after the last finished epoch from the chief's checkpoint.

Examples:
    python apps/distributed/launch_local.py --workers 2 -- lenet5 --epochs 5 --out runs/lenet5_mw --no-export
    python apps/distributed/launch_local.py --workers 2 --restarts 3 -- resnet18 --data tfds:cifar10 \\
        --image-size 32 --batch-size 256 --out runs/resnet18_mw

On several machines use one TF_CONFIG per host instead (apps/distributed/run_host.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pump(stream, prefix):
    for line in iter(stream.readline, ""):
        sys.stdout.write(f"{prefix} {line}")
        sys.stdout.flush()
    stream.close()


def run_cluster(num_workers, train_args, *, python=sys.executable, env=None):
    """Start ``num_workers`` local workers; return their exit codes (a failed one stops the rest)."""
    workers = [f"127.0.0.1:{free_port()}" for _ in range(num_workers)]
    procs, pumps = [], []
    try:
        for index in range(num_workers):
            worker_env = {**(env or os.environ), "PYTHONUNBUFFERED": "1"}
            worker_env["TF_CONFIG"] = json.dumps(
                {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
            )
            proc = subprocess.Popen(
                [python, "-m", "keras_cnn", "train", *train_args, "--strategy", "multi_worker"],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=worker_env,
            )
            procs.append(proc)
            pump = threading.Thread(target=_pump, args=(proc.stdout, f"[w{index}]"), daemon=True)
            pump.start()
            pumps.append(pump)
        while True:
            codes = [p.poll() for p in procs]
            if any(c not in (None, 0) for c in codes) or all(c is not None for c in codes):
                break
            time.sleep(0.5)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pump in pumps:
            pump.join(timeout=5)
    return [p.returncode for p in procs]


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Run `keras-cnn train ... --strategy multi_worker` as N local worker processes.",
        usage="%(prog)s [--workers N] [--restarts N] -- MODEL [keras-cnn train options]",
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument(
        "--restarts", type=int, default=0, help="start the cluster again after a failure, up to N times"
    )
    parser.add_argument("train_args", nargs=argparse.REMAINDER, help="arguments of `keras-cnn train`")
    args = parser.parse_args(argv)
    train_args = args.train_args[1:] if args.train_args[:1] == ["--"] else args.train_args
    if args.workers < 1 or args.restarts < 0 or not train_args:
        parser.error("need --workers >= 1, --restarts >= 0 and the `keras-cnn train` arguments after --")
    if "--strategy" in train_args:
        parser.error("leave out --strategy: the launcher adds --strategy multi_worker")
    for attempt in range(args.restarts + 1):
        codes = run_cluster(args.workers, train_args)
        if all(c == 0 for c in codes):
            return 0
        print(f"[launcher] worker exit codes {codes}; attempt {attempt + 1} of {args.restarts + 1} failed", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
