"""`keras-cnn cost`: a convolution against its 1x1-bottleneck and factorised forms."""

from __future__ import annotations

import argparse
import json
import sys

from keras_cnn.commands._args import image_size
from keras_cnn.commands._errors import set_flag_names


def register(subparsers):
    parser = subparsers.add_parser(
        "cost",
        help="parameters and MACs of an n x n convolution vs. its bottleneck / factorised forms",
        description=(
            "Compare an n x n convolution with a 1x1 bottleneck in front of it, with stacked 3x3s "
            "and with 1 x n + n x 1 (GoogLeNet section 5; Rethinking the Inception Architecture, "
            "section 3). Every form is built as real layers and profiled; the formulas cross-check."
        ),
    )
    parser.add_argument("--image-size", metavar="H,W,C", type=image_size, default=(28, 28, 192),
                        help="the feature map the convolution takes, H,W,C (default 28,28,192: inception 3a's input)")
    parser.add_argument("--input-shape", default=None, type=image_size, help=argparse.SUPPRESS)  # deprecated alias
    parser.add_argument("--filters", type=int, default=32, help="output channels (default 32)")
    parser.add_argument("--kernel-size", type=int, default=5, help="n of the n x n convolution (default 5)")
    parser.add_argument("--bottleneck", type=int, default=16,
                        help="channels of the 1x1 reduction; 0 for none (default 16)")
    parser.add_argument("--no-bias", action="store_true", help="convolutions without bias")
    parser.add_argument("--png", metavar="PATH", default=None, help="also save a bar chart to PATH")
    parser.add_argument("--json", action="store_true", help="print the table as JSON")
    parser.set_defaults(func=run)
    set_flag_names(parser, {"input_shape": "--image-size"})
    return parser


def run(args):
    from keras_cnn._validation import check_non_negative_int, check_positive_int
    from keras_cnn.analysis import compare_factorizations, plot_comparison

    shape, flag = args.image_size, "--image-size"
    if args.input_shape is not None:
        print("keras-cnn cost: --input-shape is deprecated; use --image-size", file=sys.stderr)
        shape, flag = args.input_shape, "--input-shape"
    if len(shape) != 3:
        raise ValueError(f"`{flag}` must be H,W,C (the channels of the feature map), e.g. 28,28,192. "
                         f"Received: {flag}={','.join(map(str, shape))}")
    check_positive_int("--filters", args.filters)
    check_positive_int("--kernel-size", args.kernel_size)
    if args.kernel_size < 2:
        raise ValueError(f"`--kernel-size` must be an int >= 2. Received: --kernel-size={args.kernel_size!r}")
    check_non_negative_int("--bottleneck", args.bottleneck)
    table = compare_factorizations(
        shape, args.filters, args.kernel_size, args.bottleneck or None, use_bias=not args.no_bias
    )
    if args.json:
        print(json.dumps(table.to_dict(), indent=2))
    else:
        print(table.to_table())
    if args.png:
        path = plot_comparison(table, args.png)
        print(f"Saved chart: {path}")
    return 0
