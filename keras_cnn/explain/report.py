"""``report.html``: one self-contained page that shows what a training run is and how it does.

Written at the end of ``keras-cnn train`` and ``keras-cnn transfer`` into the run directory and
rebuilt by ``keras-cnn report RUN``. The page reads the run directory (``config.json``,
``metrics.json``, ``class_names.json``, ``learning_curves.png``, ``model.keras``) and the run's
data, and holds:

* the run: network, parameters and multiply-accumulates (`keras_cnn.analysis.profile`), weights
  and pixel preprocessing, the data and its class counts per split, the recipe, the fingerprint;
* results: accuracy and loss on every split, per-class precision / recall / F1 and the confusion
  matrix of the held-out split (test, else validation), the learning curves;
* the most confidently wrong held-out images, each with its Grad-CAM overlay
  (`keras_cnn.explain.grad_cam`), true and predicted label and confidence;
* where the model was exported.

Self-contained: every image is inline (base64 PNG), there is no script and no reference outside
the file, and a print style sheet lays it out for paper. Image budget: the inline images
together stay under `IMAGE_BUDGET_BYTES` (600 KB); gallery tiles are at most `TILE_PIXELS` px a
side; images that would pass the budget are left out and the page says how many.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
import logging
import os
from pathlib import Path

import numpy as np

from keras_cnn._io import atomic_write_text

__all__ = ["IMAGE_BUDGET_BYTES", "REPORT_FILE", "TOP_K", "write_report", "write_report_or_warn"]

logger = logging.getLogger(__name__)

REPORT_FILE = "report.html"
#: The most confidently wrong held-out images shown.
TOP_K = 8
#: Inline images of one report together, in bytes of PNG.
IMAGE_BUDGET_BYTES = 600_000
#: The longest side of a gallery tile (small images are enlarged to it, pixels kept sharp).
TILE_PIXELS = 128
#: Confusion matrices with more classes are left to metrics.json (the page says so).
MAX_MATRIX_CLASSES = 30
# The run directory's files (written by keras_cnn.training.rundir and the training pipeline).
_CONFIG, _METRICS, _CLASS_NAMES, _CURVES, _MODEL = (
    "config.json", "metrics.json", "class_names.json", "learning_curves.png", "model.keras")
_SPLITS = ("train", "val", "test")


def _read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise ValueError(f"`run_dir` file {str(path)!r} cannot be read: {err}. Received: run_dir={str(Path(path).parent)!r}")


def _load_model(run_dir):
    path = run_dir / _MODEL
    if not path.is_file():
        raise FileNotFoundError(f"`run_dir` has no {_MODEL} to report on ({str(path)!r} is missing). "
                                f"Received: run_dir={str(run_dir)!r}")
    import keras_cnn.layers  # noqa: F401  (registers the custom layers for loading)
    from keras_cnn._io import load_keras_model

    return load_keras_model(path, arg="run_dir")


def _load_data(model, record):
    """The run's data, loaded again as the run split it; ``(bundle, note)``."""
    from keras_cnn.data import load_data

    config, metrics = record["config"], record["metrics"]
    source = config.get("data") or metrics.get("data")
    if not source:
        return None, "the run directory does not record its data source"
    shape = tuple(model.inputs[0].shape[1:])
    kwargs = dict(image_size=shape[:2], channels=shape[2], batch_size=64, shuffle=False,
                  seed=config.get("seed", metrics.get("seed", 0)))
    for key in ("validation_split", "max_examples"):
        if config.get(key) is not None:
            kwargs[key] = config[key]
    note = None if config else "the run directory has no config.json: its data was split with seed 0 and the defaults"
    return load_data(source, **kwargs), note


def _evaluate_split(predict, dataset, keep):
    """Probabilities and labels of one split; with ``keep``, the images of the ``keep`` most
    confidently wrong ones too."""
    probs, labels, wrong = [], [], []  # wrong: (confidence, index, image)
    seen = 0
    for images, y in dataset:
        p = predict(images)
        y = np.asarray(y).reshape(-1).astype("int64")
        probs.append(p)
        labels.append(y)
        if keep:
            pred = p.argmax(-1)
            for i in np.flatnonzero(pred != y):
                wrong.append((float(p[i, pred[i]]), seen + int(i), np.asarray(images[i])))
            wrong = sorted(wrong, key=lambda w: -w[0])[:keep]
        seen += len(y)
    if not probs:
        return None
    return np.concatenate(probs), np.concatenate(labels), wrong


def _results(model, bundle, top_k):
    """Per split: ``{"accuracy", "loss", "count", "support"}``; the held-out split's details."""
    import tensorflow as tf

    predict_fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def predict(images):
        out = predict_fn(tf.convert_to_tensor(images, tf.float32))
        return np.asarray(out["predictions"] if isinstance(out, dict) else out, dtype="float64")

    held = "test" if getattr(bundle, "test", None) is not None else "val"
    splits, details = {}, None
    n = len(bundle.class_names)
    for split in _SPLITS:
        dataset = getattr(bundle, split, None)
        if dataset is None:
            continue
        found = _evaluate_split(predict, dataset, top_k if split == held else 0)
        if found is None:
            continue
        probs, labels, wrong = found
        picked = np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1 - 1e-7)
        splits[split] = {
            "accuracy": float((probs.argmax(-1) == labels).mean()), "loss": float(-np.log(picked).mean()),
            "count": int(len(labels)), "support": np.bincount(labels, minlength=n).tolist(),
        }
        if split == held:
            details = {"split": split, "labels": labels, "predicted": probs.argmax(-1), "wrong": wrong,
                       "num_wrong": int((probs.argmax(-1) != labels).sum()), "top_k": top_k}
    return splits, details


def _png(pixels):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _tile(pixels, size=TILE_PIXELS):
    """uint8 pixels enlarged (or reduced) to ``size`` on the long side, sharp when enlarged."""
    from PIL import Image

    image = Image.fromarray(pixels.squeeze() if pixels.shape[-1] == 1 else pixels)
    scale = size / max(image.size)
    target = (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale)))
    return np.asarray(image.resize(target, Image.NEAREST if scale >= 1 else Image.LANCZOS))


class _Images:
    """Inline PNGs under the image budget."""

    def __init__(self, budget=None):
        self.budget = IMAGE_BUDGET_BYTES if budget is None else budget
        self.used, self.left_out = 0, 0

    def tag(self, png, alt, width=None):
        if self.used + len(png) > self.budget:
            self.left_out += 1
            return None
        self.used += len(png)
        size = f' width="{width}"' if width else ""
        return f'<img src="data:image/png;base64,{base64.b64encode(png).decode()}" alt="{html.escape(alt)}"{size}>'


def _table(rows, header=None, cls=""):
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header) if header else ""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}">' + (f"<thead><tr>{head}</tr></thead>" if head else "") + f"<tbody>{body}</tbody></table>"


def _kv(pairs):
    return _table([(f"<b>{html.escape(str(k))}</b>", html.escape(str(v))) for k, v in pairs if v not in (None, "")],
                  cls="kv")


def _columns(pairs):
    """Key/value pairs as a two-column list (for the long ones: recipe, fingerprint)."""
    items = "".join(f"<div><dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd></div>" for k, v in pairs)
    return f'<dl class="cols">{items}</dl>'


def _flatten(obj, prefix=""):
    if isinstance(obj, dict):
        out = []
        for key, value in obj.items():
            out.extend(_flatten(value, f"{prefix}{key}."))
        return out
    return [(prefix[:-1], json.dumps(obj) if isinstance(obj, (list, dict, bool)) or obj is None else obj)]


def _run_section(run_dir, record, model, bundle, splits, notes):
    from keras_cnn.models.identity import model_identity

    config, metrics = record["config"], record["metrics"]
    identity = model_identity(model)
    rows = [("network", identity.arch if identity else config.get("model") or metrics.get("base") or model.name)]
    if metrics.get("regime"):
        rows.append(("transfer", f"from {metrics.get('base')}, regime {metrics['regime']}"))
    if identity and identity.build_args:
        rows.append(("built with", ", ".join(f"{k}={v}" for k, v in sorted(identity.build_args.items()))))
    try:
        from keras_cnn.analysis import profile

        prof = profile(model)
        rows += [("parameters", f"{prof.total_params:,} ({prof.trainable_params:,} trainable)"),
                 ("multiply-accumulates", f"{prof.total_macs:,} per image "
                  f"({prof.gmacs:.2f} G)" if prof.total_macs >= 1e8 else f"{prof.total_macs:,} per image "
                  f"({prof.total_macs / 1e6:.2f} M)")]
    except (ValueError, TypeError) as err:
        notes.append(f"parameters and MACs could not be counted: {err}")
    rows += [("input", " x ".join(str(d) for d in model.inputs[0].shape[1:])),
             ("weights", (identity.weights if identity else None) or metrics.get("weights") or "none (trained from scratch)"),
             ("preprocessing", identity.preprocessing if identity else "not recorded (not a keras_cnn network)"),
             ("data", config.get("data") or metrics.get("data")),
             ("mixed precision", config.get("mixed_precision")), ("seed", config.get("seed"))]
    facts = _kv(rows)
    names = record["class_names"] or (list(bundle.class_names) if bundle is not None else [])
    if splits and names:
        present = [s for s in _SPLITS if s in splits]
        counts = [[html.escape(str(name))] + [f"{splits[s]['support'][i]:,}" for s in present]
                  for i, name in enumerate(names)]
        counts.append(["<b>all</b>"] + [f"<b>{splits[s]['count']:,}</b>" for s in present])
        facts = (f'<div class="grid"><div class="wide">{facts}</div><div><h3>Class counts</h3>'
                 f'{_table(counts, ["class", *present], cls="num")}</div></div>')
    parts = [facts]
    recipe = config.get("recipe")
    if recipe:
        parts.append("<h3>Recipe</h3>" + _columns(_flatten(recipe)))
    elif metrics.get("phases"):
        phases = [(html.escape(str(p.get("name"))), p.get("epochs"), f"{p.get('learning_rate', 0):.3g}",
                   len(p.get("trainable_units") or []), "yes" if p.get("precomputed") else "no")
                  for p in metrics["phases"]]
        parts.append("<h3>Recipe (transfer phases)</h3>"
                     + _table(phases, ["phase", "epochs", "learning rate", "trainable units", "precomputed"], cls="num"))
    fingerprint = config.get("fingerprint")
    if fingerprint:
        digest = metrics.get("fingerprint_digest")
        parts.append("<h3>Fingerprint</h3>" + (f"<p>digest <code>{html.escape(str(digest))}</code></p>" if digest else "")
                     + _columns([(k, v) for k, v in _flatten(fingerprint) if not k.startswith("recipe.")]
                                + [("recipe", "the recipe above")] * bool(recipe)))
    return "<h2>The run</h2>" + "".join(parts)


def _prf_table(details, names):
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels, predicted = details["labels"], details["predicted"]
    idx = list(range(len(names)))
    p, r, f, s = precision_recall_fscore_support(labels, predicted, labels=idx, zero_division=0)
    rows = [(html.escape(str(names[i])), f"{p[i]:.3f}", f"{r[i]:.3f}", f"{f[i]:.3f}", f"{s[i]:,}") for i in idx]
    mp, mr, mf, _ = precision_recall_fscore_support(labels, predicted, labels=idx, average="macro", zero_division=0)
    rows.append(("<b>macro average</b>", f"{mp:.3f}", f"{mr:.3f}", f"{mf:.3f}", f"{len(labels):,}"))
    table = _table(rows, ["class", "precision", "recall", "F1", "support"], cls="num")
    matrix = confusion_matrix(labels, predicted, labels=idx)
    if len(names) > MAX_MATRIX_CLASSES:
        return table, (f"<p>{len(names)} classes: the confusion matrix is not drawn here (at most "
                       f"{MAX_MATRIX_CLASSES}); metrics.json holds it.</p>")
    peak = max(1, int(matrix.max()))
    cells = []
    for i, row in enumerate(matrix):
        tds = "".join(
            f'<td style="background:rgba(31,100,180,{0.08 + 0.85 * v / peak:.2f});{"color:#fff;" if v / peak > 0.5 else ""}"'
            f'{" class=diag" if i == j else ""}>{v}</td>' for j, v in enumerate(row))
        cells.append(f"<tr><th>{html.escape(str(names[i]))}</th>{tds}</tr>")
    head = "".join(f"<th>{html.escape(str(n))}</th>" for n in names)
    cm = (f'<table class="cm"><thead><tr><th>true \\ predicted</th>{head}</tr></thead>'
          f'<tbody>{"".join(cells)}</tbody></table>')
    return table, cm


def _results_section(run_dir, splits, details, names, images):
    parts = ["<h2>Results</h2>"]
    if splits:
        rows = [(s, f"{v['accuracy']:.4f}", f"{v['loss']:.4f}", f"{v['count']:,}") for s, v in splits.items()]
        parts.append(_table(rows, ["split", "accuracy", "loss", "images"], cls="num"))
        parts.append("<p class=note>Every split evaluated by the inference model (no augmentation, no dropout).</p>")
    if details is not None and names:
        prf, cm = _prf_table(details, names)
        parts.append(f'<div class="grid"><div><h3>Per class, {details["split"]} split</h3>{prf}</div>'
                     f'<div><h3>Confusion matrix, {details["split"]} split</h3>{cm}</div></div>')
    curves = run_dir / _CURVES
    if curves.is_file():
        tag = images.tag(curves.read_bytes(), "learning curves")
        parts.append("<h3>Learning curves</h3>" + (tag or "<p>(left out: over the image budget)</p>"))
    else:
        parts.append(f"<p class=note>No learning curves: the run directory has no {_CURVES}.</p>")
    return "".join(parts)


def _gallery_section(model, details, names, images, notes):
    if details is None or not details["top_k"]:
        return ""
    wrong = details["wrong"]
    title = f"<h2>Most confidently wrong ({details['split']} split)</h2>"
    if not wrong:
        return title + f"<p>All {len(details['labels']):,} images of the split are classified correctly.</p>"
    from keras_cnn.explain.gradcam import grad_cam_details, overlay

    pixels = np.stack([w[2] for w in wrong]).astype("float32")
    predicted = np.array([int(details["predicted"][w[1]]) for w in wrong])
    try:
        cam = grad_cam_details(model, pixels, class_index=predicted)
        heat, layer = cam.heatmaps, cam.layer
    except ValueError as err:
        heat, layer = None, None
        notes.append(f"no Grad-CAM overlays: {err}")
    tiles = []
    for k, (confidence, index, _) in enumerate(wrong):
        image = np.clip(np.rint(pixels[k]), 0, 255).astype("uint8")
        shown = [images.tag(_png(_tile(image)), "image")]
        if heat is not None:
            shown.append(images.tag(_png(_tile(overlay(image, heat[k]))), "Grad-CAM overlay"))
        if None in shown:
            continue
        truth, guess = names[int(details["labels"][index])], names[int(predicted[k])]
        tiles.append(
            f'<figure class="tile">{"".join(shown)}<figcaption>#{index}: true <b>{html.escape(str(truth))}</b>, '
            f'predicted <b>{html.escape(str(guess))}</b> ({confidence:.1%})</figcaption></figure>')
    text = (f"<p>The {len(wrong)} most confidently wrong of the {details['num_wrong']:,} misclassified "
            f"{details['split']} images; beside each, "
            f"Grad-CAM (Selvaraju et al., 2017) of the predicted class on layer <code>{html.escape(str(layer))}</code>: "
            "where the model looked when it decided.</p>") if layer else ""
    return title + text + f'<div class="gallery">{"".join(tiles)}</div>'


def _export_section(metrics):
    path = metrics.get("export_path")
    if not path:
        return "<h2>Export</h2><p>Not exported (the run was trained without an export).</p>"
    state = "present" if Path(path).exists() else "not found on this machine now"
    return f"<h2>Export</h2>{_kv([('SavedModel', path), ('state', state)])}"


_CSS = """
:root{--ink:#1d2430;--muted:#5b6576;--line:#d8dde6;--accent:#1f64b4}
*{box-sizing:border-box}
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);margin:0 auto;
max-width:1100px;padding:24px 32px}
h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.25em;margin:32px 0 8px;padding-bottom:4px;
border-bottom:2px solid var(--accent)}h3{font-size:1em;margin:18px 0 6px;color:var(--muted)}
.sub,.note{color:var(--muted)}.note{font-size:.9em}
table{border-collapse:collapse;margin:4px 0 8px;font-size:.92em}
td,th{border:1px solid var(--line);padding:3px 8px;text-align:left;vertical-align:top}
thead th{background:#eef2f8}table.num td{text-align:right}table.num td:first-child{text-align:left}
table.kv td:first-child{white-space:nowrap}table.cm td{text-align:right;min-width:2.6em}
table.cm td.diag{font-weight:700;outline:2px solid #1d2430;outline-offset:-2px}
code{background:#f2f4f8;padding:0 3px;border-radius:3px}
.gallery{display:flex;flex-wrap:wrap;gap:12px}
.tile{margin:0;padding:8px;border:1px solid var(--line);border-radius:6px;width:288px}
.tile img{image-rendering:pixelated;margin-right:4px;width:128px;height:auto}
.tile figcaption{font-size:.85em}
img{max-width:100%}img[alt="learning curves"]{width:760px}
.grid{display:flex;flex-wrap:wrap;gap:8px 32px;align-items:flex-start}.grid>div{flex:0 0 auto}
.grid>div.wide{flex:1 1 360px;min-width:0}
.cols{column-count:2;column-gap:32px;font-size:.9em;margin:4px 0}
.cols div{break-inside:avoid;display:flex;gap:10px;border-bottom:1px solid var(--line);padding:2px 0}
.cols dt{font-weight:600;min-width:12em}.cols dd{margin:0;overflow-wrap:anywhere}
.summary{font-size:1.05em;background:#eef2f8;border-radius:6px;padding:8px 12px}
.warn{background:#fff4e0;border-left:4px solid #e39b00;padding:6px 10px}
@media print{body{font-size:10pt;max-width:none;padding:0}img[alt="learning curves"]{width:100%}
h2,h3{break-after:avoid}table,.tile,img,.grid>div{break-inside:avoid}.gallery{break-before:avoid}
.tile{width:45%}a{color:inherit;text-decoration:none}}
@page{margin:14mm}
"""


def _summary(splits, details, metrics):
    bits = [f"{split} accuracy <b>{v['accuracy']:.2%}</b> ({v['count']:,} images)" for split, v in splits.items()]
    if details is not None:
        bits.append(f"{details['num_wrong']:,} {details['split']} images wrong"
                    + (f", the {len(details['wrong'])} most confident shown" if details["wrong"] else ""))
    if metrics.get("export_path"):
        bits.append(f"exported to <code>{html.escape(str(metrics['export_path']))}</code>")
    return f'<p class="summary">{" &middot; ".join(bits)}</p>' if bits else ""


def _page(title, subtitle, body, notes):
    warn = "".join(f'<p class="warn">{html.escape(n)}</p>' for n in notes)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>"
            f"<body><h1>{html.escape(title)}</h1><p class=sub>{html.escape(subtitle)}</p>{warn}{body}</body></html>\n")


def _record(run_dir):
    return {"config": _read_json(run_dir / _CONFIG) or {}, "metrics": _read_json(run_dir / _METRICS) or {},
            "class_names": _read_json(run_dir / _CLASS_NAMES)}


def write_report(run_dir, *, model=None, data=None, top_k=TOP_K):
    """Write ``run_dir/report.html`` (see the module docstring) and return its path.

    Args:
        run_dir: a finished run directory of ``train`` or ``transfer``.
        model: the run's inference model if in memory (default: ``run_dir/model.keras``).
        data: the run's `keras_cnn.data.DataBundle` if in memory (default: loaded again from the
            source, seed and splits the run recorded, unshuffled).
        top_k: the most confidently wrong held-out images shown. Default `TOP_K`.

    Returns:
        The report's `Path`.

    Raises:
        FileNotFoundError: ``run_dir`` or its ``model.keras`` is missing (and no model given).
        ValueError: ``model.keras`` or a run file cannot be read (corrupt or truncated).
    """
    from keras_cnn._validation import check_non_negative_int

    check_non_negative_int("top_k", top_k)
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"`run_dir` is not a directory. Received: run_dir={str(run_dir)!r}")
    record = _record(run_dir)
    model = model if model is not None else _load_model(run_dir)
    notes = []
    if data is None:
        try:
            data, note = _load_data(model, record)
        except (OSError, ValueError) as err:
            data, note = None, f"the run's data could not be loaded again ({err}): no results per split"
        if note:
            notes.append(note)
    names = record["class_names"] or (list(data.class_names) if data is not None else None)
    splits, details = _results(model, data, top_k) if data is not None else ({}, None)
    images = _Images()
    body = (_summary(splits, details, record["metrics"]) + _run_section(run_dir, record, model, data, splits, notes)
            + _results_section(run_dir, splits, details, names, images)
            + _gallery_section(model, details, names, images, notes)
            + _export_section(record["metrics"]))
    if images.left_out:
        notes.append(f"{images.left_out} image(s) left out to keep the page's images under "
                     f"{IMAGE_BUDGET_BYTES // 1000} KB")
    name = record["config"].get("model") or record["metrics"].get("base") or model.name
    data_name = record["config"].get("data") or record["metrics"].get("data") or "its data"
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = _page(f"{name} on {data_name}", f"keras_cnn run report: {os.fspath(run_dir)}, written {stamp}", body, notes)
    path = run_dir / REPORT_FILE
    atomic_write_text(path, text)
    logger.info("%s: report written (%d KB, %d KB of images)", path, len(text.encode()) // 1000, images.used // 1000)
    return path


def write_report_or_warn(run_dir, **kwargs):
    """`write_report`, for the end of a run: a failure is a logged warning, never the run's failure.

    Returns:
        The report's path, or None when it could not be written.
    """
    try:
        return write_report(run_dir, **kwargs)
    except Exception as err:  # noqa: BLE001 - the run is finished and saved; the report is extra
        logger.warning("%s: report.html was not written (%s: %s); `keras-cnn report %s` retries",
                       run_dir, type(err).__name__, err, run_dir)
        return None
