"""Atomic file and directory writes: a crash never leaves a half-written file behind."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_dir(final_path, *, overwrite=False):
    """Yield a temporary directory beside ``final_path``; rename it into place on success.

    On an exception the temporary directory is removed and ``final_path`` is untouched.
    Raises FileExistsError if ``final_path`` exists and ``overwrite`` is False.
    """
    final_path = Path(final_path)
    if final_path.exists() and not overwrite:
        raise FileExistsError(f"{final_path} already exists; pass overwrite=True to replace it.")
    final_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final_path.name}.tmp-", dir=final_path.parent))
    try:
        yield tmp
        if not overwrite:
            # Re-check at rename time: another writer may have created it meanwhile.
            # rename() refuses to replace a non-empty directory, so nothing is lost.
            if final_path.exists():
                raise FileExistsError(f"{final_path} was created by another writer; not overwritten.")
            try:
                os.rename(tmp, final_path)
            except OSError as err:
                raise FileExistsError(f"{final_path} already exists; not overwritten.") from err
        elif final_path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final_path.name}.old-", dir=final_path.parent))
            os.replace(final_path, old / "x")
            os.replace(tmp, final_path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final_path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def usual_permissions(path):
    """Give ``path`` (and, for a directory, everything in it) the modes a plain ``open`` / ``mkdir``
    gives under the process's umask: 0644 / 0755 at umask 022. For what `tempfile` made private."""
    umask = os.umask(0)  # the only way to read the umask is to set it
    os.umask(umask)
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~umask)
    for folder, dirs, files in os.walk(path):
        for name in dirs:
            os.chmod(os.path.join(folder, name), 0o777 & ~umask)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o666 & ~umask)


@contextlib.contextmanager
def atomic_file(final_path, mode="w"):
    """Open a temporary file beside ``final_path``; rename it into place when the block ends."""
    final_path = Path(final_path)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final_path.name}.tmp-", dir=final_path.parent)
    usual_permissions(tmp)  # mkstemp makes 0600
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
        os.replace(tmp, final_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path, obj):
    with atomic_file(path, "w") as handle:
        json.dump(json_data(obj), handle, indent=2, sort_keys=True)
        handle.write("\n")


def atomic_write_text(path, text):
    with atomic_file(path, "w") as handle:
        handle.write(text)


def json_data(value, *, finite=False):
    """``value`` as plain JSON data: numpy scalars and arrays, tuples and paths converted, dict keys
    that are numbers made strings. ``finite=True`` also turns NaN / inf (a diverged metric) into None.
    Anything else is left as it is (``json.dumps`` then says what it cannot write)."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k) if isinstance(k, (int, float, bool)) else k: json_data(v, finite=finite) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_data(v, finite=finite) for v in value]
    if isinstance(value, np.ndarray):
        return json_data(value.tolist(), finite=finite)
    if isinstance(value, np.generic):
        value = value.item()
    if finite and isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def load_keras_model(path, *, arg, compile=False, **kwargs):
    """Load the ``.keras`` file ``path``; a file that cannot be loaded is a ValueError naming ``arg``.

    Keras reports a truncated archive as "File not found"; this names the file, the argument and
    the reason instead (not a complete zip archive, a layer Keras does not know, ...). ``kwargs``
    go to ``keras.saving.load_model`` (``safe_mode``, ``custom_objects``).
    """
    import zipfile

    import keras

    if os.path.isfile(path) and str(path).endswith(".keras") and not zipfile.is_zipfile(path):
        raise ValueError(
            f"`{arg}` could not be loaded as a Keras model (not a complete .keras archive: truncated or "
            f"corrupt, not a zip file of {os.path.getsize(path)} bytes); save or copy the model again. "
            f"Received: {arg}={str(path)!r}"
        )
    try:
        return keras.saving.load_model(path, compile=compile, **kwargs)
    except Exception as err:  # corrupt archive, unknown layer, ...: say which file
        raise ValueError(f"`{arg}` could not be loaded as a Keras model ({type(err).__name__}: {err}). "
                         f"Received: {arg}={str(path)!r}") from err


@contextlib.contextmanager
def native_output_to(sink, fds=(1, 2)):
    """Point the C-level file descriptors ``fds`` (stdout 1, stderr 2) at the open file ``sink``
    for the block: what TensorFlow's and LiteRT's C++ code writes there, Python's ``sys.stdout``
    / ``sys.stderr`` too. The descriptors are restored afterwards, whatever happens."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in fds]
    try:
        for fd in fds:
            os.dup2(sink.fileno(), fd)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in zip(fds, saved):
            os.dup2(copy, fd)
            os.close(copy)


@contextlib.contextmanager
def quiet_native_output(fds=(1, 2), *, replay=True):
    """Keep the C++ lines written to ``fds`` off the terminal (`native_output_to` a temporary file);
    if the block fails and ``replay``, they are written to stderr before the error propagates."""
    with tempfile.TemporaryFile() as log:
        try:
            with native_output_to(log, fds):
                yield
        except BaseException:
            if replay:
                log.seek(0)
                sys.stderr.write(log.read().decode(errors="replace"))
                sys.stderr.flush()
            raise
