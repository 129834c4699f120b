"""The logits role's scale: logits ~ N(0, σ²) over C classes with σ² = 2·excess·ln C start the
expected cross-entropy at ln C + σ²/2 ≈ (1 + excess)·ln C (second-order expansion of
logsumexp); the fit to the loss itself against a slow reference."""

from __future__ import annotations

import math

import pytest
import torch

from stabletrain.init.policy._roles import LOGIT_LOSS_EXCESS, fitted_logit_std, logit_std


@pytest.mark.parametrize("classes", [2, 10, 256, 50257])
def test_logits_at_the_role_std_start_the_loss_within_five_percent_of_ln_c(
    classes: int,
) -> None:
    g = torch.Generator().manual_seed(0)
    sigma = logit_std(classes)
    assert sigma == pytest.approx(math.sqrt(2 * LOGIT_LOSS_EXCESS * math.log(classes)))
    rows = 4096 if classes < 1000 else 64
    logits = torch.randn(rows, classes, generator=g, dtype=torch.float64) * sigma
    targets = torch.randint(0, classes, (rows,), generator=g)
    loss = float(torch.nn.functional.cross_entropy(logits, targets))
    # Monte Carlo: rows·classes draws; the excess over ln C is σ²/2 = excess·ln C to 2nd order
    ratio = loss / math.log(classes)
    assert 1.0 < ratio <= 1.05
    if classes >= 10:  # the second-order expansion overstates the excess for two classes
        assert ratio == pytest.approx(1 + LOGIT_LOSS_EXCESS, abs=0.01 + 2 * sigma / math.sqrt(rows))


@pytest.mark.parametrize("classes", [2, 10, 100])
@pytest.mark.parametrize("kind", ["gaussian", "offsets", "one_hot_heavy"])
def test_fitted_logit_std_matches_a_grid_search_of_the_step0_loss(classes: int, kind: str) -> None:
    g = torch.Generator().manual_seed(classes)
    z = torch.randn(1024, classes, generator=g, dtype=torch.float64)
    if kind == "offsets":  # per-class offsets, as from pooled ReLU features
        z = z + 3 * torch.randn(classes, generator=g, dtype=torch.float64)
    elif kind == "one_hot_heavy":  # a tied head: each row's own token far above the others
        z[torch.arange(1024), torch.randint(0, classes, (1024,), generator=g)] += 8.0
    goal = (1 + LOGIT_LOSS_EXCESS) * math.log(classes)
    centred = z - z.mean(-1, keepdim=True)
    # slow reference: a coarse grid, then a fine grid around its best scale
    best, width = 2 / float(centred.std()), 2 / float(centred.std())
    for _ in range(2):
        grid = torch.linspace(best - width, best + width, 201, dtype=torch.float64).clamp(min=0)
        losses = torch.stack([torch.logsumexp(s * centred, -1).mean() for s in grid])
        best, width = float(grid[(losses - goal).abs().argmin()]), width / 50
    scale = fitted_logit_std(z, classes) / float(z.std())
    assert scale == pytest.approx(best, rel=2e-3)
    assert float(torch.logsumexp(scale * centred, -1).mean()) == pytest.approx(goal, rel=1e-9)


def test_fitted_logit_std_is_nan_where_it_cannot_apply() -> None:
    assert math.isnan(fitted_logit_std(torch.zeros(8, 10), 10))  # constant: no scale fits
    assert math.isnan(fitted_logit_std(torch.randn(8, 10), 7))  # not over 7 classes
    assert math.isnan(fitted_logit_std(torch.tensor(1.0), 10))
