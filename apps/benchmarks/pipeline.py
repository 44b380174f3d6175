"""Input pipeline: can the augmentation keep up with the training step?

The full augmentation of the lectures, ``flip,crop,rotate=15,shear=0.1,warp,color_shift=20,
pca=0.1`` (`keras_cnn.data.augment.build_augmenter`), is measured in images/s on the two
paths the package offers, against the rate at which a training step consumes images:

* ``device``: the augmenter applied to a resident batch inside a compiled ``tf.function``
  (what happens when it is the first layer of the training model; on a GPU it runs there);
* ``cpu map``: `keras_cnn.data.augment.cpu_augment` over a batched ``tf.data`` dataset,
  with the library default (sequential ``map``) and with ``num_parallel_calls=AUTOTUNE`` +
  ``prefetch``; each round starts a fresh iterator and discards its first batch;
* ``train step``: ``train_on_batch`` of a consumer model on a resident batch, without
  augmentation (the consumption rate), with the augmenter inside the model (device path end
  to end) and fed from the AUTOTUNE cpu map (CPU path end to end).

All candidates are interleaved over the rounds (medians). The ratio ``pipeline / train step``
says whether a path can feed the step: below 1.0 the pipeline is the bottleneck. On a
CPU-only machine both share the same cores, so the end-to-end rows (augment + step) are the
figures that matter; on a GPU the device path runs beside the model on the accelerator.

Defaults: 32x32 RGB, batch 32, consumers ``resnet18`` (small CIFAR stem) and ``lenet5``.
GPU example::

    python apps/benchmarks/pipeline.py --image-size 224 --batch 128 --models resnet18 --rounds 7
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C  # noqa: E402

C.quiet_tensorflow()

SPEC = "flip,crop,rotate=15,shear=0.1,warp,color_shift=20,pca=0.1"
CONSUMERS = {
    # name: (registry model, builder kwargs)
    "resnet18": ("resnet18", {"stem": "small"}),
    "lenet5": ("lenet5", {}),
    "resnet18_quarter": ("resnet18", {"stem": "small", "width_multiplier": 0.25}),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default=SPEC, help=f"augmentation spec (default {SPEC!r})")
    parser.add_argument("--image-size", type=int, default=None, help="image side (default 32)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default 32)")
    parser.add_argument("--models", default=None,
                        help=f"consumer models, comma-separated from {list(CONSUMERS)} (default resnet18,lenet5)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5)")
    parser.add_argument("--min-time", type=float, default=None,
                        help="seconds each candidate is stepped per round, at least one step (default 1.0)")
    parser.add_argument("--xla", action="store_true", help="also try the device path with jit_compile=True")
    parser.add_argument("--threads", type=int, default=None, help="TF intra/inter-op threads (default: TF's)")
    C.add_common_arguments(parser)
    args = parser.parse_args(argv)
    quick = args.quick
    args.image_size = args.image_size or 32
    args.batch = args.batch or (8 if quick else 32)
    args.models = [m.strip() for m in (args.models or ("lenet5" if quick else "resnet18,lenet5")).split(",") if m.strip()]
    bad = [m for m in args.models if m not in CONSUMERS]
    if bad:
        parser.error(f"unknown --models {bad}; choose from {list(CONSUMERS)}")
    args.rounds = args.rounds or (2 if quick else 5)
    args.min_time = args.min_time if args.min_time is not None else (0.0 if quick else 1.0)
    return args


def xla_error(err):
    """A one-line summary of an XLA compilation error (the unsupported op types, if named)."""
    import re

    text = str(err)
    match = re.search(r"on XLA_\w+: ([A-Za-z0-9_, ]+?)(?: \(|\n|$)", text)
    if match:
        return (f"unsupported op(s) {match.group(1).strip()} (Keras' RandomRotation/RandomShear/... use "
                "ImageProjectiveTransformV3, which XLA lacks; see keras_cnn.data.augment)")
    first = text.strip().splitlines()[0][:200] if text.strip() else ""
    return f"{type(err).__name__}: {first}"


def synthetic_images(size, count, seed, classes=10):
    """``count`` smooth-ish RGB images in 0..255 (content does not change the cost of these ops) and labels."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 255, (count, max(2, size // 4), max(2, size // 4), 3)).astype("float32")
    images = tf.image.resize(base, (size, size)).numpy()
    return images, rng.integers(0, classes, (count,)).astype("int32")


def restarter(iterators, name, dataset):
    """A ``before_round`` hook: start a fresh iterator over ``dataset``; its first batch is not timed."""

    def fn():
        iterators[name] = iter(dataset)
        next(iterators[name])

    return fn


def consumer_steps(label, network, augmenter, x, y, feed, loss="categorical_crossentropy"):
    """The end-to-end candidates of one consumer model, for `_common.interleave`.

    ``step``: ``train_on_batch`` on the resident batch ``(x, y)`` without augmentation (the
    consumption rate); ``device``: the same step with ``augmenter`` first in the model (the device
    path); ``cpu``: the step fed by ``feed``, a dataset of augmented ``(images, labels)`` batches (the
    tf.data ``map`` path). ``network`` must be compiled.

    Returns:
        ``(keys, candidates, before)``: ``keys`` maps "step"/"device"/"cpu" to candidate names.
    """
    import keras

    inputs = keras.Input(network.input_shape[1:], name="pixels")
    with_aug = keras.Model(inputs, network(augmenter(inputs)), name=f"{network.name}_with_augmenter")
    with_aug.compile(optimizer=keras.optimizers.SGD(1e-2, momentum=0.9), loss=loss)
    keys = {
        "step": f"{label}: train step (no augmentation)",
        "device": f"{label}: train step + device augment (end to end)",
        "cpu": f"{label}: train step fed by cpu map AUTOTUNE (end to end)",
    }
    iterators = {}

    def fed_step():
        xb, yb = next(iterators[keys["cpu"]])
        return network.train_on_batch(xb, yb)

    candidates = {
        keys["step"]: lambda: network.train_on_batch(x, y),
        keys["device"]: lambda: with_aug.train_on_batch(x, y),
        keys["cpu"]: fed_step,
    }
    return keys, candidates, {keys["cpu"]: restarter(iterators, keys["cpu"], feed)}


def auto_rows(auto, consumer_keys, rate, per_round):
    """The CLI's default `--augment-on auto`: which path it picks here, and whether that is the faster one."""
    rows = []
    for model_name, keys in consumer_keys.items():
        device_rate, cpu_rate = rate[keys["device"]], rate[keys["cpu"]]
        faster = "cpu" if cpu_rate >= device_rate else "device"
        ratios = C.paired_ratios(per_round[keys["cpu"]], per_round[keys["device"]])
        rows.append([
            model_name, auto, C.fmt(device_rate), C.fmt(cpu_rate), C.fmt_ratio(cpu_rate / device_rate),
            C.fmt_range(min(ratios), max(ratios)), faster, "yes" if faster == auto else "NO",
        ])
    return rows


def main(argv=None):
    args = parse_args(argv)
    C.set_threads(args.threads)
    import keras
    import tensorflow as tf

    from keras_cnn.data.augment import build_augmenter, compute_pca_stats, cpu_augment, resolve_augment_on
    from keras_cnn.training import build_network

    keras.utils.set_random_seed(args.seed)
    size, batch = args.image_size, args.batch
    shape = (size, size, 3)
    images, labels = synthetic_images(size, batch * 8, args.seed)
    pca_stats = compute_pca_stats(images)
    augmenter = build_augmenter(args.spec, image_shape=shape, pca_stats=pca_stats, seed=args.seed)
    x = tf.constant(images[:batch])
    y_onehot = tf.one_hot(tf.constant(labels[:batch]), 10)

    @tf.function
    def device_augment(images):
        return tf.reduce_sum(augmenter(images, training=True))

    candidates = {"device augment": lambda: device_augment(x).numpy()}
    notes = []
    if args.xla:
        device_augment_xla = tf.function(lambda images: tf.reduce_sum(augmenter(images, training=True)), jit_compile=True)
        try:
            device_augment_xla(x).numpy()
            candidates["device augment (XLA)"] = lambda: device_augment_xla(x).numpy()
        except Exception as err:  # noqa: BLE001 - report, go on
            notes.append(f"Device path with XLA (jit_compile=True): not supported here: {xla_error(err)}")

    source = tf.data.Dataset.from_tensor_slices((images, tf.one_hot(labels, 10))).batch(batch, drop_remainder=True).repeat()
    pipelines = {
        "cpu map (default: sequential)": cpu_augment(source, augmenter),
        "cpu map (AUTOTUNE + prefetch)": cpu_augment(source, augmenter, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
            tf.data.AUTOTUNE
        ),
    }
    iterators = {}
    before = {}
    for name, dataset in pipelines.items():
        candidates[name] = (lambda n=name: next(iterators[n]))
        before[name] = restarter(iterators, name, dataset)

    consumer_keys = {}
    for model_name in args.models:
        arch, kwargs = CONSUMERS[model_name]
        keras.utils.set_random_seed(args.seed)
        network = build_network(arch, image_shape=shape, classes=10, model_kwargs=kwargs)
        network.compile(optimizer=keras.optimizers.SGD(1e-2, momentum=0.9), loss="categorical_crossentropy")
        keys, steps, hooks = consumer_steps(model_name, network, augmenter, x, y_onehot,
                                            pipelines["cpu map (AUTOTUNE + prefetch)"])
        consumer_keys[model_name] = keys
        candidates.update(steps)
        before.update(hooks)

    times = C.interleave(candidates, rounds=args.rounds, calls=1, warmup=1, min_time=args.min_time,
                         before_round=before)
    rate = {name: C.median([batch / t for t in t_["wall"]]) for name, t_ in times.items()}
    per_round = {name: [batch / t for t in t_["wall"]] for name, t_ in times.items()}

    headers = ["candidate", "images/s", "per-round img/s"]
    rows = []
    for name in candidates:
        rows.append([name, C.fmt(rate[name]), f"{C.fmt(min(per_round[name]))} - {C.fmt(max(per_round[name]))}"])

    verdict_rows = []
    for model_name, keys in consumer_keys.items():
        step = rate[keys["step"]]
        for pipe in [n for n in candidates if n.startswith("device augment") or n.startswith("cpu map")]:
            ratio = rate[pipe] / step
            ratios = C.paired_ratios(per_round[pipe], per_round[keys["step"]])
            verdict_rows.append([
                model_name, pipe, C.fmt(rate[pipe]), C.fmt(step), C.fmt_ratio(ratio),
                C.fmt_range(min(ratios), max(ratios)),
                "yes: pipeline is the bottleneck" if ratio < 1.0 else "no",
            ])
        for end, label in (("device", "device path"), ("cpu", "cpu map AUTOTUNE")):
            ratio = rate[keys[end]] / step
            ratios = C.paired_ratios(per_round[keys[end]], per_round[keys["step"]])
            verdict_rows.append([
                model_name, f"end to end: {label} + step", C.fmt(rate[keys[end]]), C.fmt(step), C.fmt_ratio(ratio),
                C.fmt_range(min(ratios), max(ratios)),
                f"step keeps {ratio:.0%} of its rate",
            ])

    auto = resolve_augment_on("auto")
    default_rows = auto_rows(auto, consumer_keys, rate, per_round)
    lines = C.header("Input pipeline vs training step (images/s, interleaved, median)")
    lines += [
        f"Spec `{args.spec}`, {size}x{size}x3, batch {batch}, {args.rounds} rounds "
        f"(each candidate stepped >= {args.min_time:g} s per round). Ratio = pipeline images/s / train-step images/s "
        "(< 1.0: the pipeline cannot feed the step). On a CPU-only machine augmentation and step share the cores: "
        "the end-to-end rows are the real cost.",
        "",
        C.markdown_table(["consumer", "pipeline", "pipeline img/s", "step img/s", "pipeline/step", "per-round",
                          "bottleneck?"], verdict_rows, right=(2, 3, 4, 5)),
        "",
        f"The default, `--augment-on auto` (`keras_cnn.data.augment.resolve_augment_on`), picks `{auto}` here "
        f"({'a GPU is visible' if auto == 'device' else 'no GPU is visible'}); end to end (augment + step):",
        "",
        C.markdown_table(["consumer", "auto picks", "device img/s", "cpu map img/s", "cpu/device", "per-round",
                          "faster", "default is faster?"], default_rows, right=(2, 3, 4, 5)),
        "",
        "All candidates:",
        "",
        C.markdown_table(headers, rows),
    ]
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    C.emit("\n".join(lines), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
