"""End to end against TF Serving's two wire formats, served in-process from a real export.

* gRPC: a ``grpc.server`` on 127.0.0.1 (port 0) implementing ``tensorflow.serving.PredictionService``
  (``Predict``, ``GetModelMetadata``) with the generated stubs of tensorflow-serving-api
  (``prediction_service_pb2_grpc``), backed by ``tf.saved_model.load`` of the exported SavedModel;
* REST: an HTTP server of TF Serving's REST shape (``POST /v1/models/NAME[/versions/N]:predict``,
  ``GET .../metadata``, row format, ``{"b64": ...}`` binary values, ``{"error": ...}`` answers).

Both run ``keras-cnn predict --grpc`` / ``--server`` for real, so the bytes our clients put on the
wire are parsed by the real message classes and JSON shapes.
"""

import base64
import http.server
import json
import re
import socket
import threading
from concurrent import futures

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

from keras_cnn import cli
from keras_cnn.export import ServingError, predict_grpc, predict_rest
from tests.test_predict import NAMES, assert_matches_reference, make_setup, reference


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return make_setup(tmp_path_factory.mktemp("serving_e2e"))


def _signature_defs(export_path):
    saved = saved_model_pb2.SavedModel.FromString((export_path / "saved_model.pb").read_bytes())
    return {k: v for k, v in saved.meta_graphs[0].signature_def.items() if not k.startswith("__")}


# --------------------------------------------------------------------------- REST


class RestServer(http.server.ThreadingHTTPServer):
    """TF Serving's REST predict + metadata semantics (api_rest, json_tensor.cc) on a real SavedModel."""

    def __init__(self, export_path, model_name, version, *, error=None):
        self.loaded = tf.saved_model.load(str(export_path), tags=["serve"])
        self.model_name, self.version, self.error = model_name, version, error
        self.requests = []
        self.signature_defs = _signature_defs(export_path)
        super().__init__(("127.0.0.1", 0), RestHandler)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class RestHandler(http.server.BaseHTTPRequestHandler):
    PATH = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?(:predict|/metadata)$")

    def log_message(self, *args):  # keep pytest output clean
        pass

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def route(self, verb):
        server = self.server
        match = self.PATH.match(self.path)
        if not match or match.group(1) != server.model_name or (match.group(2) and int(match.group(2)) != server.version):
            self.reply(404, {"error": f"Servable not found for request: {self.path}"})
            return None
        if (verb, match.group(3)) not in (("POST", ":predict"), ("GET", "/metadata")):
            self.reply(405, {"error": "Method not allowed"})
            return None
        return match.group(3)

    def do_GET(self):
        if self.route("GET") == "/metadata":
            defs = {k: json_format.MessageToDict(v, preserving_proto_field_name=True)
                    for k, v in self.server.signature_defs.items()}
            self.reply(200, {"model_spec": {"name": self.server.model_name, "version": str(self.server.version),
                                            "signature_name": ""},
                             "metadata": {"signature_def": {"signature_def": defs}}})

    def do_POST(self):
        if self.route("POST") is None:
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        if self.server.error:
            self.reply(400, {"error": self.server.error})
            return
        try:
            self.reply(200, {"predictions": self.predict(body)})
        except (ValueError, KeyError, tf.errors.OpError) as err:
            self.reply(400, {"error": str(err)})

    def predict(self, body):
        name = body.get("signature_name") or "serving_default"
        if name not in self.server.signature_defs:
            raise ValueError(f"Serving signature name: \"{name}\" not found in signature def")
        sig_def = self.server.signature_defs[name]
        instances = body["instances"]
        if not instances:
            raise ValueError("No values in 'instances' array")
        (alias, info), = sig_def.inputs.items()

        def value(v):  # {"b64": ...} objects are binary strings for DT_STRING inputs
            if isinstance(v, dict):
                if set(v) != {"b64"} or info.dtype != tf.string.as_datatype_enum:
                    raise ValueError(f"JSON Value: {v} not formatted correctly for base64 data")
                return base64.b64decode(v["b64"])
            return v

        named = isinstance(instances[0], dict) and set(instances[0]) != {"b64"}
        rows = [value(i[alias] if named else i) for i in instances]
        dtype = tf.dtypes.as_dtype(info.dtype)
        outputs = self.server.loaded.signatures[name](**{alias: tf.constant(rows, dtype=dtype)})
        columns = {}
        for key, tensor in sorted(outputs.items()):
            array = tensor.numpy()
            columns[key] = np.vectorize(bytes.decode, otypes=[object])(array).tolist() if array.dtype == object \
                else array.tolist()
        if len(columns) == 1:
            return next(iter(columns.values()))
        return [{k: v[i] for k, v in columns.items()} for i in range(len(rows))]


@pytest.fixture
def rest_server(setup):
    servers = []

    def start(**kwargs):
        server = RestServer(setup["path"], "pnet", 1, **kwargs)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_rest_bytes_signature_request_and_answer(setup, rest_server):
    server = rest_server()
    predictions = predict_rest(server.url, "pnet", setup["images"], top_k=4)
    assert_matches_reference(predictions, setup, k=4)
    (body,) = server.requests
    assert body["signature_name"] == "serving_bytes"
    assert [list(i) for i in body["instances"]] == [["image_bytes"]] * 3
    assert base64.b64decode(body["instances"][0]["image_bytes"]["b64"]) == setup["images"][0].read_bytes()
    versioned = predict_rest(server.url + "/", "pnet", setup["images"][:1], version=1, top_k=4)
    assert versioned[0].classes == predictions[0].classes
    with pytest.raises(ServingError, match="HTTP 404"):  # /versions/2 is not served
        predict_rest(server.url, "pnet", setup["images"][:1], version=2)


def test_rest_float_signature_via_metadata(setup, rest_server):
    server = rest_server()
    predictions = predict_rest(server.url, "pnet", setup["images"], signature="serving_default")
    assert_matches_reference(predictions, setup, atol=1e-4)
    (body,) = server.requests
    pixels = np.asarray(body["instances"][0]["images"])
    assert body["signature_name"] == "serving_default" and pixels.shape == (12, 12, 3)
    with pytest.raises(ValueError, match="`signature` must be one of the served signatures"):
        predict_rest(server.url, "pnet", setup["images"], signature="nope")


def test_cli_rest_end_to_end(setup, rest_server, capsys):
    server = rest_server()
    images = [str(f) for f in setup["images"]]
    best = NAMES[int(reference(setup)[0].argmax())]
    argv = ["predict", images[0], str(setup["not_image"]), images[2], "--server", server.url, "--model", "pnet",
            "--version", "1", "--json"]
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    entries = json.loads(captured.out)
    assert entries[0]["top_k"][0]["name"] == best and "error" in entries[1] and "top_k" in entries[2]
    assert f"keras-cnn predict: error: {setup['not_image']}: not an image" in captured.err
    assert [len(body["instances"]) for body in server.requests] == [2]  # the bad file never left the client
    assert cli.main(["predict", *images, "--server", server.url, "--model", "pnet"]) == 0


def test_rest_errors_surface_clearly(setup, rest_server, capsys):
    server = rest_server(error="Input to reshape is a tensor with 10 values")
    # HTTP 400 is a rejected input: each image is retried alone and reported with the server's reason
    results = predict_rest(server.url, "pnet", setup["images"][:2])
    assert [r.ok for r in results] == [False, False] and len(server.requests) == 3
    assert re.match(r"rejected by the server \(TF Serving returned HTTP 400 .*:predict: Input to reshape is a "
                    r"tensor with 10 values\)$", results[0].error)
    image = str(setup["images"][0])
    assert cli.main(["predict", image, "--server", server.url, "--model", "pnet"]) == 1
    assert capsys.readouterr().err.startswith(f"keras-cnn predict: error: {image}: rejected by the server (TF "
                                              "Serving returned HTTP 400")
    with pytest.raises(ServingError, match="HTTP 404 .*Servable not found"):
        predict_rest(server.url, "other", setup["images"][:1])
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ServingError, match="cannot reach TF Serving"):
        predict_rest(f"http://127.0.0.1:{port}", "pnet", setup["images"][:1], timeout=5)
    for bad, match in (({"server": "localhost:8501"}, "`server` must be an http"),
                       ({"model_name": "a/b"}, "`model`"), ({"version": 0}, "`version`"), ({"top_k": 0}, "`top_k`")):
        kwargs = {"server": server.url, "model_name": "pnet", **bad}
        with pytest.raises(ValueError, match=match):
            predict_rest(kwargs.pop("server"), kwargs.pop("model_name"), setup["images"][:1], **kwargs)



# --------------------------------------------------------------------------- gRPC


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """TF Serving's Predict and GetModelMetadata on a loaded SavedModel (model ``pnet``, version 1)."""

    def __init__(self, export_path, model_name="pnet", version=1):
        self.loaded = tf.saved_model.load(str(export_path), tags=["serve"])
        self.signature_defs = _signature_defs(export_path)
        self.model_name, self.version = model_name, version
        self.requests = []
        self.reject = set()  # encoded images this server refuses, as TF Serving does a bad input

    def _check_spec(self, spec, context):
        if spec.name != self.model_name or (spec.HasField("version") and spec.version.value != self.version):
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {spec.name}")

    def Predict(self, request, context):  # the generated method name
        self.requests.append(request)
        self._check_spec(request.model_spec, context)
        name = request.model_spec.signature_name or "serving_default"
        if name not in self.signature_defs:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"Serving signature name: \"{name}\" not found")
        feed = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        if "image_bytes" in feed and self.reject & set(feed["image_bytes"].numpy().tolist()):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Cannot decode 16-bit image in this test server")
        try:
            outputs = self.loaded.signatures[name](**feed)
        except (tf.errors.InvalidArgumentError, TypeError, ValueError) as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err).splitlines()[0])
        response = predict_pb2.PredictResponse()
        response.model_spec.CopyFrom(request.model_spec)
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
        return response

    def GetModelMetadata(self, request, context):
        self._check_spec(request.model_spec, context)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        defs = get_model_metadata_pb2.SignatureDefMap()
        for key, value in self.signature_defs.items():
            defs.signature_def[key].CopyFrom(value)
        response.metadata["signature_def"].Pack(defs)
        return response


@pytest.fixture(scope="module")
def grpc_service(setup):
    service = PredictionService(setup["path"])
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    service.target = f"127.0.0.1:{port}"
    yield service
    server.stop(None)


def test_grpc_client_against_the_prediction_service(setup, grpc_service):
    target = grpc_service.target
    assert_matches_reference(predict_grpc(target, "pnet", setup["images"], version=1), setup)
    request = grpc_service.requests[-1]
    assert request.model_spec.signature_name == "serving_bytes" and request.model_spec.version.value == 1
    assert list(tf.make_ndarray(request.inputs["image_bytes"])) == [f.read_bytes() for f in setup["images"]]
    floats = predict_grpc(target, "pnet", setup["images"], signature="serving_default")  # via GetModelMetadata
    assert_matches_reference(floats, setup, atol=1e-4)
    assert tf.make_ndarray(grpc_service.requests[-1].inputs["images"]).shape == (3, 12, 12, 3)
    with pytest.raises(ServingError, match="NOT_FOUND"):
        predict_grpc(target, "other", setup["images"][:1])
    with pytest.raises(ValueError, match="`signature` must be one of the served signatures"):
        predict_grpc(target, "pnet", setup["images"][:1], signature="nope")


def test_cli_grpc_end_to_end(setup, grpc_service, capsys):
    images = [str(f) for f in setup["images"]]
    best = NAMES[int(reference(setup)[0].argmax())]
    assert cli.main(["predict", *images, "--grpc", grpc_service.target, "--model", "pnet", "--version", "1",
                     "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [e["image"] for e in entries] == images and entries[0]["top_k"][0]["name"] == best
    argv = ["predict", images[0], str(setup["not_image"]), "--grpc", grpc_service.target, "--model", "pnet"]
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{images[0]}\n  1. {best}")
    assert f"keras-cnn predict: error: {setup['not_image']}: not an image" in captured.err
    assert "Traceback" not in captured.err
    assert cli.main(["predict", images[0], "--grpc", grpc_service.target, "--model", "other"]) == 1
    assert "keras-cnn predict: error: TF Serving gRPC error" in capsys.readouterr().err


def test_grpc_rejected_image_is_retried_alone(setup, grpc_service, tmp_path):
    """An image the server rejects (INVALID_ARGUMENT for the whole batch) costs only itself."""
    odd = tmp_path / "odd.png"  # decodes locally, but as 16-bit PNG; this server rejects it as bad input
    odd.write_bytes(tf.io.encode_png(tf.zeros((5, 5, 3), tf.uint16)).numpy())
    grpc_service.reject = {odd.read_bytes()}
    seen = len(grpc_service.requests)
    try:
        results = predict_grpc(grpc_service.target, "pnet", [setup["images"][0], odd, setup["images"][1]])
    finally:
        grpc_service.reject = set()
    assert [r.ok for r in results] == [True, False, True]
    assert len(grpc_service.requests) - seen == 4  # the batch, then each image alone
    assert_matches_reference([results[0]], {**setup, "images": setup["images"][:1]})
    assert "INVALID_ARGUMENT" in results[1].error and "16-bit" in results[1].error
