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

(``keras-cnn transfer`` and a tuning search have fingerprints of their own kind, in the same
directory layout: `keras_cnn.training.transfer`, `keras_cnn.tuning.search`.)

A directory that holds files but no ``config.json`` (a finished run whose configuration was
removed, another program's files) is refused: nothing there can be matched to the run.

One process at a time: `lock_run_dir` takes an exclusive ``flock`` on ``<run_dir>/.lock`` (with
the holder's pid in it) for the whole run; a second process is refused at once, naming that pid.
The kernel releases the lock when its process ends, however it ends, so a killed run never
blocks the next one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
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
LOCK_FILE = ".lock"
_BACKUP_WEIGHTS = "latest.weights.h5"  # keras.callbacks.BackupAndRestore's file
_BACKUP_METADATA = "training_metadata.json"


def _start_over(arg="out_dir", *, capital=False):
    text = (f"nothing was changed; pass resume=False to start over in {arg} (the run's files there are replaced), "
            f"or choose another {arg}")
    return text[0].upper() + text[1:] if capital else text


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


def file_fingerprint(path):
    """A file's identity for a fingerprint: its absolute path, size and modification time."""
    stat = os.stat(path)
    return {"source": os.path.abspath(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


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


def read_json_file(path, *, what, run_dir=None):
    """JSON of a run file, or a ValueError naming the file (and the run directory) when it is corrupt."""
    try:
        return json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(
            f"The run file {str(path)!r} ({what}) is corrupt: {err}. {_start_over(capital=True)}. "
            f"Received: out_dir={str(run_dir if run_dir is not None else Path(path).parent)!r}"
        ) from None


def backup_epoch(run_dir, *, checkpoint_dir=None):
    """Epochs finished according to ``fit``'s BackupAndRestore metadata in ``checkpoint_dir``
    (default ``run_dir/checkpoints``; 0 if none); a corrupt metadata file is an error naming it."""
    path = Path(checkpoint_dir if checkpoint_dir is not None else Path(run_dir) / CHECKPOINT_DIR) / _BACKUP_METADATA
    if not path.is_file():
        return 0
    meta = read_json_file(path, what="the checkpoint's epoch counter", run_dir=run_dir)
    try:
        epoch = int(meta["epoch"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(
            f"The run file {str(path)!r} (the checkpoint's epoch counter) is corrupt: no integer 'epoch'; "
            f"{_start_over()}. Received: out_dir={str(run_dir)!r}"
        ) from None
    _check_backup_weights(path.parent / _BACKUP_WEIGHTS, run_dir)
    return epoch


def _check_backup_weights(path, run_dir):
    """The weights BackupAndRestore restores from must be a complete HDF5 file (h5py's own
    "Unable to synchronously open file" names neither the file nor a way out)."""
    import h5py

    try:
        with h5py.File(path, "r"):
            pass
    except (OSError, ValueError) as err:
        reason = "is missing" if not path.exists() else f"cannot be read (truncated or corrupt: {err})"
        raise ValueError(
            f"The run file {str(path)!r} (the last epoch's checkpoint weights) {reason}; "
            f"{_start_over()}. Received: out_dir={str(run_dir)!r}"
        ) from None


def _contents(run_dir):
    """The visible entries of ``run_dir`` (none when it does not exist)."""
    if not run_dir.is_dir():
        return []
    return sorted(p.name + ("/" if p.is_dir() else "") for p in run_dir.iterdir() if not p.name.startswith("."))


def inspect_run_dir(run_dir, fingerprint, *, resume, result_file=METRICS_FILE, finished_digest=None, arg="out_dir"):
    """The `RunState` of ``run_dir`` for a run with ``fingerprint``.

    Args:
        result_file: the file a finished run writes last (``metrics.json``; a search's ``best.json``).
        finished_digest: the digest ``result_file`` must hold for the run to count as finished
            (default: ``digest(fingerprint)``).
        arg: the argument that names ``run_dir``, for the messages.

    Raises:
        ValueError: ``run_dir`` holds another run (naming the fields that differ), files without a
            ``config.json``, or a corrupt run file (naming it); never with ``resume=False``.
    """
    run_dir = Path(run_dir)
    if not resume:
        return RunState("new")
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file():
        found = _contents(run_dir)
        if found:
            shown = ", ".join(found[:8]) + (", ..." if len(found) > 8 else "")
            raise ValueError(
                f"`{arg}` holds files ({shown}) but no {CONFIG_FILE}, so they cannot be matched to this run "
                f"(a run whose {CONFIG_FILE} was removed, or files of another program); {_start_over(arg)}. "
                f"Received: {arg}={str(run_dir)!r}"
            )
        return RunState("new")
    config = read_json_file(config_path, what="the run's configuration and fingerprint", run_dir=run_dir)
    stored = config.get(FINGERPRINT_KEY) if isinstance(config, dict) else None
    if stored is None:
        raise ValueError(
            f"`{arg}` holds a run written without a run fingerprint (an older keras_cnn), so it cannot be "
            f"checked against this one; {_start_over(arg)}. Received: {arg}={str(run_dir)!r}"
        )
    diff = differences(stored, fingerprint)
    if diff:
        raise ValueError(
            f"`{arg}` holds a different run: {'; '.join(diff)}. {_start_over(arg, capital=True)}. "
            f"Received: {arg}={str(run_dir)!r}"
        )
    result_path = run_dir / result_file
    if result_path.is_file():
        metrics = read_json_file(result_path, what="the finished run's result", run_dir=run_dir)
        wanted = finished_digest or digest(fingerprint)
        if isinstance(metrics, dict) and metrics.get(DIGEST_KEY) == wanted:
            return RunState("finished", metrics=metrics)
    done = backup_epoch(run_dir)
    return RunState("resume", done_epochs=done)


def _missing_parents(path):
    """``path`` and those of its parents that do not exist, innermost first."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def _holder(fd):
    try:
        text = os.pread(fd, 64, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text if text.isdigit() else "unknown"


@contextlib.contextmanager
def lock_run_dir(run_dir, *, arg="out_dir"):
    """Hold ``run_dir`` for this process for the duration (``flock`` on ``run_dir/.lock``).

    The directory is created if needed, and removed again (with the parents this created) when
    it holds nothing but the lock at the end, e.g. after a refused argument.

    Raises:
        ValueError: another process holds ``run_dir`` (naming its pid); ``run_dir`` is a file.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"`{arg}` must be a directory; {str(run_dir)!r} is a file. Received: {arg}={str(run_dir)!r}")
    created = _missing_parents(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise ValueError(
            f"`{arg}` is in use by another keras_cnn process (pid {holder}); two runs in one directory would "
            f"mix their files. Wait for it to end, or choose another {arg}. Received: {arg}={str(run_dir)!r}"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield run_dir
    finally:
        if created and not _contents(run_dir):
            with contextlib.suppress(OSError):
                os.unlink(run_dir / LOCK_FILE)
                for path in created:
                    os.rmdir(path)
        os.close(fd)  # releases the lock


def start_run_dir(run_dir, config, *, state, result_file=METRICS_FILE):
    """Create ``run_dir`` and write ``config.json``; clear an old run's files when starting over.

    ``config`` gets the attempt's `RUN_ID_KEY`: the stored one when the run resumes, else a new one.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    previous = None
    if state.status == "new":
        shutil.rmtree(run_dir / CHECKPOINT_DIR, ignore_errors=True)
        for name in (HISTORY_FILE, result_file):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(run_dir / name)
    elif (run_dir / CONFIG_FILE).is_file():
        previous = read_json_file(run_dir / CONFIG_FILE, what="the run's arguments", run_dir=run_dir)
    from keras_cnn._io import atomic_write_json

    config[RUN_ID_KEY] = (previous or {}).get(RUN_ID_KEY) or uuid.uuid4().hex
    atomic_write_json(run_dir / CONFIG_FILE, config)


def clear_run_dir(run_dir):
    """Remove everything in ``run_dir`` but its lock (starting a run over in a directory whose
    files another program manages, e.g. keras-tuner's)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return
    for path in run_dir.iterdir():
        if path.name == LOCK_FILE:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


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
    "report.html": "the run report: what was trained, results per split and class, the most confidently wrong images "
                   "with Grad-CAM (one self-contained page; keras-cnn report <run> rebuilds it)",
    "samples": "a few held-out test images, labelled in the file name (keras-cnn predict --model <run> FILE)",
    "best_model.keras": "the search's best inference model (raw 0..255 pixels in)",
    "best.json": "every trial of the search, the best one, its test metrics and export path (written last)",
    "results.csv": "one row per trial: status, hyper-parameters, validation accuracy, params, MACs",
    "results.txt": "the results table",
    "accuracy_vs_macs.png": "validation accuracy against multiply-accumulates, the Pareto front marked",
    "oracle.json": "keras-tuner's search state (a rerun resumes from it)",
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
