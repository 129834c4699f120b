"""S6: the monitor flags each injected problem on the first step its rule can, not healthy runs."""

from __future__ import annotations

import pytest

from stabletrain.lab.experiments.s6_monitor import monitor_flags
from tests.lab.experiments._init_checks import run


@pytest.mark.parametrize("seed", [0, 1])
def test_monitor_flags_every_injected_problem_and_no_healthy_run(seed: int) -> None:
    result = run(monitor_flags, seed=seed)
    assert result.verdict.outcome == "holds"
    rows = result.tables[0].rows
    full = [r for r in rows if r[2] == "full"]
    assert all(r[4] == 1.0 for r in full if r[0] != "healthy")
    assert all(r[4] == 0.0 and r[6] == "(none)" for r in full if r[0] == "healthy")
    # init problems on step 1, a NaN on its own step
    for r in full:
        if r[0] in ("vanishing", "exploding", "symmetric units"):
            assert r[5] == 1
        if r[0] == "nonfinite":
            assert r[5] == int(r[1].rsplit(" ", 1)[1])
    # gradient norms alone see vanishing, exploding and NaN, not dead or symmetric units
    minimal = {r[0]: r[4] for r in rows if r[2] == "minimal"}
    assert minimal["vanishing"] == minimal["exploding"] == minimal["nonfinite"] == 1.0
    assert minimal["dead units"] == minimal["symmetric units"] == 0.0


@pytest.mark.slow
def test_full_mode_gives_the_same_verdict() -> None:
    assert run(monitor_flags, quick=False).verdict.outcome == "holds"
