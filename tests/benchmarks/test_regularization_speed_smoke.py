"""benchmarks/regularization_speed.py still runs: its quick mode, as a subprocess (no timing
asserted), with the JSON rows it writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_prints_the_table_and_writes_every_row(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "regularization_speed.py"),
            "--quick",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "spread (min-max)" in done.stdout
    rows = json.loads(out.read_text())["rows"]
    assert {(r["comparison"], r["workload"]) for r in rows} == {
        (comparison, workload)
        for comparison in ("decoupled", "proximal-l1", "max-norm")
        for workload in ("mlp-4x256", "many-small")
    }
    assert all(r["ratio_min"] <= r["ratio"] <= r["ratio_max"] for r in rows)
