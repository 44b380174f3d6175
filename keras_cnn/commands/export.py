"""`keras-cnn export`: a trained .keras model -> a TF Serving SavedModel version."""

from __future__ import annotations

import json


def register(subparsers):
    parser = subparsers.add_parser(
        "export",
        help="export a .keras model as a TF Serving SavedModel (<base-dir>/<name>/<version>/)",
        description=(
            "Export a trained model as a SavedModel for TF Serving, atomically, in the layout "
            "<base-dir>/<name>/<version>/. Signatures: serving_default (float32 [batch, H, W, C] of "
            "raw 0..255 pixels) and serving_bytes (encoded JPEG/PNG strings, decoded and resized "
            "inside); outputs probabilities, classes, class_names and top_k_*. Class names ship "
            "as assets/class_names.txt, metadata as assets.extra/keras_cnn.json, warm-up requests "
            "as assets.extra/tf_serving_warmup_requests. By default the graph is optimized for "
            "inference (weights frozen, BatchNormalization folded into the preceding convolutions, "
            "checked against the model); --no-optimize keeps the plain graph. An existing version is "
            "never replaced unless --overwrite is given; hidden temporaries left by killed exports "
            "are removed."
        ),
    )
    parser.add_argument("model", metavar="MODEL_FILE",
                        help="a .keras file, or a training run directory holding model.keras")
    parser.add_argument("--name", default=None, help="model name (default: the Keras model's name)")
    parser.add_argument("--version", type=int, default=None, help="version number (default: next free)")
    parser.add_argument("--base-dir", default="saved_models", help="export root (default saved_models)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing version")
    parser.add_argument("--class-names", metavar="FILE", default=None,
                        help="class names: .json list or one name a line (default: class_names.json "
                             "next to the model, else 0..N-1)")
    parser.add_argument("--metadata", metavar="JSON_FILE", default=None,
                        help="JSON object stored in the export's metadata (e.g. metrics.json)")
    parser.add_argument("--top-k", type=int, default=5, help="size of the top_k_* outputs (default 5)")
    parser.add_argument("--no-warmup", action="store_true", help="do not write warm-up requests")
    parser.add_argument("--no-optimize", action="store_true",
                        help="write the plain graph reading the model's variables instead of the optimized "
                             "one (weights frozen, BatchNormalization folded into the convolutions)")
    parser.add_argument("--verify", action="store_true",
                        help="run verify-export on the result (separate process, saved_model_cli)")
    parser.set_defaults(func=run)
    return parser


def run(args):
    from keras_cnn._validation import check_existing_path
    from keras_cnn.export import export_for_serving, read_metadata, verify_export

    metadata = None
    if args.metadata:
        path = check_existing_path("--metadata", args.metadata)
        try:
            with open(path, encoding="utf-8") as handle:
                metadata = json.load(handle)
        except json.JSONDecodeError as err:
            raise ValueError(f"`--metadata` must be a JSON file ({err}). Received: --metadata={path!r}") from None
        if not isinstance(metadata, dict):
            raise ValueError(f"`--metadata` must hold a JSON object. Received: --metadata={path!r}")
    target = export_for_serving(
        args.model,
        args.base_dir,
        args.name,
        args.version,
        class_names=args.class_names,
        metadata=metadata,
        warmup=not args.no_warmup,
        overwrite=args.overwrite,
        top_k=args.top_k,
        optimize=not args.no_optimize,
    )
    info = read_metadata(target) or {}
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
    if args.verify:
        report = verify_export(target, model=args.model)
        print()
        print(report.format())
        return 0 if report.ok else 1
    return 0
