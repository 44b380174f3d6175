"""Prediction clients and `keras-cnn predict`: local SavedModel, Keras model, REST, gRPC."""

import base64
import http.server
import importlib.util
import json
import re
import socket
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import json_format

from keras_cnn import cli
from keras_cnn.export import (
    MissingExtraError,
    ServingError,
    export_for_serving,
    predict_grpc,
    predict_keras,
    predict_rest,
    predict_saved_model,
)
from keras_cnn.layers.preprocess import Preprocess

NAMES = ["zero", "one", "two", "three", "four", "five"]
HAVE_TF_SERVING = importlib.util.find_spec("tensorflow_serving") is not None


def tiny_model():
    inputs = keras.Input((12, 12, 3))
    x = Preprocess("unit")(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    init = keras.initializers.RandomNormal(stddev=4.0, seed=3)
    outputs = keras.layers.Dense(6, activation="softmax", kernel_initializer=init, name="predictions")(x)
    return keras.Model(inputs, outputs, name="pnet")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    model = tiny_model()
    run = root / "runs" / "pnet"
    run.mkdir(parents=True)
    model.save(run / "model.keras")
    (run / "class_names.json").write_text(json.dumps(NAMES))
    path = export_for_serving(run, root / "saved_models", warmup=False)
    rng = np.random.default_rng(0)
    images = []
    for i, (size, fmt) in enumerate(((12, "png"), (20, "png"), (16, "jpeg"))):
        pixels = rng.integers(0, 256, (size, size + 2, 3)).astype("uint8")
        data = tf.io.encode_png(pixels) if fmt == "png" else tf.io.encode_jpeg(pixels, quality=95)
        file = root / f"img{i}.{'jpg' if fmt == 'jpeg' else 'png'}"
        file.write_bytes(data.numpy())
        images.append(file)
    not_image = root / "notes.txt"
    not_image.write_text("definitely not an image")
    return {"root": root, "run": run, "path": path, "images": images, "not_image": not_image, "model": model}


def reference(setup):
    """Top classes computed from the Keras model on images decoded + resized like the server."""
    batch = []
    for file in setup["images"]:
        image = tf.io.decode_image(file.read_bytes(), channels=3, expand_animations=False)
        batch.append(tf.image.resize(tf.cast(image, tf.float32), (12, 12)))
    return setup["model"](tf.stack(batch), training=False).numpy()


def assert_matches_reference(predictions, setup, k=5, atol=1e-5):
    probs = reference(setup)
    assert [p.source for p in predictions] == [str(f) for f in setup["images"]]
    for prediction, row in zip(predictions, probs):
        order = np.argsort(-row, kind="stable")[:k]
        assert prediction.classes == order.tolist()
        assert prediction.class_names == [NAMES[i] for i in order]
        np.testing.assert_allclose(prediction.scores, row[order], atol=atol)


def test_saved_model_and_keras_model_agree(setup):
    local = predict_saved_model(setup["path"], setup["images"])  # serving_bytes: decoded inside
    assert_matches_reference(local, setup)
    latest = predict_saved_model(setup["path"].parent, setup["images"][:1])  # model dir -> highest version
    assert latest[0].classes == local[0].classes and latest[0].scores == pytest.approx(local[0].scores, abs=1e-6)
    floats = predict_saved_model(setup["path"], setup["images"], top_k=2, signature="serving_default")
    assert_matches_reference(floats, setup, k=2)
    keras_run = predict_keras(setup["run"], setup["images"], top_k=3)  # class_names.json beside it
    assert_matches_reference(keras_run, setup, k=3)
    assert keras_run[0].to_dict()["top_k"][0] == {"class": keras_run[0].classes[0],
                                                   "name": keras_run[0].class_names[0],
                                                   "score": pytest.approx(keras_run[0].scores[0])}


@pytest.mark.parametrize("call", ["saved_model", "keras", "rest"])
def test_bad_images_are_clear_errors(setup, call):
    def run(images):
        if call == "saved_model":
            return predict_saved_model(setup["path"], images)
        if call == "keras":
            return predict_keras(setup["run"] / "model.keras", images)
        return predict_rest("http://127.0.0.1:9", "pnet", images)  # fails before any request

    with pytest.raises(ValueError, match=r"`images` must be encoded images .*notes\.txt"):
        run([setup["images"][0], setup["not_image"]])
    with pytest.raises(FileNotFoundError, match="`images` must be existing image files"):
        run([setup["root"] / "missing.png"])
    with pytest.raises(ValueError, match="`images` must name at least one image"):
        run([])
    with pytest.raises(ValueError, match="not directories"):
        run([setup["root"]])


def test_truncated_image_is_a_clear_error(setup, tmp_path):
    bad = tmp_path / "cut.png"
    bad.write_bytes(setup["images"][1].read_bytes()[:40])  # PNG header, then nothing
    with pytest.raises(ValueError, match=r"could not be decoded as an image: .*cut\.png"):
        predict_keras(setup["run"], [bad])


# --------------------------------------------------------------------------- REST


class FakeTFServing(http.server.ThreadingHTTPServer):
    """TF Serving's REST predict + metadata semantics (api_rest, json_tensor.cc) on a real SavedModel."""

    def __init__(self, export_path, model_name, version, *, error=None):
        self.loaded = tf.saved_model.load(str(export_path), tags=["serve"])
        self.model_name, self.version, self.error = model_name, version, error
        self.requests = []
        from tensorflow.core.protobuf import saved_model_pb2

        saved = saved_model_pb2.SavedModel.FromString((export_path / "saved_model.pb").read_bytes())
        self.signature_defs = {k: v for k, v in saved.meta_graphs[0].signature_def.items() if not k.startswith("__")}
        super().__init__(("127.0.0.1", 0), FakeHandler)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class FakeHandler(http.server.BaseHTTPRequestHandler):
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

    def do_GET(self):  # noqa: N802
        if self.route("GET") == "/metadata":
            defs = {k: json_format.MessageToDict(v, preserving_proto_field_name=True)
                    for k, v in self.server.signature_defs.items()}
            self.reply(200, {"model_spec": {"name": self.server.model_name, "version": str(self.server.version),
                                            "signature_name": ""},
                             "metadata": {"signature_def": {"signature_def": defs}}})

    def do_POST(self):  # noqa: N802
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
def fake_server(setup):
    servers = []

    def start(**kwargs):
        server = FakeTFServing(setup["path"], "pnet", 1, **kwargs)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_rest_bytes_signature_request_and_answer(setup, fake_server):
    server = fake_server()
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


def test_rest_float_signature_via_metadata(setup, fake_server):
    server = fake_server()
    predictions = predict_rest(server.url, "pnet", setup["images"], signature="serving_default")
    assert_matches_reference(predictions, setup, atol=1e-4)
    (body,) = server.requests
    pixels = np.asarray(body["instances"][0]["images"])
    assert body["signature_name"] == "serving_default" and pixels.shape == (12, 12, 3)
    with pytest.raises(ValueError, match="`signature` must be one of the served signatures"):
        predict_rest(server.url, "pnet", setup["images"], signature="nope")


def test_rest_errors_surface_clearly(setup, fake_server, capsys):
    server = fake_server(error="Input to reshape is a tensor with 10 values")
    with pytest.raises(ServingError, match=r"HTTP 400 .*:predict: Input to reshape is a tensor with 10 values"):
        predict_rest(server.url, "pnet", setup["images"][:1])
    image = str(setup["images"][0])
    assert cli.main(["predict", image, "--server", server.url, "--model", "pnet"]) == 1
    assert capsys.readouterr().err.startswith("keras-cnn predict: error: TF Serving returned HTTP 400")
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


# --------------------------------------------------------------------------- CLI


def test_cli_local_and_server(setup, fake_server, capsys):
    images = [str(f) for f in setup["images"]]
    assert cli.main(["predict", *images, "--saved-model", str(setup["path"]), "--top-k", "2"]) == 0
    out = capsys.readouterr().out
    probs = reference(setup)
    best = NAMES[int(probs[0].argmax())]
    assert out.startswith(f"{images[0]}\n  1. {best}")
    assert out.count("  1. ") == 3 and out.count("  2. ") == 3 and "  3. " not in out
    assert cli.main(["predict", images[0], "--model", str(setup["run"]), "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["image"] == images[0] and entry["top_k"][0]["name"] == best and len(entry["top_k"]) == 5
    server = fake_server()
    assert cli.main(["predict", images[0], "--server", server.url, "--model", "pnet", "--version", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["top_k"][0]["name"] == best


@pytest.mark.parametrize(
    "argv, message",
    [
        (["IMG", "--saved-model", "SM", "--model", "RUN"], "exactly one of"),
        (["IMG"], "exactly one of"),
        (["IMG", "--saved-model", "SM", "--version", "2"], "`--version`"),
        (["IMG", "--server", "http://x:1"], "`--model` must name the served model"),
        (["IMG", "--server", "http://x:1", "--grpc", "x:1", "--model", "m"], "one of `--server`"),
        (["IMG", "--saved-model", "SM", "--top-k", "0"], "`--top-k`"),
        (["NOTIMG", "--saved-model", "SM"], "`images` must be encoded images"),
        (["IMG", "--saved-model", "NOWHERE"], "`saved_model` must be an existing directory"),
        (["IMG", "--model", "NOWHERE.keras"], "`model` must be an existing file"),
    ],
)
def test_cli_bad_usage_exits_2(setup, capsys, argv, message):
    subst = {"IMG": str(setup["images"][0]), "NOTIMG": str(setup["not_image"]), "SM": str(setup["path"]),
             "RUN": str(setup["run"]), "NOWHERE": str(setup["root"] / "nowhere"),
             "NOWHERE.keras": str(setup["root"] / "nowhere.keras")}
    assert cli.main(["predict", *[subst.get(a, a) for a in argv]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("keras-cnn predict: error: ") and message in err


def test_cli_no_images_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["predict", "--saved-model", "x"])
    assert exit_info.value.code == 2
    assert "keras-cnn predict: error: the following arguments are required: IMAGE" in capsys.readouterr().err


# --------------------------------------------------------------------------- gRPC


@pytest.mark.skipif(HAVE_TF_SERVING, reason="tensorflow-serving-api is installed")
def test_grpc_without_the_extra_is_a_clear_error(setup, capsys):
    with pytest.raises(MissingExtraError, match=r"pip install 'keras-cnn\[serving\]'"):
        predict_grpc("localhost:8500", "pnet", setup["images"][:1])
    assert cli.main(["predict", str(setup["images"][0]), "--grpc", "localhost:8500", "--model", "pnet"]) == 2
    assert "keras-cnn predict: error: gRPC needs the optional 'serving' extra" in capsys.readouterr().err


@pytest.mark.skipif(not HAVE_TF_SERVING, reason="tensorflow-serving-api (the 'serving' extra) not installed")
def test_grpc_against_an_in_process_prediction_service(setup):
    from concurrent import futures

    import grpc
    from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

    fake = FakeTFServing(setup["path"], "pnet", 1)  # reuse its loaded model and signature defs
    fake.server_close()
    seen = []

    class Service(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):  # noqa: N802
            seen.append(request)
            if request.model_spec.name != "pnet":
                context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found: {request.model_spec.name}")
            fn = fake.loaded.signatures[request.model_spec.signature_name or "serving_default"]
            feed = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
            response = predict_pb2.PredictResponse()
            for key, value in fn(**feed).items():
                response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
            return response

        def GetModelMetadata(self, request, context):  # noqa: N802
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            defs = get_model_metadata_pb2.SignatureDefMap()
            for key, value in fake.signature_defs.items():
                defs.signature_def[key].CopyFrom(value)
            response.metadata["signature_def"].Pack(defs)
            return response

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        target = f"127.0.0.1:{port}"
        assert_matches_reference(predict_grpc(target, "pnet", setup["images"], version=1), setup)
        assert seen[-1].model_spec.signature_name == "serving_bytes" and seen[-1].model_spec.version.value == 1
        assert list(tf.make_ndarray(seen[-1].inputs["image_bytes"])) == [f.read_bytes() for f in setup["images"]]
        floats = predict_grpc(target, "pnet", setup["images"], signature="serving_default")
        assert_matches_reference(floats, setup, atol=1e-4)
        with pytest.raises(ServingError, match="NOT_FOUND"):
            predict_grpc(target, "other", setup["images"][:1])
    finally:
        server.stop(None)
