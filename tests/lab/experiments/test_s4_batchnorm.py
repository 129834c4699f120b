"""S4: BatchNorm keeps activations in range under a bad init; the gradient only improves."""

from __future__ import annotations

import pytest

from stabletrain.lab.experiments.s4_batchnorm import IN_RANGE_DECADES, batchnorm_range
from tests.lab.experiments._init_checks import run


@pytest.mark.parametrize("seed", [0, 1])
def test_batchnorm_keeps_activations_in_range_and_reduces_the_gradient_drift(seed: int) -> None:
    result = run(batchnorm_range, seed=seed)
    assert result.verdict.outcome == "holds with caveat"
    rows = result.tables[0].rows
    normed = [r for r in rows if r[1] == "BatchNorm"]
    plain = [r for r in rows if r[1] == "none"]
    assert all(r[4] <= IN_RANGE_DECADES for r in normed)
    assert all(r[4] >= 2.0 for r in plain)
    # the inits differ only by a scale, which BN cancels: the same profile for all three
    assert {round(r[2], 4) for r in normed} == {round(normed[0][2], 4)}
    # Yang et al. 2019: BN ReLU nets' gradient grows ~sqrt(pi/(pi-1)) = 1.21 per layer back
    for r in normed:
        assert r[6] == pytest.approx(1.21, abs=0.05)
    # and BN trains where the plain net does not
    assert min(n[7] - p[7] for n, p in zip(normed, plain, strict=True)) > 0.2


@pytest.mark.slow
def test_full_mode_gives_the_same_verdict() -> None:
    assert run(batchnorm_range, quick=False).verdict.outcome == "holds with caveat"
