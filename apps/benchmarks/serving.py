"""Serving latency: our exported ``serving_default`` against keras' own ``model.export()``.

For each network, one ``keras.applications`` model (seeded weights that look trained, `_common.trained_like`:
the same weights for every candidate, and no download) is exported three ways to a temporary directory and loaded back with
``tf.saved_model.load`` (what TF Serving runs), in the same process:

* ``keras model.export()``: keras' own SavedModel export of the model (the reference);
* ``keras model.export() (A/A)``: a second export of the same model, loaded separately: two
  identical graphs, so its ratio is this run's noise floor (a ratio inside its spread is parity);
* ``ours (optimized)``: `keras_cnn.export.export_for_serving` with ``optimize=True`` (the
  default: weights frozen, BatchNormalization folded into the convolutions);
* ``ours (plain)``: the same with ``optimize=False`` (skip with ``--no-plain``).

Each ``serving_default`` signature is called with a batch of raw pixels and its probabilities are
fetched (which synchronises the call). The calls are interleaved over the rounds (round 1:
A, B, C; round 2: C, B, A; ...), every call timed. Our signatures also compute top-k indices and
class names, which keras' does not.

The table gives p50/p90 latency in ms and the ratio ``ours p50 / keras export p50`` (< 1.0: ours
is faster), with the min-max of the per-round ratios (the noise band), and beside it the ratio of
the median process CPU time per call (all threads): the work each graph does, far less sensitive
than wall time to other processes competing for the cores of a shared machine. Target: <= 0.90 at batch
1 and 8 for ResNet-50 at 224 and Inception-v3 at 299 on CPU.

Defaults: ``resnet50:224,inception_v3:299``, batches 1 and 8, 5 rounds. Quick (smoke test):
``resnet50:32``, batches 1 and 2, 2 rounds.
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

APPLICATIONS = {"resnet50": "ResNet50", "inception_v3": "InceptionV3", "vgg16": "VGG16",
                "mobilenet_v2": "MobileNetV2", "densenet121": "DenseNet121"}
DEFAULT_SIZE = {"resnet50": 224, "inception_v3": 299, "vgg16": 224, "mobilenet_v2": 224, "densenet121": 224}
TARGET = 0.90
WARMUP = 2  # untimed calls per candidate before the rounds
RATIO = "ours p50 / keras export p50"
CONTROL = "keras model.export() (A/A)"  # a second export of the same model: the noise floor


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=None,
                        help=f"comma-separated keras.applications names ({', '.join(APPLICATIONS)}), each "
                             "optionally :SIZE (default resnet50:224,inception_v3:299)")
    parser.add_argument("--batches", default=None, help="comma-separated batch sizes (default 1,8)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5)")
    parser.add_argument("--calls", type=int, default=None, help="calls per candidate per round, at least (default 5)")
    parser.add_argument("--min-time", type=float, default=None,
                        help="seconds per candidate per round, at least (default 1.0)")
    parser.add_argument("--no-plain", action="store_true", help="skip our optimize=False export")
    parser.add_argument("--threads", type=int, default=None, help="TF intra/inter-op threads (default: TF's)")
    C.add_common_arguments(parser)
    args = parser.parse_args(argv)
    quick = args.quick
    models = []
    for item in (args.models or ("resnet50:32" if quick else "resnet50:224,inception_v3:299")).split(","):
        item = item.strip()
        if not item:
            continue
        name, _, size = item.partition(":")
        if name not in APPLICATIONS:
            parser.error(f"--models: unknown network {name!r}; choose from {', '.join(APPLICATIONS)}")
        models.append((name, int(size) if size else DEFAULT_SIZE[name]))
    args.models = models
    args.batches = [int(b) for b in (args.batches or ("1,2" if quick else "1,8")).split(",") if b.strip()]
    args.rounds = args.rounds or (2 if quick else 5)
    args.calls = args.calls or (2 if quick else 5)
    args.min_time = args.min_time if args.min_time is not None else (0.0 if quick else 1.0)
    return args


def main(argv=None):
    args = parse_args(argv)
    C.set_threads(args.threads)
    info = C.machine_info()
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_cnn.export import export_for_serving, read_metadata

    rows = []
    notes = []
    with tempfile.TemporaryDirectory(prefix="keras_cnn_bench_serving_") as tmp:
        for name, size in args.models:
            keras.utils.set_random_seed(args.seed)
            builder = getattr(keras.applications, APPLICATIONS[name])
            model = C.trained_like(builder(weights=None, input_shape=(size, size, 3)), args.seed)
            keras_dir = os.path.join(tmp, f"{name}_keras")
            model.export(keras_dir, verbose=False)
            ours = export_for_serving(model, tmp, name=f"{name}_ours", version=1, warmup=False)
            folded = read_metadata(ours)["optimized"]["batchnorms_folded"]
            control_dir = os.path.join(tmp, f"{name}_keras_control")
            model.export(control_dir, verbose=False)
            paths = {"keras model.export()": keras_dir, CONTROL: control_dir, "ours (optimized)": str(ours)}
            if not args.no_plain:
                paths["ours (plain)"] = str(export_for_serving(model, tmp, name=f"{name}_plain", version=1,
                                                               warmup=False, optimize=False))
            signatures = {}
            for cand, path in paths.items():
                signature = tf.saved_model.load(path).signatures["serving_default"]
                (alias,) = signature.structured_input_signature[1]
                (output,) = [k for k in signature.structured_outputs if k == "probabilities"] or list(
                    signature.structured_outputs)
                signatures[cand] = (signature, alias, output)
            del model
            keras.backend.clear_session(free_memory=True)
            notes.append(f"{name} {size}px: {folded} BatchNormalizations folded into convolutions")
            rng = np.random.default_rng(args.seed)
            for batch in args.batches:
                x = tf.constant(rng.uniform(0, 255, (batch, size, size, 3)).astype("float32"))

                def call(cand, x=x, signatures=signatures):
                    signature, alias, output = signatures[cand]
                    return signature(**{alias: x})[output].numpy()

                reference = call("keras model.export()")
                diffs = {cand: float(np.max(np.abs(call(cand) - reference))) for cand in signatures}
                cpu = {cand: [] for cand in signatures}

                def timed(cand, call=call, cpu=cpu):
                    start = time.process_time()
                    call(cand)
                    cpu[cand].append(time.process_time() - start)

                candidates = {cand: (lambda cand=cand: timed(cand)) for cand in signatures}
                lat = C.interleave_latency(candidates, rounds=args.rounds, calls=args.calls, warmup=WARMUP,
                                           min_time=args.min_time)
                cpu_p50 = {cand: C.percentile(values[WARMUP:], 50) for cand, values in cpu.items()}
                flat = {cand: [t for r in per_round for t in r] for cand, per_round in lat.items()}
                ref = "keras model.export()"
                ref_p50 = C.percentile(flat[ref], 50)
                ref_rounds = [C.percentile(r, 50) for r in lat[ref]]
                for cand, samples in flat.items():
                    p50, p90 = C.percentile(samples, 50), C.percentile(samples, 90)
                    cpu_text = C.fmt(cpu_p50[cand] * 1e3, 1)
                    if cand == ref:
                        ratio_text, band_text, verdict = "1.000", "", "reference"
                        cpu_ratio = "1.000"
                    else:
                        cpu_ratio = C.fmt_ratio(cpu_p50[cand] / cpu_p50[ref])
                        ratio = p50 / ref_p50
                        band = C.paired_ratios([C.percentile(r, 50) for r in lat[cand]], ref_rounds)
                        ratio_text, band_text = C.fmt_ratio(ratio), C.fmt_range(min(band), max(band))
                        verdict = f"max diff {diffs[cand]:.1e}"
                        if cand == "ours (optimized)":
                            control = flat[CONTROL] and C.percentile(flat[CONTROL], 50) / ref_p50
                            met = "met" if ratio <= TARGET else ("noise" if min(band) <= TARGET else "MISSED")
                            verdict = f"target <= {TARGET:.2f}: {met} (A/A {control:.3f}); " + verdict
                    rows.append([f"{name} {size}px", str(batch), cand, C.fmt(p50 * 1e3, 2), C.fmt(p90 * 1e3, 2),
                                 str(len(samples)), ratio_text, band_text, cpu_text, cpu_ratio, verdict])
                    print(" | ".join(rows[-1]), flush=True)
            del signatures

    lines = C.header("Serving latency: our serving_default vs keras' model.export() (ms, interleaved)", info)
    lines += [
        f"{args.rounds} rounds, >= {args.calls} calls and >= {args.min_time:g} s per candidate per round; every call "
        f"timed with its result fetched. Ratio = candidate p50 / keras export p50 (< 1.0: ours is faster); "
        "'per-round' is the min-max of the per-round p50 ratios (the noise band); 'max diff' compares the "
        "probabilities with keras' export; 'CPU ms/call' is the median process CPU time (all threads) per call "
        "and 'CPU ratio' its ratio to keras' (the work done, robust to load). "
        "Our signatures also compute top-k and class names. "
        + "; ".join(notes) + ".",
        "",
        C.markdown_table(["model", "batch", "export", "p50 ms", "p90 ms", "calls", RATIO, "per-round",
                          "CPU ms/call", "CPU ratio", "note"], rows, right=(1, 3, 4, 5, 6, 7, 8, 9)),
    ]
    try:
        load = os.getloadavg()
        lines += ["", f"Load average at the end (1/5/15 min): {', '.join(f'{v:.2f}' for v in load)}"]
    except OSError:
        pass
    C.emit("\n".join(lines), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
