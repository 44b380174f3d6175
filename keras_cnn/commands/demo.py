"""`keras-cnn demo`: LeNet-5 on the embedded digits, >= 98% test accuracy, then export."""

from __future__ import annotations

import time

from keras_cnn.commands._errors import set_flag_names
from keras_cnn.commands.train import print_result, verbosity


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
    parser.add_argument("--no-resume", action="store_true",
                        help="train again even if --out holds this demo run (default: resume it, or report it if finished)")
    parser.add_argument("--keep-checkpoints", action="store_true", help="keep the checkpoints once the run finished")
    parser.add_argument("--verbose", type=int, default=None, choices=(0, 1, 2),
                        help="Keras progress output: 1 bars, 2 one line per epoch (default: 1 on a terminal, else 2)")
    parser.set_defaults(func=run)
    set_flag_names(parser, {"out_dir": "--out", "resume": "--no-resume", "export": "--no-export",
                            "name": "--export-name"})
    return parser


def run(args):
    from keras_cnn.training.demo import DEMO_TARGET_ACCURACY, run_demo

    start = time.perf_counter()
    result = run_demo(
        args.out, epochs=args.epochs, export=not args.no_export, export_dir=args.export_dir,
        export_name=args.export_name, seed=args.seed, resume=not args.no_resume, verbose=verbosity(args),
        keep_checkpoints=args.keep_checkpoints,
    )
    print_result(result)
    accuracy = result.metrics["accuracy"]
    verdict = "reached" if accuracy >= DEMO_TARGET_ACCURACY else "did NOT reach"
    if result.status == "finished":
        when = f"in an earlier run ({result.metrics.get('seconds', float('nan')):.1f} s of training; nothing retrained)"
    else:
        when = f"in {time.perf_counter() - start:.1f} s"
    print(f"demo: LeNet-5 {verdict} {DEMO_TARGET_ACCURACY:.0%} test accuracy ({accuracy:.2%}) {when}")
    samples = sorted((result.run_dir / "samples").glob("*.png"))
    if samples:
        print(f"samples: {len(samples)} held-out test digits in {result.run_dir / 'samples'}; try "
              f"keras-cnn predict --model {result.run_dir} {samples[0]}")
    return 0 if accuracy >= DEMO_TARGET_ACCURACY else 1
