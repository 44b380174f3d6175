"""The GPU check: one command that measures the GPU path and writes one table (and a JSON beside it).

    python apps/benchmarks/gpu_check.py [--out apps/benchmarks/results/gpu.md] [--smoke] [--budget 450]

Sections, in this order (each with its own time budget; a section that fails or runs out of time is
recorded as such in the table and the next one starts):

1. ``environment``: GPU name, memory and driver (``nvidia-smi``), compute capability, CUDA/cuDNN of the
   TensorFlow build, TensorFlow/Keras versions, whether XLA compiles, whether TF32 is on.
2. ``placement``: one training step of ResNet-50 at 224 px, batch 64, with the full augmentation on
   the device, with TensorFlow's device-placement logging and run metadata: which device ran the
   augmentation ops. Then steps timed (interleaved) with augmentation on the device, fed by the
   tf.data ``map`` (AUTOTUNE), and without augmentation: the share of step time augmentation costs on
   each path, and whether ``--augment-on auto`` (`keras_cnn.data.augment.resolve_augment_on`) picks
   the faster path.
3. ``throughput``: training images/s (median of timed steps after warm-up) of ResNet-50 at 224 px
   batch 64, VGG-16 at 224 px batch 32 and Inception-v3 at 299 px batch 32 under float32,
   ``mixed_float16`` and ``mixed_float16`` + XLA, each against its keras.applications twin with an
   A/A control (`twins.measure_pair`); plus the speed-ups of mixed precision and of XLA (ResNet-50).
4. ``input``: the step fed by the real input pipeline (the digits from `keras_cnn.data.load_data`;
   synthetic ResNet-50 batches from a ``tf.data`` dataset) against the same step on a cached tensor,
   with an A/A control (the cached step against a second cached tensor).
5. ``serving``: the folded serving graph (`keras_cnn.export.export_for_serving`) against keras'
   ``model.export()`` of the same ResNet-50, batch 1 and 64, with an A/A control (keras' export loaded
   a second time).
6. ``end_to_end``: ``keras-cnn demo`` (accuracy, seconds) and a short ``keras-cnn train resnet18
   --data digits --mixed-precision`` run.

The goals are a column of the table, judged pass/FAIL when the run is on a GPU. The sections run in
one worker process (TensorFlow is imported once); this process watches it, kills it when a section
overruns its budget (then starts a fresh worker for the next section) and rewrites the table and the
JSON after every row, so a run killed from outside still leaves a partial table. When ``--out`` lies
in ``apps/benchmarks/results/``, the benchmark README's tables are regenerated.

``--smoke`` runs the same code on the CPU at tiny sizes (LeNet-5, VGG-16 at 32 px, MobileNetV2 at
32 px, one-epoch runs), to check that the script works; its figures mean nothing and are not judged.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _common as C  # noqa: E402

DEFAULT_OUT = C.RESULTS_DIR / "gpu.md"
SETTINGS = (("float32", False), ("mixed_float16", False), ("mixed_float16", True))
SPEC = "flip,crop,rotate=15,shear=0.1,warp,color_shift=20,pca=0.1"  # pipeline.py's full augmentation
TITLES = {
    "environment": "Environment",
    "placement": "Augmentation placement",
    "throughput": "Training throughput",
    "input": "Input pipeline",
    "serving": "Serving",
    "end_to_end": "End to end",
}
SECTIONS = tuple(TITLES)
# Seconds per section on a GPU (450 in all: under 8 minutes with the process start-up).
BUDGETS = {"environment": 20, "placement": 60, "throughput": 225, "input": 40, "serving": 50, "end_to_end": 55}
SMOKE_BUDGET = 360  # per section with --smoke (a 2-core CPU shared with other work: mixed_float16 is emulated there)
HEADERS = ["measurement", "value", "reference", "ratio", "per-round", "A/A", "goal", "result"]
ENV_HEADERS = ["item", "value"]

# The sizes of a GPU run and of --smoke (same code, tiny settings).
PLANS = {
    "gpu": {
        "placement": {"model": "resnet50", "kwargs": {}, "size": 224, "batch": 64, "rounds": 5, "steps": 3},
        # In priority order (what does not fit the budget is skipped and says so): the ResNet-50 goals
        # first, then the other twins under mixed precision, then their float32 and XLA rows.
        "throughput": {"units": [("resnet50", 224, 64, *s) for s in SETTINGS]
                       + [("vgg16", 224, 32, "mixed_float16", False), ("inception_v3", 299, 32, "mixed_float16", False),
                          ("vgg16", 224, 32, "float32", False), ("inception_v3", 299, 32, "float32", False),
                          ("vgg16", 224, 32, "mixed_float16", True), ("inception_v3", 299, 32, "mixed_float16", True)],
                       "classes": 1000, "rounds": 5, "steps": 5, "warmup": 2},
        "input": {"digits": ("resnet18", {"stem": "small"}, 32, 64), "synthetic": ("resnet50", {}, 224, 64),
                  "rounds": 5, "steps": 5},
        "serving": {"model": "ResNet50", "size": 224, "batches": (1, 64), "rounds": 4, "calls": 10, "min_time": 0.2},
        "end_to_end": {"demo": [], "resnet18": ["--epochs", "5"]},
    },
    "smoke": {
        "placement": {"model": "lenet5", "kwargs": {}, "size": 32, "batch": 8, "rounds": 2, "steps": 1},
        # XLA over float32 here: XLA's CPU float16 convolutions are emulated and far too slow for a smoke test.
        "throughput": {"units": [("vgg16", 32, 1, "float32", False), ("vgg16", 32, 1, "mixed_float16", False),
                                 ("vgg16", 32, 1, "float32", True)],
                       "classes": 10, "rounds": 1, "steps": 1, "warmup": 0},
        "input": {"digits": ("lenet5", {}, 32, 16), "synthetic": ("lenet5", {}, 32, 8), "rounds": 2, "steps": 1},
        "serving": {"model": "MobileNetV2", "size": 32, "batches": (1, 2), "rounds": 1, "calls": 1, "min_time": 0.0},
        "end_to_end": {"demo": ["--epochs", "1"], "resnet18": ["--epochs", "1", "--max-examples", "64",
                                                               "--image-size", "32"]},
    },
}
GOALS = {
    "mixed": "mixed_float16 >= 2x float32",
    "xla": "XLA >= 1.15x on top of mixed_float16",
    "share": "<= 5 % of step time",
    "twins": "ours/keras >= 0.97, A/A 0.95-1.05",
    "input": "fed/cached >= 0.95 (the GPU does not wait)",
    "ops": "every augmentation op on the GPU",
    "auto": "auto picks the faster path",
    "demo": ">= 98 % test accuracy",
}


def make_plan(smoke, models=None):
    """The sizes of this run; ``models`` keeps only those networks' throughput units."""
    plan = {k: dict(v) for k, v in PLANS["smoke" if smoke else "gpu"].items()}
    if models:
        plan["throughput"]["units"] = [u for u in plan["throughput"]["units"] if u[0] in models]
    return plan


def setting_name(precision, jit):
    return precision + (" + XLA" if jit else "")


def unit_key(name, precision, jit):
    return f"{name}/{precision}" + ("+xla" if jit else "")


def speedups(throughput):
    """``((network, XLA's precision), [(numerator, denominator) unit keys])`` of the two speed-up rows.

    Mixed precision against float32, and XLA against the same precision without it, for the first
    network of the throughput plan (ResNet-50 on a GPU).
    """
    first = throughput["units"][0][0]
    xla = next((u[3] for u in throughput["units"] if u[0] == first and u[4]), "mixed_float16")
    return (first, xla), [((first, "mixed_float16", False), (first, "float32", False)),
                          ((first, xla, True), (first, xla, False))]


def planned_rows(section, plan):
    """``[(key, measurement)]``: every row a section writes, so that the table always has all of them."""
    p = plan.get(section, {})
    if section == "environment":
        return [(k, k) for k in ("GPU", "GPU memory", "driver", "compute capability", "CUDA (TF build)",
                                 "cuDNN (TF build)", "TensorFlow", "Keras", "keras_cnn", "Python", "XLA", "TF32",
                                 "CPU")]
    if section == "placement":
        where = f"{p['model']} {p['size']} px b{p['batch']}"
        return [("ops", f"augmentation ops by device (run metadata, first train step, {where})"),
                ("log", "device placement log lines naming augmentation ops"),
                ("none", f"train step, no augmentation ({where})"),
                ("device", "train step, augmentation on device"),
                ("map", "train step fed by the tf.data map (AUTOTUNE)"),
                ("auto", "`--augment-on auto` picks")]
    if section == "throughput":
        rows = [(unit_key(n, *s), f"{n} {px} px b{b} train, {setting_name(*s)}: ours vs keras.applications")
                for n, px, b, *s in p["units"]]
        (first, xla_precision), _ = speedups(p)
        return rows + [(f"{first}/mixed", f"{first}: mixed_float16 vs float32 (ours)"),
                       (f"{first}/xla", f"{first}: {xla_precision} + XLA vs {xla_precision} (ours)")]
    if section == "input":
        return [(k, f"{k} ({p[k][0]} {p[k][2]} px b{p[k][3]}): step fed by the input pipeline vs cached tensor")
                for k in ("digits", "synthetic")]
    if section == "serving":
        return [(f"b{b}", f"{p['model']} {p['size']} px batch {b}: folded serving graph p50 vs keras model.export() p50")
                for b in p["batches"]]
    return [("demo", "`keras-cnn demo`"), ("resnet18", "`keras-cnn train resnet18 --data digits --mixed-precision`")]


# --------------------------------------------------------------------------------------------
# The report: state, Markdown, JSON (no TensorFlow here)
# --------------------------------------------------------------------------------------------


class Report:
    """What the run measured so far; written to ``out`` (Markdown) and ``out.json`` after every change."""

    def __init__(self, out, plan, plan_name, budget, budgets, command):
        self.out = Path(out)
        self.plan = plan
        self.started = time.time()
        self.meta = {"command": command, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                     "plan": plan_name, "budget_s": budget, "elapsed_s": 0.0, "state": "running"}
        self.sections = {
            name: {"name": name, "title": TITLES[name], "status": "pending", "seconds": None, "budget_s": budgets[name],
                   "planned": planned_rows(name, self.plan), "rows": {}}
            for name in SECTIONS
        }

    def set_status(self, section, status, seconds=None):
        self.sections[section]["status"] = status
        if seconds is not None:
            self.sections[section]["seconds"] = round(seconds, 1)
        self.write()

    def add_row(self, section, row):
        self.sections[section]["rows"][row["key"]] = row
        self.write()

    def rows(self, section):
        info = self.sections[section]
        missing = {"pending": "not run yet", "running": "not reached yet"}.get(info["status"], info["status"])
        out = []
        for key, label in info["planned"]:
            row = info["rows"].get(key) or {"key": key, "measurement": label, "value": f"not measured: {missing}"}
            out.append(row)
        out += [r for k, r in info["rows"].items() if k not in dict(info["planned"])]
        return out

    def as_json(self):
        return {**self.meta, "sections": [
            {k: v for k, v in {**info, "rows": self.rows(name)}.items() if k != "planned"}
            for name, info in self.sections.items()
        ]}

    def markdown(self):
        m = self.meta
        smoke = m["plan"] == "smoke"
        lines = [
            "# GPU check" + (" (smoke run on the CPU: figures meaningless, goals not judged)" if smoke else ""),
            "",
            f"Command: `{m['command']}`; started {m['date']}; {m['elapsed_s']:.0f} s of a {m['budget_s']:.0f} s "
            f"budget; state: {m['state']}.",
            "",
            "Ratios are measured in one process, interleaved (alternating order over rounds, medians); 'per-round' "
            "is the min-max of the per-round ratios and 'A/A' the ratio two identical candidates got in the same "
            "run (the noise floor). Goals are judged only on a GPU.",
        ]
        for number, (name, info) in enumerate(self.sections.items(), 1):
            seconds = f", {info['seconds']:.0f} s" if info["seconds"] is not None else ""
            lines += ["", f"## {number}. {info['title']}", "",
                      f"Status: {info['status']}{seconds} (budget {info['budget_s']:.0f} s).", ""]
            headers = ENV_HEADERS if name == "environment" else HEADERS
            keys = ["measurement", "value"] if name == "environment" else \
                ["measurement", "value", "reference", "ratio", "per_round", "aa", "goal", "result"]
            table = [[str(row.get(k, "")).replace("|", "/") for k in keys] for row in self.rows(name)]
            lines.append(C.markdown_table(headers, table, right=()))
            notes = [row["note"] for row in self.rows(name) if row.get("note")]
            lines += [""] + [f"- {n}" for n in notes] if notes else []
        return "\n".join(lines)

    def write(self):
        self.meta["elapsed_s"] = round(time.time() - self.started, 1)
        C.write_atomic(self.out, self.markdown() + "\n")
        C.write_atomic(self.out.with_suffix(".json"), json.dumps(self.as_json(), indent=1, default=str) + "\n")
        if C.in_results(self.out):
            C.render_readme()


# --------------------------------------------------------------------------------------------
# The worker: runs the sections, one JSON line per event
# --------------------------------------------------------------------------------------------


class Emitter:
    """Writes the worker's events (section start/end, rows) as JSON lines for the watching process."""

    def __init__(self, path, on_gpu):
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the worker's lifetime
        self.on_gpu = on_gpu

    def event(self, **event):
        self.file.write(json.dumps(event, default=str) + "\n")
        self.file.flush()

    def row(self, section, key, measurement, value, reference="", ratio="", per_round="", aa="", goal="",
            passed=None, note=""):
        """One table row; ``passed`` (True/False/None) becomes pass/FAIL on a GPU when a goal is set."""
        result = ""
        if goal:
            result = ("not judged (no GPU)" if not self.on_gpu else
                      "n/a" if passed is None else "pass" if passed else "FAIL")
        self.event(kind="row", section=section, row={
            "key": key, "measurement": measurement, "value": value, "reference": reference, "ratio": ratio,
            "per_round": per_round, "aa": aa, "goal": goal, "result": result, "passed": passed, "note": note})


def ratio_cells(a, b, per_round_a=None, per_round_b=None):
    """``(ratio, per-round band)`` text of ``a / b`` (rates) and of their paired per-round values."""
    ratio = a / b if b else float("nan")
    if per_round_a and per_round_b:
        band = C.paired_ratios(per_round_a, per_round_b)
        return C.fmt_ratio(ratio), C.fmt_range(min(band), max(band))
    return C.fmt_ratio(ratio), ""


def section_environment(em, plan, deadline):
    import keras
    import tensorflow as tf

    info = C.machine_info()
    gpus = tf.config.list_physical_devices("GPU")
    smi = C.nvidia_smi()
    build = tf.sysconfig.get_build_info()
    details = tf.config.experimental.get_device_details(gpus[0]) if gpus else {}
    try:
        tf.function(lambda x: x * 2.0 + 1.0, jit_compile=True)(tf.ones((4,))).numpy()
        xla = "available (a jit_compile function ran)"
    except Exception as err:  # noqa: BLE001 - reported, not raised
        xla = f"not available: {type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''}"
    values = {
        "GPU": ", ".join(info["gpus"]) or "none visible",
        "GPU memory": smi.get("memory.total", "n/a (nvidia-smi not found)" if not smi else "n/a"),
        "driver": smi.get("driver_version", "n/a"),
        "compute capability": ".".join(str(v) for v in details.get("compute_capability", ())) or "n/a",
        "CUDA (TF build)": build.get("cuda_version", "n/a (CPU build)"),
        "cuDNN (TF build)": build.get("cudnn_version", "n/a (CPU build)"),
        "TensorFlow": tf.__version__, "Keras": keras.__version__, "keras_cnn": info["keras_cnn"],
        "Python": info["python"], "XLA": xla,
        "TF32": "on" if tf.config.experimental.tensor_float_32_execution_enabled() else "off",
        "CPU": f"{info['cpu']}, {info['cores']} cores",
    }
    for key, value in values.items():
        em.row("environment", key, key, value)


def _build_consumer(name, kwargs, shape, classes=10):
    import keras

    from keras_cnn.training import build_network

    keras.utils.set_random_seed(0)
    network = build_network(name, image_shape=shape, classes=classes, model_kwargs=kwargs)
    network.compile(optimizer=keras.optimizers.SGD(1e-2, momentum=0.9), loss="sparse_categorical_crossentropy")
    return network


def first_step_placement(step):
    """Run ``step`` (a first train step) with placement logging and run metadata: augmentation ops by device."""
    import tensorflow as tf

    from keras_cnn._compat import tensorflow_ as tf_compat

    with tempfile.TemporaryDirectory(prefix="keras_cnn_gpu_check_") as tmp:
        log = Path(tmp) / "placement.log"
        tf.debugging.set_log_device_placement(True)
        try:
            from keras_cnn._io import native_output_to

            with open(log, "wb") as sink, native_output_to(sink):  # TensorFlow's C++ logs
                metadata = tf_compat.run_metadata_of(step)
        finally:
            tf.debugging.set_log_device_placement(False)
        log_lines = [line for line in log.read_text(errors="replace").splitlines() if "augment_" in line]
    by_device = {}
    for function_graph in metadata.function_graphs:
        for graph in function_graph.partition_graphs:
            for node in graph.node:
                if "augment_" in node.name and not node.op.startswith("_") and node.op not in ("Const", "NoOp", "Identity"):
                    by_device.setdefault(node.device.rsplit("/", 1)[-1].replace("device:", ""), set()).add(node.op)
    log_devices = sorted({part.rsplit("/", 1)[-1].replace("device:", "") for line in log_lines
                          for part in line.split() if "/device:" in part})
    return by_device, log_lines, log_devices


def section_placement(em, plan, deadline):
    import keras
    import tensorflow as tf
    from pipeline import consumer_steps, synthetic_images

    from keras_cnn.data.augment import (
        build_augmenter,
        compute_pca_stats,
        cpu_augment,
        resolve_augment_on,
    )

    p = plan["placement"]
    shape, batch = (p["size"], p["size"], 3), p["batch"]
    images, labels = synthetic_images(p["size"], batch * 4, seed=0)
    augmenter = build_augmenter(SPEC, image_shape=shape, pca_stats=compute_pca_stats(images), seed=0)
    network = _build_consumer(p["model"], p["kwargs"], shape)
    x, y = tf.constant(images[:batch]), tf.constant(labels[:batch])
    source = tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch, drop_remainder=True).repeat()
    feed = cpu_augment(source, augmenter, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    keys, candidates, before = consumer_steps(p["model"], network, augmenter, x, y, feed,
                                              loss="sparse_categorical_crossentropy")
    by_device, log_lines, log_devices = first_step_placement(candidates[keys["device"]])
    on_cpu = sorted({op for dev, ops in by_device.items() if not dev.startswith("GPU") for op in ops})
    em.row("placement", "ops", planned_rows("placement", plan)[0][1],
           "; ".join(f"{dev}: {len(ops)} op types" for dev, ops in sorted(by_device.items())) or "none found",
           goal=GOALS["ops"], passed=not on_cpu and any(d.startswith("GPU") for d in by_device),
           note=f"augmentation op types not on a GPU: {', '.join(on_cpu)}" if on_cpu else "")
    em.row("placement", "log", "device placement log lines naming augmentation ops",
           f"{len(log_lines)} lines" + (f" on {', '.join(log_devices)}" if log_devices else ""))
    times = C.interleave(candidates, rounds=p["rounds"], calls=p["steps"], warmup=1, before_round=before)
    ms = {k: C.median(times[name]["wall"]) * 1e3 for k, name in keys.items()}
    per_round = {k: times[name]["wall"] for k, name in keys.items()}
    em.row("placement", "none", planned_rows("placement", plan)[2][1], f"{C.fmt(ms['step'], 2)} ms")
    for key, path in (("device", "device"), ("map", "cpu")):
        share = 1.0 - ms["step"] / ms[path]
        ratio, band = ratio_cells(ms[path], ms["step"], per_round[path], per_round["step"])
        em.row("placement", key, dict(planned_rows("placement", plan))[key],
               f"{C.fmt(ms[path], 2)} ms ({share:.1%} of the step is augmentation)",
               f"{C.fmt(ms['step'], 2)} ms (no augmentation)", ratio, band,
               goal=GOALS["share"] if key == "device" else "", passed=share <= 0.05)
    auto = resolve_augment_on("auto")
    faster = "device" if ms["device"] <= ms["cpu"] else "cpu"
    em.row("placement", "auto", "`--augment-on auto` picks", auto, f"faster here: {faster}",
           goal=GOALS["auto"], passed=auto == faster)
    keras.backend.clear_session(free_memory=True)


def section_throughput(em, plan, deadline):
    import twins

    p = plan["throughput"]
    labels = dict(planned_rows("throughput", plan))
    ours = {}
    longest = 0.0
    for name, size, batch, precision, jit in p["units"]:
        key = unit_key(name, precision, jit)
        left = deadline - time.time()
        if left < longest:
            em.row("throughput", key, labels[key], f"skipped: {left:.0f} s left of the section's budget, "
                                                   f"a unit took up to {longest:.0f} s")
            continue
        t0 = time.time()
        try:
            measured = twins.measure_pair(name, size=size, batch=batch, precision=precision, jit=jit,
                                          timing=twins.Timing(p["rounds"], p["steps"], p["warmup"]),
                                          classes=p["classes"])
            r = measured["train"]
        except Exception as err:  # noqa: BLE001 - recorded in the table, the next unit runs
            em.row("throughput", key, labels[key], f"failed: {type(err).__name__}: {str(err)[:150]}")
            continue
        finally:
            longest = max(longest, time.time() - t0)
        ours[(name, precision, jit)] = r["ours"]
        aa_ok = 0.95 <= r["aa"] <= 1.05
        em.row("throughput", key, labels[key], f"{C.fmt(r['ours'])} img/s", f"{C.fmt(r['keras'])} img/s (keras)",
               C.fmt_ratio(r["ratio"]), C.fmt_range(r["low"], r["high"]), C.fmt_ratio(r["aa"]),
               goal=GOALS["twins"], passed=(r["ratio"] >= 0.97) if aa_ok else None,
               note=("" if aa_ok else f"{labels[key]}: A/A {r['aa']:.3f} outside 0.95-1.05, the run cannot judge")
               + ("" if measured["jit_used"] or not jit else f"{labels[key]}: Keras turned jit_compile off"))
    (first, _), pairs = speedups(p)
    for (key, goal, target), (num_key, den_key) in zip(((f"{first}/mixed", "mixed", 2.0), (f"{first}/xla", "xla", 1.15)),
                                                       pairs):
        a, b = ours.get(num_key), ours.get(den_key)
        if a is None or b is None:
            em.row("throughput", key, labels[key], "not measured: a setting it needs is missing")
            continue
        em.row("throughput", key, labels[key], f"{C.fmt(a)} img/s", f"{C.fmt(b)} img/s", C.fmt_ratio(a / b),
               goal=GOALS[goal], passed=a / b >= target,
               note="the speed-ups compare the ours columns of two units (timed in separate rounds)"
               if key.endswith("mixed") else "")


def section_input(em, plan, deadline):
    import keras
    import tensorflow as tf
    from pipeline import restarter, synthetic_images

    from keras_cnn.data import load_data

    p = plan["input"]
    labels = dict(planned_rows("input", plan))
    for key in ("digits", "synthetic"):
        name, kwargs, size, batch = p[key]
        if key == "digits":
            bundle = load_data("digits", image_size=size, batch_size=batch, seed=0)
            # Full batches only (every timed step does the same work); the pipeline is the one train() reads.
            feed, shape = bundle.train.rebatch(batch, drop_remainder=True).repeat(), bundle.image_shape
        else:
            images, labels_ = synthetic_images(size, batch * 8, seed=0)
            feed = tf.data.Dataset.from_tensor_slices((images, labels_)).batch(batch, drop_remainder=True)
            feed, shape = feed.repeat().prefetch(tf.data.AUTOTUNE), images.shape[1:]
        network = _build_consumer(name, kwargs, tuple(shape))
        x, y = next(iter(feed))
        copy = (tf.identity(x), tf.identity(y))  # the A/A control: a second cached tensor
        iterators = {}

        def fed(network=network, iterators=iterators):
            xb, yb = next(iterators["fed"])
            return network.train_on_batch(xb, yb)

        candidates = {"fed": fed, "cached": lambda n=network: n.train_on_batch(x, y),
                      "cached copy": lambda n=network: n.train_on_batch(*copy)}
        times = C.interleave(candidates, rounds=p["rounds"], calls=p["steps"], warmup=1,
                             before_round={"fed": restarter(iterators, "fed", feed)})
        rate = {k: [batch / t for t in v["wall"]] for k, v in times.items()}
        fed_rate, cached_rate = C.median(rate["fed"]), C.median(rate["cached"])
        ratio, band = ratio_cells(fed_rate, cached_rate, rate["fed"], rate["cached"])
        aa = C.median(rate["cached copy"]) / cached_rate
        em.row("input", key, labels[key], f"{C.fmt(fed_rate)} img/s", f"{C.fmt(cached_rate)} img/s (cached)",
               ratio, band, C.fmt_ratio(aa), goal=GOALS["input"], passed=fed_rate / cached_rate >= 0.95)
        keras.backend.clear_session(free_memory=True)


def section_serving(em, plan, deadline):
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_cnn.export import export_for_serving

    p = plan["serving"]
    labels = dict(planned_rows("serving", plan))
    with tempfile.TemporaryDirectory(prefix="keras_cnn_gpu_check_serving_") as tmp:
        keras.utils.set_random_seed(0)
        model = getattr(keras.applications, p["model"])(weights=None, input_shape=(p["size"], p["size"], 3))
        keras_dir = os.path.join(tmp, "keras")
        model.export(keras_dir, verbose=False)
        ours_dir = export_for_serving(model, tmp, name="ours", version=1, warmup=False)
        del model
        keras.backend.clear_session(free_memory=True)
        paths = {"keras": keras_dir, "keras copy": keras_dir, "ours": str(ours_dir)}
        signatures = {k: tf.saved_model.load(path).signatures["serving_default"] for k, path in paths.items()}
        rng = np.random.default_rng(0)
        for batch in p["batches"]:
            x = tf.constant(rng.uniform(0, 255, (batch, p["size"], p["size"], 3)).astype("float32"))

            def call(name, x=x):
                signature = signatures[name]
                (alias,) = signature.structured_input_signature[1]
                outputs = signature(**{alias: x})  # ours: "probabilities" (and top-k, names); keras: one output
                return outputs.get("probabilities", next(iter(outputs.values()))).numpy()

            lat = C.interleave_latency({k: (lambda k=k: call(k)) for k in signatures}, rounds=p["rounds"],
                                       calls=p["calls"], min_time=p["min_time"])
            p50 = {k: C.percentile([t for r in v for t in r], 50) for k, v in lat.items()}
            rounds = {k: [C.percentile(r, 50) for r in v] for k, v in lat.items()}
            ratio, band = ratio_cells(p50["ours"], p50["keras"], rounds["ours"], rounds["keras"])
            diff = float(np.max(np.abs(call("ours") - call("keras"))))
            em.row("serving", f"b{batch}", labels[f"b{batch}"], f"{C.fmt(p50['ours'] * 1e3, 2)} ms",
                   f"{C.fmt(p50['keras'] * 1e3, 2)} ms (keras)", ratio, band,
                   C.fmt_ratio(p50["keras copy"] / p50["keras"]),
                   note=f"batch {batch}: probabilities of the two exports differ by at most {diff:.1e}")


def section_end_to_end(em, plan, deadline):
    from keras_cnn import cli

    p = plan["end_to_end"]
    labels = dict(planned_rows("end_to_end", plan))
    with tempfile.TemporaryDirectory(prefix="keras_cnn_gpu_check_e2e_") as tmp:
        runs = {
            "demo": ["demo", "--out", f"{tmp}/demo", "--export-dir", f"{tmp}/saved_models", "--verbose", "2",
                     *p["demo"]],
            "resnet18": ["train", "resnet18", "--data", "digits", "--mixed-precision", "--out", f"{tmp}/resnet18",
                         "--no-export", "--verbose", "2", *p["resnet18"]],
        }
        for key, argv in runs.items():
            t0 = time.perf_counter()
            rc = cli.main(argv)
            seconds = time.perf_counter() - t0
            metrics_file = Path(argv[argv.index("--out") + 1]) / "metrics.json"
            if rc not in (0, 1) or not metrics_file.is_file():
                em.row("end_to_end", key, labels[key], f"failed: exit {rc}, no metrics.json")
                continue
            metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
            accuracy = metrics["accuracy"]
            em.row("end_to_end", key, labels[key],
                   f"{accuracy:.2%} test accuracy, {seconds:.1f} s ({metrics.get('epochs', '?')} epochs)",
                   goal=GOALS["demo"] if key == "demo" else "", passed=accuracy >= 0.98)


SECTION_FUNCTIONS = {
    "environment": section_environment, "placement": section_placement, "throughput": section_throughput,
    "input": section_input, "serving": section_serving, "end_to_end": section_end_to_end,
}


def worker(args):
    """Run ``args.sections`` in order, writing events to ``args.events``."""
    C.quiet_tensorflow()
    import tensorflow as tf

    on_gpu = bool(tf.config.list_physical_devices("GPU"))
    em = Emitter(args.events, on_gpu)
    if not on_gpu and not args.smoke:
        em.event(kind="fatal", message="no GPU is visible to TensorFlow: run on a machine with a GPU (and the "
                                       "`cuda` extra), or use --smoke for the CPU smoke test")
        return 2
    plan = make_plan(args.smoke, args.models)
    budgets = json.loads(args.budgets)
    for section in args.sections.split(","):
        em.event(kind="start", section=section)
        t0 = time.time()
        try:
            SECTION_FUNCTIONS[section](em, plan, t0 + budgets[section] - 5)
            em.event(kind="end", section=section, status="done", seconds=time.time() - t0)
        except Exception as err:  # noqa: BLE001 - a failed section is recorded, the next one runs
            tail = traceback.format_exc().strip().splitlines()[-1]
            print(traceback.format_exc(), file=sys.stderr, flush=True)
            em.event(kind="end", section=section, status=f"failed: {tail[:300]}", seconds=time.time() - t0,
                     error=type(err).__name__)
    return 0


# --------------------------------------------------------------------------------------------
# The watcher: budgets, the worker process, the report
# --------------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, metavar="FILE",
                        help=f"the Markdown table; the JSON goes beside it (default {DEFAULT_OUT.relative_to(C.ROOT)}; "
                             "with --smoke a file in the temporary directory)")
    parser.add_argument("--smoke", action="store_true", help="the same code on the CPU at tiny sizes (a smoke test)")
    parser.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                        help=f"wall-clock budget of the whole run (default {sum(BUDGETS.values())}; smoke "
                             f"{SMOKE_BUDGET * len(SECTIONS)})")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, from {', '.join(SECTIONS)}")
    parser.add_argument("--models", default=None,
                        help="throughput section: only these networks, comma-separated (e.g. vgg16,inception_v3 "
                             "for a second run after the first ran out of budget)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--events", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--budgets", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown or not sections:
        parser.error(f"--sections: unknown {unknown or args.sections!r}; choose from {', '.join(SECTIONS)}")
    args.sections = ",".join(s for s in SECTIONS if s in sections)
    if args.models is not None:
        args.models = [m.strip() for m in args.models.split(",") if m.strip()]
        available = {u[0] for u in make_plan(args.smoke)["throughput"]["units"]}
        if not args.models or any(m not in available for m in args.models):
            parser.error(f"--models must name networks of this plan's throughput section: "
                         f"{', '.join(sorted(available))}. Received: {','.join(args.models)!r}")
    if args.budget is not None and not (math.isfinite(args.budget) and args.budget > 0):
        parser.error(f"--budget must be a positive number of seconds. Received: {args.budget!r}")
    if args.out is None:
        args.out = str(Path(tempfile.gettempdir()) / "keras_cnn_gpu_check_smoke.md") if args.smoke else str(DEFAULT_OUT)
    elif not args.out.endswith(".md"):
        parser.error(f"--out must name a .md file (the JSON is written beside it). Received: {args.out!r}")
    if args.smoke and C.in_results(args.out):
        parser.error(f"--out: a --smoke run's figures are not results; write it outside {C.RESULTS_DIR}. "
                     f"Received: {args.out!r}")
    return args


def section_budgets(args):
    """Seconds per section: the plan's, scaled so that the chosen sections share ``--budget``."""
    chosen = args.sections.split(",")
    base = {s: (SMOKE_BUDGET if args.smoke else BUDGETS[s]) for s in chosen}
    total = args.budget or sum(base.values())
    scale = total / sum(base.values())
    return {s: base[s] * scale for s in SECTIONS if s in base} | {s: 0 for s in SECTIONS if s not in base}, total


def die_with_parent():
    """In the worker, before it starts: the kernel kills it when this process dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Watcher:
    """Runs the worker, reads its events, enforces the budgets, keeps the report written."""

    def __init__(self, args, report, budgets, deadline):
        self.args, self.report, self.budgets, self.deadline = args, report, budgets, deadline
        self.todo = [s for s in args.sections.split(",")]
        self.proc = None
        self.fatal = None

    def start_worker(self, events, log):
        Path(events).write_text("", encoding="utf-8")  # a fresh worker starts a fresh event stream
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--events", str(events),
               "--sections", ",".join(self.todo), "--budgets", json.dumps(self.budgets),
               *(["--smoke"] if self.args.smoke else []),
               *(["--models", ",".join(self.args.models)] if self.args.models else [])]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=die_with_parent)

    def stop_worker(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def handle(self, event, running):
        kind = event["kind"]
        if kind == "fatal":
            self.fatal = event["message"]
        elif kind == "start":
            running[event["section"]] = time.time()
            self.report.set_status(event["section"], "running")
        elif kind == "row":
            self.report.add_row(event["section"], event["row"])
        elif kind == "end":
            section = event["section"]
            running.pop(section, None)
            self.todo.remove(section)
            self.report.set_status(section, event["status"], event["seconds"])

    def run_once(self, events, log):
        """One worker over the sections still to do; returns when it exits or is killed."""
        self.start_worker(events, log)
        running, offset = {}, 0
        while True:
            with open(events, encoding="utf-8") as f:
                f.seek(offset)
                chunk = f.read()
            complete = chunk[: chunk.rfind("\n") + 1]
            offset += len(complete.encode("utf-8"))
            for line in complete.splitlines():
                self.handle(json.loads(line), running)
            exited = self.proc.poll() is not None
            now = time.time()
            late = [s for s, t0 in running.items() if now - t0 > self.budgets[s] + 10]
            if exited or late or now > self.deadline:
                self.stop_worker()
                for section, t0 in running.items():
                    why = (f"timed out after {now - t0:.0f} s (killed)" if late else
                           f"stopped after {now - t0:.0f} s: the run's budget is spent" if now > self.deadline else
                           f"failed: the worker exited with code {self.proc.returncode} (see the log)")
                    self.todo.remove(section)
                    self.report.set_status(section, why, now - t0)
                return
            time.sleep(0.2)

    def run(self, log_path):
        events = Path(tempfile.mkstemp(prefix="keras_cnn_gpu_check_", suffix=".jsonl")[1])
        try:
            with open(log_path, "ab") as log:
                while self.todo and self.fatal is None:
                    if time.time() > self.deadline:
                        for section in self.todo:
                            self.report.set_status(section, "not run: the run's budget is spent")
                        break
                    self.run_once(events, log)
        finally:
            self.stop_worker()
            events.unlink(missing_ok=True)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    budgets, total = section_budgets(args)
    report = Report(args.out, make_plan(args.smoke, args.models), "smoke" if args.smoke else "gpu", total, budgets,
                    C.command_line())
    for section in SECTIONS:
        if section not in args.sections.split(","):
            report.sections[section]["status"] = "not run: not in --sections"
    log_path = Path(args.out).with_suffix(".log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_bytes(b"")  # the worker log of this run only
    watcher = Watcher(args, report, budgets, report.started + total)

    def on_signal(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    print(f"gpu_check: writing {args.out} (+ .json, worker log {log_path}); budget {total:.0f} s", flush=True)
    try:
        watcher.run(log_path)
        report.meta["state"] = "failed: " + watcher.fatal if watcher.fatal else "complete"
        for section in watcher.todo if watcher.fatal else ():
            report.sections[section]["status"] = "not run: " + watcher.fatal
    except KeyboardInterrupt:
        watcher.stop_worker()
        report.meta["state"] = "interrupted"
        for name, info in report.sections.items():
            if info["status"] in ("pending", "running"):
                info["status"] = "interrupted"
        report.write()
        print(f"gpu_check: interrupted; partial table in {args.out}", file=sys.stderr)
        return 130
    report.write()
    print(report.markdown(), flush=True)
    if watcher.fatal:
        print(f"gpu_check: {watcher.fatal}", file=sys.stderr)
        return 2
    incomplete = [n for n in args.sections.split(",") if report.sections[n]["status"] != "done"
                  or any(r["value"].startswith(("skipped", "failed", "not measured")) for r in report.rows(n))]
    if incomplete:
        print(f"gpu_check: not every row measured in: {', '.join(incomplete)} (see the table and {log_path})",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
