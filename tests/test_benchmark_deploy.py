"""apps/benchmarks/deploy.py and profile_serving.py in their --quick settings: well-formed tables, numeric ratios."""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "apps" / "benchmarks"


def _run(script, *args, tmp_path):
    out = tmp_path / f"{script}.md"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(BENCH / script), "--quick", *args, "--output", str(out)],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=880)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out.read_text(encoding="utf-8")


def _rows(report, first_header):
    lines = [line for line in report.splitlines() if line.startswith("|")]
    start = next(i for i, line in enumerate(lines) if line.split("|")[1].strip() == first_header)
    rows = []
    for line in lines[start + 2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == first_header:
            break
        rows.append(cells)
    return rows


@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.timeout(900)
def test_deploy_benchmark_times_every_candidate_against_keras_with_an_aa_control(tmp_path):
    readme = tmp_path / "README.md"
    marker = "<!-- deploy.py speed lenet5:32: {} -->"
    readme.write_text(f"# bench\n\n{marker.format('begin')}\nSTALE-BLOCK\n{marker.format('end')}\n")
    report = _run("deploy.py", "--readme", str(readme), tmp_path=tmp_path)
    rows = _rows(report, "model")
    candidates = {row[2] for row in rows}
    assert candidates == {"keras export", "keras export (A/A)", "ours serving graph", "LiteRT float32",
                          "LiteRT float16", "LiteRT int8", "ONNX Runtime"}
    for row in rows:
        ratio, cpu_ratio, diff, size = float(row[4]), float(row[7]), float(row[8]), float(row[9])
        assert math.isfinite(ratio) and ratio > 0 and cpu_ratio > 0 and size > 0
        assert diff < 0.05  # every candidate answers like keras' export (int8 within its quantization)
    assert "- lenet5 32px b1: A/A" in report and "int8 file" in report
    text = readme.read_text()
    assert "STALE-BLOCK" not in text and text.count("deploy.py speed lenet5:32: begin") == 1 and "ONNX Runtime" in text


@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.timeout(900)
def test_profile_lists_kernel_time_per_op_type_for_both_graphs(tmp_path):
    report = _run("profile_serving.py", "--models", "resnet50", tmp_path=tmp_path)
    rows = _rows(report, "op type")
    total = next(row for row in rows if row[0] == "total kernel time")
    assert float(total[1].replace(",", "")) > 0 and float(total[4].replace(",", "")) > 0
    assert "53 BatchNormalizations folded" in report
