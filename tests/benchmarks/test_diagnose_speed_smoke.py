"""The diagnose cost benchmark still runs: its quick variant, as a subprocess (no timing
asserted)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.benchmarks._run import run_benchmark


def test_the_quick_diagnose_benchmark_prints_its_table(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    done = run_benchmark("diagnose_speed.py", "--quick", "--models", "resnet50", "--json", str(out))
    assert "diagnose cost" in done.stdout
    rows = json.loads(out.read_text())
    assert [r["variant"] for r in rows] == ["plain", "diagnose", "diagnose+lint"]
    assert rows[0]["ratio"] == 1.0
