"""Errors name the right thing: the file, the flag, the reason; never TensorFlow's or a web page's text."""

import http.server
import threading

import numpy as np
import pytest

import keras_cnn
from keras_cnn import cli


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from PIL import Image

    from keras_cnn.models import build_model

    root = tmp_path_factory.mktemp("errors")
    good = root / "good.keras"
    build_model("lenet5", classes=10).save(good)
    truncated = root / "truncated.keras"
    truncated.write_bytes(good.read_bytes()[:5000])
    png = root / "ok.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(png)
    corrupt = root / "corrupt.png"
    corrupt.write_bytes(png.read_bytes()[:40])
    return {"good": good, "truncated": truncated, "png": png, "corrupt": corrupt, "root": root}


def test_a_truncated_keras_file_is_called_so_not_missing(files):
    with pytest.raises(ValueError, match=r"`filepath` could not be loaded as a Keras model \(not a complete \.keras archive: truncated") as info:
        keras_cnn.load_model(files["truncated"])
    assert "File not found" not in str(info.value)


@pytest.mark.parametrize("argv, flag", [
    (["predict", "--model", "{truncated}", "{png}"], "--model"),
    (["export", "{truncated}", "--base-dir", "{root}/sm"], "MODEL_FILE"),
])
def test_a_truncated_keras_file_on_the_cli_names_the_flag(files, capsys, argv, flag):
    assert cli.main([a.format(**files) for a in argv]) == 2
    err = capsys.readouterr().err
    assert f"`{flag}` could not be loaded as a Keras model (not a complete .keras archive" in err
    assert f"Received: {flag}=" in err
    assert "File not found" not in err and "`model`" not in err and "model=" not in err.replace(f"{flag}=", "")


def test_export_errors_name_flags_not_python_arguments(files, capsys):
    assert cli.main(["export", str(files["good"]), "--base-dir", str(files["root"] / "sm2"), "--name", "bad name!"]) == 2
    err = capsys.readouterr().err
    assert "`--name` must be" in err and "Received: --name='bad name!'" in err and " name=" not in err


def test_a_corrupt_png_says_why_without_tensorflows_wrapping(files, capsys):
    assert cli.main(["predict", "--model", str(files["good"]), str(files["corrupt"])]) == 1
    err = capsys.readouterr().err
    assert f"{files['corrupt']}: could not be decoded as an image (Invalid PNG" in err
    assert "function_node" not in err and "[Op:" not in err and "{{" not in err


class _HtmlNotFound(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        body = (b"<!DOCTYPE html><html><head><title>404 Not Found</title><style>p{}</style></head>"
                b"<body><h1>Not Found</h1><p>" + b"x" * 2000 + b"</p></body></html>")
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args):
        pass


def test_an_html_error_page_is_one_short_line():
    from keras_cnn.export.client import ServingError, _http_json

    server = http.server.HTTPServer(("127.0.0.1", 0), _HtmlNotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/v1/models/m/metadata"
        with pytest.raises(ServingError) as info:
            _http_json(url, timeout=10)
    finally:
        server.shutdown()
    message = str(info.value)
    assert "HTTP 404" in message and "an HTML page, not TF Serving's JSON (404 Not Found)" in message
    assert "<" not in message and len(message) < 300


@pytest.mark.parametrize("make, why", [
    (lambda p: None, "no such file or directory"),
    (lambda p: (p.mkdir(), (p / "config.json").write_text("{}")), "a run that has not finished"),
    (lambda p: p.mkdir(), "a directory without model.keras"),
])
def test_evaluate_says_whether_the_run_is_missing_or_unfinished(tmp_path, capsys, make, why):
    run = tmp_path / "run"
    make(run)
    assert cli.main(["evaluate", str(run)]) == 2
    err = capsys.readouterr().err
    assert why in err and f"Received: RUN_DIR='{run}'" in err
