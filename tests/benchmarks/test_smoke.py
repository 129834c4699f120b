"""The benchmarks still run: their quick variants, as a subprocess (no timing asserted)."""

from __future__ import annotations

import pytest

from tests.benchmarks._run import run_benchmark


@pytest.mark.parametrize(
    ("script", "args", "expect"),
    [
        (
            "trainability.py",
            ["--quick", "--configs", "tanh-mlp", "resmlp"],
            "reached the target",
        ),
        ("param_groups_speed.py", ["--quick", "--repeats", "1"], "param_groups+layer_decay"),
        ("auto_init_cost.py", ["--quick", "--models", "tanh-mlp", "resnet50"], "resnet50"),
    ],
)
def test_benchmark_quick_run_prints_its_tables(script: str, args: list[str], expect: str) -> None:
    done = run_benchmark(script, *args)
    assert expect in done.stdout
