"""Atomic file and directory writes: a crash never leaves a half-written file behind."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
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


@contextlib.contextmanager
def atomic_file(final_path, mode="w"):
    """Open a temporary file beside ``final_path``; rename it into place when the block ends."""
    final_path = Path(final_path)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final_path.name}.tmp-", dir=final_path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
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
        json.dump(obj, handle, indent=2, sort_keys=True, default=_json_default)
        handle.write("\n")


def atomic_write_text(path, text):
    with atomic_file(path, "w") as handle:
        handle.write(text)


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def load_keras_model(path, *, arg, compile=False):
    """Load the ``.keras`` file ``path``; a file that cannot be loaded is a ValueError naming ``arg``.

    Keras reports a truncated archive as "File not found"; this names the file, the argument and
    Keras' reason instead (corrupt or truncated archive, a layer it does not know, ...).
    """
    import keras

    try:
        return keras.models.load_model(path, compile=compile)
    except Exception as err:  # corrupt archive, unknown layer, ...: say which file
        raise ValueError(f"`{arg}` could not be loaded as a Keras model ({type(err).__name__}: {err}). "
                         f"Received: {arg}={str(path)!r}") from err
