"""One rule for a leading underscore: ``stabletrain.<pkg>._<mod>`` is used only inside
``stabletrain.<pkg>``. What another package needs lives in a public module (or the package's
``__init__``); ``stabletrain._<mod>`` at the top is shared by every subpackage."""

from __future__ import annotations

import ast
from pathlib import Path

import stabletrain

ROOT = Path(stabletrain.__file__).resolve().parent


def _imported_modules(tree: ast.AST) -> list[tuple[str, int]]:
    """Every dotted name an import statement reaches: ``from m import n`` gives ``m.n``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(f"{node.module}.{a.name}", node.lineno) for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
    return found


def private_imports_across_packages(root: Path = ROOT) -> list[str]:
    """``file:line imports module`` for every import of a private module (or name) of a
    subpackage from outside that subpackage."""
    bad: list[str] = []
    for path in sorted(root.rglob("*.py")):
        here = ".".join(("stabletrain", *path.relative_to(root).with_suffix("").parts[:-1]))
        for module, line in _imported_modules(ast.parse(path.read_text(encoding="utf-8"))):
            parts = module.split(".")
            if parts[0] != "stabletrain":
                continue
            for i in range(2, len(parts)):  # stabletrain.<pkg>...._<private>
                if parts[i].startswith("_") and not parts[i].startswith("__"):
                    # a private module is its package's; a private name in a module, the
                    # module's package's
                    in_module = root.joinpath(*parts[1:i]).with_suffix(".py").is_file()
                    owner = ".".join(parts[: i - 1] if in_module else parts[:i])
                    if here != owner and not here.startswith(owner + "."):
                        what = ".".join(parts[: i + 1])
                        bad.append(f"{path.relative_to(root)}:{line} imports {what}")
                    break
    return list(dict.fromkeys(bad))


def test_no_package_imports_another_packages_private_modules() -> None:
    assert private_imports_across_packages() == []


def test_the_scan_finds_a_private_import_across_packages(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "_x.py").write_text("from stabletrain.b._y import f\n", encoding="utf-8")
    (tmp_path / "b" / "_y.py").write_text("from stabletrain.b._z import g\n", encoding="utf-8")
    (tmp_path / "b" / "c.py").write_text("from stabletrain.b.d import _h\n", encoding="utf-8")
    (tmp_path / "b" / "d.py").write_text("", encoding="utf-8")
    (tmp_path / "top.py").write_text("from stabletrain._checks import check_real\n")
    (tmp_path / "a" / "e.py").write_text("from stabletrain.b.d import _h\n", encoding="utf-8")
    assert private_imports_across_packages(tmp_path) == [
        "a/_x.py:1 imports stabletrain.b._y",
        "a/e.py:1 imports stabletrain.b.d._h",
    ]
