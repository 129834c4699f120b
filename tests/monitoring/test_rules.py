"""Rules: each fires at its threshold on synthetic measurements, each fires on a model built to
have its problem (naming the right layer and a stabletrain fix), and none fires on a healthy
model."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import stabletrain as st
from stabletrain import models
from stabletrain.findings import Finding
from stabletrain.monitoring import MemorySink, Thresholds, TrainingMonitor, every
from stabletrain.monitoring import rules as R
from stabletrain.monitoring.rules import LayerMeta, StepMetrics

T = Thresholds()


def metrics(
    values: dict[tuple[str | None, str], float],
    layers: tuple[LayerMeta, ...] = (),
    **kwargs: Any,
) -> StepMetrics:
    if not layers:
        names = sorted({k[0] for k in values if k[0] is not None})
        layers = tuple(LayerMeta(n, depth=i) for i, n in enumerate(names))
    return StepMetrics(1, layers, values, **kwargs)


def chain(norms: list[float]) -> StepMetrics:
    names = [f"l{i}" for i in range(len(norms))]
    layers = tuple(LayerMeta(n, depth=i) for i, n in enumerate(names))
    return metrics({(n, "grad_norm"): g for n, g in zip(names, norms, strict=True)}, layers)


# --------------------------------------------------------------------------- thresholds


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("dead_fraction", 1.5, r"\(0, 1\)"),
        ("depth_ratio", 1.0, "> 1"),
        ("loss_window", 1, ">= 2"),
        ("exploding_norm", -1.0, "> 0"),
        ("symmetric_cosine", 1.5, r"\(0, 1\]"),
        ("update_ratio_low", 1.0, "below"),
        ("dead_window", 0, ">= 1"),
    ],
)
def test_thresholds_reject_values_outside_their_range(field: str, value: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Thresholds(**{field: value})


def test_thresholds_are_frozen() -> None:
    with pytest.raises(AttributeError):
        T.dead_fraction = 0.1  # type: ignore[misc]


# --------------------------------------------------------------------------- synthetic


def test_vanishing_fires_below_the_fraction_of_the_median_and_not_at_it() -> None:
    found = R.vanishing(chain([1.0, 1.0, 1.0, 0.9e-3]), T)
    assert [f.layer for f in found] == ["l3"]
    assert found[0].threshold == pytest.approx(1e-3)
    assert R.vanishing(chain([1.0, 1.0, 1.0, 1.1e-3]), T) == []


def test_depth_trend_fits_a_geometric_decay_and_names_the_first_layer() -> None:
    decaying = chain([10.0 ** (k - 6) for k in range(6)])  # x10 per layer toward the output
    found = R.depth_trend(decaying, T)
    assert len(found) == 1
    assert found[0].layer == "l0"
    assert found[0].value == pytest.approx(1e-5)
    assert "Vanishing" in found[0].message
    growing = R.depth_trend(chain([10.0 ** (6 - k) for k in range(6)]), T)
    assert "Exploding" in growing[0].message
    assert growing[0].value == pytest.approx(1e5)
    assert R.depth_trend(chain([1.0, 3.0, 0.5, 2.0, 1.0, 0.7]), T) == []
    assert R.depth_trend(chain([1e-9, 1.0, 1.0]), T) == []  # fewer than min_depth layers


def test_exploding_fires_on_a_layer_and_on_inf_but_not_on_nan() -> None:
    assert [f.layer for f in R.exploding(chain([1.0, 2e3]), T)] == ["l1"]
    assert [f.layer for f in R.exploding(chain([math.inf, 1.0]), T)] == ["l0"]
    assert R.exploding(chain([math.nan, 1.0]), T) == []
    total = metrics({("a", "grad_norm"): 900.0, (None, "grad_norm"): 1.2e3})
    assert [(f.layer, f.value) for f in R.exploding(total, T)] == [(None, 1.2e3)]


def test_nonfinite_names_the_layer_and_the_loss() -> None:
    m = metrics(
        {("a", "grad_nonfinite"): 0.0, ("b", "grad_nonfinite"): 2.0, (None, "loss"): math.nan}
    )
    found = R.nonfinite(m, T)
    assert [(f.layer, f.metric, f.severity) for f in found] == [
        ("b", "grad_nonfinite", "error"),
        (None, "loss", "error"),
    ]
    assert "StepGuard" in found[0].fix


def test_dead_units_wait_for_a_full_window() -> None:
    values = {("a", "dead_fraction"): 0.9}
    assert R.dead_units(metrics(values, window_batches=T.dead_window - 1), T) == []
    assert len(R.dead_units(metrics(values, window_batches=T.dead_window), T)) == 1
    quiet = {("a", "dead_fraction"): T.dead_fraction}
    assert R.dead_units(metrics(quiet, window_batches=T.dead_window), T) == []


def test_saturation_symmetry_and_update_ratio_fire_past_their_thresholds() -> None:
    m = metrics(
        {
            ("a", "saturation_fraction"): 0.3,
            ("b", "saturation_fraction"): 0.2,
            ("a", "max_row_cosine"): 0.9995,
            ("b", "max_row_cosine"): 0.99,
            ("a", "update_ratio"): 0.2,
            ("b", "update_ratio"): 1e-6,
            ("c", "update_ratio"): 1e-3,
        },
        lr=0.5,
    )
    assert [f.layer for f in R.saturation(m, T)] == ["a"]
    assert [f.layer for f in R.symmetric_units(m, T)] == ["a"]
    ratios = R.update_ratio(m, T)
    assert [(f.layer, f.threshold) for f in ratios] == [("a", 1e-1), ("b", 1e-5)]
    assert "lower the learning rate (now 0.5)" in ratios[0].fix
    assert "raise the learning rate" in ratios[1].fix


def test_loss_plateau_compares_the_two_halves_of_a_full_window() -> None:
    t = Thresholds(loss_window=4)
    assert R.loss_plateau(metrics({}, losses=(2.0, 2.0, 2.0, 2.5)), t) != []
    assert R.loss_plateau(metrics({}, losses=(3.0, 2.0, 1.9, 1.8)), t) == []
    assert R.loss_plateau(metrics({}, losses=(3.0, 3.0, 3.0)), t) == []  # not full yet


def test_every_fix_names_a_stabletrain_call_or_setting() -> None:
    m = metrics(
        {
            ("a", "grad_nonfinite"): 1.0,
            ("a", "grad_norm"): 1e4,
            ("a", "dead_fraction"): 1.0,
            ("a", "saturation_fraction"): 1.0,
            ("a", "max_row_cosine"): 1.0,
            ("a", "update_ratio"): 1.0,
            ("b", "grad_norm"): 1.0,
            ("c", "grad_norm"): 1.0,
            ("d", "grad_norm"): 1e-9,
        },
        window_batches=T.dead_window,
        losses=tuple([1.0] * T.loss_window),
        clip_ratios=tuple([0.5] * T.clip_window),
    )
    fired = {name: rule(m, T) for name, rule in R.RULES.items()}
    for name, found in fired.items():
        if name == "depth_trend":
            continue
        assert found, name
        for f in found:
            assert "stabletrain" in f.fix or "StepGuard" in f.fix or "learning rate" in f.fix, name


# --------------------------------------------------------------------------- models


def train(
    model: nn.Module,
    *,
    steps: int = 3,
    lr: float = 0.01,
    adam: bool = False,
    thresholds: Thresholds = T,
    x: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[list[Finding], MemorySink]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 16, generator=g) if x is None else x
    y = torch.randn(64, 1, generator=g)
    opt: torch.optim.Optimizer = (
        torch.optim.Adam(model.parameters(), lr=lr)
        if adam
        else torch.optim.SGD(model.parameters(), lr=lr)
    )
    sink = MemorySink()
    with TrainingMonitor(
        model,
        opt,
        preset="full",
        schedule=every(1),
        sinks=[sink],
        thresholds=thresholds,
        summary=False,
        **kwargs,
    ) as mon:
        for _ in range(steps):
            loss = F.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(loss)
    return mon.findings(), sink


def fired(findings: list[Finding], rule: str) -> list[str | None]:
    return [f.layer for f in findings if f.rule == rule]


def test_a_deep_sigmoid_mlp_has_vanishing_gradients_at_its_first_layers() -> None:
    torch.manual_seed(0)
    findings, _ = train(models.mlp(16, 1, depth=20, width=32, activation="sigmoid"))
    assert fired(findings, "depth_trend") == ["linear1"]
    assert "linear1" in fired(findings, "vanishing")
    assert "auto_init" in next(f for f in findings if f.rule == "depth_trend").fix


def test_the_same_depth_with_he_initialized_relus_has_no_vanishing_gradients() -> None:
    torch.manual_seed(0)  # claim S2: the ReLU family avoids the vanishing of sigmoid
    model = models.mlp(16, 1, depth=20, width=32, activation="relu")
    st.auto_init(model, torch.randn(64, 16))
    findings, _ = train(model)
    assert fired(findings, "depth_trend") == []
    assert fired(findings, "vanishing") == []


def test_an_oversized_init_explodes_the_gradients() -> None:
    torch.manual_seed(0)
    model = models.mlp(16, 1, depth=6, width=64)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_(8)
    findings, _ = train(model, steps=1, lr=1e-9)
    assert "linear1" in fired(findings, "exploding")
    assert "clip_grad_norm_" in next(f for f in findings if f.rule == "exploding").fix


def test_a_relu_layer_with_a_large_negative_bias_is_dead() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1))
    with torch.no_grad():
        model[0].bias.fill_(-100.0)
    findings, sink = train(model, steps=T.dead_window)
    assert fired(findings, "dead_units") == ["0"]
    assert sink.last("dead_fraction", "0") == 1.0


def test_a_dead_functional_relu_is_found_through_the_traced_example_input() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(16, 32)
            self.out = nn.Linear(32, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(F.relu(self.fc(x)))

    torch.manual_seed(0)
    model = Net()
    with torch.no_grad():
        model.fc.bias.fill_(-100.0)
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(1))
    findings, _ = train(model, steps=T.dead_window, x=x, example_input=x)
    assert fired(findings, "dead_units") == ["fc"]


def test_a_constant_init_makes_symmetric_units() -> None:
    model = nn.Sequential(
        nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1)
    )
    for p in model.parameters():
        nn.init.constant_(p, 0.1)
    findings, _ = train(model, steps=5)
    assert fired(findings, "symmetric_units") == ["0", "2"]
    symmetric = next(f for f in findings if f.rule == "symmetric_units")
    assert "orthogonal_" in symmetric.fix
    assert symmetric.count == 5  # gradient descent never breaks it (claim I1)


def test_a_nan_injected_into_one_gradient_is_found_in_that_layer_only() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1)
    )

    bad = torch.zeros_like(model[2].weight)
    bad[3, 4] = math.nan
    model[2].weight.register_hook(lambda g: g + bad)  # the NaN is born in backward
    findings, _ = train(model, steps=1)
    nonfinite = [f for f in findings if f.rule == "nonfinite"]
    assert {f.layer for f in nonfinite} == {"2"}
    assert {f.metric for f in nonfinite} == {"grad_nonfinite", "weight_nonfinite"}


def test_a_tanh_layer_with_a_huge_init_saturates() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 1))
    with torch.no_grad():
        model[0].weight.mul_(30)
    findings, _ = train(model, steps=1)
    assert fired(findings, "saturation") == ["0"]


def test_a_learning_rate_far_too_high_or_low_shows_in_the_update_ratio() -> None:
    torch.manual_seed(0)
    high, _ = train(
        nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1)), lr=1.0, adam=True, steps=1
    )
    assert set(fired(high, "update_ratio")) == {"0", "2"}
    torch.manual_seed(0)
    low, _ = train(
        nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1)), lr=1e-9, adam=True, steps=1
    )
    assert set(fired(low, "update_ratio")) == {"0", "2"}


def test_a_loss_that_does_not_move_is_reported_after_a_full_window() -> None:
    model = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 1))
    findings, _ = train(
        model, steps=8, lr=0.0, thresholds=Thresholds(loss_window=8, update_ratio_low=0.0 + 1e-30)
    )
    assert fired(findings, "loss_plateau") == [None]


def test_a_healthy_model_raises_no_finding() -> None:
    torch.manual_seed(0)
    model = models.mlp(16, 1, depth=4, width=64, activation="relu", norm="layer")
    st.auto_init(model, torch.randn(64, 16))  # He init for the ReLUs
    findings, sink = train(model, steps=T.dead_window + 4, lr=1e-3, adam=True)
    assert findings == []
    assert {r.metric for r in sink.rows} >= {"update_ratio", "dead_fraction", "max_row_cosine"}


# --------------------------------------------------------------------------- serialization


def test_a_finding_round_trips_through_json_and_bad_objects_are_refused() -> None:
    f = Finding(
        severity="error",
        layer="fc",
        metric="grad_norm",
        value=float("inf"),
        threshold=1e3,
        message="explodes",
        fix="clip",
        rule="exploding",
        step=2,
    )
    back = Finding.from_json(f.to_json())
    assert back == f
    assert f.to_json()["value"] == "inf"
    with pytest.raises(ValueError, match="severity 'fatal' is not one of"):
        Finding.from_json({**f.to_json(), "severity": "fatal"})
    broken = f.to_json()
    del broken["message"]
    with pytest.raises(ValueError, match="has no field 'message'"):
        Finding.from_json(broken)


def test_merged_keeps_the_first_step_and_takes_the_latest_values() -> None:
    first = Finding(
        severity="warning",
        layer="fc",
        metric="update_ratio",
        value=0.5,
        threshold=0.1,
        message="too high",
        fix="lower lr",
        rule="u",
        step=4,
        last_step=4,
    )
    later = Finding(
        severity="error",
        layer="fc",
        metric="update_ratio",
        value=1e-6,
        threshold=1e-5,
        message="too low",
        fix="raise lr",
        rule="u",
        step=9,
        last_step=9,
    )
    m = first.merged(later).merged(later)
    assert (m.step, m.last_step, m.count) == (4, 9, 3)
    assert (m.value, m.threshold, m.message, m.fix, m.severity) == (
        1e-6,
        1e-5,
        "too low",
        "raise lr",
        "error",
    )


def test_clipping_fires_when_most_steps_of_a_full_window_were_clipped() -> None:
    t = Thresholds(clip_window=4, clip_fraction=0.5)
    (found,) = R.clipping(metrics({}, clip_ratios=(1.0, 0.2, 0.1, 0.3)), t)
    assert found.rule == "clipping"
    assert found.value == pytest.approx(0.2)  # the median ratio of the clipped steps
    assert "75%" in found.message
    assert R.clipping(metrics({}, clip_ratios=(1.0, 1.0, 0.1, 0.3)), t) == []  # half: not most
    assert R.clipping(metrics({}, clip_ratios=(0.1, 0.1, 0.1)), t) == []  # window not full


def test_the_monitor_rule_type_is_findingrule_and_rule_is_a_deprecated_alias() -> None:
    import stabletrain.monitoring as monitoring
    from stabletrain.monitoring import rules

    assert all(callable(r) for r in monitoring.RULES.values())
    assert "Rule" not in monitoring.__all__
    assert "FindingRule" in monitoring.__all__
    for module in (monitoring, rules):
        with pytest.warns(DeprecationWarning, match=r"monitoring\.Rule is deprecated.*FindingRule"):
            assert module.Rule is rules.FindingRule
    with pytest.raises(AttributeError, match="no attribute 'Rules'"):
        _ = monitoring.Rules  # type: ignore[attr-defined]


def test_symmetric_units_take_the_higher_of_the_threshold_and_chance() -> None:
    layers = (
        R.LayerMeta("short", chance_cosine=0.99999),  # rows so short chance reaches 0.99999
        R.LayerMeta("long", chance_cosine=0.6),
        R.LayerMeta("scalar", chance_cosine=1.0),  # rows of one entry: never tested
    )
    values = {("short", "max_row_cosine"): 0.9995, ("long", "max_row_cosine"): 0.9995}
    values[("scalar", "max_row_cosine")] = 1.0
    found = R.symmetric_units(R.StepMetrics(10, layers, values), T)
    assert [(f.layer, f.threshold) for f in found] == [("long", T.symmetric_cosine)]
    values[("short", "max_row_cosine")] = 1.0
    found = R.symmetric_units(R.StepMetrics(10, layers, values), T)
    assert [(f.layer, f.threshold) for f in found] == [("short", 0.99999), ("long", 0.999)]
