"""`keras-cnn evaluate`: accuracy and per-class accuracy of a training run on a held-out split."""

from __future__ import annotations

import json

from keras_cnn.commands._errors import set_flag_names


def register(subparsers):
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a training run on its held-out test split",
        description=(
            "Load RUN_DIR/model.keras and class_names.json and report accuracy, loss, per-class "
            "accuracy and the confusion matrix on a split (default: the run's own test split)."
        ),
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `keras-cnn train`")
    parser.add_argument("--data", default=None, help="data source (default: the run's own)")
    parser.add_argument("--split", default="test", choices=("test", "val", "train"), help="split (default test)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size (default 64)")
    parser.add_argument("--max-examples", type=int, default=None, metavar="N", help="at most N examples per split")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.set_defaults(func=run)
    set_flag_names(parser, {"run_dir_or_model": "RUN_DIR", "data": "--data"})
    return parser


def run(args):
    from keras_cnn.training import evaluate

    metrics = evaluate(
        args.run_dir,
        args.data,
        split=args.split,
        batch_size=args.batch_size,
        max_examples=args.max_examples,
    )
    if args.json:
        print(json.dumps(metrics, indent=2, sort_keys=True))
        return 0
    print(f"{metrics['split']} accuracy: {metrics['accuracy']:.4f} ({metrics['num_examples']} examples, loss {metrics['loss']:.4f})")
    if "top5_accuracy" in metrics:
        print(f"top-5 accuracy: {metrics['top5_accuracy']:.4f}")
    matrix = metrics["confusion_matrix"]
    width = max(5, *(len(n) for n in metrics["class_names"]))
    print(f"{'class':<{width}}  accuracy  support")
    for i, name in enumerate(metrics["class_names"]):
        acc = metrics["per_class_accuracy"][name]
        shown = "     n/a" if acc is None else f"{acc:8.4f}"
        print(f"{name:<{width}}  {shown}  {sum(matrix[i]):7d}")
    return 0
