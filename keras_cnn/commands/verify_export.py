"""`keras-cnn verify-export`: load an export (SavedModel, LiteRT, ONNX) as it will be served, run, compare, report."""

from __future__ import annotations

import json
import sys

from keras_cnn.commands._errors import set_flag_names


def register(subparsers):
    parser = subparsers.add_parser(
        "verify-export",
        help="check a SavedModel, LiteRT or ONNX export the way it will be loaded",
        description=(
            "SavedModel (a version directory): load the export in a separate process with "
            "tf.saved_model.load(DIR, tags=['serve']), look its signatures up by name, run serving_default on "
            "random raw images and serving_bytes on the same images PNG-encoded, replay the warm-up records, "
            "check the outputs, compare with the Keras model if --model is given, and cross-check with "
            "`saved_model_cli show --all` and `saved_model_cli run`; prints the signature table. "
            "LiteRT / ONNX (a .tflite or .onnx file, or its export directory): load it with ai-edge-litert / "
            "onnxruntime, check labels.txt and keras_cnn.json against it and the verification recorded at "
            "export, run a batch and a single image, and with --model compare with the Keras model on the "
            "run's held-out split (float: max |diff|; dynamic/int8: the accuracy drop allowed at export). "
            "Exits 1 if any check fails."
        ),
    )
    parser.add_argument("path", metavar="PATH",
                        help="a SavedModel version directory (e.g. saved_models/lenet5/1), a .tflite or .onnx file, "
                             "or a LiteRT/ONNX export directory")
    parser.add_argument("--model", metavar="MODEL_FILE", default=None,
                        help=".keras file (or run directory) to compare the outputs with")
    parser.add_argument("--atol", type=float, default=None,
                        help="comparison tolerance (default 1e-4; LiteRT float16 1e-2)")
    parser.add_argument("--eval-data", metavar="SOURCE", default=None,
                        help="LiteRT/ONNX with --model: held-out data (a --data source; default the run's own)")
    parser.add_argument("--no-saved-model-cli", action="store_true",
                        help="SavedModel: skip the saved_model_cli show/run cross-checks")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run)
    set_flag_names(parser, {"path": "PATH"})
    return parser


def run(args):
    from keras_cnn.export.formats import verify_any

    if args.atol is not None and not args.atol > 0:
        raise ValueError(f"`--atol` must be a positive number. Received: --atol={args.atol!r}")
    report = verify_any(args.path, model=args.model, eval_data=args.eval_data, atol=args.atol,
                        saved_model_cli=not args.no_saved_model_cli)
    if args.json:
        print(json.dumps({
            "path": str(report.path),
            "kind": report.kind,
            "ok": report.ok,
            "signatures": report.signatures,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in report.checks],
        }, indent=2))
    else:
        print(report.format())
    if not report.ok:
        failed = ", ".join(c.name for c in report.failures)
        print(f"keras-cnn verify-export: error: {len(report.failures)} check(s) failed: {failed}",
              file=sys.stderr)
        return 1
    return 0
