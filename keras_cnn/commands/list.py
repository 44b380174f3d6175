"""`keras-cnn list`: the registered models and what each expects."""

from __future__ import annotations

import json

# The registry's facts for `keras-cnn list`, readable without importing Keras/TensorFlow (a
# registry import builds every family module, i.e. imports TensorFlow: 6-20 s). `params` is
# `build_model(name).count_params()` with the defaults (Keras counts BN moving statistics too).
# tests/test_cli_fast.py checks every field against the live registry, so a change there fails CI.
# When the registry is loaded anyway (the API, tests, --params), `run` reads the registry itself.
# TODO(lead): drop this table once `keras_cnn.models` exposes a TensorFlow-free `ModelSpec`
# (with `param_count`); read the specs from there instead.
# (name, family, default_size, min_size, channels, preprocessing, twin, aux_heads, params, description)
ZOO = (
    ('course_convnet', 'course', 39, 15, 3, 'unit', None, 0, 44950,
     "The lecture's small ConvNet: 39x39x3 -> 37x37x10 -> 17x17x20 -> 7x7x40 (1960) -> softmax."),
    ('lenet5', 'lenet', 32, 16, 1, 'unit', None, 0, 61706,
     'LeNet-5 (LeCun et al., 1998): 32x32x1, two conv+avg-pool, FC 120-84, tanh; 61,706 params.'),
    ('alexnet', 'alexnet', 227, 67, 3, 'caffe', None, 0, 62378344,
     'AlexNet (Krizhevsky et al., 2012), single stream, 227x227, ReLU, dropout; 62,378,344 params.'),
    ('vgg16', 'vgg', 224, 32, 3, 'caffe', 'VGG16', 0, 138357544,
     'VGG-16 (Simonyan & Zisserman, 2015), keras.applications twin; 138,357,544 params.'),
    ('vgg19', 'vgg', 224, 32, 3, 'caffe', 'VGG19', 0, 143667240,
     'VGG-19 (Simonyan & Zisserman, 2015), keras.applications twin; 143,667,240 params.'),
    ('plain34', 'plain', 224, 32, 3, 'torch', None, 0, 21639080,
     'Plain-34 (He et al., 2016): ResNet-34 without shortcuts, the degradation baseline.'),
    ('resnet18', 'resnet', 224, 32, 3, 'torch', None, 0, 11699112,
     'ResNet-18 (He et al., 2016), basic blocks, torchvision layout; 11,689,512 params.'),
    ('resnet34', 'resnet', 224, 32, 3, 'torch', None, 0, 21814696,
     'ResNet-34 (He et al., 2016), basic blocks, torchvision layout; 21,797,672 params.'),
    ('resnet50', 'resnet', 224, 32, 3, 'caffe', 'ResNet50', 0, 25636712,
     'ResNet-50 (He et al., 2016), keras.applications twin; 25,636,712 params.'),
    ('resnet101', 'resnet', 224, 32, 3, 'caffe', 'ResNet101', 0, 44707176,
     'ResNet-101 (He et al., 2016), keras.applications twin; 44,707,176 params.'),
    ('resnet152', 'resnet', 224, 32, 3, 'caffe', 'ResNet152', 0, 60419944,
     'ResNet-152 (He et al., 2016), keras.applications twin; 60,419,944 params.'),
    ('googlenet', 'googlenet', 224, 32, 3, 'tf', None, 2, 6998552,
     'GoogLeNet / Inception-v1 (Szegedy et al. 2014), 9 Inception modules, 7.0M params'),
    ('inception_v2', 'inception_v2', 299, 75, 3, 'tf', None, 1, 25973512,
     'Inception-v2 (Szegedy et al. 2015, Rethinking... Table 1), factorised modules with BN'),
    ('inception_v3', 'inception_v3', 299, 75, 3, 'tf', 'InceptionV3', 1, 23851784,
     'Inception-v3 (Szegedy et al. 2015), keras.applications.InceptionV3 layer for layer, 23.9M params'),
)
ZOO_FIELDS = (
    "name", "family", "default_size", "min_size", "channels", "preprocessing", "twin", "aux_heads", "params",
    "description",
)


def register(subparsers):
    parser = subparsers.add_parser(
        "list",
        help="list the registered models",
        description=(
            "List the registered models with their family, default and minimum input size, "
            "channels, preprocessing, keras.applications twin and parameter count (from a table; "
            "instant). --params builds each model (slow for the large ones) and counts its "
            "parameters afresh."
        ),
    )
    parser.add_argument("--family", default=None, help="only this family (e.g. resnet, vgg)")
    parser.add_argument("--params", action="store_true", help="build each model and count its parameters afresh")
    parser.add_argument("--json", action="store_true", help="print as JSON")
    parser.set_defaults(func=run)
    return parser


def _registry_records():
    """The live registry's records (imports TensorFlow); ``params`` from `ZOO` where known."""
    from keras_cnn.models import get_model_entry, list_models

    counts = {row[0]: row[ZOO_FIELDS.index("params")] for row in ZOO}
    records = []
    for name in list_models():
        entry = get_model_entry(name)
        record = {field: getattr(entry, field) for field in ZOO_FIELDS if field != "params"}
        if name in counts:
            record["params"] = counts[name]
        records.append(record)
    return records


def run(args):
    import sys

    from keras_cnn._validation import check_choice

    if "keras_cnn.models" in sys.modules or args.params:
        table = _registry_records()  # loaded anyway: the registry itself, models registered at run time too
    else:
        table = [dict(zip(ZOO_FIELDS, row)) for row in ZOO]  # instant: no TensorFlow
    if args.family is not None:
        check_choice("--family", args.family, sorted({r["family"] for r in table}))
    records = [r for r in table if args.family in (None, r["family"])]
    if args.params:  # count afresh (imports TensorFlow, builds every model)
        import keras

        from keras_cnn.models import build_model

        for record in records:
            model = build_model(record["name"])
            record["params"] = int(model.count_params())
            del model
            keras.backend.clear_session()
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    if not records:
        print("No models registered.")
        return 0
    header = ["Name", "Family", "Input", "Min", "Preprocessing", "Twin", "Aux", "Params", "Description"]
    body = []
    for r in records:
        size = f"{r['default_size']}x{r['default_size']}x{r['channels']}"
        line = [r["name"], r["family"], size, str(r["min_size"]), r["preprocessing"], r["twin"] or "-",
                str(r["aux_heads"]), f"{r['params']:,}" if "params" in r else "?", r["description"]]
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
