"""SavedModel export for TF Serving: signatures, versions, class names, metadata, warm-up.

Layout written by `export_for_serving` (TF Serving's ``<base_path>/<version>/``)::

    saved_models/lenet5/1/
      saved_model.pb, fingerprint.pb, variables/   the graph, tag "serve" (optimize=True: the
                                                   folded weights are constants inside
                                                   saved_model.pb and variables/ is empty)
      assets/class_names.txt                       one class name a line; a tracked tf asset
                                                   (it feeds the index -> name lookup table)
      assets.extra/keras_cnn.json                  metadata: model and its network identity, input size, preprocessing,
                                                   classes, metrics, package versions, time
      assets.extra/tf_serving_warmup_requests      warm-up PredictionLog records (optional)

Signatures (tag "serve"; batch dimension dynamic)::

    serving_default   images       float32 [-1, H, W, C]  raw 0..255 pixels
    serving_bytes     image_bytes  string  [-1]           encoded JPEG/PNG/GIF/BMP; decoded to C
                                                          channels and bilinearly resized to
                                                          H x W inside
    outputs (both)    probabilities      float32 [-1, classes]
                      classes            int64   [-1]      top-1 index
                      class_names        string  [-1]      top-1 name
                      top_k_scores       float32 [-1, k]
                      top_k_classes      int64   [-1, k]
                      top_k_class_names  string  [-1, k]

A new version under an existing name must keep the serving contract of the latest version there
(input size and type, number and names of the classes, ``top_k``; `check_serving_contract`):
TF Serving serves all of them as one model, so another network's export is refused, naming the
export name, rather than served to clients that expect the old one.

Files are readable by others (directories 0755, files 0644 under the usual umask 022: what a
plain ``mkdir``/``open`` would create), so a server running as another user can load them.
Each variable is stored once: the signatures' own captured variables are tracked, not the
Keras model object (``keras.export.ExportArchive.track(model)`` stores every variable twice,
under ``variables/`` and ``_all_variables/`` of the checkpoint).
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import platform
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from keras_cnn._io import atomic_dir, atomic_write_json, json_data, load_keras_model, usual_permissions
from keras_cnn._validation import check_existing_path, check_positive_int
from keras_cnn.export import warmup as _warmup
from keras_cnn.export._images import encode_png, tf_decode_image
from keras_cnn.export.serving_config import check_model_name

DEFAULT_SIGNATURE = "serving_default"
BYTES_SIGNATURE = "serving_bytes"
IMAGES_INPUT = "images"
BYTES_INPUT = "image_bytes"
OUTPUT_NAMES = ("probabilities", "classes", "class_names", "top_k_scores", "top_k_classes", "top_k_class_names")
CLASS_NAMES_ASSET = "class_names.txt"
METADATA_FILE = "keras_cnn.json"
METADATA_FORMAT = 1
_OWNER_FILE = ".keras_cnn_export_owner"  # inside a version being written; removed before the rename
_TEMP_RE = re.compile(r"^\.\d+\.(tmp|old)-")  # atomic_dir's temporaries for version directories
_IMPORT_TIME = time.time()
logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- helpers


def next_version(model_dir) -> int:
    """1 + the highest numeric version directory under ``model_dir`` (1 if there is none)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return 1
    versions = [int(p.name) for p in model_dir.iterdir() if p.name.isdigit()]
    return max(versions, default=0) + 1


def serving_contract(input_shape, class_names, top_k) -> dict:
    """What a client of an export relies on: the input, the outputs' sizes and the class names.

    Two versions under one served name must share it (TF Serving serves them as one model).
    """
    return {"input_shape": [int(d) for d in input_shape], "input_dtype": "float32", "pixel_range": [0, 255],
            "num_classes": len(class_names), "class_names": [str(c) for c in class_names], "top_k": int(top_k)}


def _describe_contract(contract):
    names = contract.get("class_names") or []
    shown = ", ".join(repr(n) for n in names[:4]) + (f", ... ({len(names)} names)" if len(names) > 4 else "")
    shape = ", ".join(str(d) for d in contract.get("input_shape") or [])
    return (f"{contract.get('input_dtype')} [-1, {shape}] pixels {contract.get('pixel_range')}, "
            f"{contract.get('num_classes')} classes ({shown}), top_k {contract.get('top_k')}")


def check_serving_contract(model_dir, version, contract, *, arg="name"):
    """Refuse a new version under ``model_dir`` whose serving contract differs from its latest version's.

    TF Serving serves every version under a name as the same model (the latest by default), so
    a version with another input size or other classes would silently replace the model clients
    expect. Compared with the highest other version holding ``saved_model.pb``.

    Raises:
        ValueError: naming ``arg``, that version, the differences and both contracts; also when
            that version has no keras_cnn metadata (its contract is unknown).
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return
    versions = [int(p.name) for p in model_dir.iterdir()
                if p.name.isdigit() and int(p.name) != int(version) and (p / "saved_model.pb").is_file()]
    if not versions:
        return
    latest = model_dir / str(max(versions))
    way_out = (f"Export under another name (`{arg}`), into another export directory, or remove {model_dir} "
               "if the old model is not served any more.")
    try:
        info = read_metadata(latest)
    except (OSError, ValueError) as err:
        info, why = None, f"unreadable ({type(err).__name__})"
    else:
        why = "absent"
    if not isinstance(info, dict):
        raise ValueError(
            f"{latest} has no readable keras_cnn metadata ({_warmup.ASSETS_EXTRA}/{METADATA_FILE}: {why}), so a new "
            f"version cannot be checked to serve the same contract. {way_out} Received: {arg}={model_dir.name!r}"
        )
    old = {key: info.get(key) for key in contract}
    if old.get("input_dtype") is None:
        old.update(input_dtype="float32", pixel_range=[0, 255])  # the only input every keras_cnn export has had
    words = {"input_shape": "input shape", "input_dtype": "input type", "pixel_range": "pixel range",
             "num_classes": "number of classes", "class_names": "class names", "top_k": "top-k size"}
    changed = [words.get(key, key) for key in contract if old.get(key) != contract[key]]
    if changed:
        raise ValueError(
            f"{model_dir} already serves another model: version {latest.name} takes {_describe_contract(old)}; "
            f"this one takes {_describe_contract(contract)} (differs in: {', '.join(changed)}). TF Serving would "
            f"serve it as version {version} of the same model. {way_out} Received: {arg}={model_dir.name!r}"
        )


def check_export_name(base_dir, name, image_shape, class_names, *, version=None, top_k=5):
    """Before a long run: refuse early what `export_for_serving` would refuse at its end.

    Checks that an export of a model taking ``image_shape`` images and answering ``class_names``
    (with the default ``top_k``) may become a version of ``base_dir/name`` (`check_serving_contract`).
    """
    name = check_model_name("name", name)
    model_dir = Path(base_dir) / name
    version = next_version(model_dir) if version is None else version
    contract = serving_contract(image_shape, class_names, min(top_k, len(class_names)))
    check_serving_contract(model_dir, version, contract)


def load_class_names(source, *, arg="class_names") -> list[str]:
    """Class names from a list, a ``.json`` file (a list) or a text file (one name a line)."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(check_existing_path(arg, source))
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            try:
                names = json.loads(text)
            except json.JSONDecodeError as err:
                raise ValueError(f"`{arg}` file is not valid JSON ({err}). Received: {arg}={str(path)!r}") from None
            if isinstance(names, dict) and "class_names" in names:
                names = names["class_names"]
        else:
            names = [line.rstrip("\r") for line in text.split("\n")]
            while names and names[-1] == "":
                names.pop()
    else:
        names = source
    if not isinstance(names, (list, tuple)) or not names:
        raise ValueError(f"`{arg}` must be a non-empty list of strings. Received: {arg}={source!r}")
    names = list(names)
    bad = [n for n in names if not isinstance(n, str) or not n.strip() or "\n" in n or "\r" in n]
    if bad:
        raise ValueError(
            f"`{arg}` must be non-empty single-line strings. Received: {arg} containing {bad[0]!r}"
        )
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"`{arg}` must be unique. Received: {arg} with {dup!r} twice")
    return names


def resolve_model(model, *, arg="model"):
    """``(keras.Model, path_or_None)`` from a model, a ``.keras`` file or a run directory."""
    import keras

    if isinstance(model, keras.Model):
        return model, None
    if not isinstance(model, (str, os.PathLike)):
        raise ValueError(
            f"`{arg}` must be a keras.Model, a .keras file or a training run directory. "
            f"Received: {arg} of type {type(model).__name__}"
        )
    path = Path(model)
    if path.is_dir():
        path = path / "model.keras"
        if not path.is_file():
            raise FileNotFoundError(
                f"`{arg}` directory holds no model.keras (a training run directory does). "
                f"Received: {arg}={str(model)!r}"
            )
    check_existing_path(arg, path)
    if path.suffix != ".keras":
        raise ValueError(f"`{arg}` must be a .keras file. Received: {arg}={str(path)!r}")
    return load_keras_model(path, arg=arg), path


def class_names_beside(path) -> list[str] | None:
    """``class_names.json`` next to a ``.keras`` file (a training run directory), if present."""
    if path is None:
        return None
    candidate = Path(path).parent / "class_names.json"
    return load_class_names(candidate) if candidate.is_file() else None


def inference_model(model):
    """The single-output classifier to serve and whether it outputs logits.

    Returns:
        ``(single_output_model(model), outputs_logits)``.
    """
    model = single_output_model(model)
    return model, _outputs_logits(model)


def single_output_model(model):
    """``model`` with one output: a model with auxiliary heads (a dict output) without them.

    The auxiliary classifiers of GoogLeNet and Inception-v3 are "discarded at inference time"
    (Szegedy et al., 2015, section 5): the model returned outputs ``model.output["predictions"]``
    and shares every layer (and so every weight) with ``model``, whose auxiliary branches are
    left out of its graph. A model with one output is returned unchanged.

    Raises:
        ValueError: ``model`` is not a built Functional or Sequential model, returns a dict
            without "predictions", or has several outputs.
    """
    import keras

    if not _has_output(model):
        raise ValueError(
            "`model` must be a built Functional or Sequential model (with an Input) so that its "
            f"input and output shapes are known. Received: {type(model).__name__} {getattr(model, 'name', model)!r}"
        )
    output = model.output
    if isinstance(output, dict):
        if "predictions" not in output:
            raise ValueError(
                "`model` returns a dict without a 'predictions' entry; cannot tell which output to "
                f"serve. Received: outputs={sorted(output)}"
            )
        head = output["predictions"]
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs  # call it with a tensor, not a list
        return keras.Model(inputs, head, name=model.name)
    if isinstance(output, (list, tuple)):
        raise ValueError(
            f"`model` must have one output (or a dict with 'predictions'). Received: {len(output)} outputs"
        )
    return model


def _has_output(model):
    try:
        model.output  # noqa: B018 - raises for subclassed models never called
        return True
    except (AttributeError, ValueError):
        return False


def _outputs_logits(model) -> bool:
    """True when the layer producing the output has a linear activation (logits)."""
    from keras_cnn._compat.keras_ import producing_layer

    try:
        layer = producing_layer(model.output)
    except (AttributeError, IndexError, ValueError):
        return False
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", None)
    return name == "linear"


def _preprocessing_mode(model):
    from keras_cnn._compat.keras_ import flatten_layers
    from keras_cnn.layers.preprocess import Preprocess

    layers = flatten_layers(model)
    modes = [layer.mode for layer in layers if isinstance(layer, Preprocess)]
    return modes[0] if modes else None


def _package_versions():
    import keras
    import tensorflow as tf

    import keras_cnn

    return {
        "keras_cnn": keras_cnn.__version__,
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _json_safe(arg, value):
    """``value`` as plain JSON data; numpy values converted, NaN/inf (a diverged metric) -> None."""
    try:
        return json.loads(json.dumps(json_data(value, finite=True), allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ValueError(f"`{arg}` must be JSON-serializable ({err}). Received: {arg}={value!r}") from None


def _input_size(model, image_size):
    shapes = [tuple(t.shape) for t in model.inputs]
    if len(shapes) != 1 or len(shapes[0]) != 4:
        raise ValueError(
            "`model` must take one image batch [batch, height, width, channels]. "
            f"Received: input shapes {shapes}"
        )
    _, height, width, channels = shapes[0]
    if channels not in (1, 3, 4):
        raise ValueError(f"`model` input must have 1, 3 or 4 channels to decode images. Received: channels={channels}")
    if image_size is not None:
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if len(size) != 2:
            raise ValueError(f"`image_size` must be an int or (height, width). Received: image_size={image_size!r}")
        for s in size:
            check_positive_int("image_size", s)
        if (height is not None and height != size[0]) or (width is not None and width != size[1]):
            raise ValueError(
                f"`image_size` must match the model's input size {(height, width)}. Received: image_size={image_size!r}"
            )
        height, width = size
    if height is None or width is None:
        raise ValueError(
            "`model` accepts any image size; pass `image_size=(height, width)` to fix the size the "
            f"serving signatures decode and resize to. Received: input shape {shapes[0]}"
        )
    return int(height), int(width), int(channels)


# --------------------------------------------------------------------------- layout


def _process_start_time(pid=None):
    """When process ``pid`` (default: this one) started, in epoch seconds, or None if unknown."""
    pid = os.getpid() if pid is None else pid
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        with open("/proc/stat", encoding="ascii") as handle:
            boot = next(float(line.split()[1]) for line in handle if line.startswith("btime "))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None if pid != os.getpid() else _IMPORT_TIME


def _owner_alive(temp_dir):
    """True when the temporary export's owner marker names a process that is still running."""
    try:
        owner = json.loads((Path(temp_dir) / _OWNER_FILE).read_text(encoding="utf-8"))
        pid, started = int(owner["pid"]), float(owner["started"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    now = _process_start_time(pid)
    return now is not None and abs(now - started) < 2.0  # same pid, same process (not a reused pid)


def remove_stale_temporaries(model_dir) -> list[Path]:
    """Delete hidden ``.<version>.tmp-*`` / ``.old-*`` directories left by killed exports.

    A temporary directory is stale when it was last modified before this process started and
    no running process owns it (the exporter writes its pid and start time into it while it
    works). Exports in progress in other processes are left alone.

    Returns:
        The directories removed.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    started = _process_start_time()
    removed = []
    for entry in model_dir.iterdir():
        if not _TEMP_RE.match(entry.name) or not entry.is_dir() or entry.is_symlink():
            continue
        try:
            modified = entry.stat().st_mtime
        except OSError:
            continue
        if modified >= started or _owner_alive(entry):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        if not entry.exists():
            removed.append(entry)
    if removed:
        logger.warning("removed %d stale temporary export(s) left by an interrupted export: %s",
                       len(removed), ", ".join(str(p) for p in removed))
    return removed


# --------------------------------------------------------------------------- export


def _serving_module(network, vocab, *, k, logits, shape):
    """The exported ``tf.Module``: the class-name table read from the ``vocab`` asset and the two
    signatures over ``network`` (raw pixels -> class scores) -> ``(module, concrete functions)``."""
    import tensorflow as tf

    height, width, channels = shape
    # Index -> name table initialised from the asset file: tf.saved_model.save copies the file
    # to assets/ and the server re-reads it from there when it loads the model.
    table = tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(
            str(vocab), tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER,
            tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
        ),
        default_value="",
    )

    def classify(images):
        scores = network(images)
        scores = tf.cast(scores, tf.float32)
        if logits:
            scores = tf.nn.softmax(scores, axis=-1)
        top_scores, top_idx = tf.math.top_k(scores, k=k)
        top_idx = tf.cast(top_idx, tf.int64)
        top_names = table.lookup(top_idx)
        return {
            "probabilities": scores,
            "classes": top_idx[:, 0],
            "class_names": top_names[:, 0],
            "top_k_scores": top_scores,
            "top_k_classes": top_idx,
            "top_k_class_names": top_names,
        }

    def decode_one(data):
        image = tf_decode_image(data, channels)
        image = tf.image.resize(tf.cast(image, tf.float32), (height, width))
        return tf.ensure_shape(image, (height, width, channels))

    def serve_images(images):
        return classify(images)

    def serve_bytes(image_bytes):
        images = tf.map_fn(
            decode_one, image_bytes, fn_output_signature=tf.TensorSpec((height, width, channels), tf.float32)
        )
        return classify(images)

    root = tf.Module()
    root.table = table
    default_fn = tf.function(serve_images, input_signature=[
        tf.TensorSpec((None, height, width, channels), tf.float32, name=IMAGES_INPUT)])
    bytes_fn = tf.function(serve_bytes, input_signature=[tf.TensorSpec((None,), tf.string, name=BYTES_INPUT)])
    root.serving_default, root.serving_bytes = default_fn, bytes_fn
    concrete = {DEFAULT_SIGNATURE: default_fn.get_concrete_function(),
                BYTES_SIGNATURE: bytes_fn.get_concrete_function()}
    # Track exactly the variables the signatures read (none when optimized), each once.
    root.model_variables = list({id(v): v for c in concrete.values() for v in c.variables}.values())
    return root, concrete


def export_for_serving(
    model,
    base_dir="saved_models",
    name=None,
    version=None,
    *,
    class_names=None,
    metadata=None,
    warmup=True,
    overwrite=False,
    top_k=5,
    image_size=None,
    optimize=True,
):
    """Export a classifier as a TF Serving SavedModel version, atomically.

    The model takes raw 0..255 pixels (its ``Preprocess`` layer is inside), so the served
    signatures do too. Augmentation layers are inactive (the model is called with
    ``training=False``); of a model with auxiliary heads only ``"predictions"`` is served; a
    model whose last layer is linear (logits) gets a softmax.

    Args:
        model: a ``keras.Model``, a ``.keras`` file, or a training run directory holding
            ``model.keras`` (then ``class_names.json`` beside it is used by default).
        base_dir: export root; the version goes to ``base_dir/name/version/``.
            Default "saved_models".
        name: model name (directory and ``/v1/models/<name>``). Default: ``model.name``.
        version: positive int. Default: the next free version (1 for a new model).
        class_names: list of names, or a ``.json`` / ``.txt`` file of them. Default: the
            training run's ``class_names.json`` if ``model`` is a path, else "0", "1", ...
        metadata: JSON-serializable dict stored under ``"metadata"`` in
            ``assets.extra/keras_cnn.json`` (training metrics, dataset, ...). Default None.
        warmup: write ``assets.extra/tf_serving_warmup_requests``: True (batch of 1 per
            signature), False, or batch sizes such as ``(1, 8)``. Default True.
        overwrite: replace an existing version. Default False (FileExistsError instead).
        top_k: number of ``top_k_*`` results (capped at the number of classes). Default 5.
        image_size: (height, width) for models built without a fixed input size. Default None.
        optimize: write the optimized inference graph: weights frozen to constants and every
            BatchNormalization that follows a convolution folded into it (see
            `keras_cnn.export._optimize`); the folded graph is checked against the model before
            it is written. Should that fail (an op that cannot be frozen, over 1.5 GB of weights,
            a mismatch), the plain graph is written instead with a warning, and the reason is
            kept as ``optimize_error`` in the metadata. False: the plain graph reading the
            model's variables. Default True.

    Returns:
        ``pathlib.Path`` of the version directory.

    Raises:
        FileExistsError: the version exists and ``overwrite`` is False.
        ValueError: unsupported model (not one image input, several outputs), class names that
            do not match the number of classes, a bad name/version/top_k, or a serving contract
            (input, classes, top_k) other than the latest version's under ``name``.

    Example:
        >>> path = export_for_serving(model, "saved_models", "lenet5", class_names=names)
        >>> path
        PosixPath('saved_models/lenet5/1')
    """
    import tensorflow as tf

    if not isinstance(optimize, bool):
        raise ValueError(f"`optimize` must be True or False. Received: optimize={optimize!r}")
    keras_model, source = resolve_model(model)
    if class_names is None:
        class_names = class_names_beside(source)
    serve_model, logits = inference_model(keras_model)
    height, width, channels = _input_size(serve_model, image_size)
    output_shape = tuple(serve_model.output.shape)
    if len(output_shape) != 2 or output_shape[1] is None:
        raise ValueError(
            f"`model` must output class scores [batch, classes]. Received: output shape {output_shape}"
        )
    num_classes = int(output_shape[1])
    if class_names is None:
        class_names = [str(i) for i in range(num_classes)]
    class_names = load_class_names(class_names)
    if len(class_names) != num_classes:
        raise ValueError(
            f"`class_names` must have one name per class ({num_classes}). "
            f"Received: {len(class_names)} class names"
        )
    check_positive_int("top_k", top_k)
    k = min(top_k, num_classes)
    name = check_model_name("name", keras_model.name if name is None else name)
    model_dir = Path(base_dir) / name
    version = next_version(model_dir) if version is None else check_positive_int("version", version)
    batch_sizes = _warmup.warmup_batch_sizes(warmup)
    if metadata is not None and not isinstance(metadata, dict):
        raise ValueError(f"`metadata` must be a dict or None. Received: metadata={metadata!r}")
    user_metadata = _json_safe("metadata", metadata or {})
    target = model_dir / str(version)
    remove_stale_temporaries(model_dir)
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"{target} already exists; versions are never overwritten unless overwrite=True "
            f"(next free version: {next_version(model_dir)})."
        )
    check_serving_contract(model_dir, version, serving_contract((height, width, channels), class_names, k))

    with tempfile.TemporaryDirectory(prefix="keras_cnn_export_") as scratch, atomic_dir(
        target, overwrite=overwrite
    ) as tmp:
        owner = tmp / _OWNER_FILE
        owner.write_text(json.dumps({"pid": os.getpid(), "started": _process_start_time()}), encoding="utf-8")
        optimized, optimize_error, network = None, None, None
        if optimize:
            try:
                optimized, network = _optimized_network(serve_model, (height, width, channels))
            except (ValueError, RuntimeError, TypeError, tf.errors.OpError) as err:
                # Never lose an export (e.g. the one at the end of a long training run) to the
                # optimizer: fall back to the plain graph, loudly, and record why.
                optimize_error = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
                logger.warning("the optimized serving graph could not be built (%s); "
                               "exported the plain graph instead (optimize=False)", optimize_error)
        if network is None:
            network = tf.function(lambda images: serve_model(images, training=False),
                                  input_signature=[tf.TensorSpec((None, height, width, channels), tf.float32)],
                                  ).get_concrete_function()
        vocab = Path(scratch) / CLASS_NAMES_ASSET
        vocab.write_text("\n".join(class_names) + "\n", encoding="utf-8")
        root, concrete = _serving_module(network, vocab, k=k, logits=logits, shape=(height, width, channels))
        default_fn, bytes_fn = root.serving_default, root.serving_bytes
        tf.saved_model.save(root, str(tmp), signatures=concrete)

        signatures = {
            DEFAULT_SIGNATURE: _describe(default_fn, IMAGES_INPUT),
            BYTES_SIGNATURE: _describe(bytes_fn, BYTES_INPUT),
        }
        if batch_sizes:
            rng = np.random.default_rng(0)
            records = []
            for size in batch_sizes:
                images = rng.integers(0, 256, (size, height, width, channels)).astype("float32")
                records.append(_warmup.predict_log(name, DEFAULT_SIGNATURE, {IMAGES_INPUT: images}))
                pngs = [encode_png(image) for image in images]
                records.append(_warmup.predict_log(name, BYTES_SIGNATURE, {BYTES_INPUT: pngs}))
            _warmup.write_warmup_requests(tmp / _warmup.ASSETS_EXTRA / _warmup.WARMUP_FILENAME, records)

        info = {
            "format": METADATA_FORMAT,
            "name": name,
            "version": version,
            "model_name": keras_model.name,
            "network": _network_identity(keras_model),
            "source": None if source is None else str(source),
            "input_shape": [height, width, channels],
            "channels": channels,
            "input_dtype": "float32",
            "pixel_range": [0, 255],
            "preprocessing": _preprocessing_mode(serve_model),
            "softmax_added": bool(logits),
            "num_classes": num_classes,
            "class_names": class_names,
            "top_k": k,
            "signatures": signatures,
            "warmup_batch_sizes": list(batch_sizes),
            "optimized": None if optimized is None else {
                "frozen": True,
                "batchnorms_folded": optimized.folded,
                "activation_scalings_left": optimized.batch_norms_left,
            },
            "optimize_error": optimize_error,
            "metadata": user_metadata,
            "packages": _package_versions(),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        atomic_write_json(tmp / _warmup.ASSETS_EXTRA / METADATA_FILE, info)
        owner.unlink()
        usual_permissions(tmp)
    return target


def _network_identity(model):
    """The keras_cnn identity of the exported network (registry name, build arguments, weights,
    preprocessing), or None for a model keras_cnn did not build."""
    from keras_cnn.models.identity import model_identity

    identity = model_identity(model)
    if identity is None:
        return None
    return {"arch": identity.arch, "build_args": identity.build_args, "weights": identity.weights,
            "preprocessing": identity.preprocessing}


def _optimized_network(serve_model, input_shape):
    """``(OptimizedGraph, concrete function)`` of the frozen, BN-folded model, checked against it."""
    from keras_cnn.export import _optimize

    optimized = _optimize.optimized_inference_graph(serve_model, input_shape)
    size = optimized.graph_def.ByteSize()
    if size > 1.5 * 2**30:
        raise ValueError(f"the frozen graph holds {size / 2**30:.1f} GB of weights; one GraphDef is limited "
                         "to 2 GB (protobuf)")
    network = _optimize.graph_function(optimized, input_shape)
    _check_optimized(serve_model, network, input_shape)
    return optimized, network


def _check_optimized(serve_model, network, input_shape, atol=1e-4):
    """Refuse to write a folded graph whose probabilities differ from the model's by > atol."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (2, *input_shape)).astype("float32")
    expected = np.asarray(serve_model(images, training=False), dtype="float64")
    got = np.asarray(network(tf.constant(images)), dtype="float64")
    diff = float(np.max(np.abs(expected - got))) if expected.shape == got.shape else float("inf")
    scale = max(1.0, float(np.max(np.abs(expected))))  # logits: compare relative to their size
    if not diff <= atol * scale:
        raise RuntimeError(f"the optimized serving graph differs from the model by {diff:.3g} (allowed "
                           f"{atol * scale:.3g}); export with optimize=False and report this model")


def _describe(fn, input_name):
    """{"inputs": {name: {dtype, shape}}, "outputs": {...}} of an endpoint's concrete function."""
    concrete = fn.get_concrete_function()
    spec = concrete.structured_input_signature[0][0]

    def entry(s):
        return {"dtype": s.dtype.name, "shape": [None if d is None else int(d) for d in s.shape]}

    outputs = {key: entry(value) for key, value in sorted(concrete.structured_outputs.items())}
    return {"inputs": {input_name: entry(spec)}, "outputs": outputs}


def read_metadata(path) -> dict | None:
    """``assets.extra/keras_cnn.json`` of an export, or None if absent."""
    meta = Path(path) / _warmup.ASSETS_EXTRA / METADATA_FILE
    if not meta.is_file():
        return None
    return json.loads(meta.read_text(encoding="utf-8"))


def read_class_names(path) -> list[str] | None:
    """Class names shipped with an export (``assets/class_names.txt``), or None."""
    asset = Path(path) / "assets" / CLASS_NAMES_ASSET
    if not asset.is_file():
        return None
    return load_class_names(asset)
