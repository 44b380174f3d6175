"""Verification worker: load an export in a fresh process, as TF Serving does, and run it.

Run by `keras_cnn.export.verify.verify_export` as ``python _verify_worker.py SPEC.json`` (by file
path, so that the ``keras_cnn`` package is *not* imported: serving an export must not need it).
SPEC is a JSON object::

    {"dir": export dir, "samples": .npy float32 [N, H, W, C], "images": [encoded image files],
     "default": "serving_default", "bytes": "serving_bytes", "out": result prefix}

Writes ``<out>.npz`` (outputs, keys "<signature>/<output>"; string outputs as unicode) and
``<out>.json`` (status: signatures found, errors, warm-up records replayed).
"""

import json
import os
import sys
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Run by path, Python puts this directory first on sys.path; drop it so that sibling modules
# (client.py, warmup.py, ...) can never shadow a top-level package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]


def _to_numpy(value):
    import numpy as np

    array = value.numpy()
    if array.dtype == object:
        array = np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[str])(array) if array.size else array.astype(str)
    return array


def main(spec_path):
    import numpy as np
    import tensorflow as tf

    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    status = {"signatures": [], "errors": [], "warmup_replayed": 0, "warmup_errors": [], "runs": {}}
    outputs = {}

    def record_error(where):
        err = sys.exc_info()[1]
        status["errors"].append(f"{where}: {type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}")

    try:
        loaded = tf.saved_model.load(spec["dir"], tags=["serve"])
        status["signatures"] = sorted(loaded.signatures.keys())
    except Exception:  # noqa: BLE001 - reported to the parent
        record_error("tf.saved_model.load")
        loaded = None

    if loaded is not None:
        samples = np.load(spec["samples"])
        images = []
        for image_path in spec["images"]:
            with open(image_path, "rb") as handle:
                images.append(handle.read())
        runs = [
            (spec["default"], "batch", {"images": tf.constant(samples)}),
            (spec["default"], "single", {"images": tf.constant(samples[:1])}),
            (spec["bytes"], "batch", {"image_bytes": tf.constant(images, dtype=tf.string)}),
        ]
        for signature, tag, feed in runs:
            if signature not in loaded.signatures:
                continue
            try:
                function = loaded.signatures[signature]
                # Feed by the signature's own input name (the first and only one).
                (alias,) = function.structured_input_signature[1].keys()
                result = function(**{alias: next(iter(feed.values()))})
                for key, value in result.items():
                    outputs[f"{signature}/{tag}/{key}"] = _to_numpy(value)
                status["runs"][f"{signature}/{tag}"] = True
            except Exception:  # noqa: BLE001
                status["runs"][f"{signature}/{tag}"] = False
                record_error(f"{signature} ({tag})")

        warmup_file = os.path.join(spec["dir"], "assets.extra", "tf_serving_warmup_requests")
        if os.path.isfile(warmup_file):
            try:
                # What TF Serving does: each TFRecord record is a PredictionLog.
                from tensorflow_serving.apis import prediction_log_pb2

                logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
                        for r in tf.data.TFRecordDataset(warmup_file)]
            except Exception:  # noqa: BLE001
                logs = []
                record_error("reading warm-up records")
            for i, log in enumerate(logs):
                request = log.predict_log.request
                try:
                    if log.WhichOneof("log_type") != "predict_log":
                        raise ValueError(f"log_type {log.WhichOneof('log_type')!r}, expected predict_log")
                    function = loaded.signatures[request.model_spec.signature_name or "serving_default"]
                    feed = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
                    function(**feed)
                    status["warmup_replayed"] += 1
                except Exception as err:  # noqa: BLE001
                    status["warmup_errors"].append(
                        f"record {i} ({request.model_spec.signature_name}): {type(err).__name__}: {err}")

    status["keras_cnn_imported"] = any(m == "keras_cnn" or m.startswith("keras_cnn.") for m in sys.modules)
    np.savez(spec["out"] + ".npz", **outputs)
    with open(spec["out"] + ".json", "w", encoding="utf-8") as handle:
        json.dump(status, handle)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1]))
    except Exception:  # noqa: BLE001 - the parent reads stderr
        traceback.print_exc()
        sys.exit(1)
