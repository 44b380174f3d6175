"""Structure checks: the import graph of keras_cnn has no cycles; training functions stay short."""

import ast
import pathlib
import sys

import keras_cnn

ROOT = pathlib.Path(keras_cnn.__file__).parent

KNOWN_CYCLES = set()  # none: keep it so
PIPELINE = ("keras_cnn.training", "keras_cnn.tuning", "keras_cnn.transfer", "keras_cnn.commands", "keras_cnn.data",
            "keras_cnn.cli")


def _modules():
    mods = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    return mods


def import_graph():
    """``{module: {keras_cnn modules it imports anywhere, lazily inside functions too}}``."""
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                targets.update(f"{module}.{a.name}" if f"{module}.{a.name}" in mods else module for a in node.names)
        resolved = set()
        for target in targets:
            while target and target not in mods:
                target = target.rpartition(".")[0]
            if target and target != name and target.startswith("keras_cnn"):
                resolved.add(target)
        graph[name] = resolved
    return graph


def cycles(graph):
    """The strongly connected components with more than one module (Tarjan)."""
    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(tuple(sorted(component)))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [("a", "b", "c")]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_goes_through_the_run_pipeline():
    graph = import_graph()
    assert "keras_cnn.training.pipeline" in graph["keras_cnn.training.trainer"]
    assert "keras_cnn.training.pipeline" in graph["keras_cnn.training.distributed"]
    assert [c for c in cycles(graph) if any(m.startswith(PIPELINE) for m in c)] == []


def test_the_import_graph_of_keras_cnn_has_no_new_cycles():
    assert set(cycles(import_graph())) - KNOWN_CYCLES == set()


def _code_lines(node):
    body = node.body
    first = body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        if len(body) == 1:
            return 0
        first = body[1]
    return node.end_lineno - first.lineno + 1


def test_no_function_in_keras_cnn_training_is_over_80_lines():
    long = []
    for path in sorted((ROOT / "training").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _code_lines(node) > 80:
                long.append(f"{path.name}:{node.name} ({_code_lines(node)} lines)")
    assert long == []
