"""`keras-cnn train`: train a registered network with its paper recipe, evaluate, export."""

from __future__ import annotations

import json

from keras_cnn.commands._args import IMAGE_SIZE_FORMS, check_image_channels, image_size, positive_int, registered_model
from keras_cnn.commands._errors import set_flag_names
from keras_cnn.commands._ray import add_engine_arguments, engine_function


def parse_key_values(arg, items):
    """["k=v", ...] -> {k: v} with v parsed as JSON where possible (numbers, true, null)."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ValueError(f"`{arg}` must be KEY=VALUE. Received: {arg}={item!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def add_common_arguments(parser):
    """Arguments shared by `train` and `demo`."""
    parser.add_argument("--out", default=None, metavar="DIR", help="run directory (default runs/<model>)")
    parser.add_argument("--export-dir", default="saved_models", metavar="DIR", help="SavedModel root (default saved_models)")
    parser.add_argument("--export-name", default=None, metavar="NAME", help="served model name (default: the model)")
    parser.add_argument("--no-export", action="store_true", help="do not export a SavedModel")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--no-resume", action="store_true",
                        help="start over, clearing the run directory's previous run (default: resume the same run, "
                        "report a finished one, refuse another one)")
    parser.add_argument("--keep-checkpoints", action="store_true",
                        help="keep the per-epoch checkpoints once the run finished (default: removed)")
    parser.add_argument("--verbose", type=int, default=None, choices=(0, 1, 2),
                        help="Keras progress output: 1 progress bars, 2 one line per epoch (default: 1 on a terminal, "
                        "2 otherwise)")


def verbosity(args):
    """``--verbose``, or 1 (bars) on a terminal and 2 (a line per epoch) in logs and pipes."""
    if args.verbose is not None:
        return args.verbose
    from keras_cnn.training.pipeline import stdout_is_terminal

    return 1 if stdout_is_terminal() else 2


def register(subparsers):
    parser = subparsers.add_parser(
        "train",
        help="train a model (paper recipe), evaluate it and export it",
        description=(
            "Train a registered network on a dataset with its family's paper recipe (override any "
            "field with --recipe KEY=VALUE), checkpointing every epoch (a rerun resumes), then "
            "evaluate on the held-out test split, write metrics.json, learning curves and the "
            "confusion matrix to the run directory, and export a SavedModel for TF Serving."
        ),
    )
    parser.add_argument("model", metavar="MODEL", type=registered_model, help="registered model name (see `keras-cnn list`)")
    parser.add_argument("--data", default="digits", help='"digits" (default), "tfds:NAME" or an image folder')
    parser.add_argument("--epochs", type=positive_int, default=None, help="epochs (default: the recipe's)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size (default: the recipe's)")
    parser.add_argument("--augment", default=None, metavar="SPEC",
                        help='augmentation, e.g. "flip,crop,rotate=15,pca=0.1"; "none" for none (default: the recipe\'s)')
    parser.add_argument("--augment-on", default="auto", choices=("auto", "device", "cpu"),
                        help="run the augmentation inside the compiled step (device) or in a tf.data map "
                             "(cpu); auto (default): device when a GPU is visible, else cpu")
    parser.add_argument("--image-size", default=None, type=image_size, metavar="SIZE",
                        help=f"input size, {IMAGE_SIZE_FORMS} (default: the model's)")
    parser.add_argument("--mixed-precision", action="store_true", help="train with the mixed_float16 policy")
    parser.add_argument("--xla", action="store_true", help="compile the train step with XLA (jit_compile)")
    parser.add_argument("--early-stopping", type=int, default=None, metavar="N",
                        help="stop after N epochs without validation-loss improvement")
    parser.add_argument("--max-examples", type=int, default=None, metavar="N", help="use at most N examples per split")
    parser.add_argument("--validation-split", type=float, default=0.1, help="validation fraction (default 0.1)")
    parser.add_argument(
        "--strategy",
        default="default",
        help='"default" (one device), "mirrored" (every GPU of this machine) or "multi_worker" '
        "(every worker in TF_CONFIG; see apps/distributed)",
    )
    parser.add_argument("--cluster-timeout", type=float, default=300.0, metavar="SECONDS",
                        help="--strategy multi_worker: seconds to wait for the other workers (default 300)")
    parser.add_argument("--recipe", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe field, e.g. --recipe learning_rate=0.02 (repeatable)")
    parser.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="extra builder argument, e.g. --model-arg width_multiplier=0.5 (repeatable)")
    add_common_arguments(parser)
    add_engine_arguments(parser, cluster_timeout=False)  # --engine ray (keras_cnn/commands/_ray.py)
    parser.set_defaults(func=run)
    set_flag_names(parser, {"out_dir": "--out", "jit_compile": "--xla", "model_kwargs": "--model-arg",
                            "resume": "--no-resume", "export": "--no-export", "data": "--data",
                            "source": "--data", "model": "MODEL", "input_shape": "--image-size",
                            "name": "--export-name"})
    return parser


def print_result(result):
    metrics = result.metrics
    if result.status == "finished" and metrics.get("is_chief") is False:
        print("this run finished before; the chief holds its result")
        return
    if result.status == "finished":
        print("stored result of the finished run (--no-resume trains again):")
    print(
        f"{metrics.get('split', 'test')} accuracy: {metrics['accuracy']:.4f} "
        f"({metrics['num_examples']} examples, loss {metrics['loss']:.4f}) "
        f"after {metrics['epochs']} epochs, {metrics['seconds']:.1f} s training"
    )
    if metrics.get("is_chief") is False:
        print(f"worker {metrics.get('task')}: done; the chief writes the run directory and the export")
        return
    print(f"run directory: {result.run_dir}")
    print(f"model: {result.run_dir / 'model.keras'}")
    print(f"metrics: {result.run_dir / 'metrics.json'}")
    if result.export_path is not None:
        print(f"export: {result.export_path}")


def run(args):
    from keras_cnn.models import get_model_spec, list_models
    from keras_cnn.training import RunConfig, train
    from keras_cnn.training.ray_engine import train_on_ray

    train = engine_function(args, train, train_on_ray)  # --engine ray: the same run on a Ray cluster
    size = args.image_size
    if size is not None and len(size) == 3 and args.model in list_models():
        size = check_image_channels(size, get_model_spec(args.model).channels, args.model)
    config = RunConfig(
        model=args.model, data=args.data, epochs=args.epochs, batch_size=args.batch_size, augment=args.augment,
        augment_on=args.augment_on, image_size=size, out_dir=args.out,
        recipe=parse_key_values("--recipe", args.recipe) or None, mixed_precision=args.mixed_precision,
        jit_compile=args.xla, seed=args.seed, export=not args.no_export, export_dir=args.export_dir,
        export_name=args.export_name, early_stopping=args.early_stopping, resume=not args.no_resume,
        verbose=verbosity(args), max_examples=args.max_examples, validation_split=args.validation_split,
        model_kwargs=parse_key_values("--model-arg", args.model_arg) or None, strategy=args.strategy,
        keep_checkpoints=args.keep_checkpoints, cluster_timeout=args.cluster_timeout,
    )
    result = train(config)
    print_result(result)
    return 0
