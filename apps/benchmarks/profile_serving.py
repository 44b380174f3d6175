"""Where the serving graph's time goes: per-op-type kernel time, folded graph vs keras' graph.

Both are SavedModels of the same ``keras.applications`` model (seeded weights that look trained, `_common.trained_like`): "keras" is keras'
own ``model.export()`` (weights read from variables, BatchNormalization as per-channel
multiply/add on every activation map), "folded" is ours (`keras_cnn.export.export_for_serving`:
weights frozen, BatchNormalization folded into the convolutions). Each is loaded into a
``tf.compat.v1.Session`` with the SavedModel loader (grappler on, as in TF Serving) and its
``serving_default`` signature run with full tracing; the kernel times of the traced runs are summed
per op type (after grappler's fusions and rewrites, e.g. oneDNN's ``_MklNativeFusedConv2D``) and
reported as ms per call and as a share of the total, with the op counts. Interleaved:
keras, folded, folded, keras, ...

Default: resnet50 at 224 and inception_v3 at 299, batch 1, 5 traced calls each after 2 warm-up calls.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C  # noqa: E402

C.quiet_tensorflow()

APPLICATIONS = {"resnet50": ("ResNet50", 224), "inception_v3": ("InceptionV3", 299)}
QUICK_SIZES = {"resnet50": 32, "inception_v3": 75}  # --quick: the smallest each network accepts


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="resnet50,inception_v3", help="comma-separated resnet50, inception_v3")
    parser.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    parser.add_argument("--calls", type=int, default=5, help="traced calls per graph (default 5)")
    parser.add_argument("--top", type=int, default=12, help="op types listed per graph (default 12)")
    C.add_common_arguments(parser)
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.quick:
        args.calls = 1
    return args


def op_times(session, fetch, feed, calls):
    """``{op type: [total kernel µs, kernels]}`` summed over ``calls`` traced runs, and the wall µs."""
    import tensorflow as tf

    totals = collections.defaultdict(lambda: [0, 0])
    options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
    for _ in range(calls):
        metadata = tf.compat.v1.RunMetadata()
        session.run(fetch, feed, options=options, run_metadata=metadata)
        for device in metadata.step_stats.dev_stats:
            if "/host:" in device.device or "stream" in device.device:
                continue
            for node in device.node_stats:
                label = node.timeline_label  # "name = OpType(inputs)"
                kind = label.split(" = ", 1)[1].split("(", 1)[0] if " = " in label else node.node_name
                if kind in ("_SOURCE", "_Retval", "_Arg", "NoOp", "Const"):
                    continue
                totals[kind][0] += node.all_end_rel_micros
                totals[kind][1] += 1
    return {k: (v[0] / calls, v[1] / calls) for k, v in totals.items()}


def main(argv=None):
    args = parse_args(argv)
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_cnn.export import export_for_serving, read_metadata

    lines = C.header("Serving graph profile: kernel time per op type, keras' graph vs the folded graph",
                     C.machine_info())
    for name in args.models:
        builder, size = APPLICATIONS[name]
        size = QUICK_SIZES[name] if args.quick else size
        keras.utils.set_random_seed(args.seed)
        model = C.trained_like(getattr(keras.applications, builder)(weights=None, input_shape=(size, size, 3)),
                               args.seed)
        shape = (size, size, 3)
        tmp = tempfile.mkdtemp(prefix="keras_cnn_profile_")
        keras_dir = os.path.join(tmp, "keras")
        model.export(keras_dir, verbose=False)
        ours = export_for_serving(model, tmp, name="ours", version=1, warmup=False)
        folded = read_metadata(ours)["optimized"]
        x = np.random.default_rng(args.seed).uniform(0, 255, (args.batch, *shape)).astype("float32")
        sessions = {}
        for label, path, output in (("keras", keras_dir, None), ("folded", str(ours), "probabilities")):
            session = tf.compat.v1.Session(graph=tf.Graph())
            with session.graph.as_default():
                meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
            signature = meta.signature_def["serving_default"]
            (feed_info,) = signature.inputs.values()
            fetch_info = signature.outputs[output] if output else next(iter(signature.outputs.values()))
            fetch = session.graph.get_tensor_by_name(fetch_info.name)
            feed_key = session.graph.get_tensor_by_name(feed_info.name)
            for _ in range(2):
                session.run(fetch, {feed_key: x})
            sessions[label] = (session, fetch, feed_key)
        times = {"keras": collections.Counter(), "folded": collections.Counter()}
        counts = {"keras": {}, "folded": {}}
        for r in range(2):
            for label in (("keras", "folded") if r == 0 else ("folded", "keras")):
                session, fetch, feed_key = sessions[label]
                for kind, (us, n) in op_times(session, fetch, {feed_key: x}, args.calls).items():
                    times[label][kind] += us / 2
                    counts[label][kind] = n
        totals = {label: sum(t.values()) for label, t in times.items()}
        kinds = sorted(set(times["keras"]) | set(times["folded"]),
                       key=lambda k: -(times["keras"][k] + times["folded"][k]))
        rows = []
        for kind in kinds[:args.top]:
            rows.append([kind] + [x for label in ("keras", "folded") for x in (
                C.fmt(times[label][kind] / 1e3, 2), f"{100 * times[label][kind] / totals[label]:.1f}",
                str(int(counts[label].get(kind, 0))))])
        rest = {label: totals[label] - sum(times[label][k] for k in kinds[:args.top]) for label in times}
        rows.append(["(other)"] + [x for label in ("keras", "folded") for x in (
            C.fmt(rest[label] / 1e3, 2), f"{100 * rest[label] / totals[label]:.1f}", "")])
        rows.append(["total kernel time"] + [x for label in ("keras", "folded") for x in (
            C.fmt(totals[label] / 1e3, 2), "100.0", "")])
        lines += [f"### {name} {size}px, batch {args.batch}", "",
                  C.markdown_table(["op type", "keras ms", "keras %", "keras ops", "folded ms", "folded %",
                                    "folded ops"], rows, right=(1, 2, 3, 4, 5, 6)), "",
                  f"Folded / keras total kernel time: {totals['folded'] / totals['keras']:.3f} "
                  f"({folded['batchnorms_folded']} BatchNormalizations folded, "
                  f"{folded['activation_scalings_left']} left).", ""]
        for session, _, _ in sessions.values():
            session.close()
        shutil.rmtree(tmp, ignore_errors=True)
        del model
        keras.backend.clear_session(free_memory=True)
    C.emit("\n".join(lines), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
