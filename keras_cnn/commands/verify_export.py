"""`keras-cnn verify-export`: load an export as TF Serving would, run it, compare, report."""

from __future__ import annotations

import json
import sys


def register(subparsers):
    parser = subparsers.add_parser(
        "verify-export",
        help="check a SavedModel export the way TF Serving loads it",
        description=(
            "Load the export in a separate process with tf.saved_model.load(DIR, tags=['serve']), "
            "look its signatures up by name, run serving_default on random raw images and "
            "serving_bytes on the same images PNG-encoded, replay the warm-up records, check the "
            "outputs, compare with the Keras model if --model is given, and cross-check with "
            "`saved_model_cli show --all` and `saved_model_cli run`. Prints the signature table; "
            "exits 1 if any check fails."
        ),
    )
    parser.add_argument("dir", metavar="DIR", help="the version directory, e.g. saved_models/lenet5/1")
    parser.add_argument("--model", metavar="MODEL_FILE", default=None,
                        help=".keras file (or run directory) to compare the outputs with")
    parser.add_argument("--atol", type=float, default=1e-4, help="comparison tolerance (default 1e-4)")
    parser.add_argument("--no-saved-model-cli", action="store_true",
                        help="skip the saved_model_cli show/run cross-checks")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run)
    return parser


def run(args):
    from keras_cnn.export import verify_export

    if not args.atol > 0:
        raise ValueError(f"`--atol` must be a positive number. Received: --atol={args.atol!r}")
    report = verify_export(args.dir, model=args.model, atol=args.atol, saved_model_cli=not args.no_saved_model_cli)
    if args.json:
        print(json.dumps({
            "path": str(report.path),
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
