"""`keras-cnn list`: the registered models and what each expects."""

from __future__ import annotations

import json


def register(subparsers):
    parser = subparsers.add_parser(
        "list",
        help="list the registered models",
        description=(
            "List the registered models with their family, default and minimum input size, "
            "channels, preprocessing and keras.applications twin. --params builds each model "
            "(slow for the large ones) to count its parameters."
        ),
    )
    parser.add_argument("--family", default=None, help="only this family (e.g. resnet, vgg)")
    parser.add_argument("--params", action="store_true", help="build each model and count its parameters")
    parser.add_argument("--json", action="store_true", help="print as JSON")
    parser.set_defaults(func=run)
    return parser


def run(args):
    from keras_cnn._validation import check_choice
    from keras_cnn.models import build_model, get_model_entry, list_models

    if args.family is not None:
        families = sorted({get_model_entry(n).family for n in list_models()})
        check_choice("--family", args.family, families)
    names = list_models(args.family)
    records = []
    for name in names:
        entry = get_model_entry(name)
        record = {
            "name": entry.name,
            "family": entry.family,
            "default_size": entry.default_size,
            "min_size": entry.min_size,
            "channels": entry.channels,
            "preprocessing": entry.preprocessing,
            "twin": entry.twin,
            "aux_heads": entry.aux_heads,
            "description": entry.description,
        }
        if args.params:
            import keras

            model = build_model(name)
            record["params"] = int(model.count_params())
            del model
            keras.backend.clear_session()
        records.append(record)
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    if not records:
        print("No models registered.")
        return 0
    header = ["Name", "Family", "Input", "Min", "Preprocessing", "Twin", "Aux"]
    if args.params:
        header.append("Params")
    header.append("Description")
    body = []
    for r in records:
        size = f"{r['default_size']}x{r['default_size']}x{r['channels']}"
        line = [r["name"], r["family"], size, str(r["min_size"]), r["preprocessing"], r["twin"] or "-",
                str(r["aux_heads"])]
        if args.params:
            line.append(f"{r['params']:,}")
        line.append(r["description"])
        body.append(line)
    widths = [max(len(h), *(len(line[i]) for line in body)) for i, h in enumerate(header)]
    numeric = {header.index("Params")} if args.params else set()

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
