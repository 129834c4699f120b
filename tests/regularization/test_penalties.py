"""Penalties: values against a slow reference, and the textbook claims R1 and R4."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stabletrain.regularization.param_groups import param_groups
from stabletrain.regularization.penalties import elastic_net_penalty, l1_penalty, l2_penalty


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.LayerNorm(16), nn.Tanh(), nn.Linear(16, 3)).double()


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [p for n, p in model.named_parameters() if n.endswith("weight") and p.ndim == 2]


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("half", [True, False])
def test_l2_penalty_matches_a_slow_sum_over_the_weights_only(reduction: str, half: bool) -> None:
    model = _model()
    weights = _weights(model)
    reference = sum((w**2).sum() for w in weights)
    if reduction == "mean":
        reference = reference / sum(w.numel() for w in weights)
    reference = reference * (0.3 / 2 if half else 0.3)
    value = l2_penalty(model, 0.3, half=half, reduction=reduction)  # type: ignore[arg-type]
    torch.testing.assert_close(value, reference, rtol=1e-12, atol=0)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_l1_and_elastic_net_match_a_slow_reference(reduction: str) -> None:
    model = _model()
    weights = _weights(model)
    n = sum(w.numel() for w in weights) if reduction == "mean" else 1
    l1_ref = 0.2 * sum(w.abs().sum() for w in weights) / n
    l2_ref = 0.5 / 2 * sum((w**2).sum() for w in weights) / n
    l1 = l1_penalty(model, 0.2, reduction=reduction)  # type: ignore[arg-type]
    torch.testing.assert_close(l1, l1_ref, rtol=1e-12, atol=0)
    elastic = elastic_net_penalty(model, l1=0.2, l2=0.5, reduction=reduction)  # type: ignore[arg-type]
    torch.testing.assert_close(elastic, l1_ref + l2_ref, rtol=1e-12, atol=0)


def test_sgd_with_the_l2_penalty_is_sgd_with_weight_decay_claim_r1() -> None:
    """(λ/2)‖θ‖² in the loss gives the trajectory of θ ← θ − ηλθ − η∇loss, in float64."""
    lam, lr = 0.1, 0.05
    torch.manual_seed(1)
    x, y = torch.randn(64, 6, dtype=torch.float64), torch.randn(64, 3, dtype=torch.float64)
    penalized, decayed = _model(), _model()
    opt_penalty = torch.optim.SGD(penalized.parameters(), lr=lr)
    opt_decay = torch.optim.SGD(param_groups(decayed, lam), lr=lr)  # decay on weights only
    for _ in range(50):
        for model, opt, penalty in ((penalized, opt_penalty, lam), (decayed, opt_decay, 0.0)):
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x), y) + l2_penalty(model, penalty)
            loss.backward()
            opt.step()
    for (name, a), b in zip(penalized.named_parameters(), decayed.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14, msg=name)
    moved = (_weights(penalized)[0] - _weights(_model())[0]).abs().max()
    assert moved > 1e-2  # the trajectories moved: the equality is not trivial


def test_the_mean_form_shrinks_by_lambda_over_n_so_lambda_must_grow_with_n_claim_r4() -> None:
    """Gradient of (λ/2n)Σθ² is λθ/n: the per-step shrink factor η·λ/n falls as n grows."""
    lr = 0.1
    factors = {}
    for n in (100, 1000):
        theta = torch.ones(n, dtype=torch.float64, requires_grad=True)
        l2_penalty([theta], 1.0, reduction="mean").backward()
        assert theta.grad is not None
        factors[n] = float(lr * theta.grad[0])
        torch.testing.assert_close(theta.grad, torch.full_like(theta, 1.0 / n))
    assert factors[1000] == pytest.approx(factors[100] / 10, rel=1e-12)
    theta = torch.ones(1000, dtype=torch.float64, requires_grad=True)
    l2_penalty([theta], 10.0, reduction="mean").backward()  # λ ×10 keeps the factor
    assert theta.grad is not None
    assert float(lr * theta.grad[0]) == pytest.approx(factors[100], rel=1e-12)


def test_l1_gradient_is_a_constant_lambda_times_sign() -> None:
    theta = torch.tensor([-2.0, -1e-3, 1e-3, 5.0], requires_grad=True)
    l1_penalty([theta], 0.3).backward()
    assert theta.grad is not None
    torch.testing.assert_close(theta.grad, 0.3 * theta.detach().sign())


def test_zero_weights_get_zero_not_nan_gradients() -> None:
    zero = torch.zeros(4, 4, requires_grad=True)
    (l2_penalty([zero], 1.0) + l1_penalty([zero], 1.0)).backward()
    assert zero.grad is not None
    assert torch.equal(zero.grad, torch.zeros(4, 4))


def test_an_empty_selection_is_a_zero_penalty() -> None:
    assert float(l2_penalty(nn.LayerNorm(4), 1.0)) == 0.0


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: l2_penalty(_model(), -1.0), ValueError, "must be >= 0"),
        (lambda: l1_penalty(_model(), 0.1, reduction="avg"), ValueError, "unknown reduction"),
        (lambda: l2_penalty([torch.ones(2), 3.0], 0.1), TypeError, "iterable of tensors"),
        (lambda: elastic_net_penalty(_model(), l1=0.1, l2=-2), ValueError, "l2 must be >= 0"),
        (lambda: l2_penalty(5, 0.1), TypeError, "l2_penalty: expected an nn.Module.*got int"),
        (lambda: l1_penalty(torch.ones(2, dtype=torch.long), 0.1), TypeError, "dtype torch.int64"),
        (lambda: l2_penalty([torch.ones(2, dtype=torch.bool)], 0.1), TypeError, "torch.bool"),
    ],
)
def test_bad_arguments_raise_clear_errors(call: object, error: type[Exception], match: str) -> None:
    assert callable(call)
    with pytest.raises(error, match=match):
        call()


def test_float16_weights_are_summed_in_float32_where_their_squares_do_not_overflow() -> None:
    """625 weights of 300: Σθ² = 5.6e7 is beyond float16's 65504, though every θ fits."""
    weights = torch.full((25, 25), 300.0, dtype=torch.float16, requires_grad=True)
    value = l2_penalty([weights], 1.0, half=False)
    assert value.dtype == torch.float32
    assert value.detach().item() == 625 * 300.0**2
    value.backward()
    assert weights.grad is not None
    assert bool((weights.grad == 600.0).all())
    mixed = l1_penalty([weights, torch.ones(3, dtype=torch.float64)], 1.0)
    assert mixed.dtype == torch.float64
    assert mixed.detach().item() == 625 * 300.0 + 3


def test_a_mean_over_no_values_is_zero_not_nan() -> None:
    empty = torch.zeros(0, 4)
    assert float(l2_penalty([empty], 1.0, reduction="mean")) == 0.0
    assert float(elastic_net_penalty([empty], 1.0, 1.0, reduction="mean")) == 0.0


def test_complex_weights_are_penalized_by_their_modulus() -> None:
    z = torch.tensor([3 + 4j, 0j], dtype=torch.complex64)
    assert float(l1_penalty([z], 1.0)) == 5.0
    assert float(l2_penalty([z], 1.0)) == 12.5
