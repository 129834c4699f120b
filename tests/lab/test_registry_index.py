"""The registry's index: every experiment found from the sources, none imported to list them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from stabletrain.lab import registry
from stabletrain.lab.claims import get_claim
from stabletrain.lab.experiment import REGISTRY
from tests._subprocess import python_env


def test_the_index_names_the_same_experiments_as_importing_them() -> None:
    entries = registry.index()
    loaded = registry.load_all()
    in_package = {i for i, e in loaded.items() if e.module.startswith(registry._package.__name__)}
    assert set(entries) == in_package
    for claim_id, entry in entries.items():
        assert entry.module == loaded[claim_id].module
        assert entry.title == loaded[claim_id].title


def test_load_imports_only_the_module_of_the_ids_asked_for() -> None:
    code = (
        "import json, sys\n"
        "from stabletrain.lab import registry\n"
        "got = registry.load(['I5'])\n"
        "mods = [m for m in sys.modules if m.startswith('stabletrain.lab.experiments.')]\n"
        "print(json.dumps({'ids': sorted(got), 'modules': sorted(mods)}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=python_env(), check=True
    )
    data = json.loads(done.stdout)
    assert "I5" in data["ids"]
    assert data["modules"] == [registry.index()["I5"].module]
    assert REGISTRY  # this process still sees the registry it loaded


def _cli_imports(
    args: list[str], forbidden: tuple[str, ...]
) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run ``stabletrain <args>`` in a fresh interpreter: the process and the line naming every
    module it imported that is scipy or starts with one of ``forbidden``."""
    code = (
        "import sys\n"
        "from stabletrain.cli.main import main\n"
        f"status = main({args!r})\n"
        "bad = [m for m in sys.modules if m == 'scipy' or m.startswith(('scipy.', "
        f"*{forbidden!r}))]\n"
        "print('IMPORTED', bad, file=sys.stderr)\n"
        "raise SystemExit(status)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=python_env()
    )
    assert done.returncode == 0, done.stderr
    return done, next(line for line in done.stderr.splitlines() if line.startswith("IMPORTED"))


def test_lab_list_imports_neither_scipy_nor_any_experiment() -> None:
    done, imported = _cli_imports(
        ["lab", "--list", "--json"], ("stabletrain.lab.experiments.", "stabletrain.lab.runner")
    )
    assert imported == "IMPORTED []"
    listed = {x["id"]: x for x in json.loads(done.stdout)}
    assert listed["I5"]["experiment"] is True
    assert listed["I5"]["title"] == get_claim("I5").title


def test_lab_i5_to_markdown_and_json_imports_neither_scipy_nor_the_diagnostics(
    tmp_path: Path,
) -> None:
    # What `stabletrain lab I5` pays before its experiment runs: torch and the lab, not
    # scipy.stats (about 1 s) or the diagnostics/monitoring/HTML stack (about 0.4 s).
    out = str(tmp_path / "out")
    args = ["lab", "I5", "--no-cache", "--quiet", "--format", "md,json", "--out", out]
    forbidden = ("stabletrain.diagnostics", "stabletrain.monitoring", "matplotlib", "jinja2")
    _, imported = _cli_imports(args, forbidden)
    assert imported == "IMPORTED []"
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["claim_id"] for r in results["results"]] == ["I5"]
