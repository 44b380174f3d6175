"""Prediction clients: a local SavedModel, a Keras model, TF Serving over REST or gRPC.

Every client returns one `Prediction` per image (top-k classes with names and scores), in input
order. An image that cannot be predicted (missing, unreadable, not an image, truncated or
corrupt) gets a `Prediction` with ``error`` set and no classes; the other images are still
predicted: files are checked and decoded here first, and should the model or the server still
reject a batch as bad input, its images are retried one by one.

REST follows https://www.tensorflow.org/tfx/serving/api_rest: ``POST
{server}/v1/models/{name}[/versions/{n}]:predict`` with the body ::

    {"signature_name": "serving_bytes",
     "instances": [{"image_bytes": {"b64": "<base64 JPEG/PNG>"}}, ...]}

(row format; binary values travel as ``{"b64": ...}`` objects), answered by
``{"predictions": [{"probabilities": [...], "classes": 3, "class_names": "3", ...}, ...]}``
(one object per instance when the signature has several outputs) or ``{"error": "..."}``.
gRPC calls ``tensorflow.serving.PredictionService/Predict`` with the generated stubs of
``tensorflow-serving-api``.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np

from keras_cnn._validation import check_positive_int
from keras_cnn.export._images import decode_item, read_image_items
from keras_cnn.export.saved_model import (
    BYTES_INPUT,
    BYTES_SIGNATURE,
    DEFAULT_SIGNATURE,
    class_names_beside,
    inference_model,
    load_class_names,
    read_class_names,
    resolve_model,
)
from keras_cnn.export.serving_config import check_model_name


class ServingError(RuntimeError):
    """TF Serving answered with an error, or could not be reached.

    Attributes:
        input_error: True when the server rejected the request's content (HTTP 400, gRPC
            INVALID_ARGUMENT), so that the images may be retried one by one.
    """

    def __init__(self, message, *, input_error=False):
        super().__init__(message)
        self.input_error = input_error


@dataclasses.dataclass
class Prediction:
    """Top-k classes for one image, best first.

    Attributes:
        source: the image (file name).
        classes: class indices.
        class_names: their names.
        scores: their probabilities.
        error: why this image has no prediction (None when it has one).
    """

    source: str
    classes: list
    class_names: list
    scores: list
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the image was predicted."""
        return self.error is None

    @classmethod
    def failed(cls, source, error):
        """The `Prediction` of an image that could not be predicted."""
        return cls(source, [], [], [], error)

    @property
    def top1(self):
        """``(index, name, score)`` of the best class."""
        return self.classes[0], self.class_names[0], self.scores[0]

    def to_dict(self):
        if self.error is not None:
            return {"image": self.source, "error": self.error}
        return {
            "image": self.source,
            "top_k": [
                {"class": int(c), "name": n, "score": float(s)}
                for c, n, s in zip(self.classes, self.class_names, self.scores)
            ],
        }


# --------------------------------------------------------------------------- shared


def _rows_from_columns(outputs: dict) -> list[dict]:
    """Column outputs (name -> [N, ...] array) to one dict per instance."""
    n = len(next(iter(outputs.values())))
    return [{k: v[i] for k, v in outputs.items()} for i in range(n)]


def _as_text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def predictions_from_rows(rows, sources, *, top_k=5, class_names=None) -> list[Prediction]:
    """Build `Prediction`s from per-instance outputs (REST "predictions", or columns split).

    A row is a dict of named outputs (``probabilities`` preferred; else the ``top_k_*``
    outputs), or a bare list of probabilities (a single-output signature).
    """
    if len(rows) != len(sources):
        raise ServingError(f"expected {len(sources)} predictions, received {len(rows)}")
    results = []
    for row, source in zip(rows, sources):
        if not isinstance(row, dict):
            row = {"probabilities": row}
        known = {}
        if "top_k_classes" in row and "top_k_class_names" in row:
            known = {int(c): _as_text(n) for c, n in zip(np.ravel(row["top_k_classes"]), np.ravel(row["top_k_class_names"]))}
        if "probabilities" in row:
            probs = np.asarray(row["probabilities"], dtype="float64").ravel()
            order = np.argsort(-probs, kind="stable")[:top_k]
            scores = probs[order]
        elif "top_k_scores" in row and "top_k_classes" in row:
            order = np.asarray(row["top_k_classes"]).ravel()[:top_k].astype(int)
            scores = np.asarray(row["top_k_scores"], dtype="float64").ravel()[:top_k]
        else:
            raise ServingError(
                f"the response has no 'probabilities' or 'top_k_*' outputs (got {sorted(row)}); "
                "is this a keras_cnn export?"
            )

        def name_of(index, known=known):
            if class_names is not None and 0 <= index < len(class_names):
                return class_names[index]
            return known.get(index, str(index))

        results.append(Prediction(source, [int(i) for i in order], [name_of(int(i)) for i in order],
                                  [float(s) for s in scores]))
    return results


def _check_top_k(top_k):
    return check_positive_int("top_k", top_k)


class _BadInput(Exception):
    """The model or server rejected a batch's content (retry its images one by one)."""


def _per_image(items, run):
    """Predict every readable item, isolating the ones the model or server rejects.

    Args:
        items: `ImageItem`s; those with ``error`` set are reported as failed.
        run: ``run(items) -> [Prediction, ...]`` for a list of good items; raises `_BadInput`
            (with a reason) when the content of the batch is rejected.

    Returns:
        One `Prediction` per item, in order.
    """
    results = {id(item): Prediction.failed(item.name, item.error) for item in items if item.error}
    good = [item for item in items if not item.error]
    if good:
        try:
            batches = [(good, run(good))]
        except _BadInput as err:
            if len(good) == 1:
                batches = [(good, [Prediction.failed(good[0].name, str(err))])]
            else:
                batches = []
                for item in good:
                    try:
                        batches.append(([item], run([item])))
                    except _BadInput as one:
                        batches.append(([item], [Prediction.failed(item.name, str(one))]))
        for batch, predictions in batches:
            for item, prediction in zip(batch, predictions):
                results[id(item)] = prediction
    return [results[id(item)] for item in items]


def _decoded(items, height, width, channels):
    """Decode and resize the items (setting ``error`` on failures); the batch of the good ones."""
    arrays = [decode_item(item, height, width, channels) for item in items]
    return np.stack([a for a in arrays if a is not None]).astype("float32") if any(
        a is not None for a in arrays) else None


def _check_decodable(items):
    """Set ``error`` on items whose bytes TensorFlow cannot decode (truncated, corrupt)."""
    for item in items:
        decode_item(item)


def _tf_reason(err):
    lines = (getattr(err, "message", "") or str(err)).strip().splitlines()
    return f"rejected by the model ({type(err).__name__}: {lines[0] if lines else ''})"


# --------------------------------------------------------------------------- local


def predict_saved_model(path, images, *, top_k=5, signature=None) -> list[Prediction]:
    """Run a SavedModel export locally on image files.

    Args:
        path: the version directory (e.g. "saved_models/lenet5/1"), or the model directory
            ("saved_models/lenet5": its highest version is used, as TF Serving would).
        images: image file paths (JPEG, PNG, GIF, BMP).
        top_k: classes per image. Default 5.
        signature: signature to call. Default ``serving_bytes`` if the export has it (the
            server-side decoding path), else ``serving_default`` with local decoding.

    Returns:
        One `Prediction` per image (``error`` set for the images that could not be predicted).
    """
    import tensorflow as tf

    from keras_cnn._validation import check_existing_path

    _check_top_k(top_k)
    path = Path(check_existing_path("saved_model", path, kind="dir"))
    if not (path / "saved_model.pb").is_file():
        versions = sorted(int(p.name) for p in path.iterdir() if p.name.isdigit() and (p / "saved_model.pb").is_file())
        if not versions:
            raise FileNotFoundError(f"`saved_model` must be a SavedModel directory (with saved_model.pb) or a model "
                                    f"directory of numbered versions. Received: saved_model={str(path)!r}")
        path = path / str(versions[-1])  # the latest version, as TF Serving would serve it
    items = read_image_items(images)
    try:
        loaded = tf.saved_model.load(str(path), tags=["serve"])
    except (OSError, ValueError, tf.errors.OpError) as err:
        raise ValueError(f"`saved_model` could not be loaded as a SavedModel ({type(err).__name__}). "
                         f"Received: saved_model={str(path)!r}") from None
    available = sorted(loaded.signatures.keys())
    if signature is None:
        signature = BYTES_SIGNATURE if BYTES_SIGNATURE in available else DEFAULT_SIGNATURE
    if signature not in available:
        raise ValueError(f"`signature` must be one of the export's signatures {available}. Received: signature={signature!r}")
    function = loaded.signatures[signature]
    inputs = function.structured_input_signature[1]
    if len(inputs) != 1:
        raise ValueError(f"`signature` must take one input. Received: signature={signature!r} with inputs {sorted(inputs)}")
    (alias, spec), = inputs.items()
    names = read_class_names(path)
    if spec.dtype == tf.string:
        _check_decodable(items)
    else:
        shape = spec.shape.as_list()
        if len(shape) != 4 or None in shape[1:]:
            raise ValueError(f"`signature` input {alias!r} must be [batch, H, W, C] with a fixed size. Received: {shape}")
        pixels = {id(item): a for item in items if (a := decode_item(item, *shape[1:])) is not None}

    def run(batch):
        if spec.dtype == tf.string:
            feed = tf.constant([item.data for item in batch], dtype=tf.string)
        else:
            feed = tf.constant(np.stack([pixels[id(item)] for item in batch]), dtype=spec.dtype)
        try:
            outputs = {k: v.numpy() for k, v in function(**{alias: feed}).items()}
        except tf.errors.InvalidArgumentError as err:
            raise _BadInput(_tf_reason(err)) from None
        return predictions_from_rows(_rows_from_columns(outputs), [item.name for item in batch], top_k=top_k,
                                     class_names=names)

    return _per_image(items, run)


def predict_keras(model, images, *, top_k=5, class_names=None) -> list[Prediction]:
    """Run a Keras model produced by training on image files.

    Args:
        model: a ``keras.Model``, a ``.keras`` file, or a run directory holding ``model.keras``.
        images: image file paths; decoded and resized to the model's input size exactly as the
            exported ``serving_bytes`` signature does.
        top_k: classes per image. Default 5.
        class_names: names, or a file of them. Default: ``class_names.json`` beside the model
            file, if present, else the class indices.

    Returns:
        One `Prediction` per image.
    """
    _check_top_k(top_k)
    keras_model, source = resolve_model(model)
    names = load_class_names(class_names) if class_names is not None else class_names_beside(source)
    serve_model, logits = inference_model(keras_model)
    shape = tuple(serve_model.inputs[0].shape)
    if len(shape) != 4 or None in shape[1:]:
        raise ValueError(f"`model` must take images of a fixed size [batch, H, W, C]. Received: input shape {shape}")
    num_classes = serve_model.output.shape[-1]
    if names is not None and num_classes is not None and len(names) != num_classes:
        raise ValueError(f"`class_names` must have one name per class ({num_classes}). Received: {len(names)} names")

    def probabilities(batch):
        probs = np.asarray(serve_model(batch, training=False), dtype="float32")
        if logits:
            probs = np.exp(probs - probs.max(axis=-1, keepdims=True))
            probs /= probs.sum(axis=-1, keepdims=True)
        return probs

    return predict_images(probabilities, shape[1:], images, top_k=top_k, class_names=names)


def predict_images(probabilities, input_shape, images, *, top_k=5, class_names=None) -> list[Prediction]:
    """Predict image files with any model given as a function of raw-pixel batches.

    Args:
        probabilities: ``f(float32 [N, H, W, C]) -> [N, classes]`` probabilities.
        input_shape: ``(H, W, C)``; every image is decoded to C channels and bilinearly resized
            to H x W exactly as the exported ``serving_bytes`` signature does.
        images: image file paths.
        top_k: classes per image. Default 5.
        class_names: names in index order, or None (the indices).

    Returns:
        One `Prediction` per image (``error`` set for an image that could not be predicted).
    """
    _check_top_k(top_k)
    items = read_image_items(images)
    pixels = {id(item): a for item in items if (a := decode_item(item, *input_shape)) is not None}

    def run(batch):
        probs = probabilities(np.stack([pixels[id(item)] for item in batch]))
        return predictions_from_rows([{"probabilities": p} for p in probs], [item.name for item in batch],
                                     top_k=top_k, class_names=class_names)

    return _per_image(items, run)


# --------------------------------------------------------------------------- REST


def _check_server(server):
    parsed = urllib.parse.urlparse(server if isinstance(server, str) else "")
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"`server` must be an http(s) URL like http://localhost:8501. Received: server={server!r}")
    return server.rstrip("/")


def _model_url(server, model_name, version):
    url = f"{server}/v1/models/{urllib.parse.quote(model_name)}"
    if version is not None:
        url += f"/versions/{version}"
    return url


def _http_error_text(body):
    """What an HTTP error answer says in one line: TF Serving's JSON ``error``; for an HTML page
    (a proxy, another web server on that port) its title or first text, saying it is one."""
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        pass
    text = body.decode("utf-8", "replace").strip()
    if re.match(r"(?is)\s*(<!doctype html|<html|<head|<body|<\?xml)", text):
        title = re.search(r"(?is)<title[^>]*>(.*?)</title>", text)
        words = title.group(1) if title else re.sub(r"(?s)<(script|style)\b.*?</\1>|<[^>]+>", " ", text)
        words = " ".join(html.unescape(words).split())[:200]
        return f"an HTML page, not TF Serving's JSON ({words or 'no text'}): is the URL TF Serving's REST port?"
    return " ".join(text.split())[:300]


def _http_json(url, payload=None, *, timeout):
    data = None if payload is None else json.dumps(payload).encode("utf-8")
    request = urllib.request.Request(url, data=data, method="GET" if data is None else "POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as err:
        message = _http_error_text(err.read()) or err.reason
        raise ServingError(f"TF Serving returned HTTP {err.code} for {url}: {message}",
                           input_error=err.code == 400) from None
    except urllib.error.URLError as err:
        raise ServingError(f"cannot reach TF Serving at {url}: {err.reason}") from None
    except (socket.timeout, TimeoutError):
        raise ServingError(f"no answer from TF Serving at {url} within {timeout} s") from None
    except (ConnectionError, OSError) as err:
        raise ServingError(f"connection to TF Serving at {url} failed: {err}") from None
    try:
        answer = json.loads(body)
    except ValueError:
        raise ServingError(f"TF Serving at {url} did not answer with JSON: {body[:200]!r}") from None
    if isinstance(answer, dict) and "error" in answer:
        raise ServingError(f"TF Serving error from {url}: {answer['error']}")
    return answer


def _rest_signature_input(server, model_name, version, signature, timeout):
    """(alias, dtype, shape) of the signature's single input, from the metadata API."""
    url = _model_url(server, model_name, version) + "/metadata"
    meta = _http_json(url, timeout=timeout)
    try:
        defs = meta["metadata"]["signature_def"]["signature_def"]
    except (KeyError, TypeError):
        raise ServingError(f"unexpected metadata answer from {url}") from None
    if signature not in defs:
        raise ValueError(f"`signature` must be one of the served signatures {sorted(defs)}. Received: signature={signature!r}")
    inputs = defs[signature].get("inputs", {})
    if len(inputs) != 1:
        raise ValueError(f"`signature` must take one input. Received: signature={signature!r} with inputs {sorted(inputs)}")
    (alias, info), = inputs.items()
    shape = info.get("tensor_shape", {})
    dims = None if shape.get("unknown_rank") else [int(d.get("size", -1)) for d in shape.get("dim", [])]
    return alias, info.get("dtype", "DT_INVALID"), dims


def _float_pixels(items, dims, alias, signature):
    """Decode and resize the items locally for a float signature: ``{id(item): pixels}``."""
    if not dims or len(dims) != 4 or any(d < 1 for d in dims[1:]):
        raise ValueError(f"`signature` {signature!r} input {alias!r} must be [batch, H, W, C] with a fixed size. "
                         f"Received: shape {dims}")
    return {id(item): a for item in items if (a := decode_item(item, *dims[1:])) is not None}


def _remote(call):
    """Run one server call, turning a rejected input into `_BadInput` (retry one by one)."""
    try:
        return call()
    except ServingError as err:
        if err.input_error:
            raise _BadInput(f"rejected by the server ({err})") from None
        raise


def predict_rest(server, model_name, images, *, version=None, signature=BYTES_SIGNATURE, top_k=5, timeout=30.0):
    """Ask TF Serving's REST API for predictions.

    Args:
        server: base URL, e.g. "http://localhost:8501".
        model_name: the served model's name.
        images: image file paths (sent base64-encoded for a string input; decoded and resized
            locally for a float input).
        version: a specific version (``/versions/N``). Default: the latest served.
        signature: signature name. Default "serving_bytes". Other signatures are looked up with
            the metadata API (``GET .../metadata``) to learn their input.
        top_k: classes per image. Default 5. Scores come from ``probabilities``; names from the
            answer's ``top_k_class_names``, so classes ranked beyond the export's ``top_k`` are
            named by their index.
        timeout: seconds to wait. Default 30.

    Returns:
        One `Prediction` per image (``error`` set for the images that could not be predicted,
        including those the server rejected as bad input).

    Raises:
        ValueError: bad arguments.
        ServingError: the server could not be reached or failed for a reason other than the
            content of an image.
    """
    server = _check_server(server)
    check_model_name("model", model_name)
    if version is not None:
        check_positive_int("version", version)
    _check_top_k(top_k)
    items = read_image_items(images)
    if signature == BYTES_SIGNATURE:
        alias, dtype, dims = BYTES_INPUT, "DT_STRING", [-1]
    else:
        alias, dtype, dims = _rest_signature_input(server, model_name, version, signature, timeout)
    if dtype == "DT_STRING":
        _check_decodable(items)
    elif dtype in ("DT_FLOAT", "DT_HALF", "DT_DOUBLE"):
        pixels = _float_pixels(items, dims, alias, signature)
    else:
        raise ValueError(f"`signature` input {alias!r} has dtype {dtype}; expected DT_STRING or DT_FLOAT")
    url = _model_url(server, model_name, version) + ":predict"

    def run(batch):
        if dtype == "DT_STRING":
            values = [{"b64": base64.b64encode(item.data).decode("ascii")} for item in batch]
        else:
            values = [pixels[id(item)].tolist() for item in batch]
        payload = {"signature_name": signature, "instances": [{alias: v} for v in values]}
        answer = _remote(lambda: _http_json(url, payload, timeout=timeout))
        rows = answer.get("predictions") if isinstance(answer, dict) else None
        if not isinstance(rows, list):
            keys = sorted(answer) if isinstance(answer, dict) else type(answer).__name__
            raise ServingError(f"TF Serving answer has no 'predictions' list (keys: {keys})")
        return predictions_from_rows(rows, [item.name for item in batch], top_k=top_k)

    return _per_image(items, run)


# --------------------------------------------------------------------------- gRPC


_TARGET_RE = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d+$")


def predict_grpc(target, model_name, images, *, version=None, signature=BYTES_SIGNATURE, top_k=5, timeout=30.0):
    """Ask TF Serving's gRPC ``PredictionService.Predict`` for predictions.

    Args:
        target: "host:port" of the gRPC endpoint, e.g. "localhost:8500".
        model_name, images, version, signature, top_k, timeout: as `predict_rest`.

    Returns:
        One `Prediction` per image.

    Raises:
        ValueError: bad arguments.
        ServingError: an RPC error other than a rejected image (unreachable server, unknown
            model, ...); images rejected with INVALID_ARGUMENT get their own ``error``.
    """
    if not isinstance(target, str) or not _TARGET_RE.match(target):
        raise ValueError(f"`grpc` must be host:port like localhost:8500. Received: grpc={target!r}")
    check_model_name("model", model_name)
    if version is not None:
        check_positive_int("version", version)
    _check_top_k(top_k)
    items = read_image_items(images)
    import grpc
    import tensorflow as tf

    from keras_cnn.export.serving_protos import get_model_metadata_pb2 as metadata_pb2
    from keras_cnn.export.serving_protos import predict_pb2
    from keras_cnn.export.serving_protos import prediction_service_pb2_grpc as service_grpc

    with grpc.insecure_channel(target) as channel:
        stub = service_grpc.PredictionServiceStub(channel)

        def call(method, request):
            try:
                return method(request, timeout=timeout)
            except grpc.RpcError as err:
                code = err.code().name if hasattr(err, "code") and err.code() else "UNKNOWN"
                details = err.details() if hasattr(err, "details") else str(err)
                raise ServingError(f"TF Serving gRPC error at {target} ({code}): {details}",
                                   input_error=code == "INVALID_ARGUMENT") from None

        if signature == BYTES_SIGNATURE:
            alias, dtype, dims = BYTES_INPUT, tf.string, [-1]
        else:
            meta_request = metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
            meta_request.model_spec.name = model_name
            if version is not None:
                meta_request.model_spec.version.value = version
            answer = call(stub.GetModelMetadata, meta_request)
            defs = metadata_pb2.SignatureDefMap()
            answer.metadata["signature_def"].Unpack(defs)
            if signature not in defs.signature_def:
                raise ValueError(f"`signature` must be one of the served signatures {sorted(defs.signature_def)}. "
                                 f"Received: signature={signature!r}")
            sig_inputs = defs.signature_def[signature].inputs
            if len(sig_inputs) != 1:
                raise ValueError(f"`signature` must take one input. Received: {sorted(sig_inputs)}")
            (alias, info), = sig_inputs.items()
            dtype = tf.dtypes.as_dtype(info.dtype)
            dims = [d.size for d in info.tensor_shape.dim]
        if dtype == tf.string:
            _check_decodable(items)
        elif dtype.is_floating:
            pixels = _float_pixels(items, dims, alias, signature)
        else:
            raise ValueError(f"`signature` input {alias!r} has dtype {dtype.name}; expected string or float")

        def run(batch):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = signature
            if version is not None:
                request.model_spec.version.value = version
            if dtype == tf.string:
                tensor = tf.make_tensor_proto([item.data for item in batch], dtype=tf.string)
            else:
                tensor = tf.make_tensor_proto(np.stack([pixels[id(item)] for item in batch]).astype(dtype.as_numpy_dtype))
            request.inputs[alias].CopyFrom(tensor)
            response = _remote(lambda: call(stub.Predict, request))
            outputs = {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
            if not outputs:
                raise ServingError("TF Serving answered with no outputs")
            return predictions_from_rows(_rows_from_columns(outputs), [item.name for item in batch], top_k=top_k)

        return _per_image(items, run)
