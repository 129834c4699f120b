"""The monitor overhead benchmark still runs: its quick variant, as a subprocess (no timing
asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_quick_overhead_benchmark_prints_its_table(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "monitor_overhead.py"),
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
    assert "Monitor overhead" in done.stdout
    for variant in ("minimal/1", "standard/1", "full/10", "tb-hist/1"):
        assert variant in done.stdout
    assert '"variant": "plain"' in out.read_text()
