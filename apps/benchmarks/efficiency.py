"""Hardware efficiency: achieved FLOP/s of training and inference steps vs a dense matmul peak.

The peak is measured, not looked up: a compiled ``tf.linalg.matmul`` of two large float32
square matrices (``2 n^3`` FLOPs) on the same device, in the same process, interleaved with
the model steps (round r: matmul, model A, model B, ...; round r+1 in reverse), medians over the
rounds. Model FLOPs come from `keras_cnn.analysis.profile`:

* training step: ``2 * MACs * 3 * batch`` (forward + backward ~ 3 forward passes; a standard
  approximation: BN, activations and the optimizer update are not counted);
* inference: ``2 * MACs * batch``.

``efficiency = achieved FLOP/s / matmul FLOP/s``. Convolutions at small sizes and batches run
well below the matmul peak on any device; the figure shows how far, and ``--xla`` shows what
XLA changes. The "CPU-time" column uses process CPU seconds instead of wall seconds for both
sides (less sensitive to other processes on a shared machine).

The matmul is TensorFlow's own kernel, not the silicon's theoretical peak: a well-tuned
convolution (oneDNN on x86) can reach or slightly exceed it, so values near or above 100 % are
possible and mean "as fast as TF's dense matmul on this device".

Defaults (2-core CPU): matmul n=3072; ``lenet5`` 32 px, ``resnet50`` 64 px, ``vgg16`` 64 px,
batch 4 (LeNet-5 batch 32). GPU example::

    python apps/benchmarks/efficiency.py --matmul-size 8192 --models resnet50:224,vgg16:224 --batch 64 --xla
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C  # noqa: E402

C.quiet_tensorflow()

DEFAULT_MODELS = "lenet5:32,resnet50:64,vgg16:64"
SMALL_BATCH_MODELS = {"lenet5": 32}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=None,
                        help=f"comma-separated registry names with :SIZE (default {DEFAULT_MODELS})")
    parser.add_argument("--batch", type=int, default=None,
                        help="batch size (default 4; LeNet-5 32 unless --batch is given)")
    parser.add_argument("--matmul-size", type=int, default=None, help="matmul side n (default 3072; powers of two can hit cache aliasing on CPUs)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5)")
    parser.add_argument("--min-time", type=float, default=None, help="seconds per candidate per round (default 1.0)")
    parser.add_argument("--modes", default="train,infer", help="train, infer or both (default both)")
    parser.add_argument("--xla", action="store_true", help="compile model steps and the matmul with XLA")
    parser.add_argument("--threads", type=int, default=None, help="TF intra/inter-op threads (default: TF's)")
    C.add_common_arguments(parser)
    args = parser.parse_args(argv)
    quick = args.quick
    models = []
    for item in (args.models or ("lenet5:32" if quick else DEFAULT_MODELS)).split(","):
        item = item.strip()
        if item:
            name, _, size = item.partition(":")
            models.append((name, int(size) if size else None))
    args.models = models
    args.matmul_size = args.matmul_size or (256 if quick else 3072)
    args.rounds = args.rounds or (2 if quick else 5)
    args.min_time = args.min_time if args.min_time is not None else (0.0 if quick else 1.0)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    return args


def main(argv=None):
    args = parse_args(argv)
    C.set_threads(args.threads)
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_cnn.analysis import profile
    from keras_cnn.models.registry import build_model, get_model_spec

    n = args.matmul_size
    a = tf.random.normal((n, n), seed=args.seed)
    b = tf.random.normal((n, n), seed=args.seed + 1)
    matmul = tf.function(lambda p, q: tf.reduce_sum(tf.linalg.matmul(p, q)), jit_compile=args.xla)
    candidates = {"matmul": lambda: matmul(a, b).numpy()}
    flops = {"matmul": 2.0 * n**3}
    info = {}
    rng = np.random.default_rng(args.seed)
    for name, size in args.models:
        entry = get_model_spec(name)
        size = size or entry.default_size
        batch = args.batch or SMALL_BATCH_MODELS.get(name, 4)
        classes = 10 if name in SMALL_BATCH_MODELS else 1000
        keras.utils.set_random_seed(args.seed)
        model = build_model(name, input_shape=(size, size, entry.channels), classes=classes, weights=None)
        macs = profile(model).total_macs
        model.compile(optimizer=keras.optimizers.SGD(1e-3, momentum=0.9), loss="sparse_categorical_crossentropy",
                      jit_compile=args.xla)
        x = tf.constant(rng.uniform(-1, 1, (batch, size, size, entry.channels)).astype("float32"))
        y = tf.constant(rng.integers(0, classes, (batch,)).astype("int32"))
        label = f"{name} {size}px b{batch}"
        if "train" in args.modes:
            candidates[f"{label} train"] = lambda m=model, x=x, y=y: m.train_on_batch(x, y)
            flops[f"{label} train"] = 2.0 * macs * 3 * batch
            info[f"{label} train"] = (name, size, batch, "train", macs, bool(model.jit_compile))
        if "infer" in args.modes:
            candidates[f"{label} infer"] = lambda m=model, x=x: m.predict_on_batch(x)
            flops[f"{label} infer"] = 2.0 * macs * batch
            info[f"{label} infer"] = (name, size, batch, "infer", macs, bool(model.jit_compile))

    times = C.interleave(candidates, rounds=args.rounds, calls=1, warmup=2, min_time=args.min_time)
    wall = {k: C.median(v["wall"]) for k, v in times.items()}
    cpu = {k: C.median(v["cpu"]) for k, v in times.items()}
    peak = flops["matmul"] / wall["matmul"]
    peak_cpu = flops["matmul"] / cpu["matmul"]
    peak_rounds = [flops["matmul"] / t for t in times["matmul"]["wall"]]

    rows = []
    for key, (name, size, batch, mode, macs, jit) in info.items():
        achieved = flops[key] / wall[key]
        per_round = C.paired_ratios([flops[key] / t for t in times[key]["wall"]], peak_rounds)
        rows.append([
            name, mode, str(size), str(batch), "on" if jit else "off", C.fmt(macs / 1e6, 1),
            f"{flops[key] / 1e9:.2f}", C.fmt(batch / wall[key]), f"{achieved / 1e9:.2f}",
            f"{achieved / peak:.1%}", f"{min(per_round):.1%}-{max(per_round):.1%}",
            f"{(flops[key] / cpu[key]) / peak_cpu:.1%}" if cpu[key] > 0 else "n/a",
        ])
        print(" | ".join(rows[-1]), flush=True)

    lines = C.header("Hardware efficiency: model FLOP/s vs measured matmul peak (interleaved, median)")
    lines += [
        f"Peak: float32 matmul {n}x{n} (XLA {'on' if args.xla else 'off'}) = **{peak / 1e9:.1f} GFLOP/s** wall "
        f"(per-round {min(peak_rounds) / 1e9:.1f}-{max(peak_rounds) / 1e9:.1f}), {peak_cpu / 1e9:.1f} GFLOP per CPU-second. "
        f"Training FLOPs = 2 x MACs x 3 x batch; inference = 2 x MACs x batch (MACs per image from "
        f"`keras_cnn.analysis.profile`). {args.rounds} rounds, >= {args.min_time:g} s per candidate per round.",
        "",
        C.markdown_table(["model", "mode", "px", "batch", "XLA", "MMACs/img", "GFLOP/step", "img/s", "GFLOP/s",
                          "of peak", "per-round", "of peak (CPU-time)"], rows, right=range(2, 12)),
    ]
    C.emit("\n".join(lines), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
