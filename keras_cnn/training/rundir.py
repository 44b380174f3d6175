"""A run directory's identity and state: the run fingerprint, resume / finished / refuse.

A run directory (``runs/<model>`` by default) stores the *fingerprint* of the run that wrote it
in ``config.json``: what determines the trained model. A rerun with the same fingerprint either
resumes an unfinished run from its checkpoint or, when the run finished (``metrics.json`` with
the same fingerprint digest), returns the stored result without training or exporting again. A
rerun with a different fingerprint is refused with the fields that differ, so that a model
trained on one dataset is never silently kept for another.

Fingerprint fields:

* ``model``, ``model_kwargs``, ``aux_heads``, ``image_size``: the network and its build arguments;
* ``data``: the source and a content fingerprint (image folders: the number of files and a
  SHA-256 over every file's relative path, size and modification time; ``tfds:NAME``: the name
  and the dataset version; ``digits``: the name; a ``DataBundle``: its source, class names,
  split sizes and image shape);
* ``recipe``: every recipe field (optimizer, schedule, epochs, batch size, ...);
* ``augment``, ``augment_on``, ``seed``, ``max_examples``, ``validation_split``,
  ``early_stopping``, ``mixed_precision``;
* ``engine``: "fit" (strategies "default" / "mirrored") or "multi_worker" (the custom loop,
  whose checkpoints ``fit`` cannot read).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
CHECKPOINT_DIR = "checkpoints"
README_FILE = "README.txt"
FINGERPRINT_KEY = "fingerprint"
DIGEST_KEY = "fingerprint_digest"
#: One id per training attempt: new when a run starts (or starts over), kept when it resumes; the
#: export records it, so a rerun after a kill between the export and metrics.json reuses that export.
RUN_ID_KEY = "run_id"
_BACKUP_METADATA = "training_metadata.json"
_START_OVER = "pass resume=False to start over in out_dir, or choose another out_dir"


@dataclasses.dataclass(frozen=True)
class RunState:
    """What a run directory holds for a given fingerprint.

    Attributes:
        status: "new" (nothing to resume), "resume" (same fingerprint, unfinished) or "finished"
            (same fingerprint, finished: ``metrics`` holds the stored result).
        done_epochs: epochs checkpointed by a ``fit`` run (0 otherwise; the multi-worker loop
            reads its own checkpoints).
        metrics: the stored metrics of a finished run (None otherwise).
    """

    status: str
    done_epochs: int = 0
    metrics: dict | None = None


def _directory_fingerprint(root):
    digest = hashlib.sha256()
    count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = os.path.join(dirpath, name)
            try:
                stat = os.stat(path)
            except OSError:
                continue
            rel = os.path.relpath(path, root)
            digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
            count += 1
    return {"files": count, "digest": digest.hexdigest()}


def _tfds_version(name):
    try:
        import tensorflow_datasets as tfds

        return str(tfds.builder(name).version)  # "NAME" or "NAME:VERSION", as tfds.load takes it
    except Exception:  # noqa: BLE001 - an unknown name fails later, in load_data, with a clear error
        return None


def data_fingerprint(data):
    """The content fingerprint of a data source (see the module docstring)."""
    if hasattr(data, "train") and hasattr(data, "class_names"):  # a DataBundle
        return {
            "source": str(getattr(data, "source", "") or "bundle"),
            "class_names": [str(c) for c in data.class_names],
            "image_shape": [int(d) for d in data.image_shape],
            "sizes": [int(data.num_train), int(data.num_val or 0), int(data.num_test or 0)],
        }
    source = os.fspath(data)
    if source == "digits":  # the embedded digits (load_data's order: before any folder of that name)
        return {"source": source}
    if source.startswith("tfds:"):
        return {"source": source, "version": _tfds_version(source[len("tfds:"):])}
    if os.path.isdir(source):
        return {"source": os.path.abspath(source), **_directory_fingerprint(source)}
    return {"source": source}


def digest(fingerprint):
    """A short stable hash of a fingerprint dict."""
    text = json.dumps(fingerprint, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _flatten(obj, prefix=""):
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: obj}


def differences(old, new):
    """``["field (stored X, now Y)", ...]`` between two fingerprints, dotted names for nested fields."""
    a, b = _flatten(old or {}), _flatten(new)
    out = []
    for key in sorted(set(a) | set(b)):
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            out.append(f"{key} (stored {a.get(key, '<absent>')!r}, now {b.get(key, '<absent>')!r})")
    return out


def read_json_file(path, *, what):
    """JSON of a run file, or a ValueError naming the file when it is corrupt."""
    try:
        return json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(
            f"The run file {str(path)!r} ({what}) is corrupt: {err}. Delete it, or {_START_OVER}. "
            f"Received: out_dir={str(Path(path).parent)!r}"
        ) from None


def backup_epoch(run_dir):
    """Epochs finished according to ``fit``'s BackupAndRestore metadata (0 if none); a corrupt
    metadata file is an error naming it."""
    path = Path(run_dir) / CHECKPOINT_DIR / _BACKUP_METADATA
    if not path.is_file():
        return 0
    meta = read_json_file(path, what="the checkpoint's epoch counter")
    try:
        return int(meta["epoch"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(
            f"The run file {str(path)!r} (the checkpoint's epoch counter) is corrupt: no integer 'epoch'. "
            f"Delete it, or {_START_OVER}. Received: out_dir={str(run_dir)!r}"
        ) from None


def inspect_run_dir(run_dir, fingerprint, *, resume):
    """The `RunState` of ``run_dir`` for a run with ``fingerprint``.

    Raises:
        ValueError: ``run_dir`` holds another run (naming the fields that differ), or one of its
            run files is corrupt (naming the file); never with ``resume=False``.
    """
    run_dir = Path(run_dir)
    if not resume:
        return RunState("new")
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file():
        if (run_dir / CHECKPOINT_DIR).is_dir():
            raise ValueError(
                f"`out_dir` holds checkpoints but no {CONFIG_FILE}: they cannot be matched to this run; "
                f"{_START_OVER}. Received: out_dir={str(run_dir)!r}"
            )
        return RunState("new")
    config = read_json_file(config_path, what="the run's configuration and fingerprint")
    stored = config.get(FINGERPRINT_KEY) if isinstance(config, dict) else None
    if stored is None:
        raise ValueError(
            f"`out_dir` holds a run written without a run fingerprint (an older keras_cnn), so it cannot be "
            f"checked against this one; {_START_OVER}. Received: out_dir={str(run_dir)!r}"
        )
    diff = differences(stored, fingerprint)
    if diff:
        raise ValueError(
            f"`out_dir` holds a different run: {'; '.join(diff)}. Nothing was changed; {_START_OVER}. "
            f"Received: out_dir={str(run_dir)!r}"
        )
    metrics_path = run_dir / METRICS_FILE
    if metrics_path.is_file():
        metrics = read_json_file(metrics_path, what="the finished run's metrics")
        if isinstance(metrics, dict) and metrics.get(DIGEST_KEY) == digest(fingerprint):
            return RunState("finished", metrics=metrics)
    done = backup_epoch(run_dir)
    return RunState("resume", done_epochs=done)


def start_run_dir(run_dir, config, *, state):
    """Create ``run_dir`` and write ``config.json``; clear an old run's files when starting over.

    ``config`` gets the attempt's `RUN_ID_KEY`: the stored one when the run resumes, else a new one.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    previous = None
    if state.status == "new":
        shutil.rmtree(run_dir / CHECKPOINT_DIR, ignore_errors=True)
        for name in (HISTORY_FILE, METRICS_FILE):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(run_dir / name)
    elif (run_dir / CONFIG_FILE).is_file():
        previous = read_json_file(run_dir / CONFIG_FILE, what="the run's arguments")
    from keras_cnn._io import atomic_write_json

    config[RUN_ID_KEY] = (previous or {}).get(RUN_ID_KEY) or uuid.uuid4().hex
    atomic_write_json(run_dir / CONFIG_FILE, config)


def drop_checkpoints(run_dir):
    """Remove a finished run's checkpoints; True if there were any."""
    path = Path(run_dir) / CHECKPOINT_DIR
    if not path.exists():
        return False
    shutil.rmtree(path, ignore_errors=True)
    return True


_DESCRIPTIONS = {
    "model.keras": ("the trained inference model (raw 0..255 pixels in): keras_cnn.load_model(RUN_DIR), or "
                    "keras.models.load_model after `import keras_cnn` (which registers its layers)"),
    "class_names.json": "class index -> name",
    CONFIG_FILE: "the run's arguments, recipe and fingerprint (a rerun with the same ones resumes or reports)",
    METRICS_FILE: "held-out accuracy, loss, per-class accuracy, confusion matrix, timings, export path",
    HISTORY_FILE: "one row per finished epoch (loss, accuracy, validation, learning rate, seconds)",
    "learning_curves.png": "loss and accuracy per epoch",
    "confusion_matrix.png": "the held-out confusion matrix",
    "logs": "TensorBoard logs (tensorboard --logdir <this directory>/logs)",
    CHECKPOINT_DIR: "per-epoch checkpoints (kept with --keep-checkpoints)",
    "samples": "a few held-out test images, labelled in the file name (keras-cnn predict --model <run> FILE)",
}


def write_readme(run_dir, *, title):
    """``README.txt``: one line per file of the run directory, saying what it holds."""
    from keras_cnn._io import atomic_write_text

    run_dir = Path(run_dir)
    lines = [title, "", "This directory holds:"]
    for name, text in _DESCRIPTIONS.items():
        if (run_dir / name).exists():
            lines.append(f"  {name + ('/' if (run_dir / name).is_dir() else ''):<22} {text}")
    atomic_write_text(run_dir / README_FILE, "\n".join(lines) + "\n")
