"""The diagnose cost benchmark still runs: its quick variant, as a subprocess (no timing
asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_quick_diagnose_benchmark_prints_its_table(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "diagnose_speed.py"),
            "--quick",
            "--models",
            "resnet50",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "diagnose cost" in done.stdout
    rows = json.loads(out.read_text())
    assert [r["variant"] for r in rows] == ["plain", "diagnose", "diagnose+lint"]
    assert rows[0]["ratio"] == 1.0
