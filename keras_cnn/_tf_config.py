"""``TF_CONFIG``: the cluster of a multi-worker run, parsed and checked with the standard library only.

Apart from `keras_cnn.training.cluster` (which waits for the peers and needs no more), the command
line reads it before TensorFlow loads, so that a malformed cluster is refused at once.
"""

from __future__ import annotations

import dataclasses
import json
import os

TF_CONFIG_EXAMPLE = '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'


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
        ValueError: ``TF_CONFIG`` is not valid JSON, names no cluster, has no "worker"/"chief"
            task, names a task that is not in the cluster, has an address that is not
            "host:port" (naming this worker's own), or has parameter servers.

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
        raise ValueError(
            'TF_CONFIG is set but names no cluster: its "cluster" must list the workers, e.g. '
            f"{TF_CONFIG_EXAMPLE}; unset TF_CONFIG to train as one worker. Received: TF_CONFIG={tf_config!r}"
        )
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
    for kind in ("chief", "worker"):
        for index, address in enumerate(cluster.get(kind, [])):
            if split_address(address) is None:
                whose = "this worker's own address" if (kind, index) == (task_type, task_id) else "an address"
                raise ValueError(
                    f'TF_CONFIG["cluster"]["{kind}"][{index}] is {whose} and must be "host:port" with a port '
                    f"1..65535. Received: {address!r} in TF_CONFIG={tf_config!r}"
                )
    return WorkerInfo(task_type, int(task_id), num_workers, is_chief_task(cluster, task_type, task_id))


def is_chief_task(cluster, task_type, task_id):
    """The chief of a ``{task type: [addresses]}`` cluster: its "chief" task, else worker 0."""
    return task_type == "chief" or (task_type == "worker" and task_id == 0 and not cluster.get("chief"))


def split_address(address):
    """``"host:port"`` -> ``(host, port)``; None when it is not that form or the port is out of range."""
    host, colon, port = str(address).rpartition(":")
    if not colon or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return (host.strip("[]") or "localhost"), int(port)
