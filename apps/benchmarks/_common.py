"""Shared helpers of the benchmarks: machine description, interleaved timing, markdown tables.

Every benchmark reports a *ratio* against a reference measured in the same process, with the
measurements interleaved (round 1: A then B, round 2: B then A, ...) and summarised by medians,
so that a machine shared with other work (the noise) hits both sides alike. Absolute numbers
are printed too, but only the ratios are comparable between machines or runs.

Nothing here imports TensorFlow at module import time except `machine_info` (lazily), so the
table helpers are cheap to test.
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RESULTS_DIR = HERE / "results"
README = HERE / "README.md"

# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


def median(values):
    values = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(values) if values else float("nan")


def percentile(values, q):
    """The ``q``-th percentile (0..100) with linear interpolation (numpy's default)."""
    values = sorted(v for v in values if v is not None and not math.isnan(v))
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    pos = (len(values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def verdict(ratio, low, high, target=1.0, control=None):
    """Classify a ratio against its target, using the run's own noise as the tolerance.

    ``ok``: the median ratio meets the target. ``noise``: it misses, but the target lies inside
    the spread of the per-round ratios (min..max), or -- with ``control``, the ratio two
    identical models got in the same run (an A/A test) -- the miss is no larger than the A/A
    deviation ``|1 - control|``; the run cannot tell the two apart. ``BELOW``: a real miss.
    """
    if any(v is None or math.isnan(v) for v in (ratio, low, high)):
        return "n/a"
    if ratio >= target:
        return "ok"
    if high >= target:
        return "noise"
    if control is not None and not math.isnan(control) and target - ratio <= abs(1.0 - control):
        return "noise"
    return "BELOW"


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------


def interleave(candidates, *, rounds, calls, warmup=1, min_time=0.0, before_round=None):
    """Time every candidate ``rounds`` times, alternating the order from round to round.

    Both wall seconds and process CPU seconds (all threads) are recorded: CPU time is far less
    sensitive than wall time to other processes competing for the cores, so the benchmarks
    report a CPU-time ratio beside the wall-clock one on a shared machine.

    Args:
        candidates: ``{name: fn}``; ``fn()`` runs one step and blocks until its result exists.
        rounds: number of rounds; in each round every candidate runs ``calls`` steps back to
            back. Even rounds go in the given order, odd rounds in reverse.
        calls: steps per candidate per round (at least).
        warmup: untimed steps per candidate before the first round (tracing, compilation).
        min_time: keep stepping a candidate within a round until this many wall seconds have
            passed (so that fast and slow candidates are both timed over a useful window).
        before_round: optional ``{name: fn}`` run untimed before a candidate's turn in each
            round (e.g. to start a fresh tf.data iterator and take its first batch).

    Returns:
        ``{name: {"wall": [s per step, one per round], "cpu": [CPU s per step, ...]}}``.
    """
    names = list(candidates)
    before_round = before_round or {}
    for name in names:
        if name in before_round:
            before_round[name]()
        for _ in range(warmup):
            candidates[name]()
    out = {name: {"wall": [], "cpu": []} for name in names}
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            if name in before_round:
                before_round[name]()
            fn = candidates[name]
            cpu = time.process_time()
            start = time.perf_counter()
            n = 0
            while n < calls or time.perf_counter() - start < min_time:
                fn()
                n += 1
            out[name]["wall"].append((time.perf_counter() - start) / n)
            out[name]["cpu"].append((time.process_time() - cpu) / n)
    return out


def interleave_latency(candidates, *, rounds, calls, warmup=2, min_time=0.0):
    """Like `interleave` but records every call's latency: ``{name: [[s, ...] per round]}``.

    In each round a candidate makes at least ``calls`` calls and goes on until ``min_time``
    wall seconds have passed.
    """
    names = list(candidates)
    for name in names:
        for _ in range(warmup):
            candidates[name]()
    out = {name: [] for name in names}
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            fn = candidates[name]
            samples = []
            out[name].append(samples)
            begin = time.perf_counter()
            n = 0
            while n < calls or time.perf_counter() - begin < min_time:
                start = time.perf_counter()
                fn()
                samples.append(time.perf_counter() - start)
                n += 1
    return out


def paired_ratios(numerator, denominator):
    """Per-round ratios ``numerator[r] / denominator[r]`` (e.g. ours/keras images per second)."""
    return [a / b for a, b in zip(numerator, denominator) if b]


# --------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------


def fmt(value, digits=1):
    """A number for a table: thousands separators, ``digits`` decimals; "n/a" for NaN/None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def fmt_ratio(value):
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def fmt_range(low, high):
    if any(v is None or math.isnan(v) for v in (low, high)):
        return "n/a"
    return f"{low:.2f}-{high:.2f}"


def markdown_table(headers, rows, right=None):
    """A GitHub markdown table; ``right``: indices of right-aligned (numeric) columns."""
    right = set(range(1, len(headers))) if right is None else set(right)
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(row):
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        return "| " + " | ".join(parts) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if i in right else ("-" * (w + 2)) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(headers), sep] + [line(r) for r in cells])


def parse_markdown_tables(text):
    """The markdown tables in ``text`` as lists of rows (lists of cell strings), header first."""
    tables, current = [], []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("|") and line.endswith("|"):
            cells = [c.strip() for c in line[1:-1].split("|")]
            if all(set(c) <= set("-: ") and c for c in cells):
                continue  # the separator line
            current.append(cells)
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return tables


# --------------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------------


def quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def trained_like(model, seed=0):
    """Give ``model`` the statistics of a trained network: seeded non-zero biases and
    BatchNormalization parameters (gamma, beta, moving mean and variance); returns ``model``.

    A freshly initialised network has zero biases, beta = 0 and mean = 0, so a BatchNormalization
    folded into its convolution leaves a bias add of zeros. TensorFlow's grappler deletes an add of
    a constant zero, and with it the convolution + bias + ReLU (and residual add) fusion that a
    trained network gets: a benchmark of random weights would time a graph no user serves.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    for weight in model.weights:  # nested layers' too; each named by its role (".../moving_mean")
        kind = weight.path.rsplit("/", 1)[-1]
        if kind in ("gamma", "moving_variance"):
            value = rng.uniform(0.5, 1.5, weight.shape)
        elif kind in ("beta", "moving_mean", "bias"):
            value = rng.normal(0.0, 0.1, weight.shape)
        else:
            continue
        weight.assign(value.astype(weight.dtype))
    return model


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info():
    """Facts about this machine and software stack, for the header of a results file."""
    import keras
    import numpy as np
    import tensorflow as tf

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count()
    gpus = tf.config.list_physical_devices("GPU")
    gpu_names = []
    for gpu in gpus:
        try:
            gpu_names.append(tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name))
        except Exception:  # noqa: BLE001 - best effort description
            gpu_names.append(gpu.name)
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    mem = None
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    mem = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    try:
        import keras_cnn

        version = keras_cnn.__version__
    except Exception:  # noqa: BLE001
        version = "?"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": cores,
        "memory_gib": None if mem is None else round(mem, 1),
        "gpus": gpu_names,
        "load_average": None if load is None else tuple(round(v, 2) for v in load),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "keras_cnn": version,
        "platform": platform.platform(),
    }


def machine_lines(info):
    """The machine description as markdown bullet lines."""
    gpus = ", ".join(info["gpus"]) if info["gpus"] else "none (CPU only)"
    load = info["load_average"]
    return [
        f"- Date: {info['date']}",
        f"- CPU: {info['cpu']}, {info['cores']} cores available to the process"
        + (f", {info['memory_gib']} GiB RAM" if info["memory_gib"] else ""),
        f"- Accelerator: {gpus}",
        f"- Load average at start (1/5/15 min): {', '.join(str(v) for v in load)}" if load else "- Load average: n/a",
        f"- Software: Python {info['python']}, TensorFlow {info['tensorflow']}, Keras {info['keras']}, "
        f"NumPy {info['numpy']}, keras_cnn {info['keras_cnn']} ({info['platform']})",
    ]


def command_line():
    """The command that started this process, as a shell line."""
    import shlex

    script = os.path.relpath(sys.argv[0]) if sys.argv and sys.argv[0] else "?"
    return " ".join(["python", shlex.quote(script)] + [shlex.quote(a) for a in sys.argv[1:]])


def write_atomic(path, text):
    """Write ``text`` to ``path`` through a temporary file and a rename (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def in_results(path):
    """True when ``path`` is a results file (directly in apps/benchmarks/results/)."""
    return Path(path).resolve().parent == RESULTS_DIR.resolve()


def emit(text, output=None):
    """Print ``text`` and, with ``output``, write it there (temporary file, then rename).

    A file written into ``results/`` regenerates the benchmark README's tables (`render_readme`).
    """
    print(text, flush=True)
    if output:
        write_atomic(output, text + "\n")
        if in_results(output):
            render_readme()


def nvidia_smi():
    """``{name, memory.total, driver_version}`` of the first GPU from ``nvidia-smi``; {} without it."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return {}
    fields = ("name", "memory.total", "driver_version")
    try:
        out = subprocess.run([exe, f"--query-gpu={','.join(fields)}", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    first = out.strip().splitlines()[0] if out.strip() else ""
    values = [v.strip() for v in first.split(",")]
    return dict(zip(fields, values)) if len(values) == len(fields) else {}


def add_common_arguments(parser):
    parser.add_argument("--quick", action="store_true", help="tiny settings (smoke test; numbers meaningless)")
    parser.add_argument("--output", default=None, metavar="FILE", help="also write the markdown report to FILE")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def header(title, info=None):
    """``## title`` plus the command line (and the machine when ``info`` is given)."""
    lines = [f"## {title}", "", f"Command: `{command_line()}`", ""]
    if info is not None:
        lines += machine_lines(info) + [""]
    return lines


def set_threads(threads):
    """Pin TensorFlow's intra/inter-op thread pools (call before any TF op runs); None = TF default."""
    if not threads:
        return
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


# --------------------------------------------------------------------------------------------
# The benchmark README's tables, generated from the results files
# --------------------------------------------------------------------------------------------

BEGIN = "<!-- results:begin: generated from results/*.md by render_readme() (python apps/benchmarks/render.py); do not edit -->"
END = "<!-- results:end -->"


TIMED = ("img/s", "images/s", " ms", "ratio", "per-round", "GFLOP", "seconds")


def _aa_line(table):
    """What a timing table's A/A column allows (its noise floor), or that it holds no claims; "" otherwise."""
    header = table[0]
    if not any(word in cell for cell in header for word in (*TIMED, "A/A")):
        return ""  # not a timing table (e.g. op counts, the environment)
    columns = [i for i, h in enumerate(header) if "A/A" in h]
    values = []
    for row in table[1:]:
        for i in columns:
            try:
                values.append(float(row[i].replace(",", "")))
            except (ValueError, IndexError):
                pass
    # A table whose A/A control is a row ("keras export (A/A)") rather than a column: its ratios.
    ratios = [i for i, h in enumerate(header) if h.strip() in ("ratio", "CPU ratio")]
    for row in table[1:]:
        if any("(A/A)" in cell for cell in row):
            for i in ratios:
                try:
                    values.append(float(row[i].replace(",", "")))
                except (ValueError, IndexError):
                    pass
    if not values:
        return ("No A/A control in this table: its figures are measurements of one run, not claims "
                "(a ratio is a claim only beside the ratio two identical candidates got in the same run).")
    spread = max(abs(1.0 - v) for v in values)
    return (f"A/A control: two identical candidates gave {min(values):.3f}-{max(values):.3f} "
            f"(up to {spread:.1%} apart); a ratio within that distance of its target is parity, not a result.")


def _table_blocks(text):
    """The Markdown tables of ``text`` as they are written (lists of consecutive ``|`` lines)."""
    blocks, current = [], []
    for line in text.splitlines() + [""]:
        if line.strip().startswith("|"):
            current.append(line.rstrip())
        elif current:
            blocks.append(current)
            current = []
    return blocks


def _render_results_file(path):
    """One results file as README text: its header, then each section's command, tables and A/A line."""
    text = path.read_text(encoding="utf-8")
    title = text.splitlines()[0].lstrip("# ").strip() if text.strip() else path.name
    out = [f"### {title}", "", f"From [results/{path.name}](results/{path.name}).", ""]
    chunks = re.split(r"^## ", text, flags=re.M)
    head = "\n".join(chunks[0].splitlines()[1:]).strip()
    if head:
        out += [head, ""]
    for chunk in chunks[1:]:
        lines = chunk.splitlines()
        out += [f"#### {lines[0].strip()}", ""]
        out += [line for line in lines[1:] if line.startswith(("Command:", "Status:"))][:2]
        for block in _table_blocks("\n".join(lines[1:])):
            (table,) = parse_markdown_tables("\n".join(block))
            note = _aa_line(table)
            out += ["", *block] + (["", note] if note else [])
        bullets = [line for line in lines[1:] if line.startswith("- ")]
        out += ["", *bullets] if bullets else []
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def rendered_results(results_dir=RESULTS_DIR):
    """The generated part of the benchmark README (between its markers) for ``results_dir``."""
    files = sorted(Path(results_dir).glob("*.md"))
    if not files:
        return "No results files yet.\n"
    return "\n".join(_render_results_file(p) for p in files)


def render_readme(readme=README, results_dir=RESULTS_DIR, *, write=True):
    """Regenerate the tables of ``readme`` from ``results_dir``; returns True when it was up to date.

    Raises:
        ValueError: ``readme`` lacks the begin/end markers.
    """
    readme = Path(readme)
    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise ValueError(f"{readme} has no generated-tables markers ({BEGIN!r} ... {END!r})")
    before, rest = text.split(BEGIN, 1)
    after = rest.split(END, 1)[1]
    new = before + BEGIN + "\n\n" + rendered_results(results_dir) + "\n" + END + after
    if new != text and write:
        write_atomic(readme, new)
    return new == text
