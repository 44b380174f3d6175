"""One export entry for every format: SavedModel (TF Serving), LiteRT (.tflite) and ONNX, verified before writing.

A LiteRT or ONNX export is a directory::

    exports/lenet5-litert-int8/
      model.tflite | model.onnx   raw 0..255 pixels in (float32 [batch, H, W, C]; int8 with int8_io),
                                  probabilities out; the model's preprocessing is inside the graph
      labels.txt                  one class name a line, index order
      keras_cnn.json              network identity, preprocessing, input size, format, quantization,
                                  calibration, verification figures, package versions

Verification runs on the converted bytes before anything is written:

* float (LiteRT ``none``/``float16``, ONNX): the max |diff| of the probabilities against the Keras
  model on real images (up to `FLOAT_VERIFY_IMAGES` of the held-out split) stays within
  `FLOAT_TOLERANCE` (1e-4 for float32, 1e-2 for float16 weights);
* integer (LiteRT ``dynamic``/``int8``): top-1 agreement with the Keras model and the accuracy drop
  on the whole held-out split; a drop over ``max_accuracy_drop`` points refuses the export
  (`ExportRefused`, nothing written) unless ``force``.

The held-out split is the training run's own (its ``config.json``: data source, seed and split
options), or ``eval_data``. A SavedModel export is `export_for_serving`'s, which checks its folded
graph against the model before writing.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
from pathlib import Path

import numpy as np

from keras_cnn._io import atomic_dir, atomic_write_json, atomic_write_text, usual_permissions
from keras_cnn._validation import check_choice, check_existing_path, check_positive_int
from keras_cnn.export import litert, onnx
from keras_cnn.export._deps import require, version
from keras_cnn.export._images import check_image_batch
from keras_cnn.export.client import predict_images, predict_keras, predict_saved_model
from keras_cnn.export.saved_model import (
    METADATA_FILE,
    _input_size,
    _json_safe,
    _network_identity,
    _package_versions,
    _preprocessing_mode,
    class_names_beside,
    export_for_serving,
    inference_model,
    load_class_names,
    read_metadata,
    resolve_model,
)
from keras_cnn.export.verify import Check, VerifyReport, verify_export

logger = logging.getLogger(__name__)

FORMATS = ("saved_model", "litert", "onnx")
FILE_FORMATS = {"litert": litert, "onnx": onnx}
LABELS_FILE = "labels.txt"
METADATA_VERSION = 1
FLOAT_TOLERANCE = {"none": 1e-4, "float16": 1e-2}
FLOAT_VERIFY_IMAGES = 256
DEFAULT_CALIBRATION_STEPS = 100
DEFAULT_MAX_ACCURACY_DROP = 1.0
_RUNTIMES = {"litert": "ai-edge-litert", "onnx": "onnxruntime"}
_BATCH = 64


class ExportRefused(ValueError):
    """The converted model failed its verification; nothing was written.

    Attributes:
        verification: the figures (the dict stored as ``verification`` in ``keras_cnn.json``).
    """

    def __init__(self, message, verification):
        super().__init__(message)
        self.verification = verification


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    """What `export_model` needs beyond the model, the path, the format and the quantization.

    Attributes:
        name: the exported model's name. Default: the Keras model's name.
        class_names: names or a file of them. Default: the run's ``class_names.json``, else 0..N-1.
        metadata: JSON-serializable dict stored under ``"metadata"``. Default None.
        overwrite: replace an existing export. Default False.
        int8_io: LiteRT ``int8`` with int8 input and output tensors. Default False (float32).
        calibration_data: images that calibrate ``int8``: None (the run's training split), a
            `keras_cnn.data.load_data` source (its training split), or float32 ``[N, H, W, C]``
            raw pixels.
        calibration_steps: calibration images. Default 100.
        eval_data: held-out data for the verification: None (the run's held-out split), a
            ``load_data`` source (its test split, else validation split), or ``(images, labels)``.
        max_accuracy_drop: refuse an integer-quantized export whose held-out accuracy is more than
            this many percentage points below the Keras model's. Default 1.0.
        force: write an export that failed its verification (with a warning). Default False.
        version, top_k, warmup, optimize: SavedModel only (see `export_for_serving`).
    """

    name: str | None = None
    class_names: object = None
    metadata: dict | None = None
    overwrite: bool = False
    int8_io: bool = False
    calibration_data: object = None
    calibration_steps: int = DEFAULT_CALIBRATION_STEPS
    eval_data: object = None
    max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP
    force: bool = False
    version: int | None = None
    top_k: int = 5
    warmup: object = True
    optimize: bool = True


@dataclasses.dataclass
class ExportResult:
    """What `export_model` wrote.

    Attributes:
        path: the export directory (a SavedModel version directory, or the LiteRT/ONNX directory).
        model_file: ``model.tflite`` / ``model.onnx`` (None for a SavedModel).
        format: "saved_model", "litert" or "onnx".
        quantize: the quantization.
        metadata: the written ``keras_cnn.json``.
    """

    path: Path
    model_file: Path | None
    format: str
    quantize: str
    metadata: dict

    @property
    def verification(self) -> dict | None:
        return self.metadata.get("verification")


def check_export_request(format, quantize, options):
    """Validate the format, the quantization and the options that go with them (no TensorFlow)."""
    check_choice("format", format, FORMATS)
    check_choice("quantize", quantize, litert.QUANTIZATIONS)
    if quantize != "none" and format != "litert":
        raise ValueError(f"`quantize` applies to format='litert'. "
                         f"Received: quantize={quantize!r} with format={format!r}")
    if options.int8_io and quantize != "int8":
        raise ValueError(f"`int8_io` applies to quantize='int8'. Received: int8_io=True with quantize={quantize!r}")
    if quantize != "int8" and options.calibration_data is not None:
        raise ValueError(f"`calibration_data` applies to quantize='int8'. Received: quantize={quantize!r}")
    check_positive_int("calibration_steps", options.calibration_steps)
    drop = options.max_accuracy_drop
    if isinstance(drop, bool) or not isinstance(drop, (int, float)) or not 0 <= drop <= 100:
        raise ValueError(f"`max_accuracy_drop` must be a number of percentage points in [0, 100]. "
                         f"Received: max_accuracy_drop={drop!r}")
    if format != "saved_model":
        defaults = ExportOptions()
        for key in ("version", "top_k", "warmup", "optimize"):
            if getattr(options, key) != getattr(defaults, key):
                raise ValueError(f"`{key}` applies to format='saved_model'. "
                                 f"Received: {key}={getattr(options, key)!r} with format={format!r}")
    if format == "litert":
        require("ai_edge_litert.interpreter", "LiteRT exports")
    elif format == "onnx":
        for module in ("tf2onnx", "onnx", "onnxruntime"):
            require(module, "ONNX exports")


def default_export_dir(name, format, quantize, base="exports") -> Path:
    """``exports/<name>-<format>[-<quantize>]`` for a LiteRT/ONNX export."""
    return Path(base) / (f"{name}-{format}" + ("" if quantize == "none" else f"-{quantize}"))


def export_model(model, path, format="saved_model", quantize="none", *, options=None) -> ExportResult:
    """Export a classifier as a TF Serving SavedModel, a LiteRT file or an ONNX file, verified before writing.

    Every format takes raw 0..255 pixels: the model's preprocessing stays inside the graph.

    Args:
        model: a ``keras.Model``, a ``.keras`` file, or a training run directory (then its
            ``class_names.json`` and ``config.json`` give the class names, the calibration data
            and the held-out split).
        path: "saved_model": the export root (the version goes to ``path/<name>/<version>/``);
            "litert" / "onnx": the export directory (see the module docstring).
        format: "saved_model", "litert" or "onnx". Default "saved_model".
        quantize: LiteRT only: "none", "float16", "dynamic" or "int8" (full integer). Default "none".
        options: `ExportOptions`. Default ``ExportOptions()``.

    Returns:
        `ExportResult`.

    Raises:
        ExportRefused: the verification failed (figures in the message); nothing written.
        FileExistsError: ``path`` exists and ``options.overwrite`` is False.
        ValueError: bad arguments, or no data to calibrate / verify an integer export with.
        MissingExtraError: the ``deploy`` extra is not installed.

    Example:
        >>> result = export_model("runs/demo", "exports/lenet5-int8", format="litert", quantize="int8")
        >>> result.verification["accuracy_drop_points"] <= 1.0
        True
    """
    options = options or ExportOptions()
    check_export_request(format, quantize, options)
    if format == "saved_model":
        target = export_for_serving(model, path, options.name, options.version, class_names=options.class_names,
                                    metadata=options.metadata, warmup=options.warmup, overwrite=options.overwrite,
                                    top_k=options.top_k, optimize=options.optimize)
        return ExportResult(target, None, format, quantize, read_metadata(target) or {})
    target = Path(path)
    if target.exists() and not options.overwrite:
        raise FileExistsError(f"{target} already exists; an export is never replaced unless overwrite=True.")
    keras_model, source = resolve_model(model)
    serve_model, logits = inference_model(keras_model)
    input_shape = _input_size(serve_model, None)
    names = _class_names(options.class_names, source, serve_model)
    data = _VerificationData.load(source, input_shape, options, calibrate=quantize == "int8")
    module = FILE_FORMATS[format]
    if format == "litert":
        content = litert.convert(serve_model, input_shape, outputs_logits=logits, quantize=quantize,
                                 calibration=data.calibration, int8_io=options.int8_io)
        runner = litert.LiteRTModel(content)
    else:
        content = onnx.convert(serve_model, input_shape, outputs_logits=logits)
        runner = onnx.OnnxModel(content)
    figures = verification_figures(_probabilities_of(serve_model, logits), runner, data, quantize,
                                   options.max_accuracy_drop)
    figures["forced"] = not figures["passed"]
    if not figures["passed"]:
        if not options.force:
            raise ExportRefused(f"the {_describe(format, quantize)} export failed its verification: "
                                f"{format_figures(figures)}; nothing written (force=True writes it anyway)", figures)
        logger.warning("writing the %s export although it failed its verification (force): %s",
                       _describe(format, quantize), format_figures(figures))
    info = _metadata(keras_model, serve_model, source, options, names, logits, input_shape, data,
                     dict(format=format, quantize=quantize, runner=runner, verification=figures))
    with atomic_dir(target, overwrite=options.overwrite) as tmp:
        (tmp / module.MODEL_FILE).write_bytes(content)
        atomic_write_text(tmp / LABELS_FILE, "\n".join(names) + "\n")
        atomic_write_json(tmp / METADATA_FILE, info)
        usual_permissions(tmp)
    return ExportResult(target, target / module.MODEL_FILE, format, quantize, info)


def _describe(format, quantize):
    return format if quantize == "none" else f"{format} {quantize}"


def _class_names(class_names, source, serve_model):
    num_classes = int(serve_model.output.shape[-1])
    names = class_names if class_names is not None else class_names_beside(source)
    names = load_class_names(names) if names is not None else [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"`class_names` must have one name per class ({num_classes}). Received: {len(names)} names")
    return names


def _metadata(keras_model, serve_model, source, options, names, logits, input_shape, data, export):
    runner, quantize, format = export["runner"], export["quantize"], export["format"]
    packages = _package_versions()
    packages.update({dist: version(dist) for dist in ("ai-edge-litert", "onnxruntime", "onnx", "tf2onnx")})
    return _json_safe("metadata", {
        "format": METADATA_VERSION,
        "export_format": format,
        "file": FILE_FORMATS[format].MODEL_FILE,
        "name": options.name or keras_model.name,
        "model_name": keras_model.name,
        "network": _network_identity(keras_model),
        "source": None if source is None else str(source),
        "input_shape": list(input_shape),
        "input_dtype": runner.input_dtype,
        "pixel_range": [0, 255],
        "preprocessing": _preprocessing_mode(serve_model),
        "softmax_added": bool(logits),
        "output": "probabilities",
        "num_classes": len(names),
        "class_names": names,
        "quantization": {
            "mode": quantize,
            "int8_io": bool(options.int8_io),
            "calibration": data.calibration_description if quantize == "int8" else None,
        },
        "runtime": _RUNTIMES[format],
        "verification": export["verification"],
        "metadata": options.metadata or {},
        "packages": packages,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    })


# --------------------------------------------------------------------------- data


def _run_config(source):
    """The training run's ``config.json`` beside ``model.keras``, or {}."""
    if source is None:
        return {}
    path = Path(source).parent / "config.json"
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _load_split(data, config, input_shape, splits, *, shuffle, limit=None):
    """``(images, labels, description)`` of the first of ``splits`` that ``data`` has."""
    from keras_cnn.data import load_data

    kwargs = dict(image_size=tuple(input_shape[:2]), channels=input_shape[2], batch_size=_BATCH, shuffle=shuffle)
    if data == config.get("data"):  # the run's own source: the same split as in training
        kwargs.update({k: config[k] for k in ("seed", "validation_split", "max_examples") if config.get(k) is not None})
    elif splits == ("train",):  # calibration from another source: all of it
        kwargs.update(validation_split=0.0, test_split=0.0)
    bundle = load_data(data, **kwargs)
    split = next((s for s in splits if getattr(bundle, s, None) is not None), None)
    if split is None:
        raise ValueError(f"`data` has none of the splits {list(splits)}. Received: data={data!r}")
    images, labels, count = [], [], 0
    for x, y in getattr(bundle, split):
        images.append(np.asarray(x, dtype="float32"))
        labels.append(np.asarray(y).reshape(-1).astype("int64"))
        count += len(images[-1])
        if limit is not None and count >= limit:
            break
    images, labels = np.concatenate(images)[:limit], np.concatenate(labels)[:limit]
    part = f"the {split} split" if split != "train" or data == config.get("data") else "all"
    return images, labels, f"{data}: {len(images)} images of {part}"


@dataclasses.dataclass
class _VerificationData:
    """Calibration images, held-out images (with labels when known) and where they came from."""

    calibration: np.ndarray | None
    calibration_description: str | None
    images: np.ndarray
    labels: np.ndarray | None
    description: str

    @classmethod
    def load(cls, source, input_shape, options, *, calibrate):
        config = _run_config(source)
        run_data = config.get("data")
        calibration, calibration_text = None, None
        if calibrate:
            wanted = options.calibration_data if options.calibration_data is not None else run_data
            if wanted is None:
                raise ValueError("`calibration_data` is required for quantize='int8' of a model without its "
                                 "training run (config.json beside model.keras). Received: calibration_data=None")
            if isinstance(wanted, (str, Path)):
                calibration, _, calibration_text = _load_split(str(wanted), config, input_shape, ("train",),
                                                               shuffle=True, limit=options.calibration_steps)
            else:
                calibration = check_image_batch("calibration_data", wanted, input_shape)[:options.calibration_steps]
                calibration_text = f"{len(calibration)} images given as an array"
        evaluation = options.eval_data if options.eval_data is not None else run_data
        if evaluation is None:
            return cls._without_held_out(calibration, calibration_text, input_shape)
        if isinstance(evaluation, (str, Path)):
            images, labels, text = _load_split(str(evaluation), config, input_shape, ("test", "val"), shuffle=False)
        else:
            if not isinstance(evaluation, (tuple, list)) or len(evaluation) != 2:
                raise ValueError("`eval_data` must be a data source or (images, labels). "
                                 f"Received: eval_data of type {type(evaluation).__name__}")
            images = check_image_batch("eval_data", evaluation[0], input_shape)
            labels = np.asarray(evaluation[1]).reshape(-1).astype("int64")
            if len(labels) != len(images):
                raise ValueError(f"`eval_data` must have one label per image. Received: {len(images)} images, "
                                 f"{len(labels)} labels")
            text = f"{len(images)} held-out images given as arrays"
        return cls(calibration, calibration_text, images, labels, text)

    @classmethod
    def _without_held_out(cls, calibration, calibration_text, input_shape):
        if calibration is not None:
            raise ValueError("`eval_data` is required to verify an integer-quantized export of a model without "
                             "its training run: the accuracy drop is measured on held-out data. "
                             "Received: eval_data=None")
        logger.warning("no held-out data (a model without its training run, no eval_data): the export is "
                       "compared with the Keras model on random pixels")
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (16, *input_shape)).astype("float32")
        return cls(None, None, images, None, "16 images of random pixels (no held-out data)")


# --------------------------------------------------------------------------- verification


def _probabilities_of(serve_model, logits):
    """``f(images) -> probabilities`` of the Keras inference model, in batches."""

    def probabilities(images):
        out = []
        for start in range(0, len(images), _BATCH):
            scores = np.asarray(serve_model(images[start:start + _BATCH], training=False), dtype="float64")
            if logits:
                scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
                scores /= scores.sum(axis=-1, keepdims=True)
            out.append(scores)
        return np.concatenate(out)

    return probabilities


def _run_batched(runner, images):
    return np.concatenate([runner(images[start:start + _BATCH]) for start in range(0, len(images), _BATCH)])


def verification_figures(reference, runner, data, quantize, max_accuracy_drop) -> dict:
    """Compare an exported model with the Keras model on ``data``; ``passed`` says whether it holds.

    Args:
        reference: ``f(images) -> probabilities`` of the Keras model.
        runner: the exported model (`litert.LiteRTModel` / `onnx.OnnxModel`).
        data: `_VerificationData`.
        quantize: the quantization ("none" for ONNX).
        max_accuracy_drop: percentage points allowed for "dynamic" / "int8".

    Returns:
        dict: ``images``, ``data``, ``check`` ("max_abs_diff" or "accuracy_drop"), ``max_abs_diff``,
        ``tolerance`` (float), ``top1_agreement``, ``accuracy_keras``, ``accuracy_export``,
        ``accuracy_drop_points`` (with labels), ``max_accuracy_drop_points`` (integer), ``passed``.
    """
    integer = quantize in litert.INTEGER_QUANTIZATIONS
    images, labels = data.images, data.labels
    if not integer:
        images = images[:FLOAT_VERIFY_IMAGES]
        labels = None if labels is None else labels[:FLOAT_VERIFY_IMAGES]
    expected, got = reference(images), _run_batched(runner, images)
    figures = {
        "images": len(images),
        "data": data.description if integer or len(images) == len(data.images) else
        f"{data.description} (the first {len(images)})",
        "check": "accuracy_drop" if integer else "max_abs_diff",
        "max_abs_diff": float(np.max(np.abs(expected - got))),
        "top1_agreement": float(np.mean(expected.argmax(-1) == got.argmax(-1))),
    }
    if labels is not None:
        figures["accuracy_keras"] = float(np.mean(expected.argmax(-1) == labels))
        figures["accuracy_export"] = float(np.mean(got.argmax(-1) == labels))
        figures["accuracy_drop_points"] = round(100 * (figures["accuracy_keras"] - figures["accuracy_export"]), 4)
    if integer:
        figures["max_accuracy_drop_points"] = float(max_accuracy_drop)
        figures["passed"] = figures["accuracy_drop_points"] <= max_accuracy_drop
    else:
        figures["tolerance"] = FLOAT_TOLERANCE[quantize]
        figures["passed"] = figures["max_abs_diff"] <= figures["tolerance"]
    return figures


def format_figures(figures) -> str:
    """One line of verification figures."""
    parts = []
    if "accuracy_keras" in figures:
        parts.append(f"accuracy {100 * figures['accuracy_keras']:.2f} % (Keras) -> "
                     f"{100 * figures['accuracy_export']:.2f} % (export), drop {figures['accuracy_drop_points']:.2f} "
                     "points" + (f" (at most {figures['max_accuracy_drop_points']:g})"
                                 if figures["check"] == "accuracy_drop" else ""))
    parts.append(f"top-1 agreement {100 * figures['top1_agreement']:.2f} %")
    parts.append(f"max |diff| {figures['max_abs_diff']:.2e}" +
                 (f" (allowed {figures['tolerance']:g})" if figures["check"] == "max_abs_diff" else ""))
    return ", ".join(parts) + f" on {figures['data']}"


# --------------------------------------------------------------------------- files: open, predict, verify


def _model_file(path, *, arg="model"):
    """``(file, format)`` of a LiteRT/ONNX model file or export directory, else ``(None, None)``."""
    path = Path(path)
    for format, module in FILE_FORMATS.items():
        if module.is_model_file(path):
            return Path(check_existing_path(arg, path)), format
    if path.is_dir() and (path / METADATA_FILE).is_file():
        try:
            info = json.loads((path / METADATA_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None, None
        format = info.get("export_format") if isinstance(info, dict) else None
        if format in FILE_FORMATS:
            return Path(check_existing_path(arg, path / FILE_FORMATS[format].MODEL_FILE)), format
    return None, None


def open_model_file(path, *, arg="model", num_threads=None):
    """``(runner, class_names or None, metadata or None, format)`` of a ``.tflite``/``.onnx`` file or export dir.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a LiteRT/ONNX model (truncated, another format).
    """
    file, format = _model_file(path, arg=arg)
    if file is None:
        raise ValueError(f"`{arg}` must be a .tflite or .onnx file, or a LiteRT/ONNX export directory. "
                         f"Received: {arg}={str(path)!r}")
    runner = (litert.LiteRTModel if format == "litert" else onnx.OnnxModel)(file, num_threads=num_threads)
    labels = file.parent / LABELS_FILE
    names = load_class_names(labels, arg=f"{arg} labels") if labels.is_file() else None
    info = file.parent / METADATA_FILE
    try:
        metadata = json.loads(info.read_text(encoding="utf-8")) if info.is_file() else None
    except ValueError:
        metadata = None
    return runner, names, metadata, format


def predict_model(path, images, *, top_k=5, signature=None):
    """Predict image files with any exported or trained model; one `Prediction` per image.

    Args:
        path: a ``.tflite`` / ``.onnx`` file or its export directory, a SavedModel (version or model
            directory), a ``.keras`` file, or a training run directory.
        images: image file paths (decoded and resized to the model's input as ``serving_bytes`` does).
        top_k: classes per image. Default 5.
        signature: SavedModel signature. Default: ``serving_bytes`` when present.
    """
    file, _ = _model_file(path)
    saved_model = file is None and Path(path).is_dir() and (
        (Path(path) / "saved_model.pb").is_file() or any(p.name.isdigit() for p in Path(path).iterdir()))
    if signature is not None and not saved_model:
        raise ValueError(f"`signature` applies to SavedModels. Received: signature={signature!r}")
    if saved_model:
        return predict_saved_model(path, images, top_k=top_k, signature=signature)
    if file is None:
        return predict_keras(path, images, top_k=top_k)
    runner, names, _, _ = open_model_file(file)
    if names is not None and len(names) != runner.num_classes:
        raise ValueError(f"`model` labels.txt has {len(names)} names but the model {runner.num_classes} classes. "
                         f"Received: model={str(path)!r}")
    return predict_images(runner, runner.input_shape, images, top_k=top_k, class_names=names)


def verify_any(path, *, model=None, eval_data=None, atol=None, saved_model_cli=True) -> VerifyReport:
    """`verify_export` for a SavedModel, `verify_model_file` for a LiteRT/ONNX file or export directory."""
    file, _ = _model_file(path, arg="path")
    if file is None:
        return verify_export(path, model=model, atol=1e-4 if atol is None else atol, saved_model_cli=saved_model_cli)
    return verify_model_file(file, model=model, eval_data=eval_data, atol=atol)


def verify_model_file(path, *, model=None, eval_data=None, atol=None) -> VerifyReport:
    """Check a LiteRT/ONNX export: it loads, its files agree, it answers with probabilities, and matches Keras.

    Checks: load with its runtime; ``labels.txt`` and ``keras_cnn.json`` against the model;
    the verification recorded at export time passed (not forced); a batch of random images gives
    probability rows (finite, summing to 1) and a batch of one gives the same first row; with
    ``model`` (a ``.keras`` file or run directory), the figures of `verification_figures` on the
    run's held-out split (or ``eval_data``), against the recorded quantization's limit.

    Args:
        path: the ``.tflite`` / ``.onnx`` file or its export directory.
        model: optional Keras model to compare with.
        eval_data: held-out data for the comparison (default: the run's).
        atol: tolerance for float formats. Default: `FLOAT_TOLERANCE` of the quantization.
    """
    file, format = _model_file(path, arg="path")
    if file is None:
        raise ValueError(f"`path` must be a .tflite or .onnx file or its export directory. "
                         f"Received: path={str(path)!r}")
    checks = []
    add = lambda name, ok, detail="": checks.append(Check(name, bool(ok), detail))  # noqa: E731
    report = VerifyReport(file, {}, checks, None, kind="LiteRT" if format == "litert" else "ONNX")
    try:
        runner, names, metadata, _ = open_model_file(file, arg="path")
    except ValueError as err:
        add(f"load with {_RUNTIMES[format]}", False, str(err))
        return report
    report.metadata = metadata
    add(f"load with {_RUNTIMES[format]}", True, f"input {runner.input_dtype} [batch, "
        f"{', '.join(map(str, runner.input_shape))}], {runner.num_classes} outputs")
    quantize = _check_files(add, runner, names, metadata, format)
    _check_outputs(add, runner, quantize)
    if model is not None:
        keras_model, source = resolve_model(model)
        serve_model, logits = inference_model(keras_model)
        data = _VerificationData.load(source, runner.input_shape, ExportOptions(eval_data=eval_data), calibrate=False)
        limit = ((metadata or {}).get("verification") or {}).get("max_accuracy_drop_points", DEFAULT_MAX_ACCURACY_DROP)
        figures = verification_figures(_probabilities_of(serve_model, logits), runner, data, quantize, limit)
        if atol is not None and figures["check"] == "max_abs_diff":
            figures["tolerance"], figures["passed"] = atol, figures["max_abs_diff"] <= atol
        add("matches the Keras model", figures["passed"], format_figures(figures))
    return report


def _check_files(add, runner, names, metadata, format):
    """labels.txt, keras_cnn.json and the recorded verification; returns the quantization."""
    if names is None:
        add("labels.txt", False, "missing beside the model file")
    else:
        ok = len(names) == runner.num_classes
        add("labels.txt", ok, f"{len(names)} names" + ("" if ok else f" but {runner.num_classes} outputs"))
    if metadata is None:
        add("metadata", False, f"{METADATA_FILE} missing beside the model file")
        return "none"
    problems = []
    if metadata.get("export_format") != format:
        problems.append(f"export_format {metadata.get('export_format')!r} != {format!r}")
    if list(metadata.get("input_shape", [])) != list(runner.input_shape):
        problems.append(f"input_shape {metadata.get('input_shape')} != {list(runner.input_shape)}")
    if names is not None and metadata.get("class_names") != names:
        problems.append("class_names differ from labels.txt")
    quantize = (metadata.get("quantization") or {}).get("mode", "none")
    add("metadata", not problems, "; ".join(problems) or
        f"model {metadata.get('model_name')!r}, preprocessing {metadata.get('preprocessing')!r}, "
        f"quantization {quantize!r}")
    recorded = metadata.get("verification")
    if not recorded:
        add("verified at export", False, "no verification figures recorded")
    else:
        add("verified at export", recorded.get("passed") and not recorded.get("forced"),
            ("" if recorded.get("passed") else "FAILED and written with force: ") + format_figures(recorded))
    return quantize if quantize in litert.QUANTIZATIONS else "none"


def _check_outputs(add, runner, quantize):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, *runner.input_shape)).astype("float32")
    batch = runner(images)
    single = runner(images[:1])
    sums = batch.sum(axis=-1)
    # int8 probabilities are multiples of 1/256: their rows sum to 1 within a few steps.
    slack = 0.05 if quantize == "int8" else 1e-3
    ok = batch.shape == (3, runner.num_classes) and np.all(np.isfinite(batch)) and np.all(batch >= 0) and \
        np.allclose(sums, 1.0, atol=slack)
    add("outputs are probabilities", ok, f"shape {tuple(batch.shape)}, row sums {sums.min():.4f}..{sums.max():.4f}")
    diff = float(np.max(np.abs(single[0] - batch[0])))
    tolerance = 1e-5 if quantize in ("none", "float16", "int8") else FLOAT_TOLERANCE["float16"]
    add("batch of 1 matches batch of 3", diff <= tolerance, f"max |diff| {diff:.2e}")
