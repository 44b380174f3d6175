"""Transfer learning on the digits, offline: the three regimes against training from scratch.

Source task: LeNet-5 trained on the digits 0-4 (all their training images). Target task: the
digits 5-9 with only a few labelled images per class (``--shots``, default 2 and 10). Each
regime of the lectures (Ng, CNN course, week 2) (``keras_cnn.transfer.fine_tune``) starts from the source network cut
at ``--cut`` (default "flatten": the convolutional part, what ``include_top=False`` keeps);
"scratch" trains the same LeNet-5 from a random initialisation on the same few images for as
many passes. Accuracy is measured on every test image of the digits 5-9 and averaged over
``--repeats`` draws of the few labelled images.

* scratch: LeNet-5, all layers, random initialisation;
* small:   the source network frozen, a new softmax on its features (cached once);
* medium:  the early layers frozen (conv1 for --cut flatten; conv1, conv2 otherwise), the rest
           and the new softmax trained;
* large:   everything trained from the source weights.

Usage:
    python apps/transfer_digits/run.py                     # a few minutes on 2 CPU cores
    python apps/transfer_digits/run.py --shots 1,2,5,10 --repeats 10 --out runs/transfer_digits

Writes ``results.json`` and ``transfer_digits.png`` to ``--out`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_cnn import transfer  # noqa: E402
from keras_cnn.data import load_data  # noqa: E402
from keras_cnn.training import build_network  # noqa: E402

SOURCE_CLASSES = (0, 1, 2, 3, 4)
TARGET_CLASSES = (5, 6, 7, 8, 9)
METHODS = ("scratch", "small", "medium", "large")
CUTS = ("flatten", "fc1", "fc2")

# The few images are tiled TILE times into one Keras epoch: the same passes over the data with
# a tenth of Keras' per-epoch overhead. Pass counts are divided by TILE to get epochs.
TILE = 10


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shots", default="2,10", help="labelled images per target class, e.g. 2,10 (default)")
    parser.add_argument("--repeats", type=int, default=3, help="draws of the few images per setting (default 3)")
    parser.add_argument("--source-epochs", type=int, default=30, help="epochs on digits 0-4 (default 30)")
    parser.add_argument("--head-passes", type=int, default=60, help="phase 1 passes over the few images (default 60)")
    parser.add_argument("--fine-tune-passes", type=int, default=60,
                        help="phase 2 passes over the few images (default 60)")
    parser.add_argument("--head-lr", type=float, default=3e-3, help="phase 1 learning rate (default 3e-3)")
    parser.add_argument("--fine-tune-lr", type=float, default=3e-4, help="phase 2 learning rate (default 3e-4)")
    parser.add_argument("--cut", choices=CUTS, default="flatten",
                        help="source layer the new softmax reads: flatten (the conv features, default), "
                             "fc1, or fc2 (only the softmax replaced)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/transfer_digits", help="output folder (default runs/transfer_digits)")
    args = parser.parse_args(argv)
    try:
        args.shots = [int(s) for s in str(args.shots).split(",") if s.strip()]
    except ValueError:
        parser.error(f"--shots must be comma-separated ints. Received: {args.shots!r}")
    if not args.shots or min(args.shots) < 1 or args.repeats < 1:
        parser.error("--shots and --repeats must be positive")
    return args


def subset(x, y, classes):
    """Images of ``classes``, labels renumbered 0..len(classes)-1."""
    keep = np.isin(y, classes)
    remap = {c: i for i, c in enumerate(classes)}
    return x[keep], np.array([remap[int(v)] for v in y[keep]], dtype="int32")


def few_shots(x, y, shots, rng):
    idx = np.concatenate([rng.choice(np.flatnonzero(y == c), shots, replace=False) for c in np.unique(y)])
    return x[idx], y[idx]


def tiled(split):
    x, y = split
    return np.concatenate([x] * TILE), np.concatenate([y] * TILE)


def epochs(passes):
    return max(1, round(passes / TILE))


def lenet(num_classes):
    """LeNet-5 (32x32x1, tanh) taking raw 0..255 pixels (Preprocess("unit") inside)."""
    return build_network("lenet5", image_shape=(32, 32, 1), classes=num_classes)


def train_source(x, y, epochs_, seed):
    keras.utils.set_random_seed(seed)
    model = lenet(len(SOURCE_CLASSES))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=32, epochs=epochs_, verbose=0)
    return model


def run_scratch(train, test, args, seed):
    keras.utils.set_random_seed(seed)
    model = lenet(len(TARGET_CLASSES))
    model.compile(optimizer=keras.optimizers.Adam(args.head_lr), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(*tiled(train), batch_size=10, epochs=epochs(args.head_passes + args.fine_tune_passes), verbose=0)
    return float(model.evaluate(*test, verbose=0)[1])


def run_regime(regime, source, train, test, args, seed):
    copy = keras.models.clone_model(source)  # every regime starts from the same source weights
    copy.set_weights(source.get_weights())
    base = transfer.feature_model(copy, layer=None if args.cut == "fc2" else args.cut)
    kwargs = {}
    if regime == "medium":  # freeze the early layers, train the last ones
        kwargs = {"freeze_until": "conv1"} if args.cut == "flatten" else {"freeze_until": "pool2"}
    result = transfer.fine_tune(
        base,
        (tiled(train), None, test),
        regime,
        num_classes=len(TARGET_CLASSES),
        head_epochs=epochs(args.head_passes),
        fine_tune_epochs=epochs(args.fine_tune_passes),
        head_lr=args.head_lr,
        fine_tune_lr=args.fine_tune_lr,
        batch_size=10,
        precompute=regime == "small",
        preprocessing=None,  # the source network already holds Preprocess("unit")
        seed=seed,
        **kwargs,
    )
    return result.metrics["test_accuracy"]


def describe(args):
    upper = {"flatten": "conv2", "fc1": "fc1", "fc2": "fc1, fc2"}[args.cut]
    return {
        "scratch": "all layers, random init",
        "small": f"new softmax on frozen {args.cut} features",
        "medium": f"{upper} + new softmax",
        "large": "all layers, from the source weights",
    }


def plot(results, args, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = ["#999999", "#4c72b0", "#55a868", "#c44e52"]
    width = 0.8 / len(METHODS)
    fig, ax = plt.subplots(figsize=(1.8 + 2.2 * len(args.shots), 4))
    for k, method in enumerate(METHODS):
        xs = np.arange(len(args.shots)) + (k - (len(METHODS) - 1) / 2) * width
        means = [np.mean(results[s][method]) for s in args.shots]
        stds = [np.std(results[s][method]) for s in args.shots]
        ax.bar(xs, means, width, yerr=stds, capsize=3, color=colors[k], label=method)
        for x, mean, std in zip(xs, means, stds):
            ax.text(x, mean + std + 0.006, f"{mean:.3f}", ha="center", fontsize=7)
    ax.set_xticks(np.arange(len(args.shots)), [f"{s} per class" for s in args.shots])
    lows = [np.mean(results[s][m]) for s in args.shots for m in METHODS]
    ax.set_ylim(max(0.0, min(lows) - 0.15), 1.02)
    ax.set_ylabel("test accuracy, digits 5-9")
    ax.set_title(f"LeNet-5: digits 0-4 -> 5-9 (cut at {args.cut}, {args.repeats} draws)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    bundle = load_data("digits", image_size=32, validation_split=0.0, seed=args.seed)
    x_train, y_train = bundle.arrays("train")
    x_test, y_test = bundle.arrays("test")
    src_train = subset(x_train, y_train, SOURCE_CLASSES)
    src_test = subset(x_test, y_test, SOURCE_CLASSES)
    tgt_pool = subset(x_train, y_train, TARGET_CLASSES)
    tgt_test = subset(x_test, y_test, TARGET_CLASSES)

    source = train_source(*src_train, args.source_epochs, args.seed)
    source_acc = float(source.evaluate(*src_test, verbose=0)[1])

    results = {}
    for shots in args.shots:
        results[shots] = {m: [] for m in METHODS}
        rng = np.random.default_rng(args.seed)
        for r in range(args.repeats):
            train = few_shots(*tgt_pool, shots, rng)
            seed = args.seed + 1 + r
            results[shots]["scratch"].append(run_scratch(train, tgt_test, args, seed))
            for regime in ("small", "medium", "large"):
                results[shots][regime].append(run_regime(regime, source, train, tgt_test, args, seed))

    os.makedirs(args.out, exist_ok=True)
    summary = {
        "source_task": {"classes": list(SOURCE_CLASSES), "train_images": int(len(src_train[1])),
                        "test_accuracy": source_acc},
        "target_task": {"classes": list(TARGET_CLASSES), "test_images": int(len(tgt_test[1]))},
        "settings": vars(args),
        "methods": describe(args),
        "test_accuracy": {
            str(s): {m: {"mean": float(np.mean(v)), "std": float(np.std(v)), "runs": v} for m, v in per.items()}
            for s, per in results.items()
        },
        "seconds": round(time.time() - start, 1),
    }
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(summary, f, indent=2)
    plot(results, args, os.path.join(args.out, "transfer_digits.png"))

    print(f"source: LeNet-5 on digits 0-4 ({len(src_train[1])} images), test accuracy {source_acc:.3f}")
    print(f"target: digits 5-9, {len(tgt_test[1])} test images; mean +- std over {args.repeats} draws "
          "of the labelled images")
    what = describe(args)
    header = "".join(f"{f'{s} per class':>16}" for s in args.shots)
    print(f"{'method':<8} {'trains':<40}{header}")
    for m in METHODS:
        cells = "".join(f"{np.mean(results[s][m]):>9.3f} +-{np.std(results[s][m]):.3f}" for s in args.shots)
        print(f"{m:<8} {what[m]:<40}{cells}")
    print(f"wrote {args.out}/results.json and {args.out}/transfer_digits.png ({summary['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
