"""The monitor overhead benchmark still runs: its quick variant, as a subprocess (no timing
asserted)."""

from __future__ import annotations

from pathlib import Path

from tests.benchmarks._run import run_benchmark


def test_the_quick_overhead_benchmark_prints_its_table(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    done = run_benchmark("monitor_overhead.py", "--quick", "--json", str(out))
    assert "Monitor overhead" in done.stdout
    for variant in (
        "plain-copy",
        "grad-norms/1",
        "minimal/1",
        "standard/1",
        "full/10",
        "tb-hist/1",
    ):
        assert variant in done.stdout
    assert '"variant": "plain"' in out.read_text()
