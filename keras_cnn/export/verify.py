"""Verify an export the way TF Serving will use it, before shipping it.

`verify_export` checks, each as a named `Check`:

* the SavedModel has the ``serve`` tag-set and the ``serving_default`` / ``serving_bytes``
  predict signatures with the named outputs and a dynamic batch dimension (read from
  ``saved_model.pb``, as the server reads it);
* the shipped class names (``assets/class_names.txt``) and metadata agree with the model;
* in a **separate process** that does not import keras_cnn: ``tf.saved_model.load(path,
  tags=["serve"])``, lookup of each signature by name, runs on a batch of random raw images
  and on a batch of one, the same images PNG-encoded through ``serving_bytes``, and a replay
  of every warm-up record;
* output consistency (probabilities sum to 1, top-1 = arg-max, names match indices, top-k
  sorted), agreement of both signatures, and of the Keras model if one is given (max abs
  difference of the probabilities <= ``atol``, 1e-4 by default: this is what proves an
  optimized export, whose BatchNormalizations are folded into its convolutions, equivalent);
* ``saved_model_cli show --dir DIR --all`` lists the same signatures, and ``saved_model_cli
  run`` on a sample ``.npy`` file returns the same probabilities.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from keras_cnn.export._images import check_image_batch, encode_png
from keras_cnn.export.saved_model import (
    BYTES_SIGNATURE,
    DEFAULT_SIGNATURE,
    OUTPUT_NAMES,
    read_class_names,
    read_metadata,
    resolve_model,
)

PREDICT_METHOD = "tensorflow/serving/predict"
_WORKER = Path(__file__).with_name("_verify_worker.py")


@dataclasses.dataclass
class Check:
    """One verification step: ``name``, whether it passed, and a one-line ``detail``."""

    name: str
    ok: bool
    detail: str = ""


@dataclasses.dataclass
class VerifyReport:
    """What `verify_export` found.

    Attributes:
        path: the export (version directory).
        signatures: signature name -> {"method": str, "inputs": {alias: {"dtype", "shape"}},
            "outputs": {...}}, as stored in ``saved_model.pb`` (-1 = any size).
        checks: every `Check`, in the order run.
        metadata: ``assets.extra/keras_cnn.json`` (a SavedModel) or ``keras_cnn.json`` (LiteRT,
            ONNX), or None.
        kind: "SavedModel", "LiteRT" or "ONNX".
    """

    path: Path
    signatures: dict
    checks: list
    metadata: dict | None = None
    kind: str = "SavedModel"

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(c.ok for c in self.checks)

    @property
    def failures(self) -> list:
        return [c for c in self.checks if not c.ok]

    def signature_table(self) -> str:
        """A text table: signature, input/output, alias, dtype, shape."""
        rows = [("signature", "kind", "name", "dtype", "shape")]
        for sig in sorted(self.signatures):
            spec = self.signatures[sig]
            for kind in ("inputs", "outputs"):
                for alias, info in sorted(spec[kind].items()):
                    dims = info["shape"]
                    shape = "unknown" if dims is None else "(" + ", ".join(map(str, dims)) + ("," if len(dims) == 1 else "") + ")"
                    rows.append((sig, kind[:-1], alias, info["dtype"], shape))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def format(self) -> str:
        """The signature table, then one line per check, then the verdict."""
        lines = [f"{self.kind}: {self.path}", ""]
        if self.signatures:
            lines += [self.signature_table(), ""]
        for check in self.checks:
            lines.append(f"[{'ok' if check.ok else 'FAIL'}] {check.name}" + (f": {check.detail}" if check.detail else ""))
        verdict = "OK" if self.ok else f"FAILED ({len(self.failures)} of {len(self.checks)} checks)"
        lines += ["", f"verification {verdict}"]
        return "\n".join(lines)


def read_signatures(path) -> dict:
    """Signatures of the ``serve`` meta-graph, straight from ``saved_model.pb``.

    Raises:
        FileNotFoundError: no ``saved_model.pb`` in ``path``.
        ValueError: the file cannot be parsed, or has no ``serve`` tag-set.
    """
    from google.protobuf.message import DecodeError
    from tensorflow.core.framework import types_pb2
    from tensorflow.core.protobuf import saved_model_pb2

    pb = Path(path) / "saved_model.pb"
    if not pb.is_file():
        hint = ""
        if Path(path).is_dir() and any(p.name.isdigit() for p in Path(path).iterdir()):
            hint = " (this looks like a model directory: pass one of its numbered version directories)"
        raise FileNotFoundError(
            f"`path` must be a SavedModel directory (with saved_model.pb){hint}. Received: path={str(path)!r}"
        )
    try:
        saved = saved_model_pb2.SavedModel.FromString(pb.read_bytes())
    except DecodeError as err:
        raise ValueError(f"`path` has an unreadable saved_model.pb ({err}). Received: path={str(path)!r}") from None
    graphs = [g for g in saved.meta_graphs if "serve" in g.meta_info_def.tags]
    if not graphs:
        tags = [list(g.meta_info_def.tags) for g in saved.meta_graphs]
        raise ValueError(f"`path` has no 'serve' tag-set (TF Serving loads that one). Received: tag-sets {tags}")

    def info(tensor_info):
        dtype = types_pb2.DataType.Name(tensor_info.dtype).removeprefix("DT_").lower()
        shape = tensor_info.tensor_shape
        dims = None if shape.unknown_rank else [int(d.size) for d in shape.dim]
        return {"dtype": dtype, "shape": dims}

    out = {}
    for name, sig in graphs[0].signature_def.items():
        if name.startswith("__"):  # __saved_model_init_op
            continue
        out[name] = {
            "method": sig.method_name,
            "inputs": {k: info(v) for k, v in sig.inputs.items()},
            "outputs": {k: info(v) for k, v in sig.outputs.items()},
        }
    return out


def saved_model_cli_command() -> list[str]:
    """How to run ``saved_model_cli``: the script beside this Python, on PATH, or the module."""
    script = Path(sys.executable).with_name("saved_model_cli")
    if script.is_file():
        return [sys.executable, str(script)]
    found = shutil.which("saved_model_cli")
    if found:
        return [found]
    from keras_cnn._compat.tensorflow_ import SAVED_MODEL_CLI_MODULE

    return [sys.executable, "-m", SAVED_MODEL_CLI_MODULE]


def _tail(text, n=3):
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return " | ".join(lines[-n:])


def verify_export(path, *, model=None, samples=None, atol=1e-4, saved_model_cli=True, timeout=300):
    """Load an export as TF Serving would and check it; never raises for a failed check.

    Args:
        path: the version directory, e.g. "saved_models/lenet5/1".
        model: optional ``keras.Model``, ``.keras`` file or run directory to compare with.
        samples: optional float batch ``[N, H, W, C]`` of raw 0..255 pixels; default 3 random
            integer-valued images (integer so that PNG encoding is lossless).
        atol: tolerance for the comparisons. Default 1e-4.
        saved_model_cli: also run ``saved_model_cli show`` and ``run``. Default True.
        timeout: seconds allowed to each subprocess. Default 300.

    Returns:
        `VerifyReport`; ``report.ok`` tells whether everything passed.

    Raises:
        FileNotFoundError: ``path`` is not a SavedModel directory.
        ValueError: ``samples`` of the wrong shape, or an unparseable SavedModel.

    Example:
        >>> report = verify_export("saved_models/lenet5/1", model="runs/lenet5/model.keras")
        >>> print(report.format())
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"`path` must be an existing SavedModel directory. Received: path={str(path)!r}")
    signatures = read_signatures(path)
    metadata = read_metadata(path)
    keras_model = None if model is None else resolve_model(model)[0]  # bad model: fail before any work
    checks = []
    add = lambda name, ok, detail="": checks.append(Check(name, bool(ok), detail))  # noqa: E731
    report = VerifyReport(path, signatures, checks, metadata)

    if not _check_signatures(add, signatures):
        return report
    found = _check_assets(add, path, signatures, metadata)
    if found is None:
        return report
    image_alias, hwc, class_names = found

    # ---- samples
    if samples is None:
        rng = np.random.default_rng(0)
        samples = rng.integers(0, 256, (3, *hwc)).astype("float32")
    samples = check_image_batch("samples", samples, hwc)

    with tempfile.TemporaryDirectory(prefix="keras_cnn_verify_") as scratch:
        scratch = Path(scratch)
        np.save(scratch / "samples.npy", samples)
        image_files = []
        for i, image in enumerate(samples):
            image_file = scratch / f"sample_{i}.png"
            image_file.write_bytes(encode_png(image))
            image_files.append(str(image_file))
        spec = {"dir": str(path.resolve()), "samples": str(scratch / "samples.npy"), "images": image_files,
                "default": DEFAULT_SIGNATURE, "bytes": BYTES_SIGNATURE, "out": str(scratch / "result")}
        (scratch / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}

        procs = {"worker": subprocess.Popen(
            [sys.executable, str(_WORKER), str(scratch / "spec.json")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)}
        if saved_model_cli:
            cli = saved_model_cli_command()
            procs["show"] = subprocess.Popen(
                [*cli, "show", "--dir", str(path), "--all"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            procs["run"] = subprocess.Popen(
                [*cli, "run", "--dir", str(path), "--tag_set", "serve", "--signature_def", DEFAULT_SIGNATURE,
                 "--inputs", f"{image_alias}={scratch / 'samples.npy'}", "--outdir", str(scratch / "cli_out")],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        results = {}
        for key, proc in procs.items():
            try:
                out, err = proc.communicate(timeout=timeout)
                results[key] = (proc.returncode, out, err)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
                results[key] = (None, out, err)

        default = _check_served_outputs(add, path, results["worker"], scratch, samples,
                                        class_names=class_names, keras_model=keras_model, atol=atol)
        if saved_model_cli:
            _check_saved_model_cli(add, results, signatures, default, scratch, atol)
    return report


def _check_signatures(add, signatures):
    """Both signatures, predict method, named outputs, dynamic batch -> False if serving_default is missing."""
    missing = [s for s in (DEFAULT_SIGNATURE, BYTES_SIGNATURE) if s not in signatures]
    add("signatures present", not missing,
        f"missing {missing}" if missing else f"{DEFAULT_SIGNATURE}, {BYTES_SIGNATURE}")
    if missing and DEFAULT_SIGNATURE in missing:
        return False
    for sig_name in (DEFAULT_SIGNATURE, BYTES_SIGNATURE):
        sig = signatures.get(sig_name)
        if sig is None:
            continue
        problems = []
        if sig["method"] != PREDICT_METHOD:
            problems.append(f"method {sig['method']!r}")
        absent = [o for o in OUTPUT_NAMES if o not in sig["outputs"]]
        if absent:
            problems.append(f"outputs missing {absent}")
        for alias, info in {**sig["inputs"], **sig["outputs"]}.items():
            if info["shape"] is None or not info["shape"] or info["shape"][0] != -1:
                problems.append(f"{alias} batch dimension not dynamic ({info['shape']})")
        if len(sig["inputs"]) != 1:
            problems.append(f"{len(sig['inputs'])} inputs (expected 1)")
        add(f"{sig_name} signature", not problems, "; ".join(problems) or
            f"predict, {len(sig['outputs'])} named outputs, dynamic batch")

    return True


def _check_assets(add, path, signatures, metadata):
    """Input shape, class-name asset and metadata -> ``(image alias, (H, W, C), class names)``, or
    None when the input shape is not fixed."""
    (image_alias, image_info), = signatures[DEFAULT_SIGNATURE]["inputs"].items()
    shape = image_info["shape"] or [-1, None, None, None]
    hwc = tuple(None if d == -1 else d for d in shape[1:]) if len(shape) == 4 else (None, None, None)
    if metadata and None in hwc:
        hwc = tuple(metadata.get("input_shape", hwc))
    if None in hwc:
        add("input shape", False, f"{image_alias} has shape {shape}; need fixed [-1, H, W, C]")
        return None

    class_names = read_class_names(path)
    num_classes = (signatures[DEFAULT_SIGNATURE]["outputs"].get("probabilities", {}).get("shape") or [None, None])[-1]
    if class_names is None:
        add("class names asset", False, "assets/class_names.txt missing")
    else:
        ok = num_classes in (-1, None, len(class_names))
        add("class names asset", ok, f"{len(class_names)} names" + ("" if ok else f" but {num_classes} classes"))
    if metadata is None:
        add("metadata", False, "assets.extra/keras_cnn.json missing")
    else:
        problems = []
        if list(metadata.get("input_shape", [])) != list(hwc):
            problems.append(f"input_shape {metadata.get('input_shape')} != {list(hwc)}")
        if class_names is not None and metadata.get("class_names") != class_names:
            problems.append("class_names differ from assets/class_names.txt")
        add("metadata", not problems, "; ".join(problems) or
            f"model {metadata.get('model_name')!r}, preprocessing {metadata.get('preprocessing')!r}")
        optimized = metadata.get("optimized")
        if optimized:
            detail = (f"optimized: weights frozen, {optimized.get('batchnorms_folded', 0)} "
                      "BatchNormalization(s) folded into convolutions")
            if optimized.get("activation_scalings_left"):
                detail += f", {optimized['activation_scalings_left']} not after a convolution (kept)"
        elif metadata.get("optimize_error"):
            detail = f"plain: the optimized graph could not be built ({metadata['optimize_error']})"
        else:
            detail = "plain (exported with optimize=False): reads the model's variables"
        add("serving graph", True, detail)
    return image_alias, hwc, class_names


def _check_served_outputs(add, path, worker_result, scratch, samples, *, class_names, keras_model, atol):
    """The separate-process load and runs (as the server does) and their outputs -> the
    ``serving_default`` outputs on the batch of samples (empty when it did not run)."""
    lossless = bool(np.all(samples == np.rint(samples)) and samples.min() >= 0 and samples.max() <= 255)
    code, out, err = worker_result
    status_file = scratch / "result.json"
    if code != 0 or not status_file.is_file():
        why = "timed out" if code is None else f"exit {code}"
        add("load in a separate process", False, f"{why}: {_tail(err)}")
        outputs, status = {}, None
    else:
        status = json.loads(status_file.read_text(encoding="utf-8"))
        with np.load(scratch / "result.npz") as data:
            outputs = {k: data[k] for k in data.files}
        load_errors = [e for e in status["errors"] if e.startswith("tf.saved_model.load")]
        add("load in a separate process", not load_errors,
            "; ".join(load_errors) or f"tf.saved_model.load(tags=['serve']) found {status['signatures']}")
        add("serving needs no keras_cnn code", not status["keras_cnn_imported"],
            "loaded without importing keras_cnn" if not status["keras_cnn_imported"] else "keras_cnn was imported")
        for run_key, label in ((f"{DEFAULT_SIGNATURE}/batch", f"{DEFAULT_SIGNATURE} on {len(samples)} images"),
                               (f"{DEFAULT_SIGNATURE}/single", f"{DEFAULT_SIGNATURE} on 1 image"),
                               (f"{BYTES_SIGNATURE}/batch", f"{BYTES_SIGNATURE} on {len(samples)} PNGs")):
            ok = status["runs"].get(run_key, False)
            sig_name, tag = run_key.split("/")
            detail = next((e for e in status["errors"] if e.startswith(f"{sig_name} ({tag})")), "")
            add(f"run {label}", ok, "" if ok else detail or "not run")
        if (path / "assets.extra" / "tf_serving_warmup_requests").is_file():
            errors = status["warmup_errors"]
            read_errors = [e for e in status["errors"] if e.startswith("reading warm-up")]
            add("warm-up records replay", not errors and not read_errors and status["warmup_replayed"] > 0,
                "; ".join(read_errors + errors[:2]) or f"{status['warmup_replayed']} records ran")

    default = {k.split("/", 2)[2]: v for k, v in outputs.items() if k.startswith(f"{DEFAULT_SIGNATURE}/batch/")}
    if default.get("probabilities") is not None:
        _check_consistency(add, default, class_names)
        single = outputs.get(f"{DEFAULT_SIGNATURE}/single/probabilities")
        if single is not None:
            diff = float(np.max(np.abs(single[0] - default["probabilities"][0])))
            add("batch of 1 matches batch of N", diff <= atol, f"max |diff| {diff:.2e}")
        via_bytes = outputs.get(f"{BYTES_SIGNATURE}/batch/probabilities")
        if via_bytes is not None:
            diff = float(np.max(np.abs(via_bytes - default["probabilities"])))
            ok = diff <= atol or not lossless
            add(f"{BYTES_SIGNATURE} matches {DEFAULT_SIGNATURE}", ok,
                f"max |diff| {diff:.2e}" + ("" if lossless else " (samples not integer pixels: not compared)"))
        if keras_model is not None:
            reference = _keras_probabilities(keras_model, samples)
            diff = float(np.max(np.abs(reference - default["probabilities"])))
            add("matches the Keras model", diff <= atol, f"max |diff| {diff:.2e} (atol {atol:g})")

    return default


def _check_saved_model_cli(add, results, signatures, default, scratch, atol):
    """``saved_model_cli show`` lists the signatures; ``run`` gives serving_default's probabilities."""
    code, out, err = results["show"]
    if code != 0:
        add("saved_model_cli show", False, f"exit {code}: {_tail(err)}")
    else:
        absent = [f"{s}:{a}" for s, spec_ in signatures.items() for a in
                  [f"signature_def['{s}']"] + [f"['{k}']" for k in {**spec_['inputs'], **spec_['outputs']}]
                  if a not in out]
        add("saved_model_cli show", not absent, f"missing {absent[:3]}" if absent else
            f"{len(signatures)} signatures listed with the same inputs/outputs")
    code, out, err = results["run"]
    cli_probs = scratch / "cli_out" / "probabilities.npy"
    if code != 0 or not cli_probs.is_file():
        add("saved_model_cli run", False, f"exit {code}: {_tail(err)}")
    elif default.get("probabilities") is None:
        add("saved_model_cli run", True, "ran (nothing to compare with)")
    else:
        diff = float(np.max(np.abs(np.load(cli_probs) - default["probabilities"])))
        add("saved_model_cli run", diff <= atol, f"{DEFAULT_SIGNATURE} probabilities max |diff| {diff:.2e}")


def _check_consistency(add, out, class_names):
    probs = out["probabilities"]
    problems = []
    if not np.allclose(probs.sum(axis=-1), 1.0, atol=1e-3):
        problems.append("probabilities do not sum to 1")
    if "classes" in out and not np.array_equal(out["classes"], probs.argmax(axis=-1)):
        problems.append("classes != argmax(probabilities)")
    if class_names is not None and "class_names" in out and "classes" in out:
        expected = [class_names[i] for i in out["classes"]]
        if list(out["class_names"]) != expected:
            problems.append("class_names do not match classes")
    if "top_k_scores" in out:
        scores = out["top_k_scores"]
        if np.any(np.diff(scores, axis=-1) > 0):
            problems.append("top_k_scores not sorted")
        if "top_k_classes" in out:
            gathered = np.take_along_axis(probs, out["top_k_classes"].astype(int), axis=-1)
            if not np.allclose(gathered, scores, atol=1e-6):
                problems.append("top_k_scores != probabilities[top_k_classes]")
            if "classes" in out and not np.array_equal(out["top_k_classes"][:, 0], out["classes"]):
                problems.append("top_k_classes[:, 0] != classes")
    add("outputs consistent", not problems, "; ".join(problems) or
        "softmax rows, top-1 = argmax, names match indices, top-k sorted")


def _keras_probabilities(keras_model, samples):
    out = keras_model(samples, training=False)
    if isinstance(out, dict):
        out = out["predictions"]
    out = np.asarray(out, dtype="float32")
    if not np.allclose(out.sum(axis=-1), 1.0, atol=1e-3) or np.any(out < 0):  # logits
        out = np.exp(out - out.max(axis=-1, keepdims=True))
        out /= out.sum(axis=-1, keepdims=True)
    return out
