"""The benchmarks still run: their quick variants, as a subprocess (no timing asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("script", "args", "expect"),
    [
        (
            "trainability.py",
            ["--quick", "--configs", "tanh-mlp", "resmlp"],
            "reached the target",
        ),
        ("param_groups_speed.py", ["--quick", "--repeats", "1"], "param_groups+layer_decay"),
    ],
)
def test_benchmark_quick_run_prints_its_tables(script: str, args: list[str], expect: str) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert expect in done.stdout
