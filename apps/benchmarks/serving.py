"""Serving latency: the exported ``serving_default`` signature against calling the Keras model.

Each model (raw pixels -> ``Preprocess`` -> network, as `keras_cnn.training.train` builds and
exports it) is exported with `keras_cnn.export.export_for_serving` to a temporary directory,
loaded back with ``tf.saved_model.load`` (what TF Serving runs), and its ``serving_default``
signature is called with ``images=`` a batch of raw pixels. References, in the same process,
interleaved over the rounds (every call timed, synchronised by fetching its result):

* ``keras eager``: ``model(x, training=False)`` (Python layer calls, no graph);
* ``keras tf.function``: ``tf.function(lambda x: model(x, training=False))`` (compiled graph);
* ``keras predict_on_batch``: Keras' compiled predict step.

The table gives p50/p90 latency in ms and the ratio ``reference p50 / serving p50``
(> 1.0: the export is faster than the reference). Target: serving >= the compiled
tf.function call (ratio >= 1.0; the signature also computes top-k and class names).

Defaults: ``lenet5`` (32x32x1) and ``resnet18`` at 64 px, batches 1 and 32. GPU/full size::

    python apps/benchmarks/serving.py --models resnet50:224 --batches 1,32,128
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C  # noqa: E402

C.quiet_tensorflow()

CHANNELS = {"lenet5": 1}
DEFAULT_SIZE = {"lenet5": 32}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=None,
                        help="comma-separated registry names, each optionally :SIZE (default lenet5,resnet18:64)")
    parser.add_argument("--batches", default=None, help="comma-separated batch sizes (default 1,32)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5)")
    parser.add_argument("--calls", type=int, default=None, help="calls per candidate per round, at least (default 5)")
    parser.add_argument("--min-time", type=float, default=None,
                        help="seconds per candidate per round, at least (default 0.5)")
    parser.add_argument("--classes", type=int, default=10, help="classes (default 10)")
    parser.add_argument("--threads", type=int, default=None, help="TF intra/inter-op threads (default: TF's)")
    C.add_common_arguments(parser)
    args = parser.parse_args(argv)
    quick = args.quick
    models = []
    for item in (args.models or ("lenet5" if quick else "lenet5,resnet18:64")).split(","):
        item = item.strip()
        if not item:
            continue
        name, _, size = item.partition(":")
        models.append((name, int(size) if size else DEFAULT_SIZE.get(name, 64)))
    args.models = models
    args.batches = [int(b) for b in (args.batches or ("1,4" if quick else "1,32")).split(",") if b.strip()]
    args.rounds = args.rounds or (2 if quick else 5)
    args.calls = args.calls or (3 if quick else 5)
    args.min_time = args.min_time if args.min_time is not None else (0.0 if quick else 0.5)
    return args


def main(argv=None):
    args = parse_args(argv)
    C.set_threads(args.threads)
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_cnn.export import export_for_serving
    from keras_cnn.models.registry import get_model_entry
    from keras_cnn.training import build_network

    rows = []
    with tempfile.TemporaryDirectory(prefix="keras_cnn_bench_serving_") as tmp:
        for name, size in args.models:
            channels = get_model_entry(name).channels
            shape = (size, size, channels)
            keras.utils.set_random_seed(args.seed)
            model = build_network(name, image_shape=shape, classes=args.classes)
            path = export_for_serving(model, tmp, name=name, version=1, warmup=False)
            loaded = tf.saved_model.load(str(path))
            signature = loaded.signatures["serving_default"]
            compiled = tf.function(lambda t, m=model: m(t, training=False))
            rng = np.random.default_rng(args.seed)
            for batch in args.batches:
                x = tf.constant(rng.uniform(0, 255, (batch, *shape)).astype("float32"))
                expected = model(x, training=False).numpy()
                served = signature(images=x)["probabilities"].numpy()
                max_diff = float(np.max(np.abs(expected - served)))
                candidates = {
                    "serving_default": lambda: signature(images=x)["probabilities"].numpy(),
                    "keras eager": lambda: model(x, training=False).numpy(),
                    "keras tf.function": lambda: compiled(x).numpy(),
                    "keras predict_on_batch": lambda: model.predict_on_batch(x),
                }
                lat = C.interleave_latency(candidates, rounds=args.rounds, calls=args.calls, warmup=2,
                                           min_time=args.min_time)
                flat = {cand: [t for r in per_round for t in r] for cand, per_round in lat.items()}
                serve_p50 = C.percentile(flat["serving_default"], 50)
                serve_rounds = [C.percentile(r, 50) for r in lat["serving_default"]]
                for cand, samples in flat.items():
                    p50, p90 = C.percentile(samples, 50), C.percentile(samples, 90)
                    ratio = p50 / serve_p50
                    band = C.paired_ratios([C.percentile(r, 50) for r in lat[cand]], serve_rounds)
                    if cand == "serving_default":
                        ratio_text, band_text, verdict = "1.000", "", f"max diff vs keras {max_diff:.1e}"
                    else:
                        ratio_text, band_text = C.fmt_ratio(ratio), C.fmt_range(min(band), max(band))
                        verdict = ("target >= 1.0: " + C.verdict(ratio, min(band), max(band))
                                   if cand == "keras tf.function" else "")
                    rows.append([f"{name} {size}px", str(batch), cand, C.fmt(p50 * 1e3, 2), C.fmt(p90 * 1e3, 2),
                                 str(len(samples)), ratio_text, band_text, verdict])
                    print(" | ".join(rows[-1]), flush=True)
            del loaded, signature, model
            keras.backend.clear_session(free_memory=True)

    lines = C.header("Serving latency: exported serving_default vs the Keras model (ms, interleaved)")
    lines += [
        f"{args.rounds} rounds, >= {args.calls} calls and >= {args.min_time:g} s per candidate per round; every call "
        "timed with its result fetched. Ratio = candidate p50 / serving_default p50 (> 1.0: serving is faster). "
        "'per-round' is the min-max of the per-round p50 ratios (the noise band). "
        "The signature also computes top-k indices and class names.",
        "",
        C.markdown_table(["model", "batch", "call", "p50 ms", "p90 ms", "calls", "ref p50 / serving p50", "per-round",
                          "note"], rows, right=(1, 3, 4, 5, 6, 7)),
    ]
    C.emit("\n".join(lines), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
