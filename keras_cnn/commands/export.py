"""`keras-cnn export`: a trained .keras model -> a TF Serving SavedModel version, a LiteRT file or an ONNX file."""

from __future__ import annotations

import json
import sys

from keras_cnn.commands._errors import set_flag_names

FORMATS = ("saved_model", "litert", "onnx")
QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
_SAVED_MODEL_ONLY = (("version", None, "--version"), ("top_k", 5, "--top-k"), ("no_warmup", False, "--no-warmup"),
                     ("no_optimize", False, "--no-optimize"), ("base_dir", "saved_models", "--base-dir"))


def register(subparsers):
    parser = subparsers.add_parser(
        "export",
        help="export a .keras model as a TF Serving SavedModel, a LiteRT (.tflite) or an ONNX file",
        description=(
            "Export a trained model. --format saved_model (default): a SavedModel for TF Serving, atomically, "
            "in the layout <base-dir>/<name>/<version>/. Signatures: serving_default (float32 [batch, H, W, C] of "
            "raw 0..255 pixels) and serving_bytes (encoded JPEG/PNG strings, decoded and resized "
            "inside); outputs probabilities, classes, class_names and top_k_*. Class names ship "
            "as assets/class_names.txt, metadata as assets.extra/keras_cnn.json, warm-up requests "
            "as assets.extra/tf_serving_warmup_requests. By default the graph is optimized for "
            "inference (weights frozen, BatchNormalization folded into the preceding convolutions, "
            "checked against the model); --no-optimize keeps the plain graph. An existing version is "
            "never replaced unless --overwrite is given; hidden temporaries left by killed exports "
            "are removed. --format litert | onnx: a directory (--out) holding model.tflite | model.onnx "
            "(raw 0..255 pixels in, probabilities out), labels.txt and keras_cnn.json, written only after "
            "the converted model was checked against the Keras model: float exports by their max |diff| on "
            "held-out images, --quantize dynamic | int8 by the accuracy drop on the run's held-out split "
            "(refused over --max-accuracy-drop, exit 2, nothing written, unless --force)."
        ),
    )
    parser.add_argument("model", metavar="MODEL_FILE",
                        help="a .keras file, or a training run directory holding model.keras")
    parser.add_argument("--format", choices=FORMATS, default="saved_model",
                        help="saved_model (TF Serving; default), litert (.tflite) or onnx")
    parser.add_argument("--name", default=None, help="model name (default: the Keras model's name)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing version or export directory")
    parser.add_argument("--class-names", metavar="FILE", default=None,
                        help="class names: .json list or one name a line (default: class_names.json "
                             "next to the model, else 0..N-1)")
    parser.add_argument("--metadata", metavar="JSON_FILE", default=None,
                        help="JSON object stored in the export's metadata (e.g. metrics.json)")
    parser.add_argument("--verify", action="store_true",
                        help="run verify-export on the result (a SavedModel: in a separate process, with "
                             "saved_model_cli)")
    serving = parser.add_argument_group("saved_model")
    serving.add_argument("--version", type=int, default=None, help="version number (default: next free)")
    serving.add_argument("--base-dir", default="saved_models", help="export root (default saved_models)")
    serving.add_argument("--top-k", type=int, default=5, help="size of the top_k_* outputs (default 5)")
    serving.add_argument("--no-warmup", action="store_true", help="do not write warm-up requests")
    serving.add_argument("--no-optimize", action="store_true",
                         help="write the plain graph reading the model's variables instead of the optimized "
                              "one (weights frozen, BatchNormalization folded into the convolutions)")
    files = parser.add_argument_group("litert and onnx")
    files.add_argument("--out", metavar="DIR", default=None,
                       help="export directory (default exports/<--name, else the run directory or file name>-<format>"
                            "[-<quantize>])")
    files.add_argument("--quantize", choices=QUANTIZATIONS, default="none",
                       help="litert: none (float32), float16 (weights), dynamic (int8 weights), int8 (full integer, "
                            "calibrated); default none")
    files.add_argument("--int8-io", action="store_true",
                       help="with --quantize int8: int8 input and output tensors (default float32)")
    files.add_argument("--calibration-data", metavar="SOURCE", default=None,
                       help="int8 calibration images: a --data source (digits, tfds:NAME, a directory); default the "
                            "run's own training data")
    files.add_argument("--calibration-steps", type=int, default=100, help="calibration images (default 100)")
    files.add_argument("--eval-data", metavar="SOURCE", default=None,
                       help="held-out data for the verification: a --data source (its test split); default the "
                            "run's own held-out split")
    files.add_argument("--max-accuracy-drop", type=float, default=1.0,
                       help="refuse a dynamic/int8 export whose held-out accuracy drops by more percentage points "
                            "(default 1.0)")
    files.add_argument("--force", action="store_true", help="write an export that failed its verification")
    parser.set_defaults(func=run)
    set_flag_names(parser, {"model": "MODEL_FILE", "path": "--out", "base_dir": "--base-dir"})
    return parser


def _read_metadata_file(path_text):
    from keras_cnn._validation import check_existing_path

    path = check_existing_path("--metadata", path_text)
    try:
        with open(path, encoding="utf-8") as handle:
            metadata = json.load(handle)
    except json.JSONDecodeError as err:
        raise ValueError(f"`--metadata` must be a JSON file ({err}). Received: --metadata={path!r}") from None
    if not isinstance(metadata, dict):
        raise ValueError(f"`--metadata` must hold a JSON object. Received: --metadata={path!r}")
    return metadata


def _check_flags(args):
    """Flags of one format given with another: refused before anything is loaded."""
    if args.format == "saved_model":
        if args.out is not None:
            raise ValueError(f"`--out` applies to --format litert|onnx (a SavedModel goes to --base-dir). "
                             f"Received: --out={args.out!r}")
        return
    for attr, default, flag in _SAVED_MODEL_ONLY:
        if getattr(args, attr) != default:
            raise ValueError(f"`{flag}` applies to --format saved_model. Received: {flag} with --format {args.format}")


def _options(args, metadata):
    from keras_cnn.export.formats import ExportOptions

    return ExportOptions(
        name=args.name, class_names=args.class_names, metadata=metadata, overwrite=args.overwrite,
        int8_io=args.int8_io, calibration_data=args.calibration_data, calibration_steps=args.calibration_steps,
        eval_data=args.eval_data, max_accuracy_drop=args.max_accuracy_drop, force=args.force,
        version=args.version, top_k=args.top_k, warmup=not args.no_warmup, optimize=not args.no_optimize,
    )


def run(args):
    _check_flags(args)
    from keras_cnn.export.formats import check_export_request, default_export_dir, export_model

    metadata = _read_metadata_file(args.metadata) if args.metadata else None
    options = _options(args, metadata)
    check_export_request(args.format, args.quantize, options)
    path = args.base_dir
    if args.format != "saved_model":
        path = args.out or default_export_dir(args.name or _model_name(args.model), args.format, args.quantize)
    # A failed verification is an ExportRefused (a ValueError): one line with the figures, exit 2.
    result = export_model(args.model, path, args.format, args.quantize, options=options)
    if args.format == "saved_model":
        _print_saved_model(result.metadata, result.path)
    else:
        _print_file_export(result)
    if args.verify:
        from keras_cnn.export.formats import verify_any

        report = verify_any(result.path, model=args.model)
        print()
        print(report.format())
        return 0 if report.ok else 1
    return 0


def _model_name(model):
    """The default export name of a run directory or .keras file: its directory or file name."""
    from pathlib import Path

    path = Path(model)
    return path.name if path.is_dir() else path.stem


def _print_file_export(result):
    from keras_cnn.export.formats import format_figures

    info = result.metadata
    quant = info["quantization"]
    print(f"Exported {info['name']} as {result.format} ({quant['mode']}) to {result.model_file}")
    print(f"  input: {info['input_dtype']} [batch, {', '.join(map(str, info['input_shape']))}] raw 0..255 pixels "
          f"(preprocessing {info['preprocessing']!r} inside); output: probabilities of {info['num_classes']} classes "
          f"(labels.txt)")
    if quant.get("calibration"):
        print(f"  calibration: {quant['calibration']}")
    verification = info["verification"]
    status = "passed" if verification["passed"] else "FAILED (written because of --force)"
    print(f"  verification {status}: {format_figures(verification)}")
    if not verification["passed"]:
        print("keras-cnn export: warning: the export failed its verification and was written because of --force",
              file=sys.stderr)
    size = result.model_file.stat().st_size
    print(f"  file size: {size / 1e6:.2f} MB")


def _print_saved_model(info, target):
    print(f"Exported {info.get('name')} version {info.get('version')} to {target}")
    mode = info.get("preprocessing")
    inside = f"Preprocess({mode!r}) inside" if mode else "no Preprocess layer found: pixels reach the model as sent"
    print(f"  input: float32 [batch, {', '.join(map(str, info.get('input_shape', [])))}] raw 0..255 pixels "
          f"({inside}); {info.get('num_classes')} classes")
    print("  signatures: serving_default (images), serving_bytes (image_bytes: encoded JPEG/PNG)")
    optimized = info.get("optimized")
    if optimized:
        print(f"  graph: optimized (weights frozen, {optimized['batchnorms_folded']} BatchNormalization(s) folded "
              "into convolutions)")
    elif info.get("optimize_error"):
        print(f"  graph: plain (the optimized graph could not be built: {info['optimize_error']})")
    else:
        print("  graph: plain (--no-optimize)")
