"""Who imports whom, read from the source: :mod:`stabletrain.report` renders what diagnostics,
monitoring and the lab produce, and they reach it, never each other's rendering or internals.

- nothing under ``stabletrain/lab/`` imports ``stabletrain.diagnostics.report`` (the old name of
  the reports) or a private module of ``stabletrain.monitoring``;
- nothing under ``stabletrain/monitoring/`` imports ``stabletrain.diagnostics`` or
  ``stabletrain.lab``;
- ``stabletrain/report/`` imports no private module of another package at module level (the
  shared ``stabletrain._<mod>`` helpers at the top are everyone's), and the packages it renders
  (``stabletrain.diagnostics``, ``stabletrain.lab``) only inside a function or for type
  checking, so importing either first makes no cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import stabletrain

ROOT = Path(stabletrain.__file__).resolve().parent


def _absolute(node: ast.ImportFrom, package: str) -> str:
    """The module a ``from`` import names, with a relative one resolved against ``package``."""
    if node.level == 0:
        return node.module or ""
    base = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join([*base, *filter(None, [node.module])])


def _imports(
    tree: ast.Module, package: str, module_level: bool = False
) -> Iterator[tuple[str, int]]:
    """``(dotted name, line)`` for each import (``from m import n`` gives ``m.n``). With
    ``module_level``, only the imports that run when the module is imported: not those inside a
    function, nor under ``if TYPE_CHECKING:``."""

    def visit(nodes: list[ast.stmt]) -> Iterator[tuple[str, int]]:
        for node in nodes:
            if isinstance(node, ast.Import):
                yield from ((a.name, node.lineno) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                module = _absolute(node, package)
                yield from ((f"{module}.{a.name}", node.lineno) for a in node.names)
            elif module_level and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            elif module_level and isinstance(node, ast.If) and _is_type_checking(node.test):
                yield from visit(node.orelse)
            else:
                children = [c for c in ast.iter_child_nodes(node) if isinstance(c, ast.stmt)]
                handlers = getattr(node, "handlers", [])
                yield from visit([*children, *(s for h in handlers for s in h.body)])

    yield from visit(tree.body)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _reaches(name: str, target: str) -> bool:
    return name == target or name.startswith(target + ".")


def layering_violations(root: Path = ROOT) -> list[str]:
    """``file:line imports name (rule)`` for every import that breaks one of the rules above."""
    bad: list[str] = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        package = ".".join(("stabletrain", *parts[:-1]))
        top = parts[0] if len(parts) > 1 else ""
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = path.relative_to(root).as_posix()
        if top == "lab":
            for name, line in _imports(tree, package):
                names = name.split(".")
                if _reaches(name, "stabletrain.diagnostics.report") or (
                    _reaches(name, "stabletrain.monitoring") and any(map(_is_private, names[2:]))
                ):
                    bad.append(f"{where}:{line} imports {name} (the lab renders through report)")
        elif top == "monitoring":
            for name, line in _imports(tree, package):
                if _reaches(name, "stabletrain.diagnostics") or _reaches(name, "stabletrain.lab"):
                    bad.append(f"{where}:{line} imports {name} (monitoring is below them)")
        elif top == "report":
            for name, line in _imports(tree, package, module_level=True):
                names = name.split(".")
                if names[0] != "stabletrain" or len(names) < 2 or names[1] == "report":
                    continue  # another library, or this package
                if names[1].startswith("_"):
                    continue  # a shared stabletrain._<mod>, everyone's
                if any(map(_is_private, names[2:])) or names[1] in ("diagnostics", "lab"):
                    bad.append(f"{where}:{line} imports {name} at module level")
    return bad


def test_lab_monitoring_and_report_import_in_one_direction() -> None:
    assert layering_violations() == []


def test_the_scan_finds_each_kind_of_wrong_import(tmp_path: Path) -> None:
    files = {
        "lab/a.py": "from stabletrain.diagnostics.report import write_report\n",
        "lab/b.py": "def f():\n    from stabletrain.monitoring._hooks import h\n",
        "lab/ok.py": "from stabletrain.monitoring.metrics import m\nimport stabletrain.report\n",
        "monitoring/c.py": "import stabletrain.lab\n",
        "monitoring/d.py": "if True:\n    from stabletrain.diagnostics import Diagnosis\n",
        "report/e.py": "from stabletrain.monitoring._pack import p\n",
        "report/f.py": "from stabletrain.diagnostics import Diagnosis\n",
        "report/g.py": "try:\n    import x\nexcept ImportError:\n    import stabletrain.lab.L\n",
        "report/h.py": (
            "import stabletrain.diagnostics\nfrom stabletrain.monitoring.rules import _r\n"
        ),
        "report/ok.py": (
            "from typing import TYPE_CHECKING\n"
            "from stabletrain._checks import check_choice\n"
            "from stabletrain.report._format import Page\n"
            "from stabletrain.monitoring.rules import RULES\n"
            "if TYPE_CHECKING:\n"
            "    from stabletrain.diagnostics._x import y\n"
            "def f():\n"
            "    from stabletrain.diagnostics import Diagnosis\n"
        ),
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert layering_violations(tmp_path) == [
        "lab/a.py:1 imports stabletrain.diagnostics.report.write_report (the lab renders "
        "through report)",
        "lab/b.py:2 imports stabletrain.monitoring._hooks.h (the lab renders through report)",
        "monitoring/c.py:1 imports stabletrain.lab (monitoring is below them)",
        "monitoring/d.py:2 imports stabletrain.diagnostics.Diagnosis (monitoring is below them)",
        "report/e.py:1 imports stabletrain.monitoring._pack.p at module level",
        "report/f.py:1 imports stabletrain.diagnostics.Diagnosis at module level",
        "report/g.py:4 imports stabletrain.lab.L at module level",
        "report/h.py:1 imports stabletrain.diagnostics at module level",
        "report/h.py:2 imports stabletrain.monitoring.rules._r at module level",
    ]
