"""`keras-cnn demo`: LeNet-5 on the embedded digits, >= 98% test accuracy, then export."""

from __future__ import annotations

import time

from keras_cnn.commands.train import print_result


def register(subparsers):
    parser = subparsers.add_parser(
        "demo",
        help="train LeNet-5 on the embedded digits (~1 min on CPU) and export it",
        description=(
            "Train LeNet-5 (32x32x1) on scikit-learn's handwritten digits with the 'lenet' recipe, "
            "evaluate on the fixed stratified 20% test split (>= 98% accuracy), write the run "
            "directory and export a SavedModel for TF Serving."
        ),
    )
    parser.add_argument("--out", default="runs/demo", metavar="DIR", help="run directory (default runs/demo)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: the lenet recipe's)")
    parser.add_argument("--export-dir", default="saved_models", metavar="DIR", help="SavedModel root (default saved_models)")
    parser.add_argument("--export-name", default=None, metavar="NAME", help="served model name (default lenet5)")
    parser.add_argument("--no-export", action="store_true", help="do not export a SavedModel")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--no-resume", action="store_true", help="start over even if --out has a checkpoint")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="Keras progress output (default 1)")
    parser.set_defaults(func=run)
    return parser


def run(args):
    from keras_cnn.training.demo import DEMO_TARGET_ACCURACY, run_demo

    start = time.perf_counter()
    result = run_demo(
        args.out,
        epochs=args.epochs,
        export=not args.no_export,
        export_dir=args.export_dir,
        export_name=args.export_name,
        seed=args.seed,
        resume=not args.no_resume,
        verbose=args.verbose,
    )
    print_result(result)
    accuracy = result.metrics["accuracy"]
    verdict = "reached" if accuracy >= DEMO_TARGET_ACCURACY else "did NOT reach"
    print(f"demo: LeNet-5 {verdict} {DEMO_TARGET_ACCURACY:.0%} test accuracy ({accuracy:.2%}) in {time.perf_counter() - start:.1f} s")
    return 0 if accuracy >= DEMO_TARGET_ACCURACY else 1
