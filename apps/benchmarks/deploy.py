"""Deploy formats on CPU: keras' model.export (+ an A/A copy), our serving graph, LiteRT, ONNX Runtime.

Speed: for each network (``keras.applications`` ResNet-50 at 224 and Inception-v3 at 299 with
seeded weights that look trained (`_common.trained_like`), the same for every candidate; keras_cnn's LeNet-5 at 32) these candidates run in
one process, interleaved over rounds (round 1: A, B, ...; round 2: ..., B, A), every call timed
in wall and process CPU time (all threads) with its result fetched:

* ``keras export``: keras' own ``model.export()`` SavedModel, ``serving_default`` through
  ``tf.saved_model.load`` (the reference);
* ``keras export (A/A)``: a second export of the same model, loaded separately: two identical
  graphs, so its ratio is this run's noise floor;
* ``ours serving graph``: `keras_cnn.export.export_for_serving` (weights frozen, BN folded);
* ``LiteRT float32`` / ``float16`` / ``int8``: `keras_cnn.export.litert.convert`, run by
  ai-edge-litert's interpreter (XNNPACK, ``num_threads`` = the cores); int8 is full integer,
  float32 in and out, calibrated here on random pixels (timing only);
* ``ONNX Runtime``: `keras_cnn.export.onnx.convert` (Keras' tf2onnx path), CPU provider.

Ratios are candidate / ``keras export`` (median latency; CPU ms per call): < 1.0 is faster.
Goals: the fastest path <= 0.70 at batch 1 for ResNet-50 and Inception-v3 with the A/A control
within 0.95-1.05; our serving graph <= 0.90 at batch 1 and 8.

Accuracy and size: for each digits run given with ``--runs`` (training run directories), every
format is exported with `keras_cnn.export.export_model` (int8 and dynamic calibrated on the run's
training split, as the CLI does) and evaluated on the run's whole test split. Goals: int8 files
<= 0.27x the float32 LiteRT file; int8 accuracy drop <= 0.5 points.

``--readme FILE`` rewrites the blocks between ``<!-- deploy.py speed: begin -->`` and
``<!-- deploy.py speed: end -->`` (and ``accuracy`` likewise) in FILE with this run's tables;
``--no-speed`` measures the accuracy part alone.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C  # noqa: E402

C.quiet_tensorflow()

NETWORKS = {"resnet50": ("ResNet50", 224), "inception_v3": ("InceptionV3", 299), "lenet5": (None, 32)}
REFERENCE, CONTROL, SERVING = "keras export", "keras export (A/A)", "ours serving graph"
LITERT = {"LiteRT float32": "none", "LiteRT float16": "float16", "LiteRT int8": "int8"}
ONNX = "ONNX Runtime"
FASTEST_GOAL, SERVING_GOAL, AA_BAND, SIZE_GOAL, DROP_GOAL = 0.70, 0.90, (0.95, 1.05), 0.27, 0.5
WARMUP = 2
MARKERS = "<!-- deploy.py {part}: begin -->", "<!-- deploy.py {part}: end -->"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=None,
                        help="comma-separated NAME[:SIZE] of resnet50, inception_v3, lenet5 "
                             "(default resnet50:224,inception_v3:299,lenet5:32)")
    parser.add_argument("--batches", default=None, help="comma-separated batch sizes (default 1,8)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5)")
    parser.add_argument("--calls", type=int, default=None, help="calls per candidate per round, at least (default 5)")
    parser.add_argument("--min-time", type=float, default=None,
                        help="seconds per candidate per round, at least (default 1.0)")
    parser.add_argument("--runs", default="", help="comma-separated LABEL=RUN_DIR of digits training runs whose "
                                                   "accuracy and file sizes to measure per format")
    parser.add_argument("--readme", default=None, metavar="FILE", help="rewrite the marked blocks of FILE")
    parser.add_argument("--no-speed", action="store_true", help="only the accuracy part (--runs)")
    C.add_common_arguments(parser)
    args = parser.parse_args(argv)
    default_models = "lenet5:32" if args.quick else "resnet50:224,inception_v3:299,lenet5:32"
    args.models = [(name, int(size) if size else NETWORKS[name][1]) for name, _, size in
                   (item.strip().partition(":") for item in (args.models or default_models).split(",") if item.strip())]
    for name, _ in args.models:
        if name not in NETWORKS:
            parser.error(f"--models: unknown network {name!r}; choose from {', '.join(NETWORKS)}")
    args.batches = [int(b) for b in (args.batches or ("1,2" if args.quick else "1,8")).split(",") if b.strip()]
    args.rounds = args.rounds or (2 if args.quick else 5)
    args.calls = args.calls or (2 if args.quick else 5)
    args.min_time = args.min_time if args.min_time is not None else (0.0 if args.quick else 1.0)
    args.runs = [tuple(item.split("=", 1)) for item in args.runs.split(",") if item.strip()]
    for run in args.runs:
        if len(run) != 2 or not Path(run[1], "model.keras").is_file():
            parser.error(f"--runs: expected LABEL=RUN_DIR with model.keras; got {'='.join(run)!r}")
    return args


def build(name, size, seed):
    import keras

    keras.utils.set_random_seed(seed)
    if name == "lenet5":
        from keras_cnn.models import build_model

        return C.trained_like(build_model("lenet5", input_shape=(size, size, 1)), seed)
    return C.trained_like(getattr(keras.applications, NETWORKS[name][0])(weights=None, input_shape=(size, size, 3)),
                          seed)


def _dir_size(path):
    path = Path(path)
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def candidates(model, shape, tmp, seed):
    """``{name: (fn(images) -> probabilities, bytes on disk)}`` for one network."""
    import numpy as np
    import tensorflow as tf

    from keras_cnn.export import export_for_serving, litert, onnx
    from keras_cnn.export.saved_model import inference_model

    def saved_model(path, output):
        signature = tf.saved_model.load(str(path)).signatures["serving_default"]
        (alias,) = signature.structured_input_signature[1]
        key = output or next(iter(signature.structured_outputs))
        return lambda x: signature(**{alias: x})[key].numpy()

    out = {}
    for label in (REFERENCE, CONTROL):
        path = Path(tmp, label.replace(" ", "_").replace("/", ""))
        model.export(str(path), verbose=False)
        out[label] = (saved_model(path, None), _dir_size(path))
    ours = export_for_serving(model, tmp, name=f"ours_{model.name}", version=1, warmup=False)
    out[SERVING] = (saved_model(ours, "probabilities"), _dir_size(ours))
    serve_model, logits = inference_model(model)
    calibration = np.random.default_rng(seed).uniform(0, 255, (8, *shape)).astype("float32")
    threads = len(os.sched_getaffinity(0))
    for label, quantize in LITERT.items():
        path = Path(tmp, f"{model.name}_{quantize}.tflite")
        path.write_bytes(litert.convert(serve_model, shape, outputs_logits=logits, quantize=quantize,
                                        calibration=calibration))
        out[label] = (litert.LiteRTModel(path, num_threads=threads), path.stat().st_size)
        gc.collect()  # the converter's copies of a large frozen graph: keep the peak memory down
    path = Path(tmp, f"{model.name}.onnx")
    path.write_bytes(onnx.convert(serve_model, shape, outputs_logits=logits))
    out[ONNX] = (onnx.OnnxModel(path), path.stat().st_size)
    return out


def time_batch(cands, x, args):
    """``{name: {"p50", "cpu", "band": (lo, hi), "diff"}}`` for one batch, interleaved."""
    import numpy as np
    import tensorflow as tf

    # The TensorFlow candidates get the batch as a tensor already, the runtimes as numpy (what each takes).
    inputs = {name: tf.constant(x) if name in (REFERENCE, CONTROL, SERVING) else x for name in cands}
    reference = cands[REFERENCE][0](inputs[REFERENCE])
    cpu = {name: [] for name in cands}

    def timed(name):
        start = time.process_time()
        cands[name][0](inputs[name])
        cpu[name].append(time.process_time() - start)

    lat = C.interleave_latency({name: (lambda name=name: timed(name)) for name in cands}, rounds=args.rounds,
                               calls=args.calls, warmup=WARMUP, min_time=args.min_time)
    ref_rounds = [C.percentile(r, 50) for r in lat[REFERENCE]]
    ref_cpu = C.percentile(cpu[REFERENCE][WARMUP:], 50)
    ref_p50 = C.percentile([t for r in lat[REFERENCE] for t in r], 50)
    stats = {}
    for name in cands:
        p50 = C.percentile([t for r in lat[name] for t in r], 50)
        band = C.paired_ratios([C.percentile(r, 50) for r in lat[name]], ref_rounds)
        cpu_p50 = C.percentile(cpu[name][WARMUP:], 50)
        stats[name] = {"p50": p50, "ratio": p50 / ref_p50, "band": (min(band), max(band)), "cpu": cpu_p50,
                       "cpu_ratio": cpu_p50 / ref_cpu,
                       "diff": float(np.max(np.abs(cands[name][0](inputs[name]) - reference)))}
    return stats


def speed(args):
    import keras
    import numpy as np

    rows, results = [], {}
    with tempfile.TemporaryDirectory(prefix="keras_cnn_bench_deploy_") as tmp:
        for name, size in args.models:
            model = build(name, size, args.seed)
            shape = tuple(int(d) for d in model.input_shape[1:])
            cands = candidates(model, shape, tmp, args.seed)
            del model
            keras.backend.clear_session(free_memory=True)
            rng = np.random.default_rng(args.seed)
            for batch in args.batches:
                x = rng.uniform(0, 255, (batch, *shape)).astype("float32")
                stats = time_batch(cands, x, args)
                results[(name, size, batch)] = (stats, {k: s for k, (_, s) in cands.items()})
                for cand, st in stats.items():
                    rows.append([f"{name} {size}px", str(batch), cand, C.fmt(st["p50"] * 1e3, 2),
                                 C.fmt_ratio(st["ratio"]), C.fmt_range(*st["band"]) if cand != REFERENCE else "",
                                 C.fmt(st["cpu"] * 1e3, 1), C.fmt_ratio(st["cpu_ratio"]),
                                 f"{st['diff']:.1e}", C.fmt(cands[cand][1] / 1e6, 2)])
                    print(" | ".join(rows[-1]), flush=True)
            del cands
    return rows, results


def goals(results):
    """Lines saying which speed goals hold and by how much the others miss."""
    lines = []
    for (name, size, batch), (stats, sizes) in sorted(results.items()):
        control = stats[CONTROL]["ratio"]
        aa = "within" if AA_BAND[0] <= control <= AA_BAND[1] else "OUTSIDE"
        fast = min((s["ratio"], k) for k, s in stats.items() if k not in (REFERENCE, CONTROL))
        serving = stats[SERVING]
        head = f"- {name} {size}px b{batch}: A/A {control:.3f} ({aa} {AA_BAND[0]}-{AA_BAND[1]});"
        parts = []
        if batch == 1 and name != "lenet5":
            verdict = "holds" if fast[0] <= FASTEST_GOAL else f"misses by {fast[0] - FASTEST_GOAL:.3f}"
            parts.append(f"fastest {fast[1]} {fast[0]:.3f} (goal <= {FASTEST_GOAL}: {verdict})")
        verdict = "holds" if serving["ratio"] <= SERVING_GOAL else f"misses by {serving['ratio'] - SERVING_GOAL:.3f}"
        parts.append(f"serving graph {serving['ratio']:.3f} wall, {serving['cpu_ratio']:.3f} CPU "
                     f"(goal <= {SERVING_GOAL}: {verdict})")
        int8 = sizes["LiteRT int8"] / sizes["LiteRT float32"]
        parts.append(f"int8 file {int8:.3f}x float32 (goal <= {SIZE_GOAL}: "
                     f"{'holds' if int8 <= SIZE_GOAL else f'misses by {int8 - SIZE_GOAL:.3f}'})")
        lines.append(head + " " + "; ".join(parts))
    return lines


def accuracy(runs, workdir):
    """Rows ``[run, format, accuracy %, drop points, top-1 agreement, MB]`` and goal lines."""
    import numpy as np

    from keras_cnn.export.formats import ExportOptions, _VerificationData, export_model, open_model_file
    from keras_cnn.export.saved_model import inference_model, resolve_model

    rows, lines = [], []
    for label, run in runs:
        keras_model, source = resolve_model(run)
        serve_model, logits = inference_model(keras_model)
        shape = tuple(int(d) for d in serve_model.input_shape[1:])
        data = _VerificationData.load(source, shape, ExportOptions(), calibrate=False)
        reference = np.asarray(serve_model.predict(data.images, batch_size=64, verbose=0)).argmax(-1)
        base = float(np.mean(reference == data.labels))
        rows.append([label, "Keras", f"{100 * base:.2f}", "", "", ""])
        sizes = {}
        for fmt, quantize in (("litert", "none"), ("litert", "float16"), ("litert", "dynamic"),
                              ("litert", "int8"), ("onnx", "none")):
            result = export_model(run, Path(workdir, f"{label}-{fmt}-{quantize}"), format=fmt, quantize=quantize,
                                  options=ExportOptions(force=True, overwrite=True))
            runner = open_model_file(result.model_file)[0]
            got = np.concatenate([runner(data.images[i:i + 64]) for i in range(0, len(data.images), 64)]).argmax(-1)
            acc = float(np.mean(got == data.labels))
            sizes[(fmt, quantize)] = result.model_file.stat().st_size
            rows.append([label, f"{fmt} {quantize}", f"{100 * acc:.2f}", f"{100 * (base - acc):.2f}",
                         f"{100 * np.mean(got == reference):.2f}", C.fmt(sizes[(fmt, quantize)] / 1e6, 3)])
            if quantize == "int8":
                drop = 100 * (base - acc)
                lines.append(f"- {label}: int8 accuracy drop {drop:.2f} points on {data.description} (goal <= "
                             f"{DROP_GOAL}: {'holds' if drop <= DROP_GOAL else f'misses by {drop - DROP_GOAL:.2f}'})")
        ratio = sizes[("litert", "int8")] / sizes[("litert", "none")]
        lines.append(f"- {label}: int8 file {ratio:.3f}x the float32 LiteRT file (goal <= {SIZE_GOAL}: "
                     f"{'holds' if ratio <= SIZE_GOAL else f'misses by {ratio - SIZE_GOAL:.3f}'})")
        print("\n".join(" | ".join(r) for r in rows[-6:]), flush=True)
    return rows, lines


def write_readme(path, part, text):
    """Replace the ``part`` block of ``path`` with ``text`` (append the block when absent)."""
    path = Path(path)
    begin, end = (m.format(part=part) for m in MARKERS)
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    block = f"{begin}\n{text}\n{end}"
    if begin in old and end in old:
        new = old[:old.index(begin)] + block + old[old.index(end) + len(end):]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, path)


def speed_report(args, info):
    rows, results = speed(args)
    lines = C.header("Deploy formats on CPU: latency against keras' model.export() (interleaved, one process)", info)
    return lines + [
        f"{args.rounds} rounds, >= {args.calls} calls and >= {args.min_time:g} s per candidate per round. "
        "Ratio = candidate p50 / keras export p50 (< 1.0: faster); 'per-round' is the min-max of the per-round "
        "ratios; 'CPU ratio' compares the median process CPU time per call (the work done, robust to load); "
        "'max diff' is the largest probability difference from keras' export (int8 calibrated on random pixels: "
        "timing only); MB is the size on disk.",
        "",
        C.markdown_table(["model", "batch", "candidate", "p50 ms", "ratio", "per-round", "CPU ms/call", "CPU ratio",
                          "max diff", "MB"], rows, right=(1, 3, 4, 5, 6, 7, 8, 9)),
        "",
        "Goals:",
        *goals(results),
    ]


def accuracy_report(args, info):
    with tempfile.TemporaryDirectory(prefix="keras_cnn_bench_deploy_acc_") as workdir:
        rows, lines = accuracy(args.runs, workdir)
    header = C.header("Deploy formats: accuracy and file size on digits runs", info)
    return header + [
        "Each format exported with export_model (int8/dynamic calibrated on 100 images of the run's training "
        "split, as the CLI does) and evaluated on the run's whole test split; drop = Keras accuracy - format's.",
        "", C.markdown_table(["run", "format", "accuracy %", "drop points", "top-1 agreement %", "MB"],
                             rows, right=(2, 3, 4, 5)), "", "Goals:", *lines]


def main(argv=None):
    args = parse_args(argv)
    info = C.machine_info()
    parts = {}
    if not args.no_speed:
        parts["speed " + ",".join(f"{n}:{s}" for n, s in args.models)] = speed_report(args, info)
    if args.runs:
        parts["accuracy"] = accuracy_report(args, info)
    try:
        end = [f"Load average at the end (1/5/15 min): {', '.join(f'{v:.2f}' for v in os.getloadavg())}"]
    except OSError:
        end = []
    parts = {key: "\n".join(lines + [""] + end) for key, lines in parts.items()}
    C.emit("\n\n".join(parts.values()), args.output)
    if args.readme:
        for key, text in parts.items():
            write_readme(args.readme, key, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
