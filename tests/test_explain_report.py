"""report.html (written by train and transfer, rebuilt by `keras-cnn report`) and `keras-cnn explain`."""

import base64
import html.parser
import io
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_cnn.cli import main
from keras_cnn.explain.report import IMAGE_BUDGET_BYTES, REPORT_FILE, write_report, write_report_or_warn

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("The run", "Class counts", "Recipe", "Fingerprint", "Results", "Per class, test split",
            "Confusion matrix, test split", "Learning curves", "Most confidently wrong (test split)", "Export")


class _Page(html.parser.HTMLParser):
    """Headings, the attributes that can reference something, tags and style text of a page."""

    def __init__(self):
        super().__init__()
        self.headings, self.refs, self.tags, self.styles, self._heading, self._style = [], [], [], [], None, False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.refs += [(tag, k, v) for k, v in attrs if k in ("src", "href", "srcset", "action", "data", "poster")]
        self._heading = "" if tag in ("h1", "h2", "h3") else self._heading
        self._style = tag == "style"

    def handle_endtag(self, tag):
        if tag in ("h2", "h3") and self._heading is not None:
            self.headings.append(self._heading.strip())
        self._heading = None if tag in ("h1", "h2", "h3") else self._heading
        self._style = False if tag == "style" else self._style

    def handle_data(self, data):
        if self._heading is not None:
            self._heading += data
        if self._style:
            self.styles.append(data)


def parse(text):
    page = _Page()
    page.feed(text)
    page.close()
    return page


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from keras_cnn.training import train

    out = tmp_path_factory.mktemp("run") / "lenet5"
    train("lenet5", "digits", epochs=2, max_examples=400, out_dir=out, export=False, verbose=0)
    return out


def _images(text):
    from PIL import Image

    refs = parse(text).refs
    decoded = []
    for _, _, value in refs:
        assert value.startswith("data:image/png;base64,"), value[:60]
        data = base64.b64decode(value.split(",", 1)[1], validate=True)
        image = Image.open(io.BytesIO(data))
        image.load()
        decoded.append((len(data), image.size))
    return decoded


@pytest.mark.slow
def test_train_writes_a_self_contained_report_with_every_section(run_dir):
    text = (run_dir / REPORT_FILE).read_text()
    page = parse(text)
    for section in SECTIONS:
        assert section in page.headings, section
    assert not {"script", "link", "iframe", "object", "embed"} & set(page.tags)
    assert all(v.startswith("data:") for _, _, v in page.refs)
    assert "url(" not in "".join(page.styles) and "@import" not in "".join(page.styles)
    assert "@media print" in "".join(page.styles)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert f"{metrics['accuracy']:.4f}" in text  # the test split's accuracy, recomputed by the report
    assert "61,706" in text  # LeNet-5's parameters (analysis.profile)
    assert "Grad-CAM" in text and "<code>pool2</code>" in text  # lenet5's last stage tap
    assert "report.html" in (run_dir / "README.txt").read_text()


@pytest.mark.slow
def test_every_inline_image_decodes_and_the_images_keep_to_the_budget(run_dir):
    images = _images((run_dir / REPORT_FILE).read_text())
    assert len(images) >= 3  # learning curves + image and overlay of at least one wrong image
    assert sum(size for size, _ in images) <= IMAGE_BUDGET_BYTES
    assert all(max(dims) <= 1500 for _, dims in images)


@pytest.mark.slow
def test_a_tight_budget_leaves_images_out_and_says_so(run_dir, tmp_path, monkeypatch):
    from keras_cnn.explain import report

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    monkeypatch.setattr(report, "IMAGE_BUDGET_BYTES", 2000)
    text = write_report(copy).read_text()
    assert "left out to keep the page&#x27;s images under 2 KB" in text
    assert sum(size for size, _ in _images(text)) <= 2000


@pytest.mark.slow
def test_cli_report_rebuilds_it(run_dir, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / REPORT_FILE).unlink()
    assert main(["report", str(copy), "--top-k", "2"]) == 0
    assert f"wrote {copy / REPORT_FILE}" in capsys.readouterr().out
    assert len(_images((copy / REPORT_FILE).read_text())) <= 1 + 2 * 2


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_cli_report_on_a_missing_or_truncated_model_is_one_line(run_dir, tmp_path, capsys, damage):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    model = copy / "model.keras"
    if damage == "missing":
        model.unlink()
    else:
        model.write_bytes(model.read_bytes()[:5000])
    (copy / REPORT_FILE).unlink()
    assert main(["report", str(copy)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("keras-cnn report: error: `RUN`") and "model.keras" in err
    assert not (copy / REPORT_FILE).exists()


def test_a_failed_report_is_a_logged_warning_not_a_failed_run(tmp_path, caplog):
    (tmp_path / "config.json").write_text("{}")
    with caplog.at_level(logging.WARNING, logger="keras_cnn"):
        assert write_report_or_warn(tmp_path) is None
    assert "report.html was not written" in caplog.text and "model.keras" in caplog.text
    assert not (tmp_path / REPORT_FILE).exists()


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="headless Chromium not installed (Debian package `chromium`: "
                    "apt-get install chromium; .ci/run installs it)")
def test_report_renders_in_headless_chromium_without_console_errors(run_dir, tmp_path):
    from PIL import Image

    shot = tmp_path / "shot.png"
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
           f"--screenshot={shot}", "--window-size=1280,2000", (run_dir / REPORT_FILE).as_uri()]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    pixels = np.asarray(Image.open(shot).convert("L"), dtype="float32")
    assert pixels.shape == (2000, 1280)
    assert (pixels < 200).mean() > 0.03 and pixels.std() > 20  # text, tables and images, not a blank page


@pytest.mark.slow
def test_cli_explain_writes_one_overlay_per_image_and_reports_bad_ones(run_dir, tmp_path, capsys):
    from PIL import Image

    from keras_cnn.data import load_data

    x, y = load_data("digits", image_size=(32, 32), channels=1, shuffle=False).arrays("test")
    good = tmp_path / "digit.png"
    Image.fromarray(x[0, ..., 0].astype("uint8")).save(good)
    broken = tmp_path / "broken.png"
    broken.write_bytes(good.read_bytes()[:40])
    out = tmp_path / "out"
    code = main(["explain", "--model", str(run_dir), str(good), str(broken), str(tmp_path / "none.png"),
                 "--out", str(out), "--top-k", "2"])
    captured = capsys.readouterr()
    assert code == 1
    assert f"-> {out / 'digit_gradcam.png'}" in captured.out
    assert "broken.png: could not be decoded" in captured.err and "none.png: no such file" in captured.err
    assert "2 of 3 images could not be explained" in captured.err
    assert sorted(os.listdir(out)) == ["digit_gradcam.png"]
    panel = Image.open(out / "digit_gradcam.png")
    assert panel.mode == "RGB" and panel.size[0] > 3 * 192 and panel.size[1] >= 192
    assert main(["explain", "--model", str(run_dir), str(good), "--out", str(out), "--class", str(y[0])]) == 0


@pytest.mark.slow
@pytest.mark.parametrize("argv, message", [
    (["--class", "eleven"], "keras-cnn explain: error: `--class` must be a class index 0..9 or a class name"),
    (["--layer", "nope"], "keras-cnn explain: error: `--layer` 'nope' is not a layer"),
    (["--top-k", "0"], "keras-cnn explain: error: `--top-k` must be"),
])
def test_cli_explain_bad_usage_is_one_line(run_dir, tmp_path, capsys, argv, message):
    from PIL import Image

    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((32, 32), "uint8")).save(image)
    assert main(["explain", "--model", str(run_dir), str(image), "--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and len(err.strip().splitlines()) == 1


def test_help_of_explain_and_report_does_not_import_tensorflow():
    code = ("import sys\nfrom keras_cnn.cli import main\n"
            "for argv in (['explain', '--help'], ['report', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules), file=sys.__stderr__)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert "Grad-CAM" in result.stdout and "report.html" in result.stdout
    assert result.stderr.strip().splitlines()[-1] == "[]"


@pytest.mark.slow
def test_transfer_writes_its_report(tmp_path, capsys):
    out = tmp_path / "transfer"
    code = main(["transfer", "course_convnet", "--data", "digits", "--epochs", "1", "--fine-tune-epochs", "0",
                 "--max-examples", "200", "--image-size", "39", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    text = (out / REPORT_FILE).read_text()
    page = parse(text)
    assert "Recipe (transfer phases)" in page.headings and "Most confidently wrong (test split)" in page.headings
    assert "from course_convnet, regime small" in text and "<code>conv3</code>" in text
    assert all(v.startswith("data:image/png;base64,") for _, _, v in page.refs)


@pytest.mark.slow
def test_report_on_a_model_keras_cnn_did_not_build_says_what_it_cannot_show(tmp_path):
    import keras

    run = tmp_path / "run"
    run.mkdir()
    model = keras.Sequential([keras.Input((32, 32, 1)), keras.layers.Rescaling(1 / 255), keras.layers.Conv2D(4, 3),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, activation="softmax")])
    model.save(run / "model.keras")
    (run / "config.json").write_text(json.dumps({"data": "digits", "max_examples": 60, "seed": 0}))
    (run / "class_names.json").write_text(json.dumps([str(i) for i in range(10)]))
    text = write_report(run).read_text()
    page = parse(text)
    assert "no Grad-CAM overlays: `layer` is required" in text
    assert "not recorded (not a keras_cnn network)" in text and "No learning curves" in text
    assert "Most confidently wrong (test split)" in page.headings  # the images, without overlays
    assert "Not exported" in text
    assert "Most confidently wrong (test split)" not in parse(write_report(run, top_k=0).read_text()).headings
