"""Run every benchmark with its defaults and write one markdown report (results/cpu.md).

Each benchmark runs in its own process (so dtype policies, XLA caches and memory do not leak
from one to the next) with ``--output`` to a scratch file; the sections are then assembled,
under a header describing the machine (CPU model from /proc/cpuinfo, cores, accelerator,
TensorFlow/Keras versions, date, load average) and the command.

Usage::

    python apps/benchmarks/run_all.py                      # CPU plan -> apps/benchmarks/results/cpu.md
    python apps/benchmarks/run_all.py --plan gpu           # full sizes -> apps/benchmarks/results/gpu_full.md
    python apps/benchmarks/run_all.py --quick --output /tmp/smoke.md
    python apps/benchmarks/run_all.py --only twins,serving

Every figure is a ratio against a reference measured in the same process, interleaved; on a
shared machine absolute images/s move with the load, the ratios much less.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _common as C  # noqa: E402

C.quiet_tensorflow()

# plan -> [(section key, script, arguments)]
PLANS = {
    "cpu": [
        ("twins", "twins.py", ["--graph-check", "--xla", "--image-size", "64", "--batch", "4", "--rounds", "9"]),
        ("twins_real", "twins.py", ["--rounds", "3"]),  # real sizes (224 / 299), batch 8, A/A control
        ("twins_mixed", "twins.py", ["--models", "resnet50", "--mixed-precision", "--no-plain", "--control",
                                     "--rounds", "5", "--steps", "1"]),
        ("pipeline", "pipeline.py", ["--xla"]),
        ("serving", "serving.py", []),
        ("efficiency", "efficiency.py", []),
        ("time_to_accuracy", "time_to_accuracy.py", []),
    ],
    "gpu": [
        ("twins", "twins.py", ["--models", "resnet50,vgg16,inception_v3,resnet101", "--image-size", "224",
                               "--batch", "64", "--steps", "10", "--rounds", "7", "--xla", "--mixed-precision",
                               "--graph-check"]),
        ("pipeline", "pipeline.py", ["--image-size", "224", "--batch", "128", "--models", "resnet18", "--xla"]),
        ("serving", "serving.py", ["--models", "resnet50:224,inception_v3:299", "--batches", "1,32,128"]),
        ("efficiency", "efficiency.py", ["--models", "resnet50:224,vgg16:224,inception_v3:299", "--batch", "64",
                                         "--matmul-size", "8192"]),
        ("efficiency_xla", "efficiency.py", ["--models", "resnet50:224,vgg16:224,inception_v3:299", "--batch", "64",
                                             "--matmul-size", "8192", "--xla"]),
        ("time_to_accuracy", "time_to_accuracy.py", []),
    ],
}


# The results file of each plan (gpu.md is apps/benchmarks/gpu_check.py's).
OUTPUTS = {"cpu": "cpu.md", "gpu": "gpu_full.md"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", choices=sorted(PLANS), default="cpu", help="which set of runs (default cpu)")
    parser.add_argument("--only", default=None, help="comma-separated section keys to run (default all)")
    parser.add_argument("--quick", action="store_true", help="pass --quick to every benchmark (smoke test)")
    parser.add_argument("--output", default=None,
                        help="report file (default apps/benchmarks/results/cpu.md or gpu_full.md; with --quick: "
                             "print only)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed per benchmark (default 1800)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    plan = PLANS[args.plan]
    if args.only:
        keys = [k.strip() for k in args.only.split(",") if k.strip()]
        unknown = [k for k in keys if k not in {key for key, _, _ in plan}]
        if unknown:
            print(f"run_all.py: unknown --only {unknown}; sections: {[k for k, _, _ in plan]}", file=sys.stderr)
            return 2
        plan = [p for p in plan if p[0] in keys]
    output = args.output or (None if args.quick else str(C.RESULTS_DIR / OUTPUTS[args.plan]))
    info = C.machine_info()
    started = time.perf_counter()
    sections, failures = [], []
    with tempfile.TemporaryDirectory(prefix="keras_cnn_bench_") as tmp:
        for key, script, extra in plan:
            out = Path(tmp) / f"{key}.md"
            cmd = [sys.executable, str(HERE / script), *extra, *(["--quick"] if args.quick else []), "--output", str(out)]
            shown = " ".join(["python", f"apps/benchmarks/{script}", *extra, *(["--quick"] if args.quick else [])])
            print(f"\n=== {key}: {shown}", flush=True)
            t0 = time.perf_counter()
            try:
                proc = subprocess.run(cmd, timeout=args.timeout, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True)
                log, rc = proc.stdout, proc.returncode
            except subprocess.TimeoutExpired as err:
                log, rc = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else (err.stdout or ""), "timeout"
            seconds = time.perf_counter() - t0
            print(log[-4000:], flush=True)
            if rc == 0 and out.is_file():
                body = out.read_text(encoding="utf-8").rstrip()
                # The section's own "Command:" line names the scratch --output; show the plain command.
                body = "\n".join(f"Command: `{shown}` ({seconds:.0f} s)" if line.startswith("Command:") else line
                                 for line in body.splitlines())
                sections.append(body)
            else:
                failures.append(key)
                tail = "\n".join(log.strip().splitlines()[-15:])
                sections.append(f"## {key}: FAILED ({rc})\n\nCommand: `{shown}`\n\n```\n{tail}\n```")
    try:
        load_end = tuple(round(v, 2) for v in os.getloadavg())
    except OSError:
        load_end = None
    command = "python apps/benchmarks/run_all.py" + "".join(
        f" {a}" for a in sys.argv[1:]
    )
    lines = [
        f"# keras_cnn benchmarks ({args.plan} plan)",
        "",
        f"Command: `{command}` (total {time.perf_counter() - started:.0f} s)",
        "",
        *C.machine_lines(info),
        f"- Load average at end (1/5/15 min): {', '.join(str(v) for v in load_end)}" if load_end else "",
        "",
        "Every figure is a ratio against a reference measured in the same process, interleaved (alternating order "
        "over rounds, medians). Absolute numbers depend on the machine and on whatever else runs on it; on a shared "
        "machine compare the ratios only, and read a ratio whose per-round band reaches the target as noise.",
        "",
    ]
    report = "\n".join(lines + ["\n\n".join(sections)])
    if output:
        C.emit(report, output)
        print(f"\nwrote {output}")
    else:
        print(report)
    if failures:
        print(f"run_all.py: failed: {failures}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
