"""auto_init: the documented scheme per layer, output stds on target, the model left intact."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn

from stabletrain.init import Rule, auto_init, default_rules, gain
from stabletrain.init.policy._roles import LOGIT_LOSS_EXCESS, TIED_FIT_EXCESS
from stabletrain.models import cnn, mlp, rnn, transformer

TOL = 0.20  # output std within 20% of the scheme's target


def outputs_and_inputs(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[float, float]]:
    """Per Linear/Conv layer: (output std, input second moment) on a forward pass of x."""
    stats: dict[str, tuple[float, float]] = {}
    handles = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear | nn.Conv2d):

            def hook(
                mod: nn.Module, args: tuple[torch.Tensor], out: torch.Tensor, name: str = name
            ) -> None:
                stats.setdefault(name, (float(out.std()), float(args[0].pow(2).mean())))

            handles.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return stats


def uniform_target_loss(logits: torch.Tensor) -> float:
    """Cross-entropy against uniform random targets, in expectation: the mean over rows of
    ``logsumexp(z) - mean(z)``."""
    z = logits.double().reshape(-1, logits.shape[-1])
    return float((torch.logsumexp(z, -1) - z.mean(-1)).mean())


@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu", "silu", "leaky_relu", "elu"])
@pytest.mark.parametrize("norm", [None, "batch", "layer"])
def test_every_mlp_layer_gets_the_documented_scheme_and_hits_its_target_std(
    activation: str, norm: str | None
) -> None:
    torch.manual_seed(0)
    model = mlp(32, 10, depth=6, width=128, activation=activation, norm=norm)
    report = auto_init(model, torch.randn(256, 32), generator=torch.Generator().manual_seed(0))
    # a BatchNorm after the layer: He with fan_out and the gain of the activation after the norm
    fan_out = norm == "batch"
    expected = "xavier_uniform" if activation == "tanh" and not fan_out else "he_normal"
    for i in range(1, 7):
        record = report[f"linear{i}.weight"]
        assert record.scheme == expected, record
        assert report[f"linear{i}.bias"].std_after == 0
    assert report["head.weight"].scheme == "logits"
    assert report["head.weight"].rule.startswith("output layer: output logits over 10 classes")
    stats = outputs_and_inputs(model, torch.randn(512, 32))  # a fresh batch
    for i in range(1, 7):
        record = report[f"linear{i}.weight"]
        out_std, in_sq = stats[f"linear{i}"]
        if record.calibration is not None:  # calibrated to unit pre-activations
            target = 1.0
        else:  # Var(z) = fan_in · Var(w) · E[x²] with the scheme's Var(w) (claim I5)
            g = gain(activation) if expected == "he_normal" else 1.0
            var_w = (
                g**2 / (128 if fan_out else 32 if i == 1 else 128)
                if expected == "he_normal"
                else 2 / ((32 if i == 1 else 128) + 128)
            )
            target = math.sqrt((32 if i == 1 else 128) * var_w * in_sq)
        assert out_std == pytest.approx(target, rel=TOL), (record.name, out_std, target)
    with torch.no_grad():  # fitted on the example batch to the logits role's step-0 loss
        loss = uniform_target_loss(model(torch.randn(512, 32)))
    assert loss == pytest.approx((1 + LOGIT_LOSS_EXCESS) * math.log(10), rel=0.01)
    # calibrated: no normalization follows and the activation is not saturating (tanh keeps
    # Xavier's gain 1: std 1 pre-activations would put it in the chaotic regime)
    assert (norm is None and activation != "tanh") == all(
        report[f"linear{i}.weight"].calibration is not None for i in range(1, 7)
    )


def test_norm_layers_start_at_weight_one_bias_zero() -> None:
    model = mlp(8, 2, depth=2, width=16, norm="layer")
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-3, 3)
    report = auto_init(model, torch.randn(4, 8))
    assert report["norm1.weight"].rule == "normalization: weight: 1"
    assert report["norm1.weight"].scheme == "ones"
    assert torch.equal(model.get_parameter("norm1.weight"), torch.ones(16))
    assert torch.equal(model.get_parameter("norm1.bias"), torch.zeros(16))


def test_deep_gelu_net_drifts_at_the_static_gain_and_calibration_fixes_it() -> None:
    torch.manual_seed(0)
    x, fresh = torch.randn(256, 128), torch.randn(512, 128)
    model = mlp(128, 10, depth=30, width=128, activation="gelu")
    auto_init(model, x, calibrate_layers=False, generator=torch.Generator().manual_seed(1))
    drift = outputs_and_inputs(model, fresh)["linear30"][0]
    report = auto_init(model, x, generator=torch.Generator().manual_seed(1))
    fixed = outputs_and_inputs(model, fresh)["linear30"][0]
    assert drift > 3.0  # GELU at its exact single-layer gain 1.5335 grows with depth
    assert fixed == pytest.approx(1.0, rel=TOL)
    assert any("calibrated 30 layer(s)" in n for n in report.notes)
    assert report.forward_passes <= 3


def test_recurrent_weights_are_orthogonal_per_gate_with_forget_bias_one() -> None:
    model = rnn("lstm", 6, 16, num_layers=2)
    report = auto_init(model, torch.randn(3, 7, 6))
    lstm = model.get_submodule("recurrent")
    for gate in lstm.weight_hh_l1.detach().chunk(4):
        torch.testing.assert_close(gate @ gate.T, torch.eye(16), atol=1e-5, rtol=0)
    bias = lstm.bias_ih_l0.detach()
    assert torch.equal(bias[16:32], torch.ones(16))
    assert bias[:16].abs().max() == 0
    assert bias[32:].abs().max() == 0
    assert lstm.bias_hh_l0.detach().abs().max() == 0
    assert report["recurrent.weight_ih_l0"].rule == "recurrent input-to-hidden: Xavier per gate"
    # Xavier per gate: Var = 2 / (6 + 16), not 2 / (6 + 64) as the fused matrix would give
    std = float(lstm.weight_ih_l0.detach().std())
    assert std == pytest.approx(math.sqrt(2 / 22), rel=0.1)


@pytest.mark.parametrize("kind", ["rnn", "gru"])
def test_other_recurrent_kinds(kind: str) -> None:
    model = rnn(kind, 6, 12)
    report = auto_init(model, torch.randn(3, 5, 6))
    assert report["recurrent.weight_hh_l0"].scheme == "orthogonal"
    assert not report.fallbacks


@pytest.mark.parametrize("position", ["pre", "post"])
def test_transformer_attention_is_xavier_per_block_and_nothing_is_missed(position: str) -> None:
    model = transformer(
        d_model=32, n_heads=4, n_layers=2, vocab_size=20, out_features=20, norm_position=position
    )
    report = auto_init(model, torch.randint(0, 20, (2, 9)))
    in_proj = model.get_parameter("blocks.0.attn.in_proj_weight").detach()
    for block in in_proj.chunk(3):  # Var = 2 / (32 + 32) per q/k/v block
        assert float(block.std()) == pytest.approx(math.sqrt(1 / 32), rel=0.1)
    assert report["blocks.0.mlp.fc.weight"].gain == pytest.approx(gain("gelu"))
    assert [p.name for p in report.fallbacks] == ["pos_embed"]  # listed, never silently skipped


def test_cnn_convs_followed_by_batchnorm_relu_get_he() -> None:
    model = cnn(1, 10, channels=(8, 16))
    report = auto_init(model, torch.randn(16, 1, 8, 8))
    convs = [p for p in report.params if p.shape[1:] in ((1, 3, 3), (8, 3, 3))]
    assert convs
    for record in convs:
        assert record.scheme == "he_normal"
        assert record.following == "batch_norm -> relu"
        assert record.calibration is None  # a norm follows: nothing to calibrate


class Zoo(nn.Module):
    """Functional activations, a custom activation module, a layer called twice, nesting,
    tied weights, dict input and data-dependent control flow."""

    class Swish(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * torch.sigmoid(x)

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(30, 16)
        self.inner = nn.ModuleDict({"a": nn.Sequential(nn.Linear(16, 16), self.Swish())})
        self.shared = nn.Linear(16, 16)
        self.sin = nn.Linear(16, 16)
        self.scale = nn.Parameter(torch.full((16,), 0.1))  # layer-scale: no rule, kept

    def forward(self, ids: torch.Tensor, flip: bool = False) -> torch.Tensor:
        h = self.inner["a"](self.emb(ids))
        for _ in range(2):
            h = F.elu(self.shared(h))
        if bool(h.mean() > -10):
            h = torch.sin(self.sin(h)) * self.scale
        return F.linear(h.flip(1) if flip else h, self.emb.weight)


class _ZeroGammaBlock(nn.Module):
    """A ResNet basic block whose last BatchNorm the model zero-initializes (timm, torchvision's
    ``zero_init_residual``): the branch starts as the identity."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))


def test_weights_read_only_by_a_batchnorm_get_he_fan_out_as_in_torchvision() -> None:
    # torchvision's and timm's ResNets: kaiming_normal_(mode="fan_out", nonlinearity="relu")
    # on every conv; the branch's last conv (BatchNorm, then the residual addition) included
    torch.manual_seed(0)
    width = 32
    model = nn.Sequential(_ZeroGammaBlock(width), _ZeroGammaBlock(width))
    report = auto_init(model, torch.randn(8, width, 6, 6))
    fan_out = width * 9
    for i in (0, 1):
        for conv in ("conv1", "conv2"):
            record = report[f"{i}.{conv}.weight"]
            assert record.scheme == "he_normal"
            assert record.rule == "BatchNorm follows: He, fan_out"
            assert record.gain == pytest.approx(math.sqrt(2))
            w = model[i].get_submodule(conv).weight.detach().flatten()
            # N(0, 2/fan_out): KS test of w / std against N(0, 1) (9216 draws)
            result = stats.kstest((w / math.sqrt(2 / fan_out)).numpy(), "norm")
            assert result.pvalue > 1e-3, (i, conv, result)


def test_the_batchnorm_rule_takes_the_gain_of_the_activation_after_the_norm() -> None:
    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.Tanh(), nn.Flatten())
    report = auto_init(model, torch.randn(8, 3, 6, 6), calibrate_layers=False)
    assert report["0.weight"].rule == "BatchNorm follows: He, fan_out"
    assert report["0.weight"].gain == pytest.approx(gain("tanh"))


def test_a_layer_whose_output_also_goes_elsewhere_is_not_read_only_by_its_norm() -> None:
    class Both(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(16, 16)
            self.bn = nn.BatchNorm1d(16)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.fc(x)
            return self.bn(h) + h

    report = auto_init(Both(), torch.randn(32, 16), calibrate_layers=False)
    assert report["fc.weight"].rule != "BatchNorm follows: He, fan_out"


def test_a_norm_weight_the_model_zero_initialized_is_kept_and_others_start_at_one() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(_ZeroGammaBlock(), _ZeroGammaBlock())
    with torch.no_grad():
        model[1].bn1.weight.fill_(0.3)  # not zero: re-initialized to 1
    report = auto_init(model, torch.randn(4, 8, 6, 6))
    for i in (0, 1):
        assert torch.equal(model[i].bn2.weight.detach(), torch.zeros(8))
        assert report[f"{i}.bn2.weight"].scheme == "keep"
        assert "zero-initialized by the model" in report[f"{i}.bn2.weight"].rule
        assert torch.equal(model[i].bn1.weight.detach(), torch.ones(8))


def test_awkward_models_are_handled_and_their_state_is_unchanged() -> None:
    model = Zoo()
    model.train()
    report = auto_init(model, {"ids": torch.randint(0, 30, (4, 6)), "flip": True})
    assert report["inner.a.0.weight"].following == "silu"
    assert report["inner.a.0.weight"].gain == pytest.approx(gain("silu"))
    assert report["shared.weight"].following == "elu(alpha=1)"
    assert report["sin.weight"].scheme == "xavier_uniform"  # unknown op: no activation
    assert report["sin.weight"].following.startswith("sin")
    assert [p.name for p in report.fallbacks] == ["scale"]
    assert torch.equal(model.scale.detach(), torch.full((16,), 0.1))
    names = [p.name for p in report.params]
    assert names.count("emb.weight") == 1  # tied: listed and initialized once
    assert model.training


def test_buffers_are_exactly_as_before() -> None:
    model = mlp(8, 2, depth=2, width=16, norm="batch")
    model.train()
    before = {k: v.clone() for k, v in model.named_buffers()}
    auto_init(model, torch.randn(32, 8) * 3 + 1)
    for k, v in model.named_buffers():
        assert torch.equal(v, before[k]), k
    assert model.training


def test_custom_rules_come_first_and_dicts_work() -> None:
    model = mlp(8, 2, depth=2, width=16)
    policy = [
        {
            "name": "mine",
            "scheme": "normal",
            "module": nn.Linear,
            "param": "weight",
            "options": {"std": 0.5},
        },
        *default_rules(),
    ]
    report = auto_init(model, torch.randn(64, 8), policy, calibrate_layers=False)
    assert report["linear1.weight"].rule == "mine"
    assert float(model.get_parameter("linear2.weight").detach().std()) == pytest.approx(
        0.5, rel=0.1
    )
    keep_all = [Rule("keep everything", "keep")]
    assert all(p.scheme == "keep" for p in auto_init(model, torch.randn(4, 8), keep_all).params)


def test_report_prints_and_serializes() -> None:
    model = mlp(8, 2, depth=2, width=16)
    report = auto_init(model, torch.randn(16, 8))
    text = str(report)
    assert "followed by" in text
    assert "linear1.weight" in text
    data = json.loads(report.to_json())
    assert {p["name"] for p in data["params"]} == {n for n, _ in model.named_parameters()}
    assert data["forward_passes"] == report.forward_passes


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m: auto_init(m, torch.randn(2, 5)), ValueError, "model raised RuntimeError"),
        (lambda m: auto_init(m, "x"), TypeError, "example_input must be a tensor"),
        (lambda m: auto_init(object(), torch.randn(2, 8)), TypeError, "expected an nn.Module"),
        (
            lambda m: auto_init(m, torch.randn(2, 8), [{"scheme": "zeros", "where": "x"}]),
            ValueError,
            r"unknown rule key\(s\) \['where'\]",
        ),
        (
            lambda m: auto_init(m, torch.randn(2, 8), [Rule("x", "kaiming")]),
            ValueError,
            "unknown scheme 'kaiming'",
        ),
        (
            lambda m: auto_init(m, torch.randn(2, 8), [{"name": "x"}]),
            ValueError,
            "needs a 'scheme'",
        ),
        (
            lambda m: auto_init(m, torch.randn(2, 8), residual="zeros"),
            ValueError,
            "unknown residual 'zeros'",
        ),
        (
            lambda m: auto_init(m, torch.randn(2, 8), [Rule("x", "zeros", following="swishy")]),
            ValueError,
            "unknown following 'swishy'",
        ),
    ],
)
def test_bad_input_raises_clear_errors(call, error, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=match):
        call(mlp(8, 2, depth=2, width=16))


class _ScaledHead(nn.Module):
    """An embedding, a LayerNorm, then logits ``(h · scale) @ Wᵀ`` (T5 scales its decoder
    output by ``d_model**-0.5`` before a tied LM head); ``tied`` reuses the table as W."""

    def __init__(self, scale: float, tied: bool) -> None:
        super().__init__()
        self.scale = scale
        self.emb = nn.Embedding(50, 32)
        self.norm = nn.LayerNorm(32)
        self.head = nn.Linear(32, 50, bias=False)
        if tied:
            self.head.weight = self.emb.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.emb(x)) * self.scale)


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("scale", [0.125, 1.0, 6.0])
def test_logits_layers_are_fitted_to_their_std_whatever_scale_reaches_them(
    scale: float, tied: bool
) -> None:
    torch.manual_seed(0)
    model = _ScaledHead(scale, tied)
    tokens = torch.randint(0, 50, (64, 16))
    report = auto_init(model, tokens, generator=torch.Generator().manual_seed(0))
    assert report["emb.weight" if tied else "head.weight"].scheme == "logits"
    with torch.no_grad():
        loss = uniform_target_loss(model(torch.randint(0, 50, (256, 16))))  # a fresh batch
    # a tied table takes the largest logits the 5% bound allows (it is also the input's scale)
    excess = TIED_FIT_EXCESS if tied else LOGIT_LOSS_EXCESS
    assert loss == pytest.approx((1 + excess) * math.log(50), rel=0.01)


def test_a_logits_bias_centres_every_class_so_none_is_preferred_at_step_0() -> None:
    # ReLU features pooled over positions have a positive mean, so W·mean(h) gives each class a
    # fixed offset: the bias takes it, and the loss of any labels (here all one class) starts
    # at the fitted 1.025·ln C, not above it
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
    model.append(nn.Linear(64, 10))
    x = torch.randn(512, 16) + 1.0
    report = auto_init(model, x, generator=torch.Generator().manual_seed(0))
    assert report["4.bias"].std_after > 0  # centred: no longer the zeros the bias rule drew
    with torch.no_grad():
        logits = model(torch.randn(2048, 16) + 1.0)  # a fresh batch
    offsets = (logits - model[4].bias.detach()).mean(0)  # what the classes' means were before
    assert float(offsets.abs().max()) > 0.3 * float(logits.std())
    # left: the example batch's sampling error of each mean, σ/√512 (5 standard errors)
    assert float(logits.mean(0).abs().max()) < 5 * float(logits.std()) / math.sqrt(512)
    one_class = torch.zeros(2048, dtype=torch.long)
    for c in range(10):
        loss = float(F.cross_entropy(logits, one_class + c))
        assert loss == pytest.approx((1 + LOGIT_LOSS_EXCESS) * math.log(10), rel=0.03)


def test_every_scheme_a_rule_accepts_is_drawn_by_one_registry_entry() -> None:
    from stabletrain.init.policy import SCHEMES
    from stabletrain.init.policy._registry import REGISTRY

    assert set(SCHEMES) == {*REGISTRY, "logits", "embedding", "norm_weight", "keep"}
    # each drawn scheme, applied by a rule to the weight of Linear(256, 128) before a ReLU
    expected = {  # std of the entries, from the scheme's formula
        "he_normal": math.sqrt(2 / 256),
        "he_uniform": math.sqrt(2 / 256),
        "xavier_uniform": math.sqrt(2) * math.sqrt(2 / (256 + 128)),
        "xavier_normal": math.sqrt(2) * math.sqrt(2 / (256 + 128)),
        "lecun_normal": math.sqrt(1 / 256),
        "lecun_uniform": math.sqrt(1 / 256),
        "orthogonal": math.sqrt(2) / math.sqrt(256),
        "zeros": 0.0,
        "ones": 0.0,
        "constant": 0.0,
        "normal": 0.02,
        "trunc_normal": 0.02 * 0.8796,  # N(0, 0.02²) cut at ±2σ: std × 0.8796
        "standard": 1 / math.sqrt(3 * 256),
    }
    assert set(expected) == set(REGISTRY)
    for scheme, std in expected.items():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 4))
        rule = Rule(
            name="under test", scheme=scheme, param="weight", dims=2, options={"gain": "auto"}
        )
        auto_init(model, torch.randn(64, 256), policy=[rule], calibrate_layers=False)
        got = float(model[0].weight.detach().std())
        # 32768 draws: the sample std's relative standard error is about 0.4%
        assert got == pytest.approx(std, rel=0.03, abs=1e-12), scheme
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8))
    auto_init(model, torch.randn(4, 8), policy=[Rule(name="ones", scheme="ones")])
    assert torch.equal(model[0].bias, torch.ones(8))
