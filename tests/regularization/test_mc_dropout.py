"""mc_predict: against a slow stacking reference, modes and buffers, seeding, claim R8, errors."""

from __future__ import annotations

import math
import weakref
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stabletrain.regularization.dropout import ClassicDropout, DropPath
from stabletrain.regularization.mc_dropout import DROPOUT_TYPES, mc_dropout_mode, mc_predict

Z = 5.0  # tolerance in standard errors of the Monte-Carlo mean


class Net(nn.Module):
    """BatchNorm, inverted dropout, a residual branch with DropPath, classic dropout."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.bn, self.drop = nn.Linear(5, 32), nn.BatchNorm1d(32), nn.Dropout(0.3)
        self.fc2, self.drop_path = nn.Linear(32, 32), DropPath(0.2)
        self.classic, self.head = ClassicDropout(0.1), nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop(F.relu(self.bn(self.fc1(x))))
        h = h + self.drop_path(F.relu(self.fc2(h)))
        return self.head(self.classic(h))  # type: ignore[no-any-return]


def _net() -> Net:
    """A float64 Net whose BatchNorm running statistics are far from their (0, 1) start."""
    torch.manual_seed(0)
    net = Net().double().train()
    with torch.no_grad():
        for _ in range(20):
            net(3 * torch.randn(64, 5, dtype=torch.float64) + 2)
    return net


def _x(batch: int = 16) -> torch.Tensor:
    return torch.randn(batch, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


def _passes(model: nn.Module, x: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """n passes stacked, with the model set by hand: eval, its dropout modules in train."""
    model.eval()
    for m in model.modules():
        if isinstance(m, nn.Dropout | DropPath | ClassicDropout):
            m.train()
    torch.manual_seed(seed)
    with torch.no_grad():
        return torch.stack([model(x) for _ in range(n)])


def _reference(model: nn.Module, x: torch.Tensor, n: int, seed: int) -> tuple[Any, Any]:
    """Slow reference: stack all n passes, then torch.mean / torch.var (unbiased)."""
    passes = _passes(model, x, n, seed)
    return passes.mean(0), passes.var(0)


def test_mean_and_variance_match_a_slow_reference_that_stacks_every_pass() -> None:
    net, x = _net(), _x()
    mean, var = mc_predict(net, x, n=50, seed=3)
    ref_mean, ref_var = _reference(_net(), x, 50, 3)
    torch.testing.assert_close(mean, ref_mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(var, ref_var, rtol=1e-10, atol=1e-14)
    assert (var > 0).all()
    _, population = mc_predict(net, x, n=50, seed=3, correction=0)
    torch.testing.assert_close(population, ref_var * 49 / 50, rtol=1e-10, atol=1e-14)


def test_batchnorm_stays_in_eval_mode_and_its_running_statistics_are_never_updated() -> None:
    net, x = _net(), _x()
    saved = {k: v.clone() for k, v in net.bn.named_buffers()}
    modes: list[bool] = []
    unchanged: list[bool] = []

    def check(module: nn.Module, args: Any, output: Any) -> None:
        modes.append(module.training)
        for key, value in module.named_buffers():  # during the passes, not only after
            unchanged.append(torch.equal(value, saved[key]))

    handle = net.bn.register_forward_hook(check)
    try:
        mean, _ = mc_predict(net, x, n=10, seed=0)
    finally:
        handle.remove()
    assert modes == [False] * 10  # bn.training in every pass
    assert unchanged == [True] * 30  # running mean, var and num_batches_tracked
    # the batch statistics would have given a very different mean: the check can fail
    train_bn = _net()
    ref_mean, _ = _reference(train_bn, x, 10, 0)
    train_bn.bn.train()
    torch.manual_seed(0)
    with torch.no_grad():
        batch_stats = torch.stack([train_bn(x) for _ in range(10)]).mean(0)
    torch.testing.assert_close(mean, ref_mean, rtol=1e-12, atol=1e-12)
    assert (mean - batch_stats).abs().max() > 0.1


def _modes(model: nn.Module) -> dict[str, bool]:
    return {name: m.training for name, m in model.named_modules()}


def test_every_modules_training_flag_is_restored_exactly() -> None:
    net = _net()
    net.bn.eval()  # a mixed state: root and dropouts in train, bn in eval, classic in eval
    net.classic.eval()
    before = _modes(net)
    mc_predict(net, _x(), n=3, seed=0)
    assert _modes(net) == before
    net.eval()
    mc_predict(net, _x(), n=3, seed=0)
    assert not any(_modes(net).values())


class Boom(nn.Module):
    """Raises on its third call."""

    def __init__(self) -> None:
        super().__init__()
        self.drop, self.calls = nn.Dropout(0.5), 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("boom in pass 3")
        return self.drop(x)  # type: ignore[no-any-return]


def test_flags_and_random_state_are_restored_when_the_model_raises() -> None:
    model = Boom().eval()
    model.drop.eval()
    rng = torch.get_rng_state()
    with pytest.raises(RuntimeError, match="boom in pass 3"):
        mc_predict(model, torch.ones(4, 3), n=5, seed=0)
    assert model.calls == 3
    assert _modes(model) == {"": False, "drop": False}
    assert torch.equal(torch.get_rng_state(), rng)


def test_a_seed_makes_the_result_reproducible_and_leaves_the_global_generator_alone() -> None:
    net, x = _net(), _x()
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    a, b = mc_predict(net, x, n=8, seed=7), mc_predict(net, x, n=8, seed=7)
    assert torch.equal(a.mean, b.mean)
    assert torch.equal(a.variance, b.variance)
    assert torch.equal(torch.get_rng_state(), rng)
    assert not torch.equal(mc_predict(net, x, n=8, seed=8).mean, a.mean)
    torch.manual_seed(5)  # seed=None draws from the global generator
    c = mc_predict(net, x, n=8)
    torch.manual_seed(5)
    assert torch.equal(mc_predict(net, x, n=8).mean, c.mean)


@pytest.mark.parametrize("dropout", [nn.Dropout, ClassicDropout])
def test_claim_r8_for_a_network_linear_after_dropout_the_mc_average_is_the_eval_output(
    dropout: type[nn.Module],
) -> None:
    """E over masks of W2·drop(h) = W2·E[drop(h)] = the weight-scaled eval output, exactly in
    expectation; the MC mean must land within Z standard errors sqrt(var/n) of it."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 64), nn.Tanh(), dropout(0.5), nn.Linear(64, 3)).double()
    x = torch.randn(8, 10, dtype=torch.float64)
    n = 2000
    mean, var = mc_predict(model, x, n=n, seed=1)
    with torch.no_grad():
        weight_scaled = model.eval()(x)
    se = (var / n).sqrt()
    assert ((mean - weight_scaled).abs() <= Z * se).all()
    assert (Z * se < 0.1 * weight_scaled.abs().max()).all()  # the tolerance is informative


def test_attention_and_transformer_dropout_is_sampled_despite_the_fused_eval_path() -> None:
    """In eval mode under no_grad, TransformerEncoderLayer takes a fused path that skips its
    dropout children: turning only the nn.Dropout modules on gives identical passes."""
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.2, batch_first=True).eval()
    x = torch.randn(2, 5, 8)
    for m in layer.modules():
        if isinstance(m, nn.Dropout):
            m.train()
    with torch.no_grad():
        assert torch.equal(layer(x), layer(x))  # the pitfall
    layer.eval()
    _, var = mc_predict(layer, x, n=8, seed=0)
    assert (var > 0).all()
    assert not any(_modes(layer).values())


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, dropout=0.5, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x, x, x, need_weights=False)[0]  # type: ignore[no-any-return]


def test_multihead_attention_dropout_counts_as_a_dropout_module() -> None:
    torch.manual_seed(0)
    _, var = mc_predict(Attention().eval(), torch.randn(2, 5, 8), n=8, seed=0)
    assert (var > 0).all()


class Structured(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.drop = nn.Linear(4, 6), nn.Dropout(0.4)

    def forward(self, x: torch.Tensor, scale: float = 1.0) -> dict[str, Any]:
        h = self.drop(self.fc(x)) * scale
        return {"h": h, "pair": (h.sum(-1), h.pow(2))}


def test_tuple_and_dict_outputs_keep_their_structure_and_match_the_reference() -> None:
    torch.manual_seed(0)
    model = Structured().double()
    x = torch.randn(3, 4, dtype=torch.float64)
    mean, var = mc_predict(model, {"x": x, "scale": 2.0}, n=20, seed=4)
    torch.manual_seed(4)
    with torch.no_grad():
        passes = [model(x, 2.0) for _ in range(20)]
    leaves = {
        "h": (mean["h"], var["h"], [p["h"] for p in passes]),
        "sum": (mean["pair"][0], var["pair"][0], [p["pair"][0] for p in passes]),
        "sq": (mean["pair"][1], var["pair"][1], [p["pair"][1] for p in passes]),
    }
    assert isinstance(mean["pair"], tuple)
    for name, (m, v, ps) in leaves.items():
        stacked = torch.stack(ps)
        torch.testing.assert_close(m, stacked.mean(0), rtol=1e-12, atol=1e-12, msg=name)
        torch.testing.assert_close(v, stacked.var(0), rtol=1e-10, atol=1e-14, msg=name)


class Offset(nn.Module):
    """1e4 + dropout(x): a large mean over a small spread, where E[y²] − E[y]² cancels."""

    def __init__(self) -> None:
        super().__init__()
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1e4 + self.drop(x)  # type: ignore[no-any-return]


def test_variance_is_computed_stably_in_float32_where_the_naive_formula_fails() -> None:
    """Measured: shifted Welford within 4e-7 relative of the float64 variance of the same
    float32 passes; plain Welford (mean rounded near 1e4) is off by 4%, the naive formula by
    up to 48 (variances are 0 to 16)."""
    x = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    _, var = mc_predict(Offset(), x, n=64, seed=0)
    assert var.dtype == torch.float32
    torch.manual_seed(0)
    with torch.no_grad():
        passes = torch.stack([Offset().train()(x) for _ in range(64)])
    exact = passes.double().var(0)
    torch.testing.assert_close(var.double(), exact, rtol=1e-5, atol=1e-6)
    naive = (passes.pow(2).mean(0) - passes.mean(0).pow(2)) * 64 / 63  # float32
    assert ((naive.double() - exact).abs() > 0.1 * exact + 1e-6).any()


def test_memory_is_bounded_at_most_one_earlier_pass_is_alive() -> None:
    alive: list[int] = []
    outputs: list[weakref.ref[torch.Tensor]] = []

    class Tracked(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.drop = nn.Dropout(0.5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            alive.append(sum(ref() is not None for ref in outputs))
            y: torch.Tensor = self.drop(x)
            outputs.append(weakref.ref(y))
            return y

    mc_predict(Tracked(), torch.ones(10), n=20, seed=0)
    assert len(alive) == 20
    assert max(alive) <= 1  # stacking the passes would keep 19 alive at the last pass


def test_half_precision_outputs_are_accumulated_and_returned_in_float32() -> None:
    model = nn.Sequential(nn.Dropout(0.5)).to(torch.bfloat16)
    mean, var = mc_predict(model, torch.ones(50, dtype=torch.bfloat16), n=200, seed=0)
    assert mean.dtype == var.dtype == torch.float32
    se = math.sqrt(1.0 / 200)  # each pass is 0 or 2: std 1
    assert ((mean - 1).abs() <= Z * se).all()


class FunctionalDropout(nn.Module):
    """Dropout applied with F.dropout, gated by the module's own flag."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(self.fc(x), 0.5, self.training)


def test_functional_dropout_is_found_through_dropout_types() -> None:
    model, x = FunctionalDropout().eval(), torch.randn(3, 4)
    with pytest.raises(ValueError, match="no dropout module"):
        mc_predict(model, x, n=4)
    _, var = mc_predict(model, x, n=4, seed=0, dropout_types=(*DROPOUT_TYPES, FunctionalDropout))
    assert (var > 0).any()
    assert model.training is False


def test_mc_dropout_mode_sets_only_dropout_modules_to_train_and_restores_on_exit() -> None:
    net = _net()
    with mc_dropout_mode(net) as names:
        assert names == ["drop", "drop_path", "classic"]
        assert {n for n, m in net.named_modules() if m.training} == set(names)
    assert all(_modes(net).values())


def test_a_single_pass_with_the_population_variance_is_that_pass_with_zero_variance() -> None:
    net, x = _net(), _x()
    mean, var = mc_predict(net, x, n=1, seed=2, correction=0)
    torch.testing.assert_close(mean, _passes(_net(), x, 1, 2)[0], rtol=1e-12, atol=1e-12)
    assert torch.equal(var, torch.zeros_like(var))


class ArgMax(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(x).argmax(-1)  # type: ignore[no-any-return]


class Nothing(nn.Module):
    def forward(self, x: torch.Tensor) -> None:
        return None


def _bad(value: Any) -> Any:
    """A value of the wrong type, passed on as the static type checker cannot see it."""
    return value


BAD_CALLS: list[tuple[str, Any, type[Exception], str]] = [
    ("model not a module", lambda: mc_predict(_bad(len), torch.ones(2)), TypeError, "nn.Module"),
    ("bad input", lambda: mc_predict(nn.Dropout(), "x"), TypeError, "example_input must be"),
    ("n zero", lambda: mc_predict(nn.Dropout(), torch.ones(2), n=0), ValueError, "n must be >= 1"),
    (
        "n float",
        lambda: mc_predict(nn.Dropout(), torch.ones(2), n=_bad(2.0)),
        TypeError,
        "n must be an int",
    ),
    ("n one, unbiased", lambda: mc_predict(nn.Dropout(), torch.ones(2), n=1), ValueError, "n >= 2"),
    (
        "correction",
        lambda: mc_predict(nn.Dropout(), torch.ones(2), correction=2),
        ValueError,
        "0, 1",
    ),
    (
        "seed",
        lambda: mc_predict(nn.Dropout(), torch.ones(2), seed=_bad("1")),
        TypeError,
        "seed must be",
    ),
    ("no dropout", lambda: mc_predict(nn.Linear(2, 2), torch.ones(2)), ValueError, "no dropout"),
    ("rate zero", lambda: mc_predict(nn.Dropout(0.0), torch.ones(2)), ValueError, "rate 0"),
    (
        "types",
        lambda: mc_predict(nn.Dropout(), torch.ones(2), dropout_types=_bad([int])),
        TypeError,
        "subclasses",
    ),
    ("int output", lambda: mc_predict(ArgMax(), torch.ones(2, 3)), TypeError, "int64 tensor"),
    (
        "None output",
        lambda: mc_predict(nn.Sequential(nn.Dropout(), Nothing()), torch.ones(2)),
        TypeError,
        "NoneType",
    ),
]


@pytest.mark.parametrize(
    ("case", "call", "error", "match"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS]
)
def test_bad_inputs_raise_errors_that_name_the_value_and_the_fix(
    case: str, call: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        call()
