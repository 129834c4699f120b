"""The logits role's scale: logits ~ N(0, σ²) over C classes with σ² = 0.02·ln C start the
expected cross-entropy at ln C + σ²/2 ≈ 1.01·ln C (second-order expansion of logsumexp)."""

from __future__ import annotations

import math

import pytest
import torch

from stabletrain.init.policy._roles import logit_std


@pytest.mark.parametrize("classes", [2, 10, 256, 50257])
def test_logits_at_the_role_std_start_the_loss_within_one_and_a_half_percent_of_ln_c(
    classes: int,
) -> None:
    g = torch.Generator().manual_seed(0)
    sigma = logit_std(classes)
    assert sigma == pytest.approx(math.sqrt(0.02 * math.log(classes)))
    rows = 4096 if classes < 1000 else 64
    logits = torch.randn(rows, classes, generator=g, dtype=torch.float64) * sigma
    targets = torch.randint(0, classes, (rows,), generator=g)
    loss = float(torch.nn.functional.cross_entropy(logits, targets))
    # Monte Carlo: rows·classes draws; the excess over ln C is σ²/2 = 1% of ln C to 2nd order
    assert loss / math.log(classes) == pytest.approx(1.01, abs=0.005 + 2 * sigma / math.sqrt(rows))
