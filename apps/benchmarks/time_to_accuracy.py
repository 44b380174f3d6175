"""Time to accuracy of the demo: seconds until LeNet-5 reaches 98 % test accuracy on the digits.

The demo (`keras-cnn demo`) is `keras_cnn.training.train("lenet5", "digits")` with the LeNet
recipe (optimizer, schedule, batch, epochs and augmentation as `get_recipe("lenet5")` says;
32x32x1). A callback evaluates the model on the held-out *test* split after every epoch and records the first epoch whose test
accuracy is >= ``--target``; the clock starts when ``fit`` starts (first-epoch tracing
included) and excludes the callback's own evaluation.

Reference, in the same process and interleaved with it (run 1: train(), bare; run 2: bare,
train(); ...): the same network, recipe (optimizer, schedule, loss, augmentation inside the
model), data pipeline and epochs in a bare ``model.fit`` with no callback but this one. ``train()`` adds checkpointing
(BackupAndRestore every epoch), CSV and TensorBoard logging and its epoch log; the ratio
``bare / train()`` (>= 1.0: no overhead) shows what they cost per epoch.

Runs stop at the target by default (``--full`` trains all the recipe's epochs). Runs write only
to a temporary directory (no export).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C  # noqa: E402

C.quiet_tensorflow()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=float, default=None, help="test accuracy to reach (default 0.98)")
    parser.add_argument("--repeats", type=int, default=None, help="runs of each (train() and bare fit), interleaved (default 2)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: the recipe's, 30)")
    parser.add_argument("--full", action="store_true", help="train every epoch instead of stopping at the target")
    parser.add_argument("--xla", action="store_true", help="compile the train step with XLA (both runs)")
    parser.add_argument("--threads", type=int, default=None, help="TF intra/inter-op threads (default: TF's)")
    C.add_common_arguments(parser)
    args = parser.parse_args(argv)
    args.target = args.target if args.target is not None else (0.5 if args.quick else 0.98)
    args.repeats = args.repeats or (1 if args.quick else 2)
    args.epochs = args.epochs or (2 if args.quick else None)
    return args


def make_callback(keras, np, x_test, y_test, target, stop):
    class TimeToAccuracy(keras.callbacks.Callback):
        """Test accuracy after every epoch; time (minus its own) to the first epoch >= target."""

        def on_train_begin(self, logs=None):
            self.start = time.perf_counter()
            self.own = 0.0
            self.epochs = []  # (epoch, seconds, test accuracy)
            self.reached = None

        def on_epoch_end(self, epoch, logs=None):
            now = time.perf_counter()
            seconds = now - self.start - self.own
            pred = self.model.predict(x_test, batch_size=512, verbose=0)
            if isinstance(pred, dict):
                pred = pred["predictions"]
            accuracy = float(np.mean(np.argmax(pred, axis=-1) == y_test))
            self.epochs.append((epoch + 1, seconds, accuracy))
            if self.reached is None and accuracy >= target:
                self.reached = (epoch + 1, seconds, accuracy)
                if stop:
                    self.model.stop_training = True
            self.own += time.perf_counter() - now

    return TimeToAccuracy()


def run_train(args, tmp, index, callback):
    from keras_cnn.training import train

    started = time.perf_counter()
    train(
        "lenet5", "digits", epochs=args.epochs, out_dir=os.path.join(tmp, f"train{index}"), export=False,
        resume=False, verbose=0, seed=args.seed, jit_compile=args.xla, callbacks=[callback],
    )
    return time.perf_counter() - started


def run_bare(args, index, callback):
    """The same network, recipe (optimizer, schedule, loss, augmentation), data and epochs in a bare model.fit."""
    import keras
    import tensorflow as tf

    from keras_cnn.data import load_data
    from keras_cnn.data.augment import build_augmenter, compute_pca_stats, parse_augment_spec
    from keras_cnn.training import build_network, build_optimizer, get_recipe
    from keras_cnn.training.network import wrap_for_training

    started = time.perf_counter()
    recipe = get_recipe("lenet5", **({"epochs": args.epochs} if args.epochs else {}))
    keras.utils.set_random_seed(args.seed)
    bundle = load_data("digits", image_size=(32, 32), channels=1, batch_size=recipe.batch_size, seed=args.seed)
    classes = len(bundle.class_names)
    shape = tuple(int(d) for d in bundle.image_shape)
    augmenter = None
    if recipe.augment and recipe.augment.strip().lower() not in ("", "none", "off", "false"):
        needs_pca = any(name == "pca" for name, _ in parse_augment_spec(recipe.augment))
        augmenter = build_augmenter(recipe.augment, image_shape=shape,
                                    pca_stats=compute_pca_stats(bundle.train) if needs_pca else None, seed=args.seed)

    def onehot(ds):
        return ds.map(lambda x, y: (x, tf.one_hot(tf.cast(tf.reshape(y, [-1]), tf.int32), classes)),
                      num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    card = int(bundle.train.cardinality())
    steps = card if card > 0 else -(-bundle.num_train // recipe.batch_size)
    network = build_network("lenet5", image_shape=shape, classes=classes, dropout=recipe.dropout)
    model = wrap_for_training(network, augmenter=augmenter)
    model.compile(
        optimizer=build_optimizer(recipe, steps_per_epoch=steps, batch_size=recipe.batch_size, epochs=recipe.epochs),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        jit_compile=args.xla,
    )
    model.fit(onehot(bundle.train), validation_data=onehot(bundle.val) if bundle.val is not None else None,
              epochs=recipe.epochs, callbacks=[callback], verbose=0, shuffle=False)
    return time.perf_counter() - started


def describe_recipe():
    from keras_cnn.training import get_recipe

    r = get_recipe("lenet5")
    return (f"recipe `{r.name}`: {r.optimizer} lr {r.learning_rate:g}, {r.schedule} schedule, batch {r.batch_size}, "
            f"{r.epochs} epochs, augmentation `{r.augment or 'none'}`")


def main(argv=None):
    args = parse_args(argv)
    C.set_threads(args.threads)
    import keras
    import numpy as np

    from keras_cnn.data import load_data

    test_bundle = load_data("digits", image_size=(32, 32), channels=1, seed=args.seed)
    x_test, y_test = test_bundle.arrays("test")
    y_test = np.asarray(y_test).reshape(-1)

    results = {"train()": [], "bare fit": []}
    with tempfile.TemporaryDirectory(prefix="keras_cnn_bench_tta_") as tmp:
        for r in range(args.repeats):
            order = ["train()", "bare fit"] if r % 2 == 0 else ["bare fit", "train()"]
            for who in order:
                callback = make_callback(keras, np, x_test, y_test, args.target, stop=not args.full)
                if who == "train()":
                    wall = run_train(args, tmp, r, callback)
                else:
                    wall = run_bare(args, r, callback)
                keras.backend.clear_session(free_memory=True)
                results[who].append((callback, wall))
                reached = callback.reached
                print(f"{who} run {r + 1}: reached={reached} epochs={len(callback.epochs)} wall={wall:.1f}s", flush=True)

    def summary(runs):
        reached = [cb.reached for cb, _ in runs if cb.reached is not None]
        per_epoch = C.median([
            (cb.epochs[-1][1] - cb.epochs[0][1]) / (len(cb.epochs) - 1) for cb, _ in runs if len(cb.epochs) > 1
        ])
        first_epoch = C.median([cb.epochs[0][1] for cb, _ in runs if cb.epochs])
        return {
            "reached": f"{len(reached)}/{len(runs)}",
            "epoch": C.median([r[0] for r in reached]) if reached else float("nan"),
            "seconds": C.median([r[1] for r in reached]) if reached else float("nan"),
            "accuracy": C.median([r[2] for r in reached]) if reached else float("nan"),
            "best": max(max(a for _, _, a in cb.epochs) for cb, _ in runs if cb.epochs),
            "per_epoch": per_epoch,
            "first_epoch": first_epoch,
            "wall": C.median([w for _, w in runs]),
        }

    ours, bare = summary(results["train()"]), summary(results["bare fit"])
    rows = []
    for who, s in (("train() (the demo)", ours), ("bare model.fit (reference)", bare)):
        rows.append([
            who, s["reached"], C.fmt(s["epoch"], 0) if s["epoch"] == s["epoch"] else "n/a", C.fmt(s["seconds"], 1),
            C.fmt(s["accuracy"] * 100, 2) if s["accuracy"] == s["accuracy"] else "n/a", C.fmt(s["best"] * 100, 2),
            C.fmt(s["first_epoch"], 2), C.fmt(s["per_epoch"], 3), C.fmt(s["wall"], 1),
        ])

    def time_at(runs, epoch):
        values = [cb.epochs[epoch - 1][1] for cb, _ in runs if len(cb.epochs) >= epoch]
        return C.median(values) if values else float("nan")

    # Same-epoch comparison: the bare fit's time at the epoch where train() reached the target.
    target_epoch = int(round(ours["epoch"])) if ours["epoch"] == ours["epoch"] else None
    ratio_time = (time_at(results["bare fit"], target_epoch) / ours["seconds"]) if target_epoch else float("nan")
    ratio_epoch = bare["per_epoch"] / ours["per_epoch"]
    epoch_ratios = C.paired_ratios(
        [((cb.epochs[-1][1] - cb.epochs[0][1]) / (len(cb.epochs) - 1)) if len(cb.epochs) > 1 else float("nan")
         for cb, _ in results["bare fit"]],
        [((cb.epochs[-1][1] - cb.epochs[0][1]) / (len(cb.epochs) - 1)) if len(cb.epochs) > 1 else float("nan")
         for cb, _ in results["train()"]],
    )
    same_path = ours["epoch"] == bare["epoch"]
    lines = C.header(f"Time to {args.target:.0%} test accuracy: LeNet-5 on the embedded digits (the demo)")
    lines += [
        f"LeNet-5 with its {describe_recipe()}; 32x32x1, seed {args.seed}, XLA {'on' if args.xla else 'off'}, "
        f"{args.repeats} run(s) each, interleaved; medians. Seconds from the start of `fit` (first-epoch tracing "
        "included) to the end of the first epoch with test accuracy >= target, excluding the test evaluation itself."
        + ("" if args.full else " Runs stop at the target."),
        "",
        C.markdown_table(["run", "reached", "epochs to target", "seconds to target", "test acc at target %",
                          "best test acc %", "epoch 1 s", "s / later epoch", "whole call s"], rows,
                         right=range(1, 9)),
        "",
        f"- Ratio bare / train(), seconds to target (bare fit's time at the same epoch): **{C.fmt_ratio(ratio_time)}**; "
        f"per later epoch: **{C.fmt_ratio(ratio_epoch)}** (per run {C.fmt_range(min(epoch_ratios), max(epoch_ratios)) if epoch_ratios else 'n/a'}; "
        ">= 1.0: train() adds no overhead). 'whole call' includes data loading and, for train(), the final evaluation, "
        "plots and model.keras.",
        "- Both start from identical weights with the same data, recipe and augmentation; "
        + ("they reached the target at the same epoch." if same_path else
           "their accuracy paths differ (epochs to target differ), so compare the per-epoch ratio."),
    ]
    C.emit("\n".join(lines), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
