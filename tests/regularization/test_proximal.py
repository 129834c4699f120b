"""Proximal L1: soft-thresholding against a slow reference, ISTA, claim R3, sparsity report."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

from stabletrain.regularization.penalties import l1_penalty
from stabletrain.regularization.proximal import (
    ProximalL1,
    SparsityReport,
    proximal_l1,
    soft_threshold_,
    sparsity,
)

EQUAL = {"rtol": 1e-12, "atol": 1e-15}
INFORMATIVE = [0, 1, 2, 3, 4]


def _slow_soft_threshold(t: torch.Tensor, threshold: float) -> torch.Tensor:
    """sign(θ)·max(|θ| − t, 0), one element at a time."""
    flat = [(1.0 if v > 0 else -1.0) * max(abs(v) - threshold, 0.0) for v in t.flatten().tolist()]
    return torch.tensor(flat, dtype=t.dtype).reshape(t.shape)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("as_tensor", [False, True])
def test_soft_threshold_matches_the_slow_reference_bit_for_bit(
    dtype: torch.dtype, as_tensor: bool
) -> None:
    g = torch.Generator().manual_seed(0)
    tensors = [torch.randn(7, 5, generator=g, dtype=dtype), torch.randn(11, generator=g)]
    expected = [_slow_soft_threshold(t, 0.5) for t in tensors]
    threshold: float | torch.Tensor = torch.tensor(0.5, dtype=dtype) if as_tensor else 0.5
    soft_threshold_(tensors, threshold)
    for got, want in zip(tensors, expected, strict=True):
        assert torch.equal(got, want)
    assert int((tensors[0] == 0).sum()) > 5  # the threshold did land values on zero


def _regression(seed: int, n: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """y = x·w + 0.1·noise with 50 standard-normal inputs, of which only the first 5 matter."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 50, generator=g, dtype=torch.float64)
    w = torch.zeros(50, dtype=torch.float64)
    w[INFORMATIVE] = torch.tensor([1.5, -2.0, 1.0, -1.2, 0.8], dtype=torch.float64)
    return x, x @ w + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)


def _mlp(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(50, 16), nn.Tanh(), nn.Linear(16, 1)).double()


def _first_layer_l1_groups(model: nn.Sequential, lam: float) -> list[dict[str, object]]:
    rest = [model[0].bias, *model[2].parameters()]
    return [{"params": [model[0].weight], "l1": lam}, {"params": rest, "l1": 0.0}]


def _fit(
    model: nn.Sequential,
    opt: torch.optim.Optimizer,
    steps: int,
    seed: int,
    penalty: Callable[[], torch.Tensor] | None = None,
) -> None:
    x, y = _regression(seed)
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x).squeeze(1), y)
        if penalty is not None:
            loss = loss + penalty()
        loss.backward()
        opt.step()


def test_sgd_with_proximal_l1_is_ista_against_a_slow_loop_with_a_schedule() -> None:
    """50 float64 steps: the hook against θ ← prox(θ − η_t∇loss) written out, lr decaying."""
    lam, lr = 0.05, 0.05
    model, reference = _mlp(0), _mlp(0)
    opt = torch.optim.SGD(_first_layer_l1_groups(model, lam), lr=lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    x, y = _regression(0)
    with proximal_l1(opt):
        for step in range(50):
            eta = lr * 0.5 ** (step // 10)
            for m in (model, reference):
                m.zero_grad()
                nn.functional.mse_loss(m(x).squeeze(1), y).backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                for p in reference.parameters():
                    assert p.grad is not None
                    p.add_(p.grad, alpha=-eta)
                reference[0].weight.copy_(_slow_soft_threshold(reference[0].weight, eta * lam))
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b, **EQUAL)
        assert torch.equal(a == 0, b == 0)  # the same exact zeros
    assert int((model[0].weight == 0).sum()) > 0
    assert int((model[2].weight == 0).sum()) == 0  # the group with "l1": 0 is untouched


def test_a_tensor_learning_rate_gives_the_same_steps_as_a_float_one() -> None:
    models = {}
    for as_tensor in (False, True):
        model = _mlp(1)
        lr: float | torch.Tensor = torch.tensor(0.05, dtype=torch.float64) if as_tensor else 0.05
        opt = torch.optim.Adam(model.parameters(), lr=lr, foreach=False)
        with proximal_l1(opt, l1=0.5):
            _fit(model, opt, 20, seed=1)
        models[as_tensor] = model
    for a, b in zip(models[False].parameters(), models[True].parameters(), strict=True):
        assert torch.equal(a, b)
    assert int((models[True][0].weight == 0).sum()) > 0


def test_proximal_l1_gives_exact_zeros_where_the_subgradient_gives_none_claim_r3() -> None:
    """Same λ, lr and steps: prox zeroes the 45 irrelevant input columns exactly, the
    subgradient λ·sign(θ) of the L1 penalty leaves every weight oscillating around 0."""
    lam, lr, steps = 0.1, 0.05, 400
    proximal, subgradient = _mlp(0), _mlp(0)
    opt = torch.optim.SGD(_first_layer_l1_groups(proximal, lam), lr=lr)
    with proximal_l1(opt):
        _fit(proximal, opt, steps, seed=0)
    opt_sub = torch.optim.SGD(subgradient.parameters(), lr=lr)
    _fit(subgradient, opt_sub, steps, 0, lambda: l1_penalty([subgradient[0].weight], lam))
    prox_report = sparsity([("w", proximal[0].weight)], atol=1e-3)
    sub_report = sparsity([("w", subgradient[0].weight)], atol=1e-3)
    # measured: 763 of 800 exact zeros with prox; 0 exact, 114 below 1e-3 with the subgradient
    assert prox_report["w"].zeros >= 45 * 16
    assert sub_report["w"].zeros == 0
    assert sub_report["w"].near_zeros < prox_report["w"].near_zeros
    assert int((subgradient[0].weight.norm(dim=0) > 0).sum()) == 50  # no input dropped


@pytest.mark.parametrize("seed", [0, 1])
def test_proximal_l1_recovers_exactly_the_informative_inputs(seed: int) -> None:
    """50 inputs, 5 informative: the first-layer columns left nonzero are exactly those 5."""
    model = _mlp(seed)
    opt = torch.optim.SGD(_first_layer_l1_groups(model, 0.1), lr=0.05)
    with proximal_l1(opt):
        _fit(model, opt, 400, seed=seed)
    kept = (model[0].weight.norm(dim=0) > 0).nonzero().flatten().tolist()
    assert kept == INFORMATIVE
    x, y = _regression(seed + 100)  # and the sparse model still fits held-out data
    with torch.no_grad():
        assert (
            float(nn.functional.mse_loss(model(x).squeeze(1), y)) < 0.2
        )  # measured 0.04, 0.09 (noise 0.01)


def test_sparsity_counts_match_a_slow_count_and_total_the_rows() -> None:
    model = nn.Sequential(nn.Linear(6, 4), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight[:2] = 0.0
        model[0].weight[2, 0] = 1e-7
        model[1].bias.zero_()
    report = sparsity(model, atol=1e-6)
    assert isinstance(report, SparsityReport)
    assert [r.name for r in report.rows] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    for (name, p), row in zip(model.named_parameters(), report.rows, strict=True):
        values = p.detach().flatten().tolist()
        assert row.name == name
        assert row.zeros == sum(v == 0 for v in values)
        assert row.near_zeros == sum(abs(v) <= 1e-6 for v in values)
        assert row.zero_fraction == pytest.approx(row.zeros / len(values))
    assert report["0.weight"].zeros == 12
    assert report["0.weight"].near_zeros == 13
    total = report.total
    assert total.numel == sum(p.numel() for p in model.parameters())
    assert total.zeros == sum(r.zeros for r in report.rows) == 14
    dicts = report.to_dicts()
    assert dicts[-1]["name"] == "total"
    assert dicts[0]["zero_fraction"] == pytest.approx(0.5)
    text = str(report)
    assert "0.weight" in text
    assert "near zero %" in text
    assert "50.00" in text


def test_sparsity_accepts_tensors_and_pairs_and_an_empty_list() -> None:
    assert sparsity(torch.zeros(3)).rows[0].zeros == 3
    assert [r.name for r in sparsity([torch.ones(2), torch.zeros(2)]).rows] == ["0", "1"]
    assert sparsity([]).total.zero_fraction == 0.0
    with pytest.raises(KeyError, match="no parameter 'x'"):
        sparsity([("a", torch.ones(1))])["x"]


def test_sparsity_counts_bool_and_integer_tensors_as_numbers() -> None:
    flags = torch.tensor([True, False, False])
    ints = torch.tensor([-128, -1, 0, 2, 127], dtype=torch.int8)  # |-128| overflows int8's abs
    small, unit = sparsity([flags, ints], atol=0.5), sparsity([flags, ints], atol=1.0)
    assert [(r.zeros, r.near_zeros) for r in small.rows] == [(2, 2), (1, 1)]
    assert [(r.zeros, r.near_zeros) for r in unit.rows] == [(2, 3), (1, 2)]
    assert sparsity(ints, atol=1e30).rows[0].near_zeros == 5


@pytest.mark.parametrize(
    ("value", "atol", "dtype"),
    [
        (6e-8, 4e-8, torch.float16),  # 4e-8 rounds to float16's 6e-8
        (0.1, 0.1, torch.float16),  # float16's 0.1 is 0.09998: within 0.1
        (1.0000001, 1.00000005, torch.float32),
        (65504.0, 1e30, torch.float16),  # 1e30 rounds to inf in float16
    ],
)
def test_the_near_zero_bound_is_never_rounded_to_the_tensors_dtype(
    value: float, atol: float, dtype: torch.dtype
) -> None:
    t = torch.tensor([value, -value, math.inf], dtype=dtype)
    expected = int((t.double().abs() <= atol).sum())
    assert sparsity(t, atol=atol).rows[0].near_zeros == expected
    c = torch.tensor([value + 0j], dtype=torch.complex64)
    assert sparsity(c, atol=atol).rows[0].near_zeros == int(
        (c.to(torch.complex128).abs() <= atol).sum()
    )


def test_remove_really_removes_the_hook() -> None:
    w = nn.Parameter(torch.tensor([0.05, 1.0]))
    opt = torch.optim.SGD([w], lr=0.1)
    handle = proximal_l1(opt, 1.0)
    assert isinstance(handle, ProximalL1)
    assert len(opt._optimizer_step_post_hooks) == 1
    handle.remove()
    assert not handle.active
    assert not opt._optimizer_step_post_hooks
    w.grad = torch.zeros(2)
    opt.step()
    assert torch.equal(w.detach(), torch.tensor([0.05, 1.0]))  # no thresholding any more


def test_a_with_block_removes_the_hook_even_when_it_raises() -> None:
    opt = torch.optim.SGD([nn.Parameter(torch.ones(2))], lr=0.1)
    with pytest.raises(RuntimeError, match="boom"), proximal_l1(opt, 1.0):
        raise RuntimeError("boom")
    assert not opt._optimizer_step_post_hooks


def test_parameters_without_a_gradient_are_not_thresholded() -> None:
    a, b = nn.Parameter(torch.tensor([0.01])), nn.Parameter(torch.tensor([0.01]))
    opt = torch.optim.SGD([a, b], lr=0.1)
    with proximal_l1(opt, 1.0):
        a.grad = torch.zeros(1)
        opt.step()
    assert float(a.detach()) == 0.0
    assert float(b.detach()) == pytest.approx(0.01)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: proximal_l1(nn.Linear(2, 2), 0.1), TypeError, "torch.optim.Optimizer"),
        (
            lambda: proximal_l1(torch.optim.SGD(nn.Linear(2, 2).parameters(), 0.1), -1.0),
            ValueError,
            "l1 must be >= 0",
        ),
        (
            lambda: proximal_l1(
                torch.optim.SGD([{"params": nn.Linear(2, 2).parameters(), "l1": -0.1}], 0.1)
            ),
            ValueError,
            "'l1' must be >= 0",
        ),
        (lambda: soft_threshold_(torch.ones(2), -0.1), ValueError, "threshold must be >= 0"),
        (lambda: soft_threshold_([torch.ones(2), 3.0], 0.1), TypeError, "expected tensors"),
        (lambda: sparsity(torch.ones(2), atol=-1.0), ValueError, "atol must be >= 0"),
        (lambda: sparsity(3.0), TypeError, "expected a model"),
        (lambda: sparsity([("a", 3.0)]), TypeError, "element 0"),
    ],
)
def test_bad_arguments_raise_clear_errors(
    call: Callable[[], object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        call()


def test_sparsity_of_a_compiled_model_names_its_parameters_as_written() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        model[0].weight[0].zero_()
    compiled = torch.compile(model, backend="eager")
    got, plain = sparsity(compiled), sparsity(model)
    assert [r.name for r in got.rows] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert [(r.name, r.zeros) for r in got.rows] == [(r.name, r.zeros) for r in plain.rows]
    assert got.rows[0].zeros == 4
