"""Smoke tests of apps/benchmarks: every script runs with --quick and prints well-formed tables.

These are not timing assertions (speed targets live in the benchmarks themselves): they check
that each script runs end to end on tiny settings and that its ratio cells are numbers.
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "apps" / "benchmarks"


def _common():
    spec = importlib.util.spec_from_file_location("bench_common", BENCH / "_common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _number(cell):
    return float(cell.replace(",", "").rstrip("%").strip())


def test_table_helpers_round_trip_and_classify():
    C = _common()
    text = "intro\n\n" + C.markdown_table(["model", "ratio", "band"], [["resnet50", "0.950", "0.90-1.02"],
                                                                        ["vgg16", "1.100", "1.05-1.20"]]) + "\n\ntail"
    (table,) = C.parse_markdown_tables(text)
    assert table == [["model", "ratio", "band"], ["resnet50", "0.950", "0.90-1.02"], ["vgg16", "1.100", "1.05-1.20"]]
    assert C.percentile([1, 2, 3, 4], 50) == 2.5 and C.percentile([5.0], 90) == 5.0
    assert math.isnan(C.median([]))
    # The noise band decides: below target but reaching it -> noise; never reaching it -> BELOW.
    assert [C.verdict(1.01, 0.9, 1.1), C.verdict(0.95, 0.9, 1.02), C.verdict(0.8, 0.7, 0.9)] == ["ok", "noise", "BELOW"]
    # An A/A control (two identical models) that differs by 15 % makes a 10 % miss noise, not a 25 % one.
    assert [C.verdict(0.9, 0.85, 0.95, control=1.15), C.verdict(0.75, 0.7, 0.8, control=1.15)] == ["noise", "BELOW"]


# script -> (extra arguments, header of the ratio column that must hold numbers)
SCRIPTS = {
    "twins.py": ([], "ours/keras"),
    "pipeline.py": ([], "pipeline/step"),
    "serving.py": ([], "ours p50 / keras export p50"),
    "efficiency.py": ([], "of peak"),
    "time_to_accuracy.py": ([], "seconds to target"),
    "run_all.py": (["--only", "efficiency"], "of peak"),
}


@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.timeout(900)
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_benchmark_quick_run_prints_numeric_ratios(script, tmp_path):
    extra, column = SCRIPTS[script]
    out = tmp_path / "report.md"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES=os.environ.get("CUDA_VISIBLE_DEVICES", ""))
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick", *extra, "--output", str(out)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=880,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = out.read_text(encoding="utf-8")
    assert "Command:" in report
    tables = _common().parse_markdown_tables(report)
    with_column = [t for t in tables if column in t[0]]
    assert with_column, f"no table with a {column!r} column in:\n{report}"
    table = with_column[0]
    index = table[0].index(column)
    assert len(table) > 1
    values = [_number(row[index]) for row in table[1:] if row[index] not in ("1.000",)]
    assert values and all(math.isfinite(v) and v > 0 for v in values), table
    if script == "run_all.py":
        assert report.startswith("# keras_cnn benchmarks") and "- CPU:" in report and "TensorFlow" in report


# ------------------------------------------------------------------ the README's generated tables


def test_benchmark_readme_agrees_with_the_results_files():
    C = _common()
    assert C.render_readme(write=False), (
        "apps/benchmarks/README.md does not match apps/benchmarks/results/*.md: run python apps/benchmarks/render.py"
    )
    readme = C.README.read_text(encoding="utf-8")
    for path in sorted(C.RESULTS_DIR.glob("*.md")):
        assert f"(results/{path.name})" in readme
        for table in C.parse_markdown_tables(path.read_text(encoding="utf-8")):
            for row in table[1:]:
                assert _row_in(readme, row), (path.name, row)


def _row_in(text, row):
    return any([c.strip() for c in line.strip().strip("|").split("|")] == row for line in text.splitlines())


def test_render_says_which_tables_have_an_aa_control(tmp_path):
    C = _common()
    results = tmp_path / "results"
    results.mkdir()
    (results / "a.md").write_text(
        "# run A\n\n- Date: today\n\n## Timed with a control\n\nCommand: `python x.py`\n\n"
        + C.markdown_table(["model", "ours/keras", "A/A keras/keras"], [["m", "0.990", "1.020"], ["n", "1.010", "0.970"]])
        + "\n\n## Timed without\n\nCommand: `python y.py`\n\n"
        + C.markdown_table(["model", "img/s", "ratio"], [["m", "10.0", "1.100"]])
        + "\n\n## Counted\n\n" + C.markdown_table(["model", "ops"], [["m", "12"]]) + "\n",
        encoding="utf-8")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n\n{C.BEGIN}\nstale\n{C.END}\n\ntail\n", encoding="utf-8")
    assert C.render_readme(readme, results) is False  # it was stale: rewritten
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("intro\n") and text.endswith("\ntail\n") and "stale" not in text
    assert "A/A control: two identical candidates gave 0.970-1.020 (up to 3.0% apart)" in text
    assert text.count("No A/A control in this table") == 1  # the timed table without one; op counts get no line
    assert "Command: `python y.py`" in text and "#### Counted" in text
    assert C.render_readme(readme, results) is True  # now up to date
    readme.write_text("no markers\n", encoding="utf-8")
    with pytest.raises(ValueError, match="markers"):
        C.render_readme(readme, results)


def test_an_aa_control_given_as_a_row_is_recognised():
    # deploy.py's tables carry their control as a row ("keras export (A/A)"), not as a column.
    C = _common()
    header = ["model", "candidate", "p50 ms", "ratio", "CPU ratio"]
    with_row = [header, ["m", "keras export", "10", "1.000", "1.000"], ["m", "keras export (A/A)", "11", "1.090", "0.960"],
                ["m", "ours", "9", "0.900", "0.910"]]
    assert C._aa_line(with_row).startswith("A/A control: two identical candidates gave 0.960-1.090")
    assert C._aa_line([header, *with_row[1:2], with_row[3]]).startswith("No A/A control in this table")


def test_trained_like_gives_seeded_nonzero_biases_and_batch_norm_statistics():
    import keras
    import numpy as np

    def build():
        inputs = keras.Input((8, 8, 3))
        x = keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3, use_bias=False)(inputs))
        return keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))

    C = _common()
    first, second = C.trained_like(build(), seed=3), C.trained_like(build(), seed=3)
    values = {w.path.rsplit("/", 1)[-1]: np.asarray(w) for w in first.weights}
    assert np.all(values["bias"] != 0) and np.all(values["beta"] != 0) and np.all(values["moving_mean"] != 0)
    assert np.all(values["gamma"] != 1) and np.all(values["moving_variance"] > 0.4)
    kernels = [np.asarray(w) for w in first.weights if w.path.endswith("kernel")]
    assert all(np.any(k != 0) for k in kernels)  # kernels keep their initialisation
    for a, b in zip(first.weights, second.weights):
        if not a.path.endswith("kernel"):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # the same seed, the same statistics
