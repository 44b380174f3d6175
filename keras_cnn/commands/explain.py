"""`keras-cnn explain`: Grad-CAM overlays for image files (Selvaraju et al., 2017)."""

from __future__ import annotations

import sys
from pathlib import Path

from keras_cnn.commands._errors import set_flag_names


def register(subparsers):
    parser = subparsers.add_parser(
        "explain",
        help="Grad-CAM overlays: where a trained model looks when it classifies images",
        description=(
            "For each image write OUT/<name>_gradcam.png: the image, its Grad-CAM heat map, the overlay and "
            "the top-k classes. The heat map explains the predicted class (or --class) on the last stage "
            "tap of the network (or --layer). --model: a training run directory or a .keras file "
            "(class names from class_names.json beside it). An image that cannot be read or decoded gets "
            "its own error line on stderr and the others are still explained; the exit status is 0 when "
            "every image was explained, 1 otherwise, 2 for bad usage."
        ),
    )
    parser.add_argument("images", metavar="IMAGE", nargs="+", help="image files (JPEG, PNG, GIF, BMP)")
    parser.add_argument("--model", required=True, metavar="RUN_OR_FILE",
                        help="a training run directory or a .keras file")
    parser.add_argument("--out", required=True, metavar="DIR", help="directory for the overlay PNGs (created)")
    parser.add_argument("--layer", default=None,
                        help="layer whose feature maps are used (default: the network's last stage tap; "
                        "needed for a model keras_cnn did not build)")
    parser.add_argument("--class", dest="class_", default=None, metavar="C",
                        help="class to explain, by index or name (default: each image's predicted class)")
    parser.add_argument("--top-k", type=int, default=3, help="classes listed per image (default 3)")
    parser.set_defaults(func=run)
    set_flag_names(parser, {"class_index": "--class", "class_": "--class", "model": "--model"})
    return parser


def _class_index(value, names, num_classes):
    if value is None:
        return None
    if names is not None and value in names:
        return names.index(value)
    try:
        index = int(value)
    except ValueError:
        index = -1
    if not 0 <= index < num_classes:
        known = f"names {names}" if names is not None else "no names (no class_names.json)"
        raise ValueError(f"`--class` must be a class index 0..{num_classes - 1} or a class name ({known}). "
                         f"Received: --class={value!r}")
    return index


def _output_names(items, out):
    """``out/<stem>_gradcam.png`` per item, numbered where two stems are the same."""
    names, seen = [], {}
    for item in items:
        stem = Path(item.name).stem or "image"
        seen[stem] = seen.get(stem, 0) + 1
        names.append(out / (f"{stem}_gradcam.png" if seen[stem] == 1 else f"{stem}_{seen[stem]}_gradcam.png"))
    return names


def _explain(args):
    import numpy as np

    from keras_cnn._io import atomic_file
    from keras_cnn._validation import check_positive_int
    from keras_cnn.explain import grad_cam_details, panel
    from keras_cnn.export._images import decode_item, encode_png, read_image_items
    from keras_cnn.export.saved_model import class_names_beside, resolve_model

    check_positive_int("--top-k", args.top_k)
    model, source = resolve_model(args.model, arg="model")
    names = class_names_beside(source)
    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) != 3 or None in shape:
        raise ValueError(f"`--model` must take images of a fixed size (H, W, C). Received: input shape {shape}")
    items = read_image_items(args.images, arg="IMAGE")
    pixels = [decode_item(item, *shape) for item in items]
    good = [i for i, p in enumerate(pixels) if p is not None]
    written = {}
    if good:
        batch = np.stack([pixels[i] for i in good])
        output = model.output["predictions"] if isinstance(model.output, dict) else model.output
        index = _class_index(args.class_, names, int(output.shape[-1]))
        result = grad_cam_details(model, batch, class_index=index, layer=args.layer)
        label = (lambda c: names[c]) if names is not None else str
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        paths = _output_names(items, out)
        for k, i in enumerate(good):
            probs = result.probabilities[k]
            top = np.argsort(-probs)[: args.top_k]
            lines = [f"{rank}. {label(int(c))}: {probs[c]:.1%}" for rank, c in enumerate(top, 1)]
            lines += ["", f"heat map of {label(int(result.class_index[k]))}", f"layer {result.layer}"]
            with atomic_file(paths[i], "wb") as handle:
                handle.write(encode_png(panel(pixels[i], result.heatmaps[k], lines)))
            written[i] = (paths[i], f"{label(int(top[0]))} ({probs[top[0]]:.1%})")
    return items, written


def run(args):
    items, written = _explain(args)
    for i, item in enumerate(items):
        if i in written:
            path, best = written[i]
            print(f"{item.name}: {best} -> {path}")
        else:
            print(f"keras-cnn explain: error: {item.name}: {item.error}", file=sys.stderr)
    failed = len(items) - len(written)
    if failed:
        print(f"keras-cnn explain: {failed} of {len(items)} images could not be explained", file=sys.stderr)
        return 1
    return 0
