"""The reports moved from ``stabletrain.diagnostics.report`` to ``stabletrain.report``: the old
names still work, as the same objects, with a DeprecationWarning; the new ones and
``stabletrain.diagnostics`` itself import without one."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

import stabletrain.report
from tests._subprocess import python_env

MESSAGE = "stabletrain.diagnostics.report moved to stabletrain.report; import from there"
OLD_MODULES = [f"stabletrain.diagnostics.report.{m}" for m in ("figures", "plots", "write")]


def _imports_quietly(code: str) -> None:
    """``code`` runs in a fresh interpreter with every DeprecationWarning an error."""
    done = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", code],
        capture_output=True,
        text=True,
        env=python_env(),
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_a_name_of_the_old_package_is_the_new_ones_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match=f"^{MESSAGE}$") as caught:
        from stabletrain.diagnostics.report import render_run, write_report
    assert write_report is stabletrain.report.write_report
    assert render_run is stabletrain.report.render_run
    assert {w.filename for w in caught} == {__file__}  # the warning points at the old import


def test_a_module_of_the_old_package_is_the_new_one_with_a_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in OLD_MODULES:
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.warns(DeprecationWarning, match=f"^{MESSAGE}$"):
        from stabletrain.diagnostics.report.plots import Plot
    with pytest.warns(DeprecationWarning, match=f"^{MESSAGE}$"):
        old = importlib.import_module("stabletrain.diagnostics.report.figures")
    with pytest.warns(DeprecationWarning, match=f"^{MESSAGE}$"):
        from stabletrain.diagnostics.report import write
    new = importlib.import_module("stabletrain.report.figures")
    assert old is new  # one module under two names, not a second copy
    assert new.__name__ == new.__spec__.name == "stabletrain.report.figures"
    assert Plot is stabletrain.report.Plot
    assert write is importlib.import_module("stabletrain.report.write")


def test_an_unknown_name_of_the_old_package_is_an_import_error() -> None:
    with pytest.raises(ImportError, match="no_such_name"):
        from stabletrain.diagnostics.report import no_such_name  # noqa: F401
    with pytest.raises(ModuleNotFoundError, match="_format"):
        importlib.import_module("stabletrain.diagnostics.report._format")


def test_the_old_package_lists_the_new_ones_names() -> None:
    import stabletrain.diagnostics.report as old

    assert old.__all__ == stabletrain.report.__all__
    assert set(stabletrain.report.__all__) <= set(dir(old))


def test_the_new_package_imports_without_a_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from stabletrain.report import write_report
        from stabletrain.report.figures import figure_plot
    assert callable(write_report)
    assert callable(figure_plot)
    _imports_quietly(
        "import stabletrain.report\n"
        "from stabletrain.report import RunLog, write_report\n"
        "from stabletrain.report.plots import Plot\n"
    )


def test_import_stabletrain_diagnostics_does_not_warn() -> None:
    _imports_quietly(
        "import sys\n"
        "import stabletrain.diagnostics\n"
        "from stabletrain.diagnostics import Diagnosis, RunLog, render_run, write_report\n"
        "assert 'stabletrain.diagnostics.report' not in sys.modules\n"
        "import stabletrain.report\n"
        "assert write_report is stabletrain.report.write_report\n"
    )


@pytest.mark.parametrize(
    "first", ["stabletrain.report", "stabletrain.diagnostics", "stabletrain.lab.report"]
)
def test_either_package_imports_first_without_a_cycle(first: str) -> None:
    _imports_quietly(f"import {first}\nimport stabletrain.report, stabletrain.diagnostics\n")
