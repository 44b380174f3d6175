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

import json
import logging
import os
import signal
import socket
import threading
import time

from keras_cnn._log import last_words
from keras_cnn._tf_config import TF_CONFIG_EXAMPLE, WorkerInfo, cluster_info, split_address  # noqa: F401

logger = logging.getLogger(__name__)

DEFAULT_CLUSTER_TIMEOUT = 300.0
REPORT_EVERY = 10.0
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _addresses(tf_config=None):
    """``{"worker:0": "host:port", ...}`` of the training tasks in ``TF_CONFIG`` and this task's name."""
    raw = os.environ.get("TF_CONFIG", "") if tf_config is None else tf_config
    parsed = json.loads(raw) if isinstance(raw, str) else raw
    cluster, task = parsed.get("cluster") or {}, parsed.get("task") or {}
    names = {f"{kind}:{i}": addr for kind in ("chief", "worker") for i, addr in enumerate(cluster.get(kind, []))}
    return names, f"{task.get('type')}:{task.get('index', 0)}"


def _reachable(address, timeout=1.0):
    try:
        with socket.create_connection(split_address(address), timeout=timeout):
            return True
    except (OSError, TypeError):
        return False


def _listen(address):
    """A plain listener on this worker's own port (None if it cannot bind: TensorFlow will say why)."""
    try:
        _, port = split_address(address)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("", port))
        sock.listen(16)
        return sock
    except (OSError, TypeError):
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
