"""apps/benchmarks/gpu_check.py: the smoke run writes a table with every row and a JSON that parses.

The smoke run is the same code as the GPU run at tiny sizes on the CPU, so the script cannot rot
while no GPU is around. Figures are not asserted (speed goals are judged by the script on a GPU).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "apps" / "benchmarks" / "gpu_check.py"


def _module():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(SCRIPT.parent))


def _run(*args, timeout=120):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=timeout)


def _tables(text):
    """``{section title: rows}`` of the report's Markdown (rows as lists of cells, header dropped)."""
    out, title = {}, None
    for line in text.splitlines():
        if line.startswith("## "):
            title = line[3:].split(". ", 1)[1]
            out[title] = []
        elif title and line.startswith("|") and not set(line) <= set("|-: "):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cells[0] not in ("measurement", "item"):
                out[title].append(cells)
    return out


def _check_every_row(module, report_md, plan):
    tables = _tables(report_md)
    assert list(tables) == list(module.TITLES.values())
    for name, title in module.TITLES.items():
        expected = [label for _, label in module.planned_rows(name, plan)]
        assert [row[0] for row in tables[title]] == expected, title
    return tables


@pytest.mark.slow  # about a minute on 2 cores: in the README's test command, so the script cannot rot
@pytest.mark.timeout(2400)
def test_smoke_run_writes_every_row_and_its_json(tmp_path):
    module = _module()
    out = tmp_path / "gpu.md"
    proc = _run("--smoke", "--out", str(out), timeout=2300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    tables = _check_every_row(module, out.read_text(encoding="utf-8"), module.make_plan(True))
    data = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert data["state"] == "complete" and data["plan"] == "smoke"
    assert [s["name"] for s in data["sections"]] == list(module.SECTIONS)
    for section in data["sections"]:
        assert section["status"] == "done", (section["name"], section["status"])
        for row in section["rows"]:  # every row measured: nothing failed, skipped or missing
            assert not row["value"].startswith(("failed", "skipped", "not measured")), row
    # On the CPU the goals are stated but not judged.
    goals = [row for rows in tables.values() for row in rows if len(row) == 8 and row[6]]
    assert goals and all(row[7] == "not judged (no GPU)" for row in goals)
    env = {row[0]: row[1] for row in tables["Environment"]}
    assert env["GPU"] == "none visible" and env["TensorFlow"][0].isdigit()


@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.timeout(300)
def test_a_section_over_budget_is_recorded_and_the_table_keeps_every_row(tmp_path):
    module = _module()
    out = tmp_path / "gpu.md"
    # 10 s for two sections (5 s each), where the smoke plan's throughput section alone needs more
    # (TensorFlow's start-up, nine VGG-16 builds): it skips the units that no longer fit, or is killed;
    # the input section runs, is stopped or never starts. Either way the run ends in time, exits 1
    # naming what was not measured, and lists every row.
    proc = _run("--smoke", "--sections", "throughput,input", "--budget", "10", "--out", str(out), timeout=280)
    assert proc.returncode == 1 and "gpu_check: not every row measured in: " in proc.stderr, \
        proc.stdout[-3000:] + proc.stderr[-3000:]
    text = out.read_text(encoding="utf-8")
    _check_every_row(module, text, module.make_plan(True))
    assert "state: complete" in text  # the run itself ended normally, within its budget
    data = {s["name"]: s for s in json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))["sections"]}
    assert data["environment"]["status"] == "not run: not in --sections"
    statuses = [data[name]["status"] for name in ("throughput", "input")]
    allowed = ("timed out after", "stopped after", "not run: the run's budget is spent")
    assert all(st == "done" or st.startswith(allowed) for st in statuses), statuses
    values = [r["value"] for name in ("throughput", "input") for r in data[name]["rows"]]
    assert any(v.startswith(("not measured: ", "skipped: ")) for v in values), values
    assert (data["throughput"]["seconds"] or 0) <= 5 + 15  # its budget and the 10 s grace before the kill


def test_report_lists_every_planned_row_before_anything_ran(tmp_path):
    module = _module()
    plan = module.make_plan(False)
    budgets = dict(module.BUDGETS)
    report = module.Report(tmp_path / "gpu.md", plan, "gpu", 450, budgets, "python apps/benchmarks/gpu_check.py")
    report.write()
    text = (tmp_path / "gpu.md").read_text(encoding="utf-8")
    _check_every_row(module, text, plan)
    assert "not measured: not run yet" in text and "state: running" in text
    rows = [label for _, label in module.planned_rows("throughput", plan)]
    # The GPU plan: every network at every setting, ResNet-50's three first, and the two speed-ups.
    assert len(rows) == 3 * 3 + 2 and all("resnet50" in r for r in rows[:3])
    assert json.loads((tmp_path / "gpu.json").read_text(encoding="utf-8"))["sections"][0]["name"] == "environment"


@pytest.mark.parametrize("args, message", [
    (["--smoke", "--out", "apps/benchmarks/results/gpu.md"], "--out: a --smoke run's figures are not results"),
    (["--sections", "throughput,nope"], "--sections: unknown ['nope']"),
    (["--models", "alexnet"], "--models must name networks of this plan's throughput section"),
    (["--out", "gpu.txt"], "--out must name a .md file"),
    (["--budget", "0"], "--budget must be a positive number"),
])
def test_bad_arguments_are_refused_in_one_line(args, message):
    proc = _run(*args, timeout=60)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.timeout(300)
def test_sigterm_stops_the_run_promptly_and_leaves_a_partial_table(tmp_path):
    import signal
    import time

    module = _module()
    out = tmp_path / "gpu.md"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--smoke", "--out", str(out)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and not (out.is_file() and "Status: done" in out.read_text(encoding="utf-8")):
            time.sleep(0.5)
        assert out.is_file(), "no table written"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130 and "interrupted; partial table" in stderr, stderr[-2000:]
    text = out.read_text(encoding="utf-8")
    assert "state: interrupted" in text
    _check_every_row(module, text, module.make_plan(True))
    data = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    statuses = [s["status"] for s in data["sections"]]
    assert statuses[0] == "done" and "interrupted" in statuses
    # The worker went with it: nothing rewrites the table afterwards.
    time.sleep(3)
    assert out.read_text(encoding="utf-8") == text
