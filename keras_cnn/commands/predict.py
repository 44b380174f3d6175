"""`keras-cnn predict`: top-k classes for images, locally or from TF Serving."""

from __future__ import annotations

import json
import sys

from keras_cnn.commands._errors import set_flag_names


def register(subparsers):
    parser = subparsers.add_parser(
        "predict",
        help="classify images with a LiteRT/ONNX file, a SavedModel, a .keras model, or a TF Serving server",
        description=(
            "Print the top-k classes of each image. Sources: --model FILE.tflite | FILE.onnx (or "
            "their export directory; run by ai-edge-litert / onnxruntime, class names from labels.txt "
            "beside the file); --model SAVED_MODEL_DIR or --saved-model DIR (a SavedModel version or "
            "model directory, run locally through its serving_bytes signature); --model RUN_DIR or "
            "MODEL.keras (a trained Keras model; class names from class_names.json beside it); "
            "--server URL --model NAME (TF Serving's REST API: POST URL/v1/models/NAME"
            "[/versions/N]:predict with base64 images); --grpc HOST:PORT --model NAME (TF Serving's "
            "gRPC PredictionService). An image that cannot be predicted (missing, not an image, "
            "corrupt) gets its own error line on stderr and the others are still predicted; the exit "
            "status is 0 when every image was predicted, 1 otherwise, 2 for bad usage."
        ),
    )
    parser.add_argument("images", metavar="IMAGE", nargs="+", help="image files (JPEG, PNG, GIF, BMP)")
    source = parser.add_argument_group("model source (one of)")
    source.add_argument("--saved-model", metavar="DIR", default=None, help="SavedModel version directory")
    source.add_argument("--model", default=None,
                        help="a .tflite or .onnx file (or its export directory), a SavedModel directory, a .keras "
                             "file or a training run directory; with --server/--grpc: the served model name")
    source.add_argument("--server", metavar="URL", default=None, help="TF Serving REST URL, e.g. http://localhost:8501")
    source.add_argument("--grpc", metavar="HOST:PORT", default=None, help="TF Serving gRPC address, e.g. localhost:8500")
    parser.add_argument("--version", type=int, default=None, help="served model version (with --server/--grpc)")
    parser.add_argument("--signature", default=None,
                        help="signature name (default serving_bytes; locally: serving_bytes if present)")
    parser.add_argument("--top-k", type=int, default=5, help="classes per image (default 5)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the server (default 30)")
    parser.add_argument("--json", action="store_true", help="print the predictions as JSON")
    parser.set_defaults(func=run, precheck=_check_before_tensorflow)
    set_flag_names(parser)
    return parser


def _check_before_tensorflow(args):
    """The argument checks that need no model, then whether ``--server`` answers: said at once."""
    from keras_cnn._validation import check_positive_int

    check_positive_int("--top-k", args.top_k)
    remote = [flag for flag, value in (("--server", args.server), ("--grpc", args.grpc)) if value]
    if len(remote) > 1:
        raise ValueError("use one of `--server` (REST) and `--grpc`. Received: both")
    if remote:
        if args.saved_model:
            raise ValueError(f"`--saved-model` runs locally; it cannot be combined with {remote[0]}. "
                             f"Received: --saved-model={args.saved_model!r}")
        if not args.model:
            raise ValueError(f"`--model` must name the served model with {remote[0]}. Received: --model=None")
        if not args.timeout > 0:
            raise ValueError(f"`--timeout` must be a positive number. Received: --timeout={args.timeout!r}")
    if args.server:
        from keras_cnn.commands._args import reachable_server

        reachable_server(args.server, timeout=min(args.timeout, 5.0))


def _predict(args):
    """After `_check_before_tensorflow` (cli.main runs it as the command's ``precheck``)."""
    from keras_cnn.export import client

    remote = [flag for flag, value in (("--server", args.server), ("--grpc", args.grpc)) if value]
    if remote:
        kwargs = dict(version=args.version, top_k=args.top_k, timeout=args.timeout)
        if args.signature:
            kwargs["signature"] = args.signature
        if args.server:
            return client.predict_rest(args.server, args.model, args.images, **kwargs)
        return client.predict_grpc(args.grpc, args.model, args.images, **kwargs)
    if args.version is not None:
        raise ValueError(f"`--version` selects a served version; use it with --server or --grpc. "
                         f"Received: --version={args.version!r}")
    if bool(args.saved_model) == bool(args.model):
        raise ValueError("give exactly one of `--saved-model DIR`, `--model MODEL_FILE`, or `--server URL --model NAME`. "
                         f"Received: --saved-model={args.saved_model!r}, --model={args.model!r}")
    if args.saved_model:
        return client.predict_saved_model(args.saved_model, args.images, top_k=args.top_k, signature=args.signature)
    from keras_cnn.export.formats import predict_model

    return predict_model(args.model, args.images, top_k=args.top_k, signature=args.signature)


def run(args):
    from keras_cnn.export.client import ServingError

    try:
        predictions = _predict(args)
    except ServingError as err:
        print(f"keras-cnn predict: error: {err}", file=sys.stderr)
        return 1
    failed = [p for p in predictions if not p.ok]
    if args.json:
        print(json.dumps([p.to_dict() for p in predictions], indent=2))
    for prediction in predictions:
        if not prediction.ok:
            print(f"keras-cnn predict: error: {prediction.source}: {prediction.error}", file=sys.stderr)
        elif not args.json:
            print(prediction.source)
            width = max(len(n) for n in prediction.class_names)
            for rank, (index, name, score) in enumerate(
                zip(prediction.classes, prediction.class_names, prediction.scores), start=1
            ):
                print(f"  {rank}. {name.ljust(width)}  {score:.4f}  (class {index})")
    if failed:
        print(f"keras-cnn predict: {len(failed)} of {len(predictions)} images could not be predicted",
              file=sys.stderr)
        return 1
    return 0
