"""Structure checks: the import graph of keras_cnn has no cycles; training functions stay short.

The graph counts every way one of our modules reaches another: ``import`` statements at the top and
inside functions, and imports by name string -- ``importlib.import_module("keras_cnn.x")``,
``__import__``, a ``"keras_cnn.x:attr"`` string such as a spec's ``builder_path``, and an f-string
``f"keras_cnn.x.{name}"`` (an edge to every module under ``keras_cnn.x``). Subpackages (and top-level
modules) form no cycle: layers <- models <- weights <- transfer/training/explain <- tuning/export
<- commands <- cli.
"""

import ast
import pathlib
import re
import sys

import pytest

import keras_cnn
from tests.test_code_limits import lines  # a function's lines without its docstring

ROOT = pathlib.Path(keras_cnn.__file__).parent

KNOWN_CYCLES = set()  # none: keep it so
PIPELINE = ("keras_cnn.training", "keras_cnn.tuning", "keras_cnn.transfer", "keras_cnn.commands", "keras_cnn.data",
            "keras_cnn.cli")

#: The only modules that import our own modules by name string, and why: each is lazy so that
#: ``import keras_cnn`` and ``keras-cnn --help`` do not import Keras / TensorFlow.
IMPORTS_BY_NAME = {
    "keras_cnn": "the package facade: `keras_cnn.weights` etc. imported on first attribute access",
    "keras_cnn.cli": "a sub-command's module imported once it is chosen",
    "keras_cnn.models": "a family module imported when one of its networks is first built",
    "keras_cnn.models.specs": "each ModelSpec's builder_path, 'module:function', imported on first build",
    "keras_cnn._registration": "the modules that register with Keras (and the weights loader) once Keras loads",
}

_MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+(:[\w.]+)?")


def _modules(root=ROOT, package="keras_cnn"):
    mods = {}
    for path in root.rglob("*.py"):
        parts = (package, *path.relative_to(root).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    return mods


def _resolve(target, mods):
    """The module ``target`` ("pkg.mod", "pkg.mod.attr" or "pkg.mod:attr") lives in, or None."""
    target = target.partition(":")[0]
    while target and target not in mods:
        target = target.rpartition(".")[0]
    return target or None


def _string_targets(node, mods, package):
    """Modules a string names: a constant "pkg.x[:attr]", or an f-string with the constant head "pkg.x."."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_NAME.fullmatch(node.value):
        if node.value.startswith(package + "."):
            found = _resolve(node.value, mods)
            return {found} if found and found != package else set()
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        head = str(node.values[0].value)
        if head.startswith(package + ".") and head.endswith(".") and _MODULE_NAME.fullmatch(head[:-1]):
            return {m for m in mods if m.startswith(head)}
    return set()


def _import_targets(node, package_of, mods):
    """Modules an ``import`` / ``from ... import`` statement names."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names}
    if node.level:
        base = package_of.split(".")[: len(package_of.split(".")) - node.level + 1]
        module = ".".join(base + ([node.module] if node.module else []))
    else:
        module = node.module or ""
    return {f"{module}.{a.name}" if f"{module}.{a.name}" in mods else module for a in node.names}


#: Calls whose string argument names a module without importing it (a logger's name).
_NOT_IMPORTS = ("getLogger",)


def _is_call_to(node, names):
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    return (func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)) in names


def module_imports(root=ROOT, package="keras_cnn"):
    """``{module: {target: kind}}``: the package's modules each module reaches, and how.

    ``kind`` is "import" (a statement, at the top or inside a function) or "string" (by name).
    """
    mods = _modules(root, package)
    graph = {}
    for name, path in mods.items():
        package_of = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        edges = {}
        tree = ast.parse(path.read_text())
        names_not_imports = {id(arg) for call in ast.walk(tree) if _is_call_to(call, _NOT_IMPORTS) for arg in call.args}
        for node in ast.walk(tree):
            if id(node) in names_not_imports:
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _import_targets(node, package_of, mods):
                    found = _resolve(target, mods) if target.split(".")[0] == package else None
                    if found and found != name:
                        edges[found] = "import"
            else:
                for found in _string_targets(node, mods, package):
                    if found != name:
                        edges.setdefault(found, "string")
        graph[name] = edges
    return graph


def import_graph(root=ROOT, package="keras_cnn", strings=False):
    """``{module: {modules it imports}}`` by statements anywhere (and by name string if ``strings``)."""
    return {
        name: {t for t, kind in edges.items() if strings or kind == "import"}
        for name, edges in module_imports(root, package).items()
    }


def subpackage_graph(root=ROOT, package="keras_cnn"):
    """The graph between subpackages and top-level modules, counting every kind of import.

    An import of the package itself is left out: every module runs after the package's
    ``__init__``, so reading ``keras_cnn.__version__`` adds no order, and the ``__init__``'s lazy
    attribute facade is the top of the graph.
    """
    def unit(module):
        return ".".join(module.split(".")[:2])

    graph = {}
    for name, targets in import_graph(root, package, strings=True).items():
        edges = graph.setdefault(unit(name), set())
        edges.update(unit(t) for t in targets if t != package and unit(t) != unit(name))
    return graph


def reachable(graph, start):
    """Every node ``start`` reaches (not itself, unless through a cycle)."""
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def cycles(graph):
    """The strongly connected components with more than one module (Tarjan)."""
    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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


# pkg.b.n imports pkg.a.m at the top; pkg.a.m reaches back in one of these ways.
_PLANTED = {
    "function-level import": "def f():\n    from pkg.b import n\n",
    "import_module": "import importlib\n\n\ndef f():\n    return importlib.import_module('pkg.b.n')\n",
    "__import__": "def f():\n    return __import__('pkg.b.n')\n",
    "module:function string": "import logging\n\nlogger = logging.getLogger('pkg.b.n')\nBUILDER = 'pkg.b.n:build'\n",
    "f-string prefix": "import importlib\n\n\ndef f(x):\n    return importlib.import_module(f'pkg.b.{x}')\n",
}


@pytest.mark.parametrize("how", list(_PLANTED))
def test_a_planted_cycle_between_subpackages_is_found(tmp_path, how):
    for folder in ("pkg", "pkg/a", "pkg/b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "pkg/b/n.py").write_text("from pkg.a import m\n\n\ndef build():\n    return m\n")
    (tmp_path / "pkg/a/m.py").write_text(
        '"""Mentions pkg.b.n in prose only, and `pkg.b.n:build`."""\nimport logging\n\nlog = logging.getLogger("pkg.b")\n'
    )
    assert cycles(subpackage_graph(tmp_path / "pkg", "pkg")) == []
    (tmp_path / "pkg/a/m.py").write_text(_PLANTED[how])
    assert cycles(subpackage_graph(tmp_path / "pkg", "pkg")) == [("pkg.a", "pkg.b")]
    assert module_imports(tmp_path / "pkg", "pkg")["pkg.a.m"] == {
        "pkg.b.n": "import" if how == "function-level import" else "string"
    }


def test_no_import_cycle_goes_through_the_run_pipeline():
    graph = import_graph()
    assert "keras_cnn.training.pipeline" in graph["keras_cnn.training.trainer"]
    assert "keras_cnn.training.pipeline" in graph["keras_cnn.training.distributed"]
    assert [c for c in cycles(graph) if any(m.startswith(PIPELINE) for m in c)] == []


def test_the_import_graph_of_keras_cnn_has_no_new_cycles():
    assert set(cycles(import_graph())) - KNOWN_CYCLES == set()


def test_no_cycle_between_subpackages_counting_function_and_string_imports():
    graph = subpackage_graph()
    assert "keras_cnn.weights" in graph["keras_cnn._registration"]  # by name string: followed
    assert "keras_cnn.models" in graph["keras_cnn.weights"]
    assert cycles(graph) == []


def test_layers_models_weights_are_layered():
    graph = subpackage_graph()
    # The builders reach the weights loader installed at import of keras_cnn.weights, never by import.
    assert "keras_cnn.weights" not in reachable(graph, "keras_cnn.models")
    assert {"keras_cnn.models", "keras_cnn.weights"}.isdisjoint(reachable(graph, "keras_cnn.layers"))
    above = {"keras_cnn.training", "keras_cnn.transfer", "keras_cnn.tuning", "keras_cnn.export", "keras_cnn.explain",
             "keras_cnn.commands", "keras_cnn.cli", "keras_cnn.applications", "keras_cnn.analysis"}
    assert above.isdisjoint(reachable(graph, "keras_cnn.weights"))


def test_imports_by_name_string_are_only_the_lazy_ones():
    by_name = {
        name: sorted(t for t, kind in edges.items() if kind == "string")
        for name, edges in module_imports().items()
        if "string" in edges.values()
    }
    assert set(by_name) <= set(IMPORTS_BY_NAME), {m: by_name[m] for m in set(by_name) - set(IMPORTS_BY_NAME)}
    assert "keras_cnn.weights" in by_name["keras_cnn._registration"]


def test_no_function_in_keras_cnn_training_is_over_80_lines():
    long = []
    for path in sorted((ROOT / "training").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and lines(node) > 80:
                long.append(f"{path.name}:{node.name} ({lines(node)} lines)")
    assert long == []
