"""The cluster of a multi-worker run: ``TF_CONFIG``, waiting for the peers, stopping on signals.

``tf.distribute.MultiWorkerMirroredStrategy`` blocks inside TensorFlow's C++ runtime until every
worker of the cluster has started, printing nothing and, while it blocks, never returning to
Python, so Python's own SIGTERM / SIGINT handling cannot run. Before creating the strategy,
`wait_for_peers` therefore probes the other workers' addresses (plain TCP connections) from
Python: it logs a line every ``report_every`` seconds naming the workers not yet reachable and
gives up after ``timeout`` seconds with a clear error. Meanwhile this worker listens on its own
address, so that its peers see it too; the listener is closed just before TensorFlow binds the
port. `SignalGuard` makes SIGTERM and SIGINT end the process within a second at every stage
of a multi-worker run: the signals are blocked in the main thread (and so in every thread
TensorFlow starts) and a watcher thread waits for them with ``sigtimedwait`` and exits.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import socket
import threading
import time

from keras_cnn._log import last_words

logger = logging.getLogger(__name__)

TF_CONFIG_EXAMPLE = '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
DEFAULT_CLUSTER_TIMEOUT = 300.0
REPORT_EVERY = 10.0
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclasses.dataclass(frozen=True)
class WorkerInfo:
    """Where this process stands in the cluster.

    Attributes:
        task_type: "worker" or "chief" (None without a cluster).
        task_id: index of this task among its type.
        num_workers: number of training tasks (chief + workers; 1 without a cluster).
        is_chief: this task writes the checkpoints, logs, metrics and the export.
    """

    task_type: str | None
    task_id: int
    num_workers: int
    is_chief: bool


def cluster_info(tf_config=None):
    """Parse and check ``TF_CONFIG`` (the environment variable by default) -> `WorkerInfo`.

    ``TF_CONFIG`` is JSON: ``{"cluster": {"worker": ["host1:port", "host2:port"]},
    "task": {"type": "worker", "index": 0}}``; an optional ``"chief": ["host0:port"]`` task is
    the chief, otherwise worker 0 is. Without ``TF_CONFIG`` the process is a one-worker cluster.

    Args:
        tf_config: a JSON string or a dict; None reads ``os.environ["TF_CONFIG"]``.

    Returns:
        A `WorkerInfo`.

    Raises:
        ValueError: ``TF_CONFIG`` is not valid JSON, has no "worker"/"chief" task, names a
            task that is not in the cluster, or has parameter servers.

    Example:
        >>> cluster_info({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}})
        WorkerInfo(task_type='worker', task_id=1, num_workers=2, is_chief=False)
    """
    if tf_config is None:
        tf_config = os.environ.get("TF_CONFIG", "")
    if isinstance(tf_config, str):
        if not tf_config.strip():
            return WorkerInfo(None, 0, 1, True)
        try:
            parsed = json.loads(tf_config)
        except ValueError as err:
            raise ValueError(
                f"TF_CONFIG must be JSON like {TF_CONFIG_EXAMPLE} ({err}). Received: TF_CONFIG={tf_config!r}"
            ) from None
    else:
        parsed = tf_config
    if not isinstance(parsed, dict):
        raise ValueError(f"TF_CONFIG must be a JSON object. Received: TF_CONFIG={tf_config!r}")
    cluster = parsed.get("cluster") or {}
    task = parsed.get("task") or {}
    if not cluster:
        return WorkerInfo(None, 0, 1, True)
    if not isinstance(cluster, dict) or not all(isinstance(v, list) for v in cluster.values()):
        raise ValueError(
            'TF_CONFIG["cluster"] must map task types to lists of "host:port". '
            f"Received: TF_CONFIG={tf_config!r}"
        )
    if cluster.get("ps"):
        raise ValueError(
            "strategy='multi_worker' is synchronous all-reduce training: the cluster must not have "
            f"parameter servers ('ps'). Received: TF_CONFIG={tf_config!r}"
        )
    num_workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    if num_workers == 0:
        raise ValueError(
            f'TF_CONFIG["cluster"] must list "worker" (and/or "chief") tasks. Received: TF_CONFIG={tf_config!r}'
        )
    if len(cluster.get("chief", [])) > 1:
        raise ValueError(f"TF_CONFIG may have at most one chief. Received: TF_CONFIG={tf_config!r}")
    task_type = task.get("type")
    task_id = task.get("index", 0)
    if task_type not in ("worker", "chief"):
        raise ValueError(
            f'TF_CONFIG["task"]["type"] must be "worker" or "chief". Received: TF_CONFIG={tf_config!r}'
        )
    if not isinstance(task_id, int) or isinstance(task_id, bool) or not 0 <= task_id < len(cluster.get(task_type, [])):
        raise ValueError(
            f'TF_CONFIG["task"]["index"] must index cluster["{task_type}"] '
            f"(0..{len(cluster.get(task_type, [])) - 1}). Received: TF_CONFIG={tf_config!r}"
        )
    chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and not cluster.get("chief"))
    return WorkerInfo(task_type, int(task_id), num_workers, chief)


def _addresses(tf_config=None):
    """``{"worker:0": "host:port", ...}`` of the training tasks in ``TF_CONFIG`` and this task's name."""
    raw = os.environ.get("TF_CONFIG", "") if tf_config is None else tf_config
    parsed = json.loads(raw) if isinstance(raw, str) else raw
    cluster, task = parsed.get("cluster") or {}, parsed.get("task") or {}
    names = {f"{kind}:{i}": addr for kind in ("chief", "worker") for i, addr in enumerate(cluster.get(kind, []))}
    return names, f"{task.get('type')}:{task.get('index', 0)}"


def _split_address(address):
    host, _, port = str(address).rpartition(":")
    return (host.strip("[]") or "localhost"), int(port)


def _reachable(address, timeout=1.0):
    try:
        with socket.create_connection(_split_address(address), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _listen(address):
    """A plain listener on this worker's own port (None if it cannot bind: TensorFlow will say why)."""
    try:
        _, port = _split_address(address)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("", port))
        sock.listen(16)
        return sock
    except (OSError, ValueError):
        return None


class ClusterTimeoutError(TimeoutError):
    """Some workers of the cluster did not become reachable within the cluster timeout."""


class WorkerLostError(ConnectionError):
    """A worker of the cluster failed or became unreachable while the others trained."""


def wait_for_peers(timeout=DEFAULT_CLUSTER_TIMEOUT, *, tf_config=None, report_every=REPORT_EVERY, poll=0.5):
    """Block until every other worker in ``TF_CONFIG`` accepts a TCP connection.

    Args:
        timeout: seconds to wait before `ClusterTimeoutError`.
        tf_config: ``TF_CONFIG`` (JSON string or dict); None reads the environment.
        report_every: seconds between the lines naming the workers not yet reachable.
        poll: seconds between probes.

    Returns:
        Seconds waited.

    Raises:
        ClusterTimeoutError: naming the workers still unreachable after ``timeout`` seconds.
    """
    info = cluster_info(tf_config)
    if info.num_workers <= 1:
        return 0.0
    names, me = _addresses(tf_config)
    pending = {name: addr for name, addr in names.items() if name != me}
    listener = _listen(names[me]) if me in names else None
    started = last_report = time.monotonic()
    try:
        while True:
            pending = {n: a for n, a in pending.items() if not _reachable(a)}
            waited = time.monotonic() - started
            if not pending:
                return waited
            missing = ", ".join(f"{n} ({a})" for n, a in sorted(pending.items()))
            if waited >= timeout:
                raise ClusterTimeoutError(
                    f"{len(pending)} worker(s) of the cluster were not reachable after {waited:.0f} s: {missing}. "
                    f"Start them with the same command (each with its own TF_CONFIG task), or raise "
                    f"`cluster_timeout`. Received: cluster_timeout={timeout!r}"
                )
            if time.monotonic() - last_report >= report_every:
                last_report = time.monotonic()
                logger.info("%s: waiting for %d worker(s) not reachable yet: %s (%.0f s of %.0f s)",
                            me, len(pending), missing, waited, timeout)
            time.sleep(poll)
    finally:
        if listener is not None:
            listener.close()


class SignalGuard:
    """While active, SIGTERM / SIGINT end the process within a second, at any stage.

    In the main thread only (elsewhere it does nothing). For the block, both signals get their
    default action (terminate), so a thread that TensorFlow started earlier and that happens to
    receive one ends the process at once; and they are blocked in the calling thread (threads
    started meanwhile, TensorFlow's included, inherit that), where a watcher thread takes them
    with ``signal.sigtimedwait``, logs one line (`last_words`) and exits with ``128 + signal`` (``os._exit``:
    the main thread may be blocked inside TensorFlow and never return). A signal the parent
    process set to be ignored (``nohup``, ``&`` without job control) stays ignored. Leaving the
    block restores the previous mask and handlers.

    Args:
        enabled: False makes the guard a no-op.
        deadline_seconds: optional; after this long in the guarded block the watcher ends the
            process with an error line (exit 2), unless `clear_deadline` was called.
        what: the words of that error line.
    """

    def __init__(self, *, enabled=True, deadline_seconds=None, what=""):
        self.enabled = enabled and threading.current_thread() is threading.main_thread() and hasattr(
            signal, "pthread_sigmask"
        )
        self._deadline = None if deadline_seconds is None else time.monotonic() + deadline_seconds
        self._what = what
        self._active = False
        self._thread = None
        self._old_mask = None
        self._old_handlers = {}

    def clear_deadline(self):
        self._deadline = None

    def _watch(self, signals):
        while self._active:
            info = signal.sigtimedwait(signals, 0.2) if signals else time.sleep(0.2)
            if info is not None and self._active:
                name = signal.Signals(info.si_signo).name
                last_words(logger, logging.INFO, "stopped by %s", name)
                os._exit(128 + info.si_signo)
            if self._deadline is not None and time.monotonic() > self._deadline and self._active:
                last_words(logger, logging.ERROR, "%s", self._what)
                os._exit(2)

    def __enter__(self):
        if not self.enabled:
            return self
        signals = []
        for sig in _STOP_SIGNALS:
            old = signal.getsignal(sig)
            if old == signal.SIG_IGN:
                continue
            self._old_handlers[sig] = old
            signal.signal(sig, signal.SIG_DFL)
            signals.append(sig)
        self._old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
        self._active = True
        self._thread = threading.Thread(target=self._watch, args=(signals,), name="keras_cnn-signal-guard",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.enabled and self._active:
            self._active = False
            self._thread.join()
            signal.pthread_sigmask(signal.SIG_SETMASK, self._old_mask)
            for sig, handler in self._old_handlers.items():
                signal.signal(sig, handler)
        return False
