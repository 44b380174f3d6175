"""Every `keras-cnn ...` command in README.md and apps/*/README.md works as written.

The commands are extracted from the fenced code blocks and from inline code spans. Each is parsed
by the real argument parser (`keras_cnn.cli.build_parser`); the cheap ones then run for real in a
temporary directory, training ones with tiny settings appended (later flags win in argparse), in
README order so that ``evaluate runs/lenet5`` finds the run that ``train ... --out runs/lenet5``
wrote. Commands that need a network, a TF Serving server, a cluster, ImageNet weights or an hour
are parsed only; `RUN_AS_WRITTEN`/`RUN_TINY` say which run.

Template spans (``keras-cnn train MODEL ... --strategy default|mirrored|multi_worker``) are
expanded: ``...`` dropped, upper-case placeholders filled in, each ``a|b`` alternative and each
``[optional part]`` parsed.
"""

import itertools
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from keras_cnn import cli

ROOT = Path(__file__).resolve().parents[1]
READMES = [ROOT / "README.md", *sorted((ROOT / "apps").glob("*/README.md"))]

_COMMAND = re.compile(r"^(?:[A-Z_][A-Z0-9_]*=\S+\s+)*(?:\S*/)?keras-cnn(?:\s|$)")
# Quoted output ("keras-cnn predict: error: ...") is not a command.
_OUTPUT = re.compile(r"^keras-cnn(?: [a-z_-]+)?: ")
SAMPLE = "runs/demo/samples/digit1_test000.png"  # one of the held-out digits `keras-cnn demo` writes
PLACEHOLDERS = {"MODEL": "lenet5", "CHIEF_IP": "127.0.0.1"}


def _commands(path):
    """(line number, command text) for every keras-cnn command line of a Markdown file."""
    found, text, fenced = [], path.read_text(), False
    prose = []  # (line number, line) outside fences, for inline spans across line breaks
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            for part in line.split("&&"):
                part = part.strip()
                if _COMMAND.match(part):
                    found.append((number, part))
        else:
            prose.append((number, line))
    joined, starts, offset = "", [], 0
    for number, line in prose:
        starts.append((offset, number))
        joined += line + "\n"
        offset += len(line) + 1
    for match in re.finditer(r"`([^`]+)`", joined):
        span = " ".join(match.group(1).split())
        if _COMMAND.match(span) and not _OUTPUT.match(span):
            number = max(n for start, n in starts if start <= match.start())
            found.append((number, span))
    return found


def _argvs(command):
    """The argv lists a README command stands for (one, or several for a template)."""
    tokens = shlex.split(command, comments=True)
    while tokens and re.match(r"^[A-Z_][A-Z0-9_]*=", tokens[0]):
        tokens.pop(0)  # environment assignments, e.g. CUDA_VISIBLE_DEVICES=0,1
    assert tokens and tokens[0].endswith("keras-cnn"), command
    tokens = [PLACEHOLDERS.get(t, t) for t in tokens[1:] if t != "..."]
    text = " ".join(shlex.quote(t) for t in tokens)
    optional = re.findall(r"\\?\[([^\]]*)\\?\]", " ".join(tokens))
    variants = [" ".join(tokens)]
    for part in optional:  # "[--version 2]": with and without
        variants = [v for base in variants for v in (base.replace(f"[{part}]", part), base.replace(f"[{part}]", ""))]
    argvs = []
    for variant in variants:
        words = variant.split()
        choices = [w.split("|") if "|" in w and not w.startswith("http") else [w] for w in words]
        argvs.extend([list(c) for c in itertools.product(*choices)])
    return argvs or [shlex.split(text)]


ALL = [(path.relative_to(ROOT).as_posix(), number, command) for path in READMES for number, command in _commands(path)]


def test_the_readmes_have_commands():
    assert len([1 for where, _, _ in ALL if where == "README.md"]) >= 25
    assert {where for where, _, _ in ALL} >= {"README.md", "apps/serving/README.md", "apps/distributed/README.md"}
    subcommands = {argv[0] for _, _, c in ALL for argv in _argvs(c) if argv}
    assert {"demo", "train", "evaluate", "predict", "export", "verify-export", "summary", "cost", "list",
            "transfer", "tune"} <= subcommands


@pytest.mark.parametrize("where, line, command", ALL, ids=[f"{w}:{n}" for w, n, _ in ALL])
def test_readme_command_parses(where, line, command):
    parser = cli.build_parser()
    for argv in _argvs(command):
        if not argv:  # `keras-cnn` alone names the program
            continue
        if len(argv) == 1 and argv[0] not in ("list", "demo", "cost"):
            # a bare `keras-cnn CMD` in prose names the command: it must exist
            argv = [argv[0], "--help"]
            with pytest.raises(SystemExit) as stop:
                parser.parse_args(argv)
            assert stop.value.code == 0, f"{where}:{line}: unknown command in {command!r}"
            continue
        try:
            args = parser.parse_args(argv)
        except SystemExit as stop:  # argparse printed why (or the help / version asked for)
            if stop.code == 0 and ("--help" in argv or "--version" in argv):
                continue
            pytest.fail(f"{where}:{line}: {command!r} is refused by the parser (exit {stop.code})")
        assert callable(args.func)


# Commands run exactly as written, and training commands run with these settings appended.
RUN_AS_WRITTEN = ("summary", "cost", "list", "evaluate", "export", "predict")
TINY = {"train": ["--epochs", "1", "--max-examples", "120", "--batch-size", "16", "--no-export"]}


def _needs_the_demo(argv):
    """Commands on the demo's run or its LiteRT/ONNX exports: tests/test_export_formats.py runs those."""
    return any(a.startswith(("runs/demo", "exports/")) and not a.startswith("runs/demo/samples/") for a in argv)


def _runnable(argv):
    if argv[0] == "train":
        # a cluster run (--strategy, --engine ray): tests/test_distributed*.py, tests/test_ray_cluster.py
        return ("--data" in argv and argv[argv.index("--data") + 1] == "digits" and "--strategy" not in argv
                and "--engine" not in argv)
    if argv[0] == "predict":
        return "--server" not in argv and "--grpc" not in argv and not _needs_the_demo(argv)
    if argv[0] == "export":  # re-exporting over a version: covered by tests/test_export.py
        return "--version" not in argv and not _needs_the_demo(argv)
    return argv[0] in RUN_AS_WRITTEN


@pytest.mark.slow
def test_readme_commands_run(tmp_path, monkeypatch, capsys):
    """README.md's cheap commands for real, in order: the zoo, the cost tables, training on digits
    (tiny), evaluate / predict / export of the run it wrote."""
    from PIL import Image
    from sklearn.datasets import load_digits

    monkeypatch.chdir(tmp_path)
    digits = load_digits()
    Path(SAMPLE).parent.mkdir(parents=True)
    Image.fromarray((digits.images[0] * 255 / 16).astype(np.uint8)).resize((32, 32)).save(SAMPLE)
    ran = []
    for where, line, command in ALL:
        if where != "README.md":
            continue
        for argv in _argvs(command):
            if not argv or not _runnable(argv):
                continue
            full = argv + TINY.get(argv[0], [])
            code = cli.main(full)
            out, err = capsys.readouterr()
            assert code == 0, f"README.md:{line}: {' '.join(full)} exited {code}: {err[-2000:]}"
            ran.append((argv[0], out))
    commands = [name for name, _ in ran]
    assert commands.count("train") == 2 and {"summary", "cost", "list", "evaluate", "predict", "export"} <= set(commands)
    assert Path("cost.png").stat().st_size > 0
    assert Path("runs/lenet5/model.keras").is_file() and Path("runs/resnet18/model.keras").is_file()
    predicted = [out for name, out in ran if name == "predict"]
    assert predicted and all("digit1_test000.png" in out for out in predicted)
