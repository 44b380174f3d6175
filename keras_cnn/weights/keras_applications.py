"""ImageNet weights of the keras.applications twins: the files keras.applications downloads, ported.

The six "Custom" networks (VGG16/19, ResNet50/101/152, InceptionV3) mirror a keras.applications
model layer for layer, so the ImageNet weights Keras publishes fit them. They are obtained
exactly as keras.applications obtains them -- same URL, file name, md5 hash and cache folder
(``$KERAS_HOME/models``, default ``~/.keras/models``), through `keras.utils.get_file`, read from
the network's `keras_cnn.models.WeightsSpec` -- and then ported:

1. build the keras.applications twin with ``weights=None`` and our input shape, top and classes;
2. load the ``.h5`` file into it with Keras' legacy loader (by layer order, as keras does);
3. `keras_cnn.weights.port.port_weights` copies every leaf layer's weights (Conv2D,
   BatchNormalization, Dense) into our composite layers, checking each shape, and fails naming
   the first mismatch.

Offline, a file already in the Keras cache is used without any network access. A missing file
that cannot be downloaded raises :class:`ImageNetWeightsUnavailableError` naming the file, its
URL and where to put it; the download runs under a socket timeout, so nothing hangs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import tempfile

import keras

from keras_cnn._compat import keras_ as keras_compat
from keras_cnn.models.specs import MODEL_SPECS, WEIGHTS_SPECS
from keras_cnn.weights.files import legacy_layer_names, load_keras_file, mismatch_error
from keras_cnn.weights.port import port_weights

__all__ = [
    "DOWNLOAD_TIMEOUT",
    "IMAGENET_TWINS",
    "ImageNetWeightsUnavailableError",
    "WeightsFile",
    "build_twin",
    "get_imagenet_weights_file",
    "imagenet_cache_path",
    "imagenet_weights_file",
    "load_imagenet_weights",
]

#: Seconds a stalled connection may block the download (per socket operation, not in total).
#: Overridden by the environment variable ``KERAS_CNN_DOWNLOAD_TIMEOUT``.
DOWNLOAD_TIMEOUT = 30.0


def _keras_weights_specs():
    return [w for w in WEIGHTS_SPECS.values() if w.source == "keras.applications"]


#: The keras.applications classes whose ImageNet weights this package can port (from the
#: weights records of `keras_cnn.models.specs`).
IMAGENET_TWINS = tuple(w.twin for w in _keras_weights_specs())


class ImageNetWeightsUnavailableError(FileNotFoundError):
    """The ImageNet weights file is not in the Keras cache and could not be downloaded.

    Attributes:
        spec: the :class:`WeightsFile` that was needed.
        cache_path: where Keras looks for it.
    """

    def __init__(self, message, spec=None, cache_path=None):
        super().__init__(message)
        self.spec = spec
        self.cache_path = cache_path


@dataclasses.dataclass(frozen=True)
class WeightsFile:
    """One keras.applications weights file, as keras.applications fetches it.

    Attributes:
        twin: keras.applications class name, e.g. "ResNet50".
        include_top: whether the file holds the classifier.
        fname: file name in the cache, e.g. "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5".
        url: download URL (keras.applications' constant).
        file_hash: md5 hash keras checks the file against.
    """

    twin: str
    include_top: bool
    fname: str
    url: str
    file_hash: str


def imagenet_weights_file(twin, include_top=True):
    """The keras.applications weights file of ``twin`` (a keras class or registry name).

    Read from the network's weights record (`keras_cnn.models.get_weights_spec`), whose file
    names, URLs and md5 hashes are those keras.applications passes to `keras.utils.get_file`
    (a test compares them with the installed Keras).

    Args:
        twin: "VGG16", "VGG19", "ResNet50", "ResNet101", "ResNet152", "InceptionV3", or a
            registry name / builder name whose spec has that ``twin``.
        include_top: the file with the classifier (True) or the "notop" file. Default True.

    Returns:
        A :class:`WeightsFile`.

    Example:
        >>> imagenet_weights_file("ResNet50", include_top=False).fname
        'resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5'
    """
    twin = resolve_twin(twin)
    return _weights_file(next(w for w in _keras_weights_specs() if w.twin == twin), include_top)


def _weights_file(record, include_top):
    """The :class:`WeightsFile` of a keras.applications `WeightsSpec` for ``include_top``."""
    f = record.file(include_top)
    return WeightsFile(record.twin or resolve_twin(record.arch), bool(include_top), f.fname, f.url, f.file_hash)


def resolve_twin(name):
    """Map a keras class name, a registry name or a builder name to a twin in IMAGENET_TWINS."""
    if name in IMAGENET_TWINS:
        return name
    spec = MODEL_SPECS.get(registry_name(name))
    twin = spec.twin if spec is not None else None
    if twin not in IMAGENET_TWINS:
        raise ValueError(
            "ImageNet weights exist only for the keras.applications twins "
            f"{list(IMAGENET_TWINS)} (VGG16Custom, ..., InceptionV3Custom). Received: arch={name!r}"
        )
    return twin


def imagenet_cache_path(fname, cache_dir=None):
    """Where `keras.utils.get_file` keeps ``fname`` with ``cache_subdir="models"``.

    Keras uses ``cache_dir`` (default ``$KERAS_HOME``, else ``~/.keras``) and falls back to
    ``/tmp/.keras`` when that folder is missing or not writable; this mirrors that rule.
    """
    base = os.path.expanduser(cache_dir if cache_dir is not None else keras_compat.keras_home())
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    return os.path.join(base, "models", fname)


def _preferred_cache_path(fname, cache_dir=None):
    base = os.path.expanduser(cache_dir if cache_dir is not None else keras_compat.keras_home())
    return os.path.join(base, "models", fname)


@contextlib.contextmanager
def _socket_timeout(seconds):
    """Set a default socket timeout (only if none is set) for the duration of the block."""
    old = socket.getdefaulttimeout()
    if old is None and seconds:
        socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _download_timeout(timeout):
    if timeout is not None:
        return float(timeout)
    env = os.environ.get("KERAS_CNN_DOWNLOAD_TIMEOUT")
    if env:
        try:
            return float(env)
        except ValueError:
            raise ValueError(
                f"`KERAS_CNN_DOWNLOAD_TIMEOUT` must be a number of seconds. Received: {env!r}"
            ) from None
    return DOWNLOAD_TIMEOUT


def get_imagenet_weights_file(twin, include_top=True, *, cache_dir=None, timeout=None):
    """Path of the keras.applications ImageNet weights file, downloading it if needed.

    Calls ``keras.utils.get_file(fname, url, cache_subdir="models", file_hash=md5)`` exactly as
    keras.applications does, so a file already in the Keras cache with the right hash is used
    offline and a file downloaded here serves ``keras.applications`` too.

    Differences from keras, all on the failure path: the download runs under a socket timeout;
    a failure raises :class:`ImageNetWeightsUnavailableError` saying which file is needed and
    where to put it; and a cached file whose hash does not match (keras then re-downloads it,
    as we do) is kept, not deleted, when that re-download fails.

    Args:
        twin: keras.applications class name ("ResNet50", ...) or registry / builder name.
        include_top: the file with the classifier, or the "notop" one. Default True.
        cache_dir: Keras cache root; default ``$KERAS_HOME`` or ``~/.keras`` (as keras).
        timeout: seconds a stalled socket may block; default ``KERAS_CNN_DOWNLOAD_TIMEOUT``
            or :data:`DOWNLOAD_TIMEOUT` (30).

    Returns:
        The local path of the verified file.

    Raises:
        ImageNetWeightsUnavailableError: not cached and the download failed.
    """
    return _fetch(imagenet_weights_file(twin, include_top), cache_dir=cache_dir, timeout=timeout)


def _fetch(spec, *, cache_dir=None, timeout=None):
    """The local path of the :class:`WeightsFile` ``spec`` (see :func:`get_imagenet_weights_file`)."""
    target = imagenet_cache_path(spec.fname, cache_dir)
    aside = None
    if os.path.exists(target):
        if keras_compat.validate_file(target, spec.file_hash):
            return target  # what get_file returns for a verified cached file, without hashing twice
        # keras re-downloads a cached file whose hash differs, and deletes it if that fails;
        # keep the user's file aside so that a failed download loses nothing.
        aside = f"{target}.hash-mismatch"
        os.replace(target, aside)
    try:
        with _socket_timeout(_download_timeout(timeout)):
            path = keras.utils.get_file(
                spec.fname, spec.url, cache_subdir="models", file_hash=spec.file_hash, cache_dir=cache_dir
            )
    except BaseException as err:
        if aside is not None:
            os.replace(aside, target)
        if not isinstance(err, Exception):
            raise
        raise ImageNetWeightsUnavailableError(
            _unavailable_message(spec, target, cache_dir, err, hash_mismatch=aside is not None),
            spec=spec,
            cache_path=target,
        ) from err
    if aside is not None:
        os.remove(aside)
    return path


def _unavailable_message(spec, target, cache_dir, err, *, hash_mismatch):
    preferred = _preferred_cache_path(spec.fname, cache_dir)
    where = preferred
    if os.path.abspath(preferred) != os.path.abspath(target):
        where += f" (while {os.path.dirname(os.path.dirname(preferred))} is missing or read-only Keras uses {target})"
    found = (
        f"A file {target} is in the cache but its md5 is not {spec.file_hash} (incomplete or "
        "another file); it was kept. "
        if hash_mismatch
        else ""
    )
    return (
        f"ImageNet weights for {spec.twin} (include_top={spec.include_top}) are not in the Keras "
        f"cache and could not be downloaded ({type(err).__name__}: {err}). {found}"
        f"Needed file: {spec.fname} from {spec.url} (md5 {spec.file_hash}). "
        f"Download it where there is internet and put it at {where}, "
        f"or pass weights='/path/to/{spec.fname}'."
    )


def _model_classes(model):
    return int(model.output_shape[-1])


def build_twin(twin, *, include_top, input_shape=None, classes=1000):
    """Build the keras.applications ``twin`` with ``weights=None`` (random weights).

    Args:
        twin: keras.applications class name ("ResNet50", ...) or registry / builder name.
        include_top: with the classifier.
        input_shape: e.g. (224, 224, 3); None for keras' default.
        classes: classifier width (with the top).

    Returns:
        The keras.applications `keras.Model`.
    """
    twin = resolve_twin(twin)
    kwargs = dict(weights=None, include_top=include_top, input_shape=input_shape)
    if include_top:
        kwargs["classes"] = classes
    return getattr(keras.applications, twin)(**kwargs)


def main_path(model):
    """``model`` itself, or for a model with auxiliary heads (dict output with "predictions")
    the sub-model computing "predictions" only: the heads keras.applications lacks keep
    their own initialisation."""
    outputs = model.output
    if isinstance(outputs, dict):
        if "predictions" not in outputs:
            raise ValueError(
                "keras.applications weights fit a single-output model or one whose dict output "
                f"has a 'predictions' entry. Received: outputs {sorted(outputs)}"
            )
        return keras.Model(model.inputs, outputs["predictions"], name=model.name)
    if isinstance(outputs, (list, tuple)):
        raise ValueError(
            f"keras.applications weights fit a single-output model; {model.name!r} has {len(outputs)} outputs."
        )
    return model


def _twin_for(model, twin, include_top):
    shape = tuple(model.input_shape[1:])
    classes = _model_classes(model) if include_top else 1000
    return build_twin(twin, include_top=include_top, input_shape=shape, classes=classes)


def load_legacy_into_twin(model, path, twin, include_top):
    """Load a keras.applications-layout .h5 into the keras twin (by order), then port it."""
    target = main_path(model)
    source = _twin_for(target, twin, include_top)
    file_layers = legacy_layer_names(path)
    twin_layers = [layer.name for layer in source.layers if layer.weights]
    if len(file_layers) != len(twin_layers):
        has_top = "predictions" in file_layers
        raise ValueError(
            f"The weights file {path!r} holds {len(file_layers)} layers with weights "
            f"({'with' if has_top else 'without'} a classifier top), but keras.applications."
            f"{twin}(include_top={include_top}) has {len(twin_layers)}. "
            + (
                f"Build the model with include_top={has_top}, or use the "
                f"{imagenet_weights_file(twin, include_top).fname} file."
                if has_top != include_top
                else "It is not a weights file of this network."
            )
        )
    try:
        source.load_weights(path)
    except ValueError as err:
        raise mismatch_error(path, target, f"keras.applications.{twin}", include_top, "legacy_h5") from err
    port_weights(source, target)
    return model


def load_keras_file_into_twin(model, path, kind, twin, include_top):
    """A Keras 3 file saved from the keras.applications twin: load it there, then port."""
    target = main_path(model)
    source = _twin_for(target, twin, include_top)
    load_keras_file(source, path, kind)
    port_weights(source, target)


def load_imagenet_weights(model, *, arch, include_top, cache_dir=None, timeout=None):
    """Give ``model`` (a keras.applications twin of ours) the ImageNet weights.

    Fetches the file as keras.applications does (:func:`get_imagenet_weights_file`), loads it
    into the keras twin built with the same input shape and top, and ports it
    (`keras_cnn.weights.port.port_weights`).

    Args:
        model: e.g. a ``ResNet50Custom(weights=None)`` model.
        arch: registry name or builder name ("resnet50" / "ResNet50Custom") or keras class name.
        include_top: whether ``model`` has the 1000-class classifier.
        cache_dir: Keras cache root (default ``$KERAS_HOME`` / ``~/.keras``).
        timeout: download socket timeout in seconds.

    Returns:
        ``model``.

    Raises:
        ValueError: ``arch`` has no keras.applications twin.
        ImageNetWeightsUnavailableError: the file is not cached and cannot be downloaded.
    """
    twin = resolve_twin(arch)
    path = get_imagenet_weights_file(twin, include_top, cache_dir=cache_dir, timeout=timeout)
    return load_legacy_into_twin(model, path, twin, include_top)


def load_keras_record(model, record, *, include_top):
    """Load the keras.applications weights of the `WeightsSpec` ``record`` (its own files)."""
    spec = _weights_file(record, include_top)
    return load_legacy_into_twin(model, _fetch(spec), spec.twin, include_top)


def registry_name(arch):
    """Registry name for a registry or builder name (None if unknown)."""
    for spec in MODEL_SPECS.values():
        if arch in (spec.name, spec.builder_path.rpartition(":")[2]):
            return spec.name
    return None
