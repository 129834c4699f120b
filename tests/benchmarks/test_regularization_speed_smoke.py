"""benchmarks/regularization_speed.py still runs: its quick mode, as a subprocess (no timing
asserted), with the JSON rows it writes."""

from __future__ import annotations

import json
from pathlib import Path

from tests.benchmarks._run import run_benchmark


def test_quick_run_prints_the_table_and_writes_every_row(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    done = run_benchmark("regularization_speed.py", "--quick", "--json", str(out))
    assert "spread (min-max)" in done.stdout
    rows = json.loads(out.read_text())["rows"]
    assert {(r["comparison"], r["workload"]) for r in rows} == {
        (comparison, workload)
        for comparison in ("decoupled", "proximal-l1", "max-norm")
        for workload in ("mlp-4x256", "many-small")
    }
    assert all(r["ratio_min"] <= r["ratio"] <= r["ratio_max"] for r in rows)
