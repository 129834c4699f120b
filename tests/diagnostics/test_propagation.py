"""diagnose: measurements against theory (claims I5-I7), one pass, state kept, fix, bad input."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn

from stabletrain import init
from stabletrain.diagnostics import Diagnosis, diagnose
from stabletrain.models import mlp
from tests import _hf as hf
from tests.benchmarks._run import load_benchmark

SCHEMES: dict[str, Callable[..., torch.Tensor]] = {
    "he": init.he_normal_,
    "xavier": init.xavier_normal_,
    "standard": init.standard_,
    "orthogonal": init.orthogonal_,
}
# Stated tolerances on |measured/predicted − 1| for width 512, depth 6, batch 512: the chained
# prediction is exact in expectation; one finite network wanders from it (ReLU most: the
# per-layer factor fluctuates by ~sqrt(5/width), compounding with depth).
TOLERANCE = {"relu": 0.25, "tanh": 0.03, "identity": 0.08}


def _mlp(activation: str, scheme: str, seed: int, width: int = 512, depth: int = 6) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    model = mlp(width, width, depth=depth, width=width, activation=activation)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            SCHEMES[scheme](m.weight, generator=generator)
            init.zeros_(m.bias)
    return model


def _check_against_theory(activation: str, scheme: str, seed: int) -> None:
    model = _mlp(activation, scheme, seed)
    x = torch.randn(512, 512, generator=torch.Generator().manual_seed(100 + seed))
    d = diagnose(model, x, lint=False)
    tol = TOLERANCE[activation]
    assert len(d.layers) == 7
    for layer in d.layers:
        assert layer.scheme == scheme, layer.name
        assert layer.forward_ratio == pytest.approx(1, abs=tol), layer.name
        if layer.name != "head":  # the backward chain starts at the head's measured gradient
            assert layer.backward_ratio == pytest.approx(1, abs=tol), layer.name
    assert math.isnan(d["head"].backward_ratio)


@pytest.mark.parametrize(
    ("activation", "scheme"), [("relu", "he"), ("tanh", "xavier"), ("identity", "standard")]
)
def test_predictions_match_measurements_quick(activation: str, scheme: str) -> None:
    _check_against_theory(activation, scheme, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("scheme", list(SCHEMES))
@pytest.mark.parametrize("activation", ["relu", "tanh", "identity"])
def test_predictions_match_measurements_for_every_scheme(
    activation: str, scheme: str, seed: int
) -> None:
    _check_against_theory(activation, scheme, seed)


def test_the_scheme_each_layer_looks_like_is_named() -> None:
    torch.manual_seed(0)
    layers = [nn.Linear(256, 256) for _ in range(8)]
    model = nn.Sequential(*layers, nn.LayerNorm(256))
    init.he_uniform_(layers[0].weight)
    init.xavier_uniform_(layers[1].weight)
    init.orthogonal_(layers[2].weight)
    init.constant_(layers[3].weight, 0.01)
    init.zeros_(layers[4].weight)
    init.normal_(layers[5].weight, 0.0, 0.05)
    # layers[6], layers[7]: PyTorch's default, U(±1/sqrt(fan_in))
    d = diagnose(model, torch.randn(32, 256), lint=False)
    got = [d[str(i)].scheme for i in range(9)]
    expected = ["he", "xavier", "orthogonal", "constant", "zeros", None, "standard", "standard"]
    assert got == [*expected, "ones"]  # and the LayerNorm's gain


def test_claim_i7_xavier_with_relu_halves_the_variance_per_layer_and_he_keeps_it() -> None:
    x = torch.randn(512, 512, generator=torch.Generator().manual_seed(1))
    he = diagnose(_mlp("relu", "he", 0), x, lint=False)
    xavier = diagnose(_mlp("relu", "xavier", 0), x, lint=False)
    # theory: He keeps E[z²] = 2·E[x²]/2 constant; Xavier (square layers) halves it per layer
    for i in range(1, 6):
        a, b = xavier.layers[i], xavier.layers[i - 1]
        assert a.predicted_out_std is not None
        assert b.predicted_out_std is not None
        assert a.predicted_out_std / b.predicted_out_std == pytest.approx(math.sqrt(0.5), rel=0.02)
        assert he.layers[i].predicted_out_std == pytest.approx(
            he.layers[i - 1].predicted_out_std, rel=0.02
        )


def test_claim_i4_standard_init_with_tanh_gives_variance_one_third_at_layer_1() -> None:
    x = torch.randn(4096, 512, generator=torch.Generator().manual_seed(2))
    d = diagnose(_mlp("tanh", "standard", 0), x, lint=False)
    first = d.layers[0]
    assert first.predicted_out_std == pytest.approx(math.sqrt(1 / 3), rel=0.02)
    assert first.out_std**2 == pytest.approx(1 / 3, rel=0.03)
    assert d.layers[5].out_std < 0.1 * first.out_std  # and it shrinks with depth (I4 fails)


def test_activation_statistics_match_a_direct_computation() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 256), nn.Tanh(), nn.Linear(256, 256), nn.ReLU())
    with torch.no_grad():
        model[0].weight.mul_(20)  # saturate the tanh
    x = torch.randn(256, 64)
    d = diagnose(model, x, lint=False)
    with torch.no_grad():
        z0 = model[0](x)
        a0 = torch.tanh(z0)
        z2 = model[2](a0)
        a2 = torch.relu(z2)
    first, second = d["0"], d["2"]
    assert first.out_std == pytest.approx(float(z0.std(unbiased=False)), rel=1e-4)
    assert first.out_mean == pytest.approx(float(z0.mean()), abs=1e-4)
    assert first.act_std == pytest.approx(float(a0.std(unbiased=False)), rel=1e-4)
    # fractions come from a strided sample of at most 32768 of the 65536 values
    assert first.saturated_fraction == pytest.approx(
        float((a0.abs() > 0.99).float().mean()), abs=0.01
    )
    assert first.saturated_fraction > 0.5
    assert second.zero_fraction == pytest.approx(float((a2 == 0).float().mean()), abs=0.01)
    assert math.isnan(second.saturated_fraction)  # ReLU is not bounded
    assert first.activation == "tanh"
    assert second.activation == "relu"


def test_gradients_match_a_slow_autograd_reference() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 8)).eval()
    x = torch.randn(64, 16)
    d = diagnose(model, x, lint=False)
    labels = torch.randint(0, 8, (64,), generator=torch.Generator().manual_seed(0))
    h = model[0](x)
    h.retain_grad()
    out = model[2](F.gelu(h))
    out.retain_grad()
    F.cross_entropy(out, labels).backward()
    assert h.grad is not None
    assert out.grad is not None
    assert model[0].weight.grad is not None
    assert d["0"].grad_out_std == pytest.approx(float(h.grad.std(unbiased=False)), rel=1e-4)
    assert d["2"].grad_out_std == pytest.approx(float(out.grad.std(unbiased=False)), rel=1e-4)
    assert d["0"].grad_weight_std == pytest.approx(
        float(model[0].weight.grad.std(unbiased=False)), rel=1e-4
    )
    loss = F.cross_entropy(out.detach(), labels)
    assert d.loss_value == pytest.approx(float(loss), rel=1e-6)


def test_histograms_are_fractions_over_rms_units_and_match_the_normal_law() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(512, 256))
    x = torch.randn(1024, 512)
    d = diagnose(model, x, lint=False, histogram_bins=21)
    edges = d.histogram_edges
    assert len(edges) == 22
    assert edges[0] == -4.0
    assert edges[-1] == 4.0
    hist = d["0"].histogram
    assert sum(hist) == pytest.approx(1.0)
    # the output is N(0, σ²) and the unit is its RMS ≈ σ: the fractions follow the normal law
    cdf = stats.norm.cdf(edges)
    expected = [cdf[i + 1] - cdf[i] for i in range(21)]
    expected[0] += cdf[0]
    expected[-1] += 1 - cdf[-1]  # values beyond the edges count in the end bins
    for got, want in zip(hist, expected, strict=True):
        assert got == pytest.approx(want, abs=0.01)


class _Probe(nn.Module):
    """Counts forward calls and backward passes."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.forwards = 0
        self.backwards = 0
        self.scale = nn.Parameter(torch.ones(()))
        self.scale.register_hook(self._count)

    def _count(self, grad: torch.Tensor) -> None:
        self.backwards += 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.forwards += 1
        out: torch.Tensor = self.inner(x) * self.scale
        return out


def test_one_forward_and_one_backward_pass_even_with_the_lint() -> None:
    model = _Probe(mlp(8, 3, depth=3, width=16))
    diagnose(model, torch.randn(32, 8))
    assert (model.forwards, model.backwards) == (1, 1)


def _state(model: nn.Module) -> dict[str, object]:
    return {
        "params": {k: v.detach().clone() for k, v in model.named_parameters()},
        "buffers": {k: v.clone() for k, v in model.named_buffers()},
        "modes": {k: m.training for k, m in model.named_modules()},
        "grads": {
            k: None if v.grad is None else v.grad.clone() for k, v in model.named_parameters()
        },
        "rng": torch.get_rng_state(),
    }


def _same(a: object, b: object) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return torch.equal(a, b)
    return a == b


def test_parameters_buffers_modes_grads_and_rng_are_bit_identical_afterwards() -> None:
    torch.manual_seed(0)
    model = mlp(8, 4, depth=3, width=16, norm="batch", dropout=0.2)
    model[5].eval()  # a mixed-mode model: one dropout in eval mode
    model(torch.randn(16, 8)).sum().backward()  # some .grad already there
    model.head.bias.grad = None  # and one missing
    x = torch.randn(32, 8)
    before = _state(model)
    diagnose(model, x)
    assert _same(_state(model), before)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_in_place_relu_after_batchnorm_is_measured_before_it_runs() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(True))
    d = diagnose(model, torch.randn(8, 3, 12, 12), lint=False)
    bn = d["1"]
    assert bn.out_std == pytest.approx(1.0, abs=0.01)  # normalized, not ReLU'd
    assert abs(bn.out_mean) < 1e-3
    assert bn.zero_fraction == pytest.approx(0.5, abs=0.05)
    assert bn.forward_ratio == pytest.approx(1.0, abs=0.01)
    assert d["0"].forward_ratio == pytest.approx(1.0, abs=0.1)


def test_the_default_loss_is_cross_entropy_on_logits_else_a_random_projection() -> None:
    x = torch.randn(16, 8)
    logits = diagnose(nn.Linear(8, 5), x, lint=False)
    assert logits.loss == "cross_entropy(output, random labels of 5 classes, seed 0)"
    column = diagnose(nn.Linear(8, 1), x, lint=False)
    assert column.loss.startswith("random projection of the output")
    seq = diagnose(nn.Linear(8, 5), torch.randn(4, 3, 8), lint=False)
    assert seq.loss.startswith("random projection of the output")
    again = diagnose(nn.Linear(8, 5), x, lint=False, seed=1)
    assert "seed 1" in again.loss


def test_a_target_picks_cross_entropy_for_indices_and_mse_otherwise() -> None:
    x = torch.randn(16, 8)
    model = nn.Linear(8, 5)
    labels = torch.randint(0, 5, (16,))
    d = diagnose(model, x, target=labels, lint=False)
    assert d.loss.startswith("cross_entropy(output, target of ")
    with torch.no_grad():
        expected = float(F.cross_entropy(model(x), labels))
    assert d.loss_value == pytest.approx(expected, rel=1e-5)
    goal = torch.randn(16, 5)
    d = diagnose(model, x, target=goal, lint=False)
    assert d.loss == "mse_loss(output, target)"
    with pytest.raises(ValueError, match=r"target of shape \(3,\)"):
        diagnose(model, x, target=torch.randn(3), lint=False)


def test_a_given_loss_fn_is_used_and_named() -> None:
    def half_sum(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (out * y).sum() / 2

    x = torch.randn(4, 3)
    d = diagnose(nn.Linear(3, 2), x, loss_fn=half_sum, target=torch.ones(4, 2), lint=False)
    assert d.loss == "half_sum(output, target)"
    d = diagnose(nn.Linear(3, 2), x, loss_fn=lambda out: out.sum(), lint=False)
    assert d.loss == "<lambda>(output)"
    with pytest.raises(TypeError, match="must return a floating-point scalar"):
        diagnose(nn.Linear(3, 2), x, loss_fn=lambda out: out, lint=False)
    with pytest.raises(ValueError, match="loss_fn\\(output\\) raised KeyError"):
        diagnose(nn.Linear(3, 2), x, loss_fn=lambda out: {}["x"], lint=False)


def test_bert_from_a_config_is_diagnosed_against_theory() -> None:
    pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = hf.bert(64, 2, vocab=200)
    ids = torch.randint(0, 200, (4, 24))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    d = diagnose(model, {"input_ids": ids})
    assert d.model == "BertModel"
    assert d["encoder.layer.0.intermediate.dense"].activation == "gelu"
    assert d["pooler.dense"].activation == "tanh"
    predicted = [x for x in d.layers if math.isfinite(x.forward_ratio)]
    assert len(predicted) == len(d.layers)  # every BERT layer is covered forward
    for x in predicted:
        assert x.forward_ratio == pytest.approx(1, abs=0.25), x.name
    chained = [x for x in d.layers if math.isfinite(x.backward_ratio)]
    assert len(chained) >= 10
    for x in chained:
        assert x.backward_ratio == pytest.approx(1, abs=0.25), x.name
    assert {f.rule for f in d.findings} & {"init_mismatch"}  # the lint ran on the same graph
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert model.training


def test_recurrent_and_attention_layers_are_measured_without_prediction() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.LSTM(8, 16, batch_first=True)
            self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
            self.head = nn.Linear(16, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h, _ = self.rnn(x)
            a, _ = self.attn(h, h, h)
            out: torch.Tensor = self.head(a[:, -1])
            return out

    d = diagnose(Net(), torch.randn(4, 5, 8), lint=False)
    assert d["rnn"].predicted_out_std is None
    assert d["attn"].predicted_out_std is None
    assert d["rnn"].out_std > 0
    assert d["attn"].grad_out_std > 0
    assert d["head"].forward_ratio == pytest.approx(1, abs=0.3)  # restarted at its input
    assert any("no prediction for 2 layer(s)" in n for n in d.notes)


def _bad_relu_mlp(depth: int = 12, width: int = 128, shift: float = 0.0) -> nn.Module:
    generator = torch.Generator().manual_seed(0)
    model = mlp(width, 10, depth=depth, width=width)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            init.normal_(m.weight, shift, 0.5 / math.sqrt(m.in_features), generator=generator)
            init.zeros_(m.bias)
    return model


def test_findings_name_vanishing_signals_and_fix_with_auto_init() -> None:
    d = diagnose(_bad_relu_mlp(), torch.randn(256, 128), lint=False)
    rules = {f.rule for f in d.findings}
    assert {"propagation_forward_vanishing", "propagation_backward_vanishing"} <= rules
    assert all("stabletrain.auto_init(model, example_input)" in f.fix for f in d.findings)


def test_fix_re_initializes_and_keeps_the_diagnosis_before() -> None:
    model = _bad_relu_mlp()
    x = torch.randn(256, 128, generator=torch.Generator().manual_seed(3))
    d = diagnose(model, x, fix=True)
    assert d.before is not None
    assert d.before.forward_gain < 0.01
    body = d.layers[-2].out_std / d.layers[0].out_std  # the head's logits start small
    assert 0.3 < body < 3  # the signal survives the depth after the fix
    assert d.loss_value == pytest.approx(math.log(10), rel=0.05)  # the logits role: ≤ 1.05·ln C
    assert "propagation_forward_vanishing" in {f.rule for f in d.before.findings}
    assert "propagation_forward_vanishing" not in {f.rule for f in d.findings}
    assert d.init_report is not None
    assert any(p["name"] == "linear1.weight" for p in d.init_report["params"])
    assert d.notes[-1].startswith("fixed with stabletrain.auto_init(model, example_input")
    assert Diagnosis.from_dict(d.to_dict()).before is not None


def test_fix_moves_the_forward_ratios_of_a_shifted_init_toward_one() -> None:
    # weights with a mean break the theory's zero-mean assumption: measured far from predicted
    model = _bad_relu_mlp(depth=6, shift=0.02)
    d = diagnose(model, torch.randn(256, 128), fix=True, lint=False)
    assert d.before is not None

    def worst(diagnosis: Diagnosis) -> float:
        # the hidden layers: auto_init fits the head to a step-0 loss with its bias taking each
        # class's mean (ReLU features have one), which the zero-mean theory does not model
        return max(abs(math.log(x.forward_ratio)) for x in diagnosis.layers if x.name != "head")

    assert worst(d.before) > math.log(2)
    assert "propagation_theory_mismatch" in {f.rule for f in d.before.findings}
    assert worst(d) < 0.5 * worst(d.before)
    assert worst(d) < math.log(1.3)


def test_dead_and_saturated_units_and_non_finite_outputs_are_findings() -> None:
    dead = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    with torch.no_grad():
        dead[0].bias.fill_(-10.0)
    rules = {f.rule: f for f in diagnose(dead, torch.randn(64, 16), lint=False).findings}
    assert rules["propagation_dead"].layer == "0"
    hot = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 4))
    with torch.no_grad():
        hot[0].weight.mul_(30)
    rules = {f.rule: f for f in diagnose(hot, torch.randn(64, 16), lint=False).findings}
    assert rules["propagation_saturated"].layer == "0"
    broken = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    with torch.no_grad():
        broken[2].weight[0, 0] = float("inf")
    d = diagnose(broken, torch.randn(64, 16), lint=False)
    assert d.findings[0].rule == "propagation_nonfinite"
    assert d.findings[0].severity == "error"


def test_the_table_prints_every_layer_and_the_findings(monkeypatch: pytest.MonkeyPatch) -> None:
    # a wide terminal shows every column (80 columns, a pipe's width, drops some by priority:
    # tests/cli/test_width.py checks that layout)
    monkeypatch.setenv("COLUMNS", "200")
    d = diagnose(_bad_relu_mlp(depth=4), torch.randn(64, 128), lint=False)
    text = str(d)
    for column in ("layer", "out std", "predicted", "ratio", "grad std", "zero%", "sat%"):
        assert column in text
    for name in ("linear1", "linear4", "head"):
        assert name in text
    assert "propagation_forward_vanishing" in text


def test_diagnosis_round_trips_through_json() -> None:
    d = diagnose(mlp(8, 3, depth=2, width=16), torch.randn(16, 8), lint=False)
    back = Diagnosis.from_dict(__import__("json").loads(d.to_json()))
    assert [x.name for x in back.layers] == [x.name for x in d.layers]
    assert back.layers[0].histogram == pytest.approx(d.layers[0].histogram)
    assert back.loss == d.loss


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"model": "net"}, TypeError, "expected an nn.Module, got str"),
        ({"example_input": 3}, TypeError, "example_input must be a tensor"),
        ({"loss_fn": "mse"}, TypeError, "loss_fn must be callable"),
        ({"fix": "yes"}, TypeError, "fix must be True or False"),
        ({"histogram_bins": 1}, ValueError, "histogram_bins must be >= 2"),
        ({"histogram_bins": 2.5}, TypeError, "histogram_bins must be an int"),
        ({"seed": None}, TypeError, "seed must be an int"),
        ({"example_input": torch.randn(4, 5)}, ValueError, "the model raised RuntimeError"),
        ({"model": nn.ReLU()}, ValueError, "ReLU has no parameters"),
        ({"model": nn.Linear(3, 2, device="meta")}, ValueError, r"meta device .*to_empty"),
        (
            {"example_input": torch.full((4, 3), float("nan"))},
            ValueError,
            "example_input holds 12 NaN and 0 ±inf of 12 values; the input is the cause",
        ),
        (
            {"example_input": (torch.randn(4, 3), torch.tensor([float("inf")]))},
            ValueError,
            "example_input holds 0 NaN and 1 ±inf of 13 values",
        ),
    ],
)
def test_bad_input_raises_a_clear_error(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    args: dict[str, object] = {"model": nn.Linear(3, 2), "example_input": torch.randn(4, 3)}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        diagnose(**args)  # type: ignore[arg-type]


def test_fix_zeroes_the_residual_branches_of_a_deep_post_ln_transformer() -> None:
    from stabletrain.models import transformer

    torch.manual_seed(0)
    model = transformer(
        d_model=32, n_heads=4, n_layers=6, norm_position="post", in_features=8, out_features=4
    )
    d = diagnose(model, torch.randn(4, 10, 8), fix=True)
    assert d.before is not None
    assert "deep_post_ln" in {f.rule for f in d.before.findings}
    assert d.notes[-1] == "fixed with stabletrain.auto_init(model, example_input, residual='zero')"
    assert d.init_report is not None
    assert any("residual='zero'" in note for note in d.init_report["notes"])
    assert d["blocks.0.mlp.proj"].out_std == 0.0  # each branch starts at zero


def test_gpt2_conv1d_weights_are_read_in_out() -> None:
    pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = hf.gpt2(64, 2, positions=32, lm_head=False)
    d = diagnose(model, torch.randint(0, 100, (4, 16)), lint=False)
    fc, proj = d["h.0.mlp.c_fc"], d["h.0.mlp.c_proj"]  # Conv1D weights (64, 256), (256, 64)
    assert (fc.kind, fc.fan_in, proj.fan_in) == ("Conv1D", 64, 256)
    assert d["wte"].fan_in == 1  # one row per lookup
    for x in (fc, proj, d["h.1.attn.c_attn"]):
        assert x.forward_ratio == pytest.approx(1, abs=0.1), x.name


def test_a_healthy_vit_raises_no_backward_vanishing_alarm() -> None:
    # HF ViT's own init (N(0, 0.02)): an fc1 inside a branch gets ~0.02x the stream's gradient,
    # which alternated with the branch ends' along the execution order and read as "gradients
    # vanish" over all weight layers; the residual stream's gradient (at the branch ends) does
    # not vanish, and that is what the trend is fitted on
    zoo = load_benchmark("_zoo")
    spec = zoo.ZOO["hf-vit"]
    if zoo.unavailable(spec) is not None:
        pytest.skip(zoo.unavailable(spec))
    torch.manual_seed(0)
    model = spec.build()
    x, _ = spec.batch(torch.Generator().manual_seed(1), 16)
    d = diagnose(model, x, lint=False)
    assert not [f for f in d.findings if f.severity in ("warning", "error")], d.findings
