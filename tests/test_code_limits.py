"""Size limits on keras_cnn's functions: none longer than 120 lines; none outside keras_cnn/models/
(whose builders keep keras.applications' signature) with more than 12 parameters (a run's
arguments live in a config dataclass, not in copied keyword lists)."""

import ast
import pathlib

import keras_cnn

ROOT = pathlib.Path(keras_cnn.__file__).parent
MAX_LINES = 120
MAX_PARAMS = 12


def _functions():
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield path.relative_to(ROOT.parent), node


def parameters(node):
    """Named parameters of a function (``self``/``cls`` and ``*args``/``**kwargs`` not counted)."""
    args = node.args
    named = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    return [name for name in named if name not in ("self", "cls")]


def lines(node):
    """Lines of a function's body, from its first statement after the docstring to its last line."""
    body = node.body
    first = body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        if len(body) == 1:
            return 0
        first = body[1]
    return node.end_lineno - first.lineno + 1


def test_the_counters_count():
    tree = ast.parse("def f(self, a, b=1, *args, c, d=2, **kw):\n    '''doc'''\n    return a\n")
    node = tree.body[0]
    assert parameters(node) == ["a", "b", "c", "d"] and lines(node) == 1


def test_no_function_in_keras_cnn_is_longer_than_120_lines():
    long = [f"{path}:{node.lineno} {node.name} ({lines(node)} lines)" for path, node in _functions()
            if lines(node) > MAX_LINES]
    assert long == []


def test_no_function_outside_models_takes_more_than_12_parameters():
    many = [f"{path}:{node.lineno} {node.name} ({len(parameters(node))} parameters)" for path, node in _functions()
            if path.parts[1] != "models" and len(parameters(node)) > MAX_PARAMS]
    assert many == []
