"""S3: clipping bounds each SGD step by lr·max_norm and keeps an RNN from blowing up."""

from __future__ import annotations

import pytest
import torch

from stabletrain.lab.experiments.s3_clipping import BOUND_TOL, adding_problem, rnn_clipping
from tests.lab.experiments._init_checks import run


def test_adding_problem_marks_one_value_per_half_and_sums_them() -> None:
    x, y = adding_problem(torch.Generator().manual_seed(0), 256, 20)
    markers = x[..., 1]
    assert torch.equal(markers[:, :10].sum(1), torch.ones(256))
    assert torch.equal(markers[:, 10:].sum(1), torch.ones(256))
    assert torch.allclose(y[:, 0], (x[..., 0] * markers).sum(1))
    again, _ = adding_problem(torch.Generator().manual_seed(0), 256, 20)
    assert torch.equal(x, again)
    # the target's variance is that of a sum of two U(0, 1): 2/12 = 1/6
    assert float(y.var()) == pytest.approx(1 / 6, rel=0.2)


@pytest.mark.parametrize("seed", [0, 1])
def test_clipping_bounds_the_step_and_no_clipped_run_blows_up(seed: int) -> None:
    result = run(rnn_clipping, seed=seed)
    # the bound and the taming hold; the caveat: lr 0.3 with max_norm 5 stays finite, untrained
    assert result.verdict.outcome == "holds with caveat"
    rows = {(r[0], r[1]): r for r in result.tables[0].rows}
    assert rows[0.3, "no clipping"][2] == rows[0.3, "no clipping"][3]  # every run blew up
    for (lr, label), row in rows.items():
        if label == "no clipping":
            continue
        max_norm = float(label.removeprefix("clip "))
        assert row[2] == 0
        assert row[5] <= lr * max_norm * (1 + BOUND_TOL)
    assert rows[0.3, "clip 5"][6] > 1 / 3


@pytest.mark.slow
def test_full_mode_gives_the_same_verdict() -> None:
    assert run(rnn_clipping, quick=False).verdict.outcome == "holds with caveat"
