"""The site's lab numbers: docs/gen_lab_numbers.py writes each claim's verdict, key number,
tables and figure links from a lab run's results.json, and every claim a page includes is in
the committed run."""

from __future__ import annotations

import importlib.util
import json
import math
import re
from pathlib import Path
from types import ModuleType

import pytest

from stabletrain.lab.claims import CLAIM_IDS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
COMMITTED = DOCS / "_generated" / "lab-quick.json"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_lab_numbers", DOCS / "gen_lab_numbers.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_run(results: list[dict[str, object]]) -> dict[str, object]:
    return {
        "schema": "stabletrain.lab",
        "version": 1,
        "stabletrain": "0.1.0",
        "torch": "2.13.0",
        "mode": "quick",
        "seed": 0,
        "seconds": 12.0,
        "counts": {"holds": 1, "holds with caveat": 0, "does not hold": 0, "error": 1},
        "results": results,
    }


HOLDS = {
    "claim_id": "I5",
    "status": "holds",
    "verdict": {"outcome": "holds", "measured": 0.0168, "threshold": 0.05, "rule": "err <= 0.05"},
    "key_number": "largest relative error = 1.68%",
    "explanation": "Var(z) matches.",
    "tables": [{"title": "Var(z)", "columns": ["n_in", "rel | err"], "rows": [[16, 0.0168]]}],
    "figures": [
        {
            "title": "measured vs predicted",
            "xlabel": "n_in",
            "ylabel": "Var",
            "series": {"measured": {"x": [16, 64], "y": [1.0, 1.01]}},
            "logy": False,
            "kind": "line",
        }
    ],
    "seconds": 1.0,
    "error": "",
}
ERROR = {
    **HOLDS,
    "claim_id": "R2",
    "status": "error",
    "verdict": {
        "outcome": "does not hold",
        "measured": math.nan,
        "threshold": math.nan,
        "rule": "no measurement",
    },
    "key_number": "error",
    "tables": [],
    "figures": [],
    "error": "RuntimeError: boom",
}


def test_a_claim_page_carries_the_runs_numbers(tmp_path: Path) -> None:
    source = tmp_path / "results.json"
    source.write_text(json.dumps(fake_run([HOLDS, ERROR])))
    pages = load_generator().generate(source, tmp_path / "out", draw=False)
    assert pages["I5.md"].startswith("**I5: ✅ holds**: largest relative error = 1.68%.")
    assert "measured 0.0168, threshold 0.05" in pages["I5.md"]
    assert "| n_in | rel \\| err |" in pages["I5.md"]  # a | in a cell is escaped
    assert "| 16 | 0.0168 |" in pages["I5.md"]
    assert "(1 figure in the lab's report; not drawn here.)" in pages["I5.md"]
    assert "no verdict: the experiment failed (RuntimeError: boom)" in pages["R2.md"]
    assert "2 of the 43 claims (I5, R2): 1 holds, 1 error" in pages["run.md"]
    assert (tmp_path / "out" / "I5.md").read_text() == pages["I5.md"]


def test_figures_are_drawn_and_linked_from_the_guides(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    source = tmp_path / "results.json"
    source.write_text(json.dumps(fake_run([HOLDS])))
    pages = load_generator().generate(source, tmp_path / "out")
    assert "![measured vs predicted](../_generated/lab/figures/I5-1.png)" in pages["I5.md"]
    assert (tmp_path / "out" / "figures" / "I5-1.png").read_bytes()[:4] == b"\x89PNG"


def test_a_file_that_is_not_a_lab_run_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "report.json"
    source.write_text(json.dumps({"schema": "stabletrain.diagnosis"}))
    with pytest.raises(SystemExit, match="not the JSON of `stabletrain lab`"):
        load_generator().generate(source, tmp_path / "out", draw=False)


def test_the_committed_run_covers_every_claim_and_every_page_include() -> None:
    data = json.loads(COMMITTED.read_text())
    ids = [r["claim_id"] for r in data["results"]]
    assert sorted(ids) == sorted(CLAIM_IDS)
    assert data["mode"] == "quick"
    included = {
        name
        for page in DOCS.rglob("*.md")
        for name in re.findall(r'--8<-- "_generated/lab/([\w-]+)\.md"', page.read_text())
    }
    assert included - {"run", "summary"} <= set(ids)
    assert len(included) > 40  # the guides quote (almost) every claim
