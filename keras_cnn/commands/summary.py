"""`keras-cnn summary MODEL`: per-layer output shapes, parameters and multiply-accumulates."""

from __future__ import annotations

import argparse
import json
import sys

from keras_cnn.commands._args import image_size
from keras_cnn.commands._errors import set_flag_names


def register(subparsers):
    parser = subparsers.add_parser(
        "summary",
        help="per-layer output shape, parameters and MACs of a registered model",
        description=(
            "Build a registered model (random weights) and print, per layer, its output shape, "
            "parameters and multiply-accumulates (MACs, one per multiplication), descending into "
            "composite layers, then the totals. `keras-cnn list` shows the model names."
        ),
    )
    parser.add_argument("model", metavar="MODEL", help="registered model name, e.g. lenet5, resnet50")
    parser.add_argument("--image-size", default=None, type=image_size, metavar="SIZE",
                        help="input size: N (square), H,W or H,W,C, e.g. 224 or 224,224,3 (default: the model's "
                             "default size; C: the model's channels)")
    parser.add_argument("--input-shape", default=None, type=image_size, help=argparse.SUPPRESS)  # deprecated alias
    top = parser.add_mutually_exclusive_group()
    top.add_argument("--include-top", dest="include_top", action="store_true", default=True,
                     help="with the classifier (default)")
    top.add_argument("--no-top", dest="include_top", action="store_false", help="without the classifier")
    parser.add_argument("--classes", type=int, default=None, help="number of classes (default: the model's)")
    parser.add_argument("--aux-logits", action="store_true",
                        help="with the auxiliary classifiers (GoogLeNet, Inception-v2/v3)")
    parser.add_argument("--stages", action="store_true", help="one line per top-level layer (stage)")
    parser.add_argument("--compact", action="store_true",
                        help="leave out layers without parameters or MACs (activations, pooling, ...)")
    parser.add_argument("--json", action="store_true", help="print the profile as JSON")
    parser.set_defaults(func=run)
    set_flag_names(parser, {"model": "MODEL", "input_shape": "--image-size"})
    return parser


def run(args):
    from keras_cnn._validation import check_positive_int
    from keras_cnn.analysis import profile
    from keras_cnn.models import build_model, get_model_spec, list_models

    known = list_models()
    if args.model not in known:
        raise ValueError(f"Unknown model: `MODEL` must be one of {known}. Received: MODEL={args.model!r}")
    entry = get_model_spec(args.model)
    kwargs = {"include_top": args.include_top}
    size = args.image_size
    if args.input_shape is not None:
        print("keras-cnn summary: --input-shape is deprecated; use --image-size", file=sys.stderr)
        size = size or args.input_shape
    if size is not None:
        kwargs["input_shape"] = (*size[:2], size[2] if len(size) == 3 else entry.channels)
    elif not args.include_top:
        # Without a top the builders leave H and W open; profile at the default size.
        kwargs["input_shape"] = (entry.default_size, entry.default_size, entry.channels)
    if args.classes is not None:
        kwargs["classes"] = check_positive_int("--classes", args.classes)
    if args.aux_logits:
        if not entry.aux_heads:
            raise ValueError(
                f"`--aux-logits` needs a model with auxiliary classifiers; {entry.name!r} has none. "
                "Received: --aux-logits"
            )
        kwargs["aux_logits"] = True
    model = build_model(entry.name, **kwargs)
    prof = profile(model)
    if args.json:
        print(json.dumps(prof.to_dict(), indent=2))
    else:
        print(prof.to_table(stages=args.stages, skip_empty=args.compact))
    return 0
