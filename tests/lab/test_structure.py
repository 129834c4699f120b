"""The lab's code stays readable: short experiment functions, tests that read named fields."""

from __future__ import annotations

import ast
from pathlib import Path

import stabletrain.lab.experiments as experiments_package

MAX_LINES = 60
EXPERIMENTS = Path(experiments_package.__file__).parent
TESTS = Path(__file__).parent / "experiments"
POSITIONAL = ("row", "rows", "tables")  # names whose integer subscript is a read by position


def long_functions(source: str) -> list[tuple[str, int]]:
    """``(name, lines)`` of every function longer than :data:`MAX_LINES`, decorators excluded."""
    tree = ast.parse(source)
    return [
        (node.name, node.end_lineno - node.lineno + 1)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_LINES
    ]


def _mentions(node: ast.AST) -> bool:
    for sub in ast.walk(node):
        name = sub.id if isinstance(sub, ast.Name) else getattr(sub, "attr", None)
        if name in POSITIONAL:
            return True
    return False


def positional_reads(source: str) -> list[str]:
    """Subscripts such as ``row[5]`` or ``result.tables[0].rows[1]``: an integer index into a
    table, its rows or a row."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Subscript) or not _mentions(node.value):
            continue
        index = node.slice
        if isinstance(index, ast.UnaryOp) and isinstance(index.op, ast.USub):
            index = index.operand
        if isinstance(index, ast.Constant) and isinstance(index.value, int):
            found.append(ast.unparse(node))
    return found


def test_the_checks_catch_what_they_forbid() -> None:
    long = "def f():\n" + "    x = 1\n" * MAX_LINES
    assert long_functions(long) == [("f", MAX_LINES + 1)]
    assert long_functions("def f():\n" + "    x = 1\n" * (MAX_LINES - 1)) == []
    assert positional_reads("a = row[5]\nb = r.tables[0].rows[-1]\nc = m.test_loss") == [
        "row[5]",
        "r.tables[0].rows[-1]",
        "r.tables[0]",
    ]
    assert positional_reads("rows[0.3, 'clip 5']\nx = values[2]") == []


def test_no_experiment_function_is_longer_than_60_lines() -> None:
    too_long = {
        f"{path.name}:{name}": lines
        for path in sorted(EXPERIMENTS.glob("*.py"))
        for name, lines in long_functions(path.read_text(encoding="utf-8"))
    }
    assert too_long == {}


def test_no_lab_test_reads_a_result_by_position() -> None:
    reads = {
        path.name: found
        for path in sorted(TESTS.glob("test_*.py"))
        if (found := positional_reads(path.read_text(encoding="utf-8")))
    }
    assert reads == {}
