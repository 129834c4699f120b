"""P-FIXUP2019: Fixup trains a deep unnormalized residual MLP at lr 0.1; He init diverges."""

from __future__ import annotations

import math

import pytest

from stabletrain.lab.experiments.p_fixup2019 import TRAINED, fixup
from tests.lab.experiments._init_checks import run


@pytest.mark.parametrize("seed", [0, 1])
def test_fixup_trains_where_he_init_diverges_and_zero_init_alone_does_not_suffice(
    seed: int,
) -> None:
    result = run(fixup, seed=seed)
    assert result.verdict.outcome == "holds with caveat"
    rows = {r[0]: r for r in result.tables[0].rows}
    standard = rows["standard (He)"]
    assert standard[3] == standard[4]  # every run diverged
    # each He block triples E[h²]: 30 blocks give 3^30 = 10^14.3
    assert standard[1] == pytest.approx(30 * math.log10(3), rel=0.1)
    for arm in ("Fixup (He + init_residual_)", "auto_init(residual='fixup')"):
        assert rows[arm][1] == pytest.approx(0.0, abs=1e-6)  # identity blocks at init
        assert rows[arm][3] == 0
        assert rows[arm][6] >= TRAINED
    assert rows["zero-init residual"][3] == rows["zero-init residual"][4]


@pytest.mark.slow
def test_full_mode_gives_the_same_verdict() -> None:
    assert run(fixup, quick=False).verdict.outcome == "holds with caveat"
