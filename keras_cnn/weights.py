"""Weights: ImageNet weights of the keras.applications twins, and files saved by this package.

The six "Custom" networks (VGG16/19, ResNet50/101/152, InceptionV3) mirror a keras.applications
model layer for layer, so the ImageNet weights Keras publishes fit them. They are obtained
exactly as keras.applications obtains them -- same URL, file name, md5 hash and cache folder
(``$KERAS_HOME/models``, default ``~/.keras/models``), through `keras.utils.get_file` -- and
then ported:

1. build the keras.applications twin with ``weights=None`` and our input shape, top and classes;
2. load the ``.h5`` file into it with Keras' legacy loader (by layer order, as keras does);
3. :func:`port_weights` copies every leaf layer's weights (Conv2D, BatchNormalization, Dense)
   into our composite layers, checking each shape, and fails naming the first mismatch.

``weights=<path>`` accepts a keras.applications ``.h5`` file (with or without the top), and
the ``.weights.h5`` / ``.keras`` files this package's models save; the kind is read from the
file itself (:func:`weights_file_format`), not from its suffix.

Offline, a file already in the Keras cache is used without any network access. A missing file
that cannot be downloaded raises :class:`ImageNetWeightsUnavailableError` naming the file, its
URL and where to put it; the download runs under a socket timeout, so nothing hangs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import socket
import tempfile
import zipfile

import keras

from keras_cnn._compat import keras_ as keras_compat
from keras_cnn._validation import check_choice, check_existing_path

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
    "load_weights",
    "port_weights",
    "weighted_leaves",
    "weights_file_format",
    "with_preprocessing",
]

#: Seconds a stalled connection may block the download (per socket operation, not in total).
#: Overridden by the environment variable ``KERAS_CNN_DOWNLOAD_TIMEOUT``.
DOWNLOAD_TIMEOUT = 30.0

def _keras_weights_specs():
    from keras_cnn.models.specs import WEIGHTS_SPECS

    return [w for w in WEIGHTS_SPECS.values() if w.source == "keras.applications"]


#: The keras.applications classes whose ImageNet weights this package can port (from the
#: weights records of `keras_cnn.models.specs`).
IMAGENET_TWINS = tuple(w.twin for w in _keras_weights_specs())


class WeightsFileNotFoundError(FileNotFoundError, ValueError):
    """``weights`` names a file that does not exist.

    A FileNotFoundError, and a ValueError as keras.applications raises for a bad ``weights``.
    """


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
    twin = _resolve_twin(twin)
    record = next(w for w in _keras_weights_specs() if w.twin == twin)
    f = record.file(include_top)
    return WeightsFile(twin, bool(include_top), f.fname, f.url, f.file_hash)


def _resolve_twin(name):
    """Map a keras class name, a registry name or a builder name to a twin in IMAGENET_TWINS."""
    if name in IMAGENET_TWINS:
        return name
    from keras_cnn.models.specs import MODEL_SPECS

    spec = MODEL_SPECS.get(_registry_name(name))
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
    spec = imagenet_weights_file(twin, include_top)
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


# --------------------------------------------------------------------------------------------
# Porting weights between architectures: leaves, matching, checks.


def _leaf_kind(layer):
    """The Keras built-in class a layer is (or derives from): "Conv2D", "BatchNormalization"..."""
    for cls in type(layer).__mro__:
        if cls is keras.layers.Layer:
            break
        if cls.__module__.startswith("keras."):
            return cls.__name__
    return type(layer).__name__


def weighted_leaves(model):
    """The leaf layers that hold weights, with their paths, descending into composite layers.

    Order: ``model.layers`` order at the top (Keras' topological order for a Functional model),
    then each composite layer's tracking order (the order its ``__init__`` assigned sub-layers).

    Args:
        model: a `keras.Model` or layer.

    Returns:
        list of ``(path, layer)``, where ``path`` joins the names from the top, e.g.
        "conv2_block1/conv2_block1_1/conv2_block1_1_conv".
    """
    out, seen = [], set()

    def visit(layer, path):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        children = keras_compat.flatten_layers(layer, recursive=False)
        if not children:
            if layer.weights:
                out.append((path, layer))
            return
        for child in children:
            visit(child, f"{path}/{child.name}")

    top = model.layers if isinstance(model, keras.Model) else [model]
    for layer in top:
        visit(layer, layer.name)
    return out


_AUTO_NAME = re.compile(r"^(?P<base>.+?)(?:_(?P<n>\d+))?$")


def _creation_sorted(leaves):
    """Leaves of one kind in creation order.

    Keras numbers auto-named layers in creation order ("conv2d", "conv2d_1", ...), which for a
    keras.applications model with branches (InceptionV3) differs from ``model.layers``' order
    (by graph depth). When every leaf of a kind is auto-named, sort by that number; otherwise
    keep the traversal order.
    """
    if not leaves:
        return leaves
    keys = []
    for _, layer in leaves:
        base = keras_compat.to_snake_case(type(layer).__name__)
        m = _AUTO_NAME.match(layer.name)
        if m is None or m.group("base") != base:
            return leaves
        keys.append(int(m.group("n") or 0))
    if len(set(keys)) != len(keys):
        return leaves
    return [leaf for _, leaf in sorted(zip(keys, leaves), key=lambda t: t[0])]


def _shapes(layer):
    return [tuple(int(d) for d in w.shape) for w in layer.weights]


def _describe(path, layer):
    return f"{path!r} ({_leaf_kind(layer)}, weight shapes {_shapes(layer)})"


def _leaf_names(leaves):
    """Names each leaf answers to: its own, then every enclosing composite layer whose only
    weighted leaf it is (a `ConvBN` without BN named "block1_conv1" around the Conv2D
    "block1_conv1_conv" answers to "block1_conv1", keras' name of that Conv2D)."""
    counts = {}
    for path, _ in leaves:
        parts = path.split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            counts[prefix] = counts.get(prefix, 0) + 1
    names = []
    for path, layer in leaves:
        parts = path.split("/")
        aliases = [parts[i - 1] for i in range(len(parts) - 1, 0, -1) if counts["/".join(parts[:i])] == 1]
        names.append([layer.name] + aliases)
    return names


def _name_index(leaves):
    """name -> leaf index; own names win over aliases; an ambiguous alias is dropped."""
    index, alias_hits = {}, {}
    for i, names in enumerate(_leaf_names(leaves)):
        index.setdefault(names[0], i)
        for alias in names[1:]:
            alias_hits.setdefault(alias, []).append(i)
    for alias, hits in alias_hits.items():
        if alias not in index and len(hits) == 1:
            index[alias] = hits[0]
    return index


def _pairs_by_name(src, dst):
    """Pair leaves by name (or alias); return pairs, the unpaired source and target leaves."""
    dst_index = _name_index(dst)
    pairs, src_left, used = [], [], set()
    for (path, layer), names in zip(src, _leaf_names(src)):
        j = next((dst_index[n] for n in names if n in dst_index and dst_index[n] not in used), None)
        if j is None:
            src_left.append((path, layer))
            continue
        used.add(j)
        pairs.append(((path, layer), dst[j]))
    dst_left = [leaf for j, leaf in enumerate(dst) if j not in used]
    return pairs, src_left, dst_left


def _pairs_by_order(src, dst):
    """Pair leaves kind by kind, in creation order; return pairs and the unpaired leaves."""
    kinds = list(dict.fromkeys(_leaf_kind(layer) for _, layer in src + dst))
    pairs, extra_src, extra_dst = [], [], []
    for kind in kinds:
        a = _creation_sorted([leaf for leaf in src if _leaf_kind(leaf[1]) == kind])
        b = _creation_sorted([leaf for leaf in dst if _leaf_kind(leaf[1]) == kind])
        pairs.extend(zip(a, b))
        extra_src.extend(a[len(b):])
        extra_dst.extend(b[len(a):])
    # Report in the source's traversal order.
    rank = {id(layer): i for i, (_, layer) in enumerate(src)}
    pairs.sort(key=lambda p: rank[id(p[0][1])])
    return pairs, extra_src, extra_dst


MATCH_MODES = ("auto", "name", "order")


def port_weights(source_model, target_model, *, match="auto"):
    """Copy the weights of a keras.applications model into our twin, checking every layer.

    Both models are reduced to their weighted leaf layers (Conv2D, BatchNormalization, Dense,
    ...; composite layers such as `ConvBN` or a residual block are descended into, see
    :func:`weighted_leaves`). Leaves are then paired:

    * by name (``match="name"``) -- ResNet and VGG, whose leaf names mirror keras
      ("conv2_block1_0_conv", "predictions"); a composite layer whose only weighted leaf is
      the layer also lends it its name (VGG's `ConvBN` "block1_conv1" around the Conv2D
      "block1_conv1_conv");
    * by order (``match="order"``), kind by kind (the k-th Conv2D to the k-th Conv2D...), in
      creation order -- InceptionV3, whose keras names are auto-numbered ("conv2d_17");
      creation order is read from those numbers on the keras side and from the composite
      layers' construction order on ours;
    * ``match="auto"`` (default): by name when the leaf names are unique on both sides and at
      least half of the source's leaves find their name in the target, by order otherwise.

    Every pair's weight shapes are compared *before* anything is written, so on a mismatch the
    target is left untouched.

    Args:
        source_model: the model whose weights are copied (e.g. ``keras.applications.ResNet50``).
        target_model: the model receiving them (e.g. ``ResNet50Custom(weights=None)``).
        match: "auto", "name" or "order". Default "auto".

    Returns:
        The pairs used, as a list of ``(source_layer_path, target_layer_path)``, source order.

    Raises:
        ValueError: the architectures differ; the message names the first mismatching layer
            (source layer name, target sub-layer path, weight shapes) or the first layer
            without a counterpart.

    Example:
        >>> src = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(64, 64, 3))
        >>> dst = ResNet50Custom(weights=None, include_top=False, input_shape=(64, 64, 3))
        >>> pairs = port_weights(src, dst)  # 106 leaves: 53 Conv2D + 53 BatchNormalization
    """
    check_choice("match", match, MATCH_MODES)
    src = weighted_leaves(source_model)
    dst = weighted_leaves(target_model)
    src_names = [layer.name for _, layer in src]
    dst_names = [layer.name for _, layer in dst]
    unique = len(set(src_names)) == len(src_names) and len(set(dst_names)) == len(dst_names)
    if match == "auto":
        named = _pairs_by_name(src, dst)[0] if unique else []
        match = "name" if unique and src and len(named) * 2 >= len(src) else "order"
    if match == "name" and not unique:
        raise ValueError(
            "port_weights: leaf layer names are not unique, so `match`='name' cannot pair them; "
            "use match='order'. Received: match='name'"
        )
    s_name, t_name = getattr(source_model, "name", "source"), getattr(target_model, "name", "target")
    header = f"port_weights: the architectures of {s_name!r} (source) and {t_name!r} (target) differ"

    if match == "name":
        pairs, src_left, dst_left = _pairs_by_name(src, dst)
    else:
        pairs, src_left, dst_left = _pairs_by_order(src, dst)

    how = "by name" if match == "name" else "by order, kind by kind"
    counts = f"source has {len(src)} weighted layers, target {len(dst)}"
    rank = {id(layer): i for i, (_, layer) in enumerate(src)}
    problems = []  # (position in the source's order, message)
    for (sp, sl), (tp, tl) in pairs:
        if _leaf_kind(sl) != _leaf_kind(tl) or _shapes(sl) != _shapes(tl):
            problems.append((rank[id(sl)], (
                f"first mismatch (paired {how}) at source layer {_describe(sp, sl)} "
                f"vs target layer {_describe(tp, tl)}."
            )))
    for sp, sl in src_left:
        problems.append((rank[id(sl)], (
            f"source layer {_describe(sp, sl)} has no counterpart in the target (paired {how}; {counts})."
        )))
    for j, (tp, tl) in enumerate(dst_left):
        problems.append((len(src) + j, (
            f"target layer {_describe(tp, tl)} has no counterpart in the source (paired {how}; {counts})."
        )))
    if problems:
        raise ValueError(f"{header}: {min(problems, key=lambda p: p[0])[1]}")
    for (_, sl), (_, tl) in pairs:
        tl.set_weights(sl.get_weights())
    return [(sp, tp) for (sp, _), (tp, _) in pairs]


# --------------------------------------------------------------------------------------------
# Files.


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


def _legacy_layer_names(path):
    """Names of the layers that hold weights in a legacy .h5 file, in file order."""
    import h5py

    with h5py.File(path, "r") as f:
        group = f if "layer_names" in f.attrs else f["model_weights"]
        names = [n.decode("utf8") if isinstance(n, bytes) else str(n) for n in group.attrs["layer_names"]]
        return [n for n in names if len(group[n].attrs.get("weight_names", [])) > 0]


@contextlib.contextmanager
def _with_suffix(path, suffix):
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
    twin = _resolve_twin(twin)
    kwargs = dict(weights=None, include_top=include_top, input_shape=input_shape)
    if include_top:
        kwargs["classes"] = classes
    return getattr(keras.applications, twin)(**kwargs)


def _main_path(model):
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


def _load_legacy_into_twin(model, path, twin, include_top):
    """Load a keras.applications-layout .h5 into the keras twin (by order), then port it."""
    target = _main_path(model)
    source = _twin_for(target, twin, include_top)
    file_layers = _legacy_layer_names(path)
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
        raise _mismatch(path, target, f"keras.applications.{twin}", include_top, "legacy_h5") from err
    port_weights(source, target)
    return model


def _file_summary(path, kind):
    """``(tensors, parameters, network)`` held by a weights file; ``network`` may be None.

    ``network`` is read from a ``.keras`` file's config (its keras_cnn identity or model name)
    or recognised from the parameter count (our specs' counts with the top, and keras.applications'
    twins, which have the same counts).
    """
    from keras_cnn.models.specs import MODEL_SPECS

    network = None
    if kind == "keras":
        import json

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


def _mismatch(path, model, arch, include_top, kind):
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
    import json

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


def _check_readable(path):
    """The file's kind; ValueError naming ``weights`` for a truncated or unreadable file."""
    try:
        return weights_file_format(path)
    except (OSError, zipfile.BadZipFile, KeyError) as err:
        raise ValueError(
            f"`weights` file {os.fspath(path)!r} cannot be read (truncated, corrupt or not a "
            f"weights file: {type(err).__name__}: {_short(err, 160)}). Received: weights={os.fspath(path)!r}"
        ) from err


def _load_keras_file(model, path, kind):
    """Load a Keras 3 ``.weights.h5`` / ``.keras`` file saved from ``model``'s own layout."""
    with _with_suffix(path, ".keras" if kind == "keras" else ".weights.h5") as p:
        model.load_weights(p)


def _load_keras_file_into_twin(model, path, kind, twin, include_top):
    """A Keras 3 file saved from the keras.applications twin: load it there, then port."""
    target = _main_path(model)
    source = _twin_for(target, twin, include_top)
    with _with_suffix(path, ".keras" if kind == "keras" else ".weights.h5") as p:
        source.load_weights(p)
    port_weights(source, target)


def load_weights(model, weights, *, arch, include_top):
    """Load ``weights`` into ``model`` built by the builder ``arch``.

    Called by every builder (``keras_cnn.models._common.finish_model``).

    Args:
        model: the freshly built `keras.Model`.
        weights: None (nothing to do); "imagenet" or a weights name (see
            `keras_cnn.models.list_weights`); or a path to: a keras.applications ``.h5`` file
            (legacy layout, with or without top; loaded into the keras twin and ported), a Keras 3
            ``.weights.h5`` / ``.keras`` file saved from the keras.applications twin (e.g.
            ``keras.applications.VGG16(...).save_weights("x.weights.h5")``; loaded into the twin
            and ported), or a ``.weights.h5`` / ``.keras`` / legacy ``.h5`` file saved from a
            model of this package.
        arch: registry name or builder name ("resnet50" / "ResNet50Custom").
        include_top: whether ``model`` has its classifier.

    Returns:
        ``model``.

    Raises:
        FileNotFoundError: ``weights`` is neither a known name nor an existing file.
        ValueError: the file cannot be read, or holds another network (one sentence naming the
            file, what it holds and what was expected).
    """
    if weights is None:
        return model
    text = os.fspath(weights)
    if not os.path.exists(text):
        from keras_cnn.models.specs import get_weights_spec, weights_name

        name = weights_name(text)
        if name is None:
            raise WeightsFileNotFoundError(f"`weights` file does not exist: {text!r}. Received: weights={text!r}")
        record = get_weights_spec(name, arch=_registry_name(arch))
        if record.source == "keras.applications":
            return load_imagenet_weights(model, arch=record.arch, include_top=include_top)
        loader = _SOURCE_LOADERS.get(record.source)
        if loader is None:
            raise ValueError(f"No loader for weights source {record.source!r} ({record.name}).")
        return _import_loader(loader)(model, record, include_top=include_top)
    path = check_existing_path("weights", text)
    if is_safetensors_file(path):  # timm's files: ResNet-18/34/50 (torchvision layout), VGG-16/19
        load_safetensors = _import_loader(_FILE_LOADERS["safetensors"])
        return load_safetensors(model, path, arch=_registry_name(arch) or arch, include_top=include_top)
    kind = _check_readable(path)
    twin = None
    try:
        twin = _resolve_twin(arch)
    except ValueError:
        pass
    if kind in ("keras", "keras_weights_h5"):
        try:
            _load_keras_file(model, path, kind)
            return model
        except (ValueError, KeyError) as own_err:
            if twin is None:
                raise _mismatch(path, model, arch, include_top, kind) from own_err
        try:
            _load_keras_file_into_twin(model, path, kind, twin, include_top)
        except (ValueError, KeyError) as err:
            raise _mismatch(path, model, arch, include_top, kind) from err
        return model
    # Legacy layout: either saved from a model with our top-level layer names, or a
    # keras.applications file (by order, into the twin, then ported).
    file_layers = _legacy_layer_names(path)
    own_layers = [layer.name for layer in model.layers if layer.weights]
    if twin is None or file_layers == own_layers:
        with _with_suffix(path, ".h5") as p:
            try:
                model.load_weights(p)
            except (ValueError, KeyError) as err:
                raise _mismatch(path, model, arch, include_top, kind) from err
        return model
    return _load_legacy_into_twin(model, path, twin, include_top)


def _registry_name(arch):
    """Registry name for a registry or builder name (None if unknown)."""
    from keras_cnn.models.specs import MODEL_SPECS

    for spec in MODEL_SPECS.values():
        if arch in (spec.name, spec.builder_path.rpartition(":")[2]):
            return spec.name
    return None


#: Loaders for weights records of sources other than keras.applications:
#: ``source -> fn(model, record, *, include_top) -> model`` (or ``"module:function"``, imported on use).
_SOURCE_LOADERS = {"timm": "keras_cnn.timm_weights:_load_record"}
#: Loaders for weights files by format: ``fn(model, path, *, arch, include_top) -> model``. The
#: converters sit above this module (they use its porting helpers), so they are named, not imported.
_FILE_LOADERS = {"safetensors": "keras_cnn.timm_weights:load_timm_weights"}


def _import_loader(loader):
    """``loader`` itself, or the function a ``"module:function"`` string names."""
    if not isinstance(loader, str):
        return loader
    import importlib

    module, _, attr = loader.partition(":")
    return getattr(importlib.import_module(module), attr)


def register_weights_loader(source, loader):
    """Register ``loader(model, record, *, include_top)`` for weights records of ``source``."""
    _SOURCE_LOADERS[source] = loader


def load_imagenet_weights(model, *, arch, include_top, cache_dir=None, timeout=None):
    """Give ``model`` (a keras.applications twin of ours) the ImageNet weights.

    Fetches the file as keras.applications does (:func:`get_imagenet_weights_file`), loads it
    into the keras twin built with the same input shape and top, and ports it
    (:func:`port_weights`).

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
    twin = _resolve_twin(arch)
    path = get_imagenet_weights_file(twin, include_top, cache_dir=cache_dir, timeout=timeout)
    return _load_legacy_into_twin(model, path, twin, include_top)


# --------------------------------------------------------------------------------------------
# Preprocessing that travels with the model.


def with_preprocessing(model, mode=None, arch=None, *, name=None):
    """Prepend the network's pixel preprocessing, so the model takes raw 0..255 pixels.

    ImageNet weights expect keras.applications' ``preprocess_input`` ("tf" scaling to [-1, 1]
    for Inception, "caffe" BGR mean subtraction for ResNet/VGG). This wraps ``model`` as
    ``Input -> Preprocess(mode) -> model``, so the preprocessing is saved, exported and served
    with it.

    Args:
        model: a `keras.Model` taking preprocessed pixels.
        mode: "tf", "caffe", "torch" or "unit"; default: what the model expects, read from its
            keras_cnn identity (the preprocessing of the weights it was built with, else its
            network's).
        arch: registry name, for a model keras_cnn did not build (its spec's preprocessing).
        name: name of the new model; default ``"<model.name>_raw"``.

    Returns:
        A Functional `keras.Model` sharing ``model``'s layers and weights.

    Example:
        >>> m = with_preprocessing(ResNet50Custom(weights="imagenet"))  # "caffe", from the model
        >>> probs = m(raw_uint8_images.astype("float32"))
    """
    from keras_cnn.layers.preprocess import MODES, Preprocess

    if not isinstance(model, keras.Model):
        raise ValueError(f"`model` must be a keras.Model. Received: model={model!r}")
    if mode is None:
        mode = expected_preprocessing(model, arch)
    check_choice("mode", mode, MODES)
    inputs = keras.Input(shape=tuple(model.input_shape[1:]), name="pixels")
    x = Preprocess(mode, name="preprocess")(inputs)
    outputs = model(x)
    return keras.Model(inputs, outputs, name=name or f"{model.name}_raw")


def expected_preprocessing(model, arch=None):
    """The pixel preprocessing ``model`` expects: from its identity, else ``arch``'s spec.

    Args:
        model: a `keras.Model`.
        arch: registry name; overrides nothing when the model has an identity that agrees, and
            is required for a model keras_cnn did not build.

    Raises:
        ValueError: the model has no keras_cnn identity and no ``arch`` was given.
    """
    from keras_cnn.layers.preprocess import MODES
    from keras_cnn.models.identity import model_identity
    from keras_cnn.models.specs import get_model_spec

    identity = model_identity(model)
    if identity is not None and (arch is None or arch == identity.arch):
        return identity.preprocessing
    if arch is None:
        raise ValueError(
            f"`model` ({model.name!r}) was not built by keras_cnn, so which preprocessing it needs "
            f"cannot be told; pass mode= (one of {list(MODES)}) or arch=<registry name>."
        )
    return get_model_spec(arch).preprocessing
