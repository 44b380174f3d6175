"""`keras-cnn list`: the registered models and what each expects."""

from __future__ import annotations

import json


def register(subparsers):
    parser = subparsers.add_parser(
        "list",
        help="list the registered models",
        description=(
            "List the registered models from their specs: family, parameters, default and minimum "
            "input size, channels, preprocessing, keras.applications twin, auxiliary heads and the "
            "pretrained weights available. Nothing is built."
        ),
    )
    parser.add_argument("pattern", nargs="?", default=None, help="only names matching this glob pattern (e.g. 'resnet*'); "
                        "a plain word matches names containing it ('inception')")
    parser.add_argument("--family", default=None, help="only this family (e.g. resnet, vgg)")
    parser.add_argument("--pretrained", action="store_true", help="only networks with pretrained weights")
    parser.add_argument("--params", action="store_true",
                        help="also count the parameters of networks whose spec does not state them (builds those)")
    parser.add_argument("--json", action="store_true", help="print as JSON")
    parser.set_defaults(func=run)
    return parser


def run(args):
    from keras_cnn._validation import check_choice
    from keras_cnn.models.specs import get_model_spec, list_models, list_weights

    if args.family is not None:
        families = sorted({get_model_spec(n).family for n in list_models()})
        check_choice("--family", args.family, families)
    pattern = args.pattern
    if pattern is not None and not any(c in pattern for c in "*?["):
        pattern = f"*{pattern}*"  # a plain word: the names that contain it
    names = list_models(pattern, pretrained=args.pretrained, family=args.family)
    records = []
    for name in names:
        entry = get_model_spec(name)
        record = {
            "name": entry.name,
            "family": entry.family,
            "params": entry.num_params,
            "default_size": entry.default_size,
            "min_size": entry.min_size,
            "channels": entry.channels,
            "preprocessing": entry.preprocessing,
            "twin": entry.twin,
            "aux_heads": entry.aux_heads,
            "weights": list_weights(name),
            "paper": entry.paper,
            "description": entry.description,
        }
        if record["params"] is None and args.params:
            import keras

            from keras_cnn.models import build_model

            record["params"] = int(build_model(name).count_params())
            keras.backend.clear_session()
        records.append(record)
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    if not records:
        filters = [f"matching {args.pattern!r}" if args.pattern else "",
                   "with pretrained weights" if args.pretrained else "", f"of family {args.family!r}" if args.family else ""]
        print(f"No model {' '.join(f for f in filters if f) or 'registered'}; `keras-cnn list` shows them all.")
        return 0
    header = ["Name", "Family", "Params", "Input", "Min", "Preprocessing", "Twin", "Aux", "Weights", "Description"]
    body = []
    for r in records:
        size = f"{r['default_size']}x{r['default_size']}x{r['channels']}"
        params = f"{r['params']:,}" if r["params"] is not None else "?"
        line = [r["name"], r["family"], params, size, str(r["min_size"]), r["preprocessing"], r["twin"] or "-",
                str(r["aux_heads"]), ", ".join(w.split(".", 1)[1] for w in r["weights"]) or "-", r["description"]]
        body.append(line)
    widths = [max(len(h), *(len(line[i]) for line in body)) for i, h in enumerate(header)]
    numeric = {header.index("Params")}

    def fmt(cells):
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    print(fmt(header))
    print("-" * len(fmt(header)))
    for line in body:
        print(fmt(line))
    print(f"{len(records)} model(s)")
    return 0
