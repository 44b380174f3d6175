"""Weights files: which kind a file is, what it holds, and loading Keras' own files all or nothing.

The kind is read from the content, never from the suffix (:func:`weights_file_format`,
:func:`is_safetensors_file`). When a file does not fit a model, :func:`mismatch_error` says in one
sentence which file, what it holds (the network, read from a ``.keras`` config or recognised from
the parameter count) and what was expected. :func:`load_keras_file` loads a Keras 3 file and holds
back the warnings Keras prints while it skips the layers of a file of another network: the caller
reports one sentence, and a load Keras only partly did is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
import zipfile

from keras_cnn._validation import check_existing_path
from keras_cnn.models.specs import MODEL_SPECS

__all__ = [
    "WEIGHTS_FORMATS",
    "is_safetensors_file",
    "load_keras_file",
    "mismatch_error",
    "weights_file_format",
]


def _short(err, limit=600):
    """Keras' load errors print whole variables; keep the start of the message."""
    text = str(err)
    return text if len(text) <= limit else text[:limit].rstrip() + " ..."

WEIGHTS_FORMATS = ("keras", "keras_weights_h5", "legacy_h5")


def weights_file_format(path):
    """Tell which kind of weights file ``path`` is, from its content.

    Returns:
        "keras" (a ``.keras`` zip archive), "keras_weights_h5" (Keras 3 ``.weights.h5``: groups
        "layers"/"vars") or "legacy_h5" (the keras.applications downloads and Keras 2 / legacy
        ``.h5`` files: a "layer_names" attribute at the top or under "model_weights").

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: it is none of these.
    """
    import h5py

    path = check_existing_path("weights", path)
    if zipfile.is_zipfile(path):
        return "keras"
    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as f:
            if "layer_names" in f.attrs:
                return "legacy_h5"
            if "model_weights" in f and "layer_names" in f["model_weights"].attrs:
                return "legacy_h5"
            if "layers" in f or "vars" in f:
                return "keras_weights_h5"
    raise ValueError(
        "`weights` must be a keras.applications .h5 file, or a .weights.h5 / .keras file saved "
        f"by Keras 3. Received: weights={path!r}, which is neither."
    )


def legacy_layer_names(path):
    """Names of the layers that hold weights in a legacy .h5 file, in file order."""
    import h5py

    with h5py.File(path, "r") as f:
        group = f if "layer_names" in f.attrs else f["model_weights"]
        names = [n.decode("utf8") if isinstance(n, bytes) else str(n) for n in group.attrs["layer_names"]]
        return [n for n in names if len(group[n].attrs.get("weight_names", [])) > 0]



@contextlib.contextmanager
def with_suffix(path, suffix):
    """``path`` itself if it ends in ``suffix``, else a temporary link to it that does."""
    if str(path).endswith(suffix):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="keras_cnn_weights_") as tmp:
        link = os.path.join(tmp, f"weights{suffix}")
        try:
            os.symlink(os.path.abspath(path), link)
        except OSError:
            import shutil

            shutil.copyfile(path, link)
        yield link



def _file_summary(path, kind):
    """``(tensors, parameters, network)`` held by a weights file; ``network`` may be None.

    ``network`` is read from a ``.keras`` file's config (its keras_cnn identity or model name)
    or recognised from the parameter count (our specs' counts with the top, and keras.applications'
    twins, which have the same counts).
    """
    network = None
    if kind == "keras":
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if "config.json" in names:
                config = json.loads(archive.read("config.json"))
                network = _network_in_config(config)
            if "model.weights.h5" in names:
                with tempfile.TemporaryDirectory(prefix="keras_cnn_weights_") as tmp:
                    inner = archive.extract("model.weights.h5", tmp)
                    return (*_h5_summary(inner), network)
        return 0, 0, network
    tensors, params = _h5_summary(path)
    for spec in MODEL_SPECS.values():
        if spec.num_params == params:
            network = f"{spec.name}" + (f" (keras.applications {spec.twin})" if spec.twin else "") + ", with its top"
            break
    return tensors, params, network


def _h5_summary(path):
    import h5py

    sizes = []

    def visit(_, obj):
        if isinstance(obj, h5py.Dataset):
            sizes.append(int(obj.size))

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return len(sizes), sum(sizes)


def _network_in_config(config):
    """The keras_cnn identity (or the model name) in a ``.keras`` file's config."""
    def walk(node):
        if isinstance(node, dict):
            if node.get("class_name") == "ModelIdentity" and isinstance(node.get("config"), dict):
                arch = node["config"].get("arch")
                if arch:
                    return arch
            for value in node.values():
                found = walk(value)
                if found:
                    return found
        elif isinstance(node, list):
            for value in node:
                found = walk(value)
                if found:
                    return found
        return None

    found = walk(config)
    if found:
        return found
    name = (config.get("config") or {}).get("name") if isinstance(config, dict) else None
    return f"a model named {name!r}" if name else None


def mismatch_error(path, model, arch, include_top, kind):
    """One short sentence: which file, what it holds, what was expected."""
    tensors, params, network = _file_summary(path, kind)
    holds = f"{network}: " if network else ""
    expected = (
        f"{arch or model.name} (include_top={include_top}, {len(model.weights)} tensors, "
        f"{model.count_params():,} parameters)"
    )
    message = (
        f"The weights file {os.fspath(path)!r} does not fit {expected}: it holds "
        f"{holds}{tensors} tensors, {params:,} parameters."
    )
    return ValueError(message)


def is_safetensors_file(path):
    """True if ``path`` is an existing file in the safetensors format (read from its header)."""
    try:
        if not os.path.isfile(path):
            return False
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                return False
            size = int.from_bytes(head, "little")
            if not 2 <= size <= 100_000_000 or size + 8 > os.path.getsize(path):
                return False
            header = json.loads(f.read(size))
        return isinstance(header, dict)
    except (OSError, ValueError, TypeError):
        return False


def check_readable(path):
    """The file's kind; ValueError naming ``weights`` for a truncated or unreadable file."""
    try:
        return weights_file_format(path)
    except (OSError, zipfile.BadZipFile, KeyError) as err:
        raise ValueError(
            f"`weights` file {os.fspath(path)!r} cannot be read (truncated, corrupt or not a "
            f"weights file: {type(err).__name__}: {_short(err, 160)}). Received: weights={os.fspath(path)!r}"
        ) from err


#: What Keras says when it leaves part of a model with its fresh weights (``saving_lib``): a nested
#: container without a group in the file, or objects that could not be loaded.
_PARTIAL_LOAD_SIGNS = ("freshly-initialized weights", "could not be loaded")


def load_keras_file(model, path, kind):
    """``model.load_weights`` for a Keras 3 ``.weights.h5`` / ``.keras`` file, all or nothing.

    Keras warns once per layer it cannot match (about a hundred lines for a file of another
    network) before it fails, or finishes with layers left as initialised. The warnings are held
    back: a load that fails, or that Keras reports as partial, raises one ``ValueError``; other
    warnings are passed on after a complete load.

    Raises:
        ValueError: (or Keras' ``KeyError``) the file does not fit ``model``.
    """
    with with_suffix(path, ".keras" if kind == "keras" else ".weights.h5") as p:
        with warnings.catch_warnings(record=True) as held:
            warnings.simplefilter("always")
            model.load_weights(p)
    partial = [w for w in held if any(sign in str(w.message) for sign in _PARTIAL_LOAD_SIGNS)]
    if partial:
        raise ValueError(
            f"Keras loaded the file only in part ({len(partial)} warning(s), first: "
            f"{_short(partial[0].message, 200)})"
        )
    for w in held:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
