"""Throughput of the keras.applications twins against keras.applications itself, side by side.

For every pair (``VGG16Custom`` / ``keras.applications.VGG16``, ``ResNet50Custom`` /
``ResNet50``, ``InceptionV3Custom`` / ``InceptionV3``, ...), both built with ``weights=None``
at the same input size, batch and dtype policy and compiled identically (SGD with momentum,
sparse categorical cross-entropy, the same ``jit_compile``), this measures in ONE process,
interleaved (round r: ours then keras, round r+1: keras then ours):

* training images/s: ``model.train_on_batch`` on a fixed batch (forward, backward, update);
* inference images/s: ``model.predict_on_batch`` (the compiled predict step, training=False).

The table gives the medians over the rounds, the ratio ours/keras (target >= 1.0) and the
spread of the per-round ratios (a ratio below 1.0 whose spread reaches 1.0 is noise: verdict
"noise"). ``--graph-check`` also traces both forward+gradient graphs and compares op counts
(the structural cause of any real gap would show up there: extra Cast/Pad/Identity ops...).

Defaults are the real sizes: each network at the input size it was designed for (ResNet and
VGG 224 px, Inception-v3 299 px), batch 8, 1 step x 5 interleaved rounds, with the A/A control
(``--no-control`` to skip it). On a 2-core CPU that is about 10-15 minutes for the three default
models. ``--image-size N`` puts every model at N px (Inception-v3 at least 75). Bigger on a GPU::

    python apps/benchmarks/twins.py --batch 64 --steps 20 --rounds 7 --xla --mixed-precision

Flags: ``--xla`` adds rows with ``jit_compile=True``; ``--mixed-precision`` adds rows under
the ``mixed_float16`` policy (on a CPU float16 kernels are emulated and slow; the ratio is
still meaningful). ``--quick``: VGG-16 at 32 px, batch 2, no control (a smoke test).
"""

from __future__ import annotations

import argparse
import collections
import gc
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C  # noqa: E402

C.quiet_tensorflow()

TWINS = {
    # name: (keras_cnn.applications function, keras.applications function)
    "vgg16": ("VGG16Custom", "VGG16"),
    "vgg19": ("VGG19Custom", "VGG19"),
    "resnet50": ("ResNet50Custom", "ResNet50"),
    "resnet101": ("ResNet101Custom", "ResNet101"),
    "resnet152": ("ResNet152Custom", "ResNet152"),
    "inception_v3": ("InceptionV3Custom", "InceptionV3"),
}
DEFAULT_MODELS = ("resnet50", "vgg16", "inception_v3")
MIN_SIZE = {"inception_v3": 75}
# The input size each network was designed for (keras.applications' default input_shape).
REAL_SIZE = {"vgg16": 224, "vgg19": 224, "resnet50": 224, "resnet101": 224, "resnet152": 224, "inception_v3": 299}
MODES = ("train", "infer")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=None,
                        help=f"comma-separated, from {list(TWINS)} (default {','.join(DEFAULT_MODELS)})")
    parser.add_argument("--image-size", type=int, default=None,
                        help="input side in pixels for every model (default: each model's real size, "
                             "224 or 299; Inception-v3 at least 75)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default 8)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per model per round (default 1: many short rounds cancel load drift best)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps per model first (default 1)")
    parser.add_argument("--classes", type=int, default=1000, help="classifier units (default 1000)")
    parser.add_argument("--modes", default="train,infer", help="train, infer or both (default train,infer)")
    parser.add_argument("--xla", action="store_true", help="also measure with jit_compile=True")
    parser.add_argument("--no-plain", action="store_true", help="with --xla/--mixed-precision: skip the plain float32 rows")
    parser.add_argument("--mixed-precision", action="store_true", help="also measure under mixed_float16")
    parser.add_argument("--control", action=argparse.BooleanOptionalAction, default=None,
                        help="A/A control: also time a second keras.applications instance, the noise "
                             "reference (default on; off with --quick)")
    parser.add_argument("--graph-check", action="store_true",
                        help="also compare the op counts of the traced forward+gradient graphs")
    parser.add_argument("--threads", type=int, default=None, help="TF intra/inter-op threads (default: TF's)")
    C.add_common_arguments(parser)
    args = parser.parse_args(argv)
    quick = args.quick
    args.models = [m.strip() for m in (args.models or ("vgg16" if quick else ",".join(DEFAULT_MODELS))).split(",") if m.strip()]
    unknown = [m for m in args.models if m not in TWINS]
    if unknown:
        parser.error(f"unknown --models {unknown}; choose from {list(TWINS)}")
    args.image_size = args.image_size or (32 if quick else None)  # None: each model's REAL_SIZE
    args.batch = args.batch or (2 if quick else 8)
    args.steps = args.steps or 1
    args.rounds = args.rounds or (2 if quick else 5)
    args.warmup = args.warmup if args.warmup is not None else 1
    args.control = (not quick) if args.control is None else args.control
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if any(m not in MODES for m in args.modes):
        parser.error(f"--modes must be from {list(MODES)}")
    return args


def configs(args):
    out = []
    precisions = (["float32"] if not args.no_plain or not args.mixed_precision else []) + (
        ["mixed_float16"] if args.mixed_precision else []
    )
    for precision in precisions:
        jits = ([False] if not args.no_plain or not args.xla else []) + ([True] if args.xla else [])
        for jit in jits:
            out.append((precision, jit))
    return out or [("float32", False)]


def build_keras(name, size, classes, seed):
    import keras

    keras.utils.set_random_seed(seed)
    return getattr(keras.applications, TWINS[name][1])(weights=None, input_shape=(size, size, 3), classes=classes)


def build_pair(name, size, classes, seed):
    import keras

    from keras_cnn import applications

    keras.utils.set_random_seed(seed)
    ours = getattr(applications, TWINS[name][0])(weights=None, input_shape=(size, size, 3), classes=classes)
    theirs = build_keras(name, size, classes, seed)
    if ours.count_params() != theirs.count_params():
        raise RuntimeError(f"{name}: parameter counts differ ({ours.count_params()} vs {theirs.count_params()})")
    return ours, theirs


def compile_model(model, jit):
    import keras

    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=1e-3, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        jit_compile=jit,
    )
    return bool(model.jit_compile)


def op_counts(model, size, batch, training):
    import tensorflow as tf

    @tf.function
    def fn(x):
        if not training:
            return model(x, training=False)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.cast(model(x, training=True), tf.float32))
        return tape.gradient(loss, model.trainable_variables)

    graph = fn.get_concrete_function(tf.TensorSpec((batch, size, size, 3), tf.float32)).graph.as_graph_def()
    counts = collections.Counter(node.op for node in graph.node)
    for function in graph.library.function:
        counts.update(node.op for node in function.node_def)
    return counts


def graph_check(name, ours, theirs, size, batch):
    rows = []
    for training in (False, True):
        a = op_counts(ours, size, batch, training)
        b = op_counts(theirs, size, batch, training)
        diff = {k: (a[k], b[k]) for k in sorted(set(a) | set(b)) if a[k] != b[k]}
        heavy = {"Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter", "MatMul", "FusedBatchNormV3",
                 "FusedBatchNormGradV3", "Pad", "Cast", "Identity", "Transpose", "ConcatV2", "MaxPool", "AvgPool"}
        heavy_diff = {k: v for k, v in diff.items() if k in heavy}
        shown = ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in sorted(diff.items(), key=lambda kv: -abs(kv[1][0] - kv[1][1]))[:6])
        rows.append([
            name, "forward+gradient" if training else "forward",
            C.fmt(sum(a.values())), C.fmt(sum(b.values())),
            "none" if not heavy_diff else ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in heavy_diff.items()),
            shown or "identical",
        ])
    return rows


Timing = collections.namedtuple("Timing", "rounds steps warmup", defaults=(5, 1, 1))


def measure_pair(name, *, size, batch, precision="float32", jit=False, modes=("train",), timing=Timing(),
                 classes=1000, control=True, seed=0, graph_rows=None):
    """Time ours against keras.applications (and an A/A keras copy) for one network and setting.

    Builds the models under ``precision`` (a Keras dtype policy), compiles them alike with
    ``jit_compile=jit``, times each mode (``train``: ``train_on_batch``; ``infer``:
    ``predict_on_batch``) interleaved (``timing``: rounds, steps per round, warm-up steps) and frees
    the models again.

    Returns:
        ``{"jit_used": bool, mode: {"ours", "keras", "control": images/s (median),
        "ratio", "low", "high" (per-round ours/keras band), "cpu_ratio", "aa": A/A ratio}}``
        (``control``/``aa`` NaN without the A/A model).
    """
    import keras
    import numpy as np
    import tensorflow as tf

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    models = {}
    try:
        ours, theirs = build_pair(name, size, classes, seed)
        models = {"ours": ours, "keras": theirs}
        if control:  # A/A control: a second keras.applications instance, timed like the others
            models["control"] = build_keras(name, size, classes, seed)
        used = [compile_model(m, jit) for m in models.values()]
        if graph_rows is not None and precision == "float32" and not jit:
            graph_rows.extend(graph_check(name, ours, theirs, size, batch))
        rng = np.random.default_rng(seed)
        x = tf.constant(rng.uniform(-1, 1, (batch, size, size, 3)).astype("float32"))
        y = tf.constant(rng.integers(0, classes, (batch,)).astype("int32"))
        out = {"jit_used": all(used)}
        for mode in modes:
            if mode == "train":
                fns = {k: (lambda m=m: m.train_on_batch(x, y)) for k, m in models.items()}
            else:
                fns = {k: (lambda m=m: m.predict_on_batch(x)) for k, m in models.items()}
            times = C.interleave(fns, rounds=timing.rounds, calls=timing.steps, warmup=timing.warmup)
            ips = {k: [batch / t for t in v["wall"]] for k, v in times.items()}
            ratios = C.paired_ratios(ips["ours"], ips["keras"])
            nan = float("nan")
            out[mode] = {
                "ours": C.median(ips["ours"]), "keras": C.median(ips["keras"]),
                "control": C.median(ips["control"]) if "control" in ips else nan,
                "ratio": C.median(ips["ours"]) / C.median(ips["keras"]),
                "low": min(ratios), "high": max(ratios),
                "cpu_ratio": C.median(times["keras"]["cpu"]) / C.median(times["ours"]["cpu"]),
                "aa": C.median(ips["control"]) / C.median(ips["keras"]) if "control" in ips else nan,
            }
        return out
    finally:
        keras.config.set_dtype_policy(previous)
        models.clear()
        keras.backend.clear_session(free_memory=True)
        gc.collect()


def measure_config(args, precision, jit, table_rows, notes, graph_rows):
    for name in args.models:
        size = max(args.image_size or REAL_SIZE[name], MIN_SIZE.get(name, 32))
        try:
            result = measure_pair(name, size=size, batch=args.batch, precision=precision, jit=jit,
                                  modes=args.modes, timing=Timing(args.rounds, args.steps, args.warmup),
                                  classes=args.classes, control=args.control, seed=args.seed,
                                  graph_rows=graph_rows if args.graph_check else None)
        except Exception as err:  # noqa: BLE001 - report unsupported configurations, go on
            msg = f"{type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}"
            for mode in args.modes:
                table_rows.append([name, mode, precision, "on" if jit else "off", f"{size}", f"{args.batch}",
                                   "n/a", "n/a", "n/a", "n/a", "n/a", *(["n/a"] if args.control else []),
                                   "failed"])
            notes.append(f"{name} ({precision}, XLA {'on' if jit else 'off'}) failed: {msg}")
            print(f"{name} {precision} jit={jit}: {msg}", flush=True)
            continue
        for mode in args.modes:
            r = result[mode]
            table_rows.append([
                name, mode, precision, "on" if jit else "off", f"{size}", f"{args.batch}",
                C.fmt(r["ours"]), C.fmt(r["keras"]),
                C.fmt_ratio(r["ratio"]), C.fmt_range(r["low"], r["high"]), C.fmt_ratio(r["cpu_ratio"]),
                *([C.fmt_ratio(r["aa"])] if args.control else []),
                C.verdict(r["ratio"], r["low"], r["high"], control=r["aa"]),
            ])
            print(" | ".join(table_rows[-1]), flush=True)
        if jit and not result["jit_used"]:
            notes.append(f"{name}: Keras turned jit_compile off (a layer without XLA support); rows show plain TF.")


def main(argv=None):
    args = parse_args(argv)
    C.set_threads(args.threads)
    table_rows, notes, graph_rows = [], [], []
    for precision, jit in configs(args):
        measure_config(args, precision, jit, table_rows, notes, graph_rows)
    headers = ["model", "mode", "precision", "XLA", "px", "batch", "ours img/s", "keras img/s",
               "ours/keras", "per-round", "CPU-time ratio", *(["A/A keras/keras"] if args.control else []), "verdict"]
    lines = C.header("Twins vs keras.applications (images/s, interleaved, median)")
    lines += [
        f"{args.rounds} rounds x {args.steps} steps per model; ours = `keras_cnn.applications.*Custom`, "
        "keras = `keras.applications.*` (weights=None), same size/batch/policy/optimizer. Target ours/keras >= 1.0; "
        "'per-round' is the min-max of the paired per-round ratios (the noise band); 'CPU-time ratio' is "
        "keras/ours process CPU seconds per step (less sensitive to other processes on a shared machine)"
        + ("; 'A/A' times a second keras instance against the first: the ratio two identical models get here." if args.control else "."),
        "",
        C.markdown_table(headers, table_rows, right=range(4, len(headers) - 1)),
    ]
    if graph_rows:
        lines += [
            "",
            "Traced graphs (float32, batch as above): op counts ours/keras. Heavy ops = Conv2D/MatMul/BN/Pad/"
            "Cast/Identity/Transpose/Concat/Pool and their gradients.",
            "",
            C.markdown_table(["model", "graph", "ours ops", "keras ops", "heavy-op differences", "largest differences (ours/keras)"],
                             graph_rows, right=(2, 3)),
        ]
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    C.emit("\n".join(lines), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
