"""The Lightning overhead benchmark still runs: its quick variant, as a subprocess (no timing
asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.benchmarks._run import run_benchmark

pytest.importorskip("lightning")


@pytest.mark.slow  # ~15 s: a dozen fits in a fresh process that imports Lightning
def test_the_quick_lightning_overhead_benchmark_prints_its_table(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    done = run_benchmark("lightning_overhead.py", "--quick", "--json", str(out))
    assert "Lightning callback overhead" in done.stdout
    for variant in ("plain-copy", "minimal/1", "standard/10"):
        assert variant in done.stdout
    assert '"variant": "plain"' in out.read_text()
