"""The logits role's scale: logits ~ N(0, σ²) over C classes with σ² = 0.08·ln C start the
expected cross-entropy at ln C + σ²/2 ≈ 1.04·ln C (second-order expansion of logsumexp)."""

from __future__ import annotations

import math

import pytest
import torch

from stabletrain.init.policy._roles import logit_std


@pytest.mark.parametrize("classes", [2, 10, 256, 50257])
def test_logits_at_the_role_std_start_the_loss_within_five_percent_of_ln_c(
    classes: int,
) -> None:
    g = torch.Generator().manual_seed(0)
    sigma = logit_std(classes)
    assert sigma == pytest.approx(math.sqrt(0.08 * math.log(classes)))
    rows = 4096 if classes < 1000 else 64
    logits = torch.randn(rows, classes, generator=g, dtype=torch.float64) * sigma
    targets = torch.randint(0, classes, (rows,), generator=g)
    loss = float(torch.nn.functional.cross_entropy(logits, targets))
    # Monte Carlo: rows·classes draws; the excess over ln C is σ²/2 = 4% of ln C to 2nd order
    ratio = loss / math.log(classes)
    assert 1.0 < ratio <= 1.05
    if classes >= 10:  # the second-order expansion overstates the excess for two classes
        assert ratio == pytest.approx(1.04, abs=0.01 + 2 * sigma / math.sqrt(rows))
