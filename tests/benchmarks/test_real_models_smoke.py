"""benchmarks/real_models.py still runs: its quick variant on nanoGPT, as a subprocess."""

from __future__ import annotations

import json
from pathlib import Path

from tests.benchmarks._run import run_benchmark


def test_quick_run_prints_every_init_and_the_targets(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    done = run_benchmark("real_models.py", "--quick", "--models", "nanogpt", "--json", str(out))
    for init in ("own", "torch", "auto_init"):
        assert f"| nanogpt | {init} |" in done.stdout
    assert "Targets" in done.stdout
    rows = json.loads(out.read_text())["rows"]
    assert [r["init"] for r in rows] == ["own", "torch", "auto_init"]
    assert all(r["error"] is None for r in rows)
