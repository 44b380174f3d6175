"""`keras-cnn report`: rebuild a run directory's report.html."""

from __future__ import annotations

from keras_cnn.commands._errors import set_flag_names


def register(subparsers):
    parser = subparsers.add_parser(
        "report",
        help="rebuild RUN/report.html: one self-contained page about a training run",
        description=(
            "Write RUN/report.html from the run directory (model.keras, config.json, metrics.json, "
            "class_names.json, learning_curves.png) and the run's data, loaded again as the run split it: "
            "the network, its parameters and MACs, weights, preprocessing, data and class counts, recipe and "
            "fingerprint; accuracy and loss on every split, per-class precision/recall/F1, the confusion "
            "matrix, the learning curves; the most confidently wrong held-out images with their Grad-CAM "
            "overlays; where the model was exported. Images inline, no network access, no scripts."
        ),
    )
    parser.add_argument("run_dir", metavar="RUN", help="a run directory written by `keras-cnn train` or `transfer`")
    parser.add_argument("--top-k", type=int, default=None,
                        help="most confidently wrong held-out images shown (default 8)")
    parser.set_defaults(func=run)
    set_flag_names(parser, {"run_dir": "RUN"})
    return parser


def run(args):
    from keras_cnn.explain.report import TOP_K, write_report

    path = write_report(args.run_dir, top_k=TOP_K if args.top_k is None else args.top_k)
    print(f"wrote {path}")  # its size is in the library's log line above it
    return 0
