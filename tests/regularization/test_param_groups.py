"""param_groups: every trainable parameter in exactly one group, decided by structure."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stabletrain import models
from stabletrain.regularization.param_groups import (
    decay_parameters,
    explain_param_groups,
    param_groups,
)
from tests import _hf as hf


class RMSNorm(nn.Module):
    """A custom norm: torch does not know it, its class name and 1-D gain say what it is."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)


class Block(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = RMSNorm(dim)
        self.fc = nn.Linear(dim, dim)
        self.gamma = nn.Parameter(1e-4 * torch.ones(dim))  # layer scale (Touvron et al. 2021)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.gamma * self.fc(self.norm(x))


class TinyLM(nn.Module):
    """Embeddings, positional parameters, custom norms, layer scale, a tied head, a frozen
    layer and a parameter the forward pass never reads."""

    def __init__(self, dim: int = 16, length: int = 5, vocab: int = 11, blocks: int = 3) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.zeros(1, length, dim))  # broadcast: shape says positional
        self.pos_table = nn.Parameter(torch.zeros(length, dim))  # the trace (or the name) tells
        self.blocks = nn.ModuleList([Block(dim) for _ in range(blocks)])
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.tok.weight
        self.frozen = nn.Linear(dim, dim)
        self.frozen.requires_grad_(False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx) + self.pos + self.pos_table[: idx.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))


def _resnet_like() -> nn.Module:
    torch.manual_seed(0)
    body = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, bias=False),
        nn.GroupNorm(2, 8),
        nn.ReLU(),
        nn.ConvTranspose2d(8, 8, 2, stride=2),
        nn.InstanceNorm2d(8, affine=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),
    )
    return body


EXPECTED_TINY_LM = {
    "tok.weight": "embedding",
    "pos": "positional",
    "pos_table": "positional",
    "blocks.0.norm.scale": "norm",
    "blocks.0.fc.weight": "weight",
    "blocks.0.fc.bias": "bias",
    "blocks.0.gamma": "gain",
    "ln.weight": "norm",
    "ln.bias": "norm",
}


def _check_partition(model: nn.Module, groups: list[dict[str, object]]) -> None:
    """Every trainable parameter exactly once; no frozen one; names match tensors."""
    seen: list[int] = []
    for group in groups:
        params = group["params"]
        names = group["param_names"]
        assert isinstance(params, list)
        assert isinstance(names, list)
        named = dict(model.named_parameters(remove_duplicate=False))
        for name, param in zip(names, params, strict=True):
            assert named[name] is param
        seen += [id(p) for p in params]
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert len(seen) == len(set(seen)), "a parameter appears in two groups"
    assert set(seen) == trainable


@pytest.mark.parametrize("traced", [False, True])
def test_every_trainable_parameter_is_in_exactly_one_group_with_its_category(traced: bool) -> None:
    torch.manual_seed(0)
    model = TinyLM()
    example = torch.randint(0, 11, (2, 5)) if traced else None
    groups = param_groups(model, 0.1, example_input=example)
    _check_partition(model, groups)
    report = explain_param_groups(model, 0.1, example_input=example)
    for name, category in EXPECTED_TINY_LM.items():
        assert report[name].category == category, name
        assert report[name].weight_decay == (0.1 if category == "weight" else 0.0), name
    assert report["head.weight"].name == "tok.weight"  # tied: listed once, with its alias
    assert report["tok.weight"].aliases == ("head.weight",)
    assert report["frozen.weight"].group is None


class Shifted(nn.Module):
    """A (T, C) table added to the activations under a name that says nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.zeros(5, 4))
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C)
        return self.fc(x + self.table[: x.shape[1]])


def test_a_matrix_used_additively_is_decayed_by_shape_alone_but_not_once_traced() -> None:
    model = Shifted()
    assert explain_param_groups(model, 0.1)["table"].category == "weight"
    traced = explain_param_groups(model, 0.1, example_input=torch.randn(2, 5, 4))
    assert traced["table"].category == "positional"


def test_a_table_named_positional_is_not_decayed_without_a_trace() -> None:
    report = explain_param_groups(TinyLM(), 0.1)
    assert report["pos_table"].category == "positional"
    assert "named like a positional" in report["pos_table"].reason


def test_every_normalization_type_is_excluded_where_name_rules_fail() -> None:
    model = _resnet_like()
    report = explain_param_groups(model, 0.05)
    decayed = {r.name for r in report.rows if r.weight_decay > 0}
    # BatchNorm/GroupNorm/InstanceNorm weights are named "weight": a name rule would decay them
    assert decayed == {"0.weight", "3.weight", "6.weight", "10.weight"}
    _check_partition(model, param_groups(model, 0.05))


def test_the_groups_work_with_torch_optimizers_and_keep_names_in_the_state_dict() -> None:
    torch.manual_seed(0)
    model = _resnet_like()
    opt = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-3)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    opt.step()
    state = opt.state_dict()["param_groups"]
    assert [g["weight_decay"] for g in state] == [0.05, 0.0]
    assert "0.weight" in state[0]["param_names"]


def test_no_decay_is_configurable() -> None:
    model = TinyLM()
    report = explain_param_groups(model, 0.1, no_decay=("bias",))
    assert report["ln.weight"].weight_decay == 0.1
    assert report["blocks.0.fc.bias"].weight_decay == 0.0
    report = explain_param_groups(model, 0.1, no_decay=())
    assert all(r.weight_decay == 0.1 for r in report.rows if r.group is not None)


def test_overrides_by_type_glob_module_and_parameter_later_keys_win() -> None:
    model = TinyLM()
    report = explain_param_groups(
        model,
        0.1,
        overrides={
            nn.Embedding: {"weight_decay": 0.01},
            "blocks.1.*": {"weight_decay": 0.2},
            model.blocks[2]: {"weight_decay": 0.3},
            model.blocks[2].fc.bias: {"weight_decay": 0.4},
        },
    )
    assert report["tok.weight"].weight_decay == 0.01
    assert report["blocks.1.norm.scale"].weight_decay == 0.2
    assert report["blocks.2.fc.weight"].weight_decay == 0.3
    assert report["blocks.2.fc.bias"].weight_decay == 0.4
    assert report["blocks.0.fc.weight"].weight_decay == 0.1
    assert "override" in report["blocks.2.fc.bias"].reason


def test_layer_decay_scales_the_learning_rate_geometrically_by_block_depth() -> None:
    model = TinyLM(blocks=3)
    groups = param_groups(
        model, 0.1, lr=1e-3, layer_decay=0.5, example_input=torch.randint(0, 11, (2, 5))
    )
    lr_of = {n: g["lr"] for g in groups for n in g["param_names"]}
    # depth: embeddings 0, blocks 1..3, final norm 4 (the top, scale 1)
    assert lr_of["ln.weight"] == pytest.approx(1e-3)
    for block in range(3):
        expected = 1e-3 * 0.5 ** (3 - block)
        assert lr_of[f"blocks.{block}.fc.weight"] == pytest.approx(expected, rel=1e-12)
    assert lr_of["tok.weight"] == pytest.approx(1e-3 * 0.5**4)


def test_layer_decay_without_numbered_blocks_counts_weight_layers() -> None:
    model = models.mlp(4, 2, depth=3, width=8, norm="batch")
    report = explain_param_groups(model, 0.1, layer_decay=0.5, layer_wd_decay=0.5)
    assert [report[f"linear{i}.weight"].depth for i in (1, 2, 3)] == [1, 2, 3]
    assert report["norm2.weight"].depth == 2  # a norm joins the layer before it
    assert report["head.weight"].lr_scale == 1.0
    assert report["linear1.weight"].lr_scale == pytest.approx(0.125)
    assert report["linear1.weight"].weight_decay == pytest.approx(0.1 * 0.125)


def test_a_billion_parameter_model_on_the_meta_device_is_grouped_without_memory() -> None:
    with torch.device("meta"):
        model = nn.Sequential(*[nn.Sequential(nn.Linear(4096, 4096), nn.LayerNorm(4096))] * 1)
        big = nn.ModuleList(
            [nn.Sequential(nn.Linear(4096, 16384), nn.Linear(16384, 4096)) for _ in range(8)]
        )
        model.append(nn.Sequential(*big))
    groups = param_groups(model, 0.1)
    assert sum(p.numel() for g in groups for p in g["params"]) > 1e9
    _check_partition(model, groups)


def test_explain_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    param_groups(nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2)), 0.1, explain=True)
    out = capsys.readouterr().out
    assert "parameter groups" in out
    assert "LayerNorm" in out


def test_the_report_serializes_to_json() -> None:
    report = explain_param_groups(TinyLM(), 0.1)
    assert '"category": "positional"' in report.to_json()


def test_decay_parameters_are_the_decayed_weights() -> None:
    model = TinyLM()
    names = {id(p): n for n, p in model.named_parameters()}
    example = torch.randint(0, 11, (2, 5))
    assert {names[id(p)] for p in decay_parameters(model, example_input=example)} == {
        f"blocks.{i}.fc.weight" for i in range(3)
    }


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"weight_decay": -0.1}, ValueError, "must be >= 0"),
        ({"overrides": {nn.Linear: {"decay": 0.0}}}, ValueError, "unknown override option"),
        ({"overrides": {"haed.*": {"weight_decay": 0.0}}}, ValueError, "matches no parameter"),
        (
            {"overrides": {nn.Parameter(torch.ones(2)): {"weight_decay": 0.0}}},
            ValueError,
            "not a parameter of the model",
        ),
        ({"overrides": {nn.Linear(2, 2): {"weight_decay": 0.0}}}, ValueError, "not part of"),
        ({"overrides": {3: {"weight_decay": 0.0}}}, TypeError, "override key"),
        ({"overrides": {nn.Linear: 0.0}}, TypeError, "must be a dict"),
        ({"overrides": {nn.Linear: {"lr_scale": 0.0}}}, ValueError, "must be > 0"),
        ({"no_decay": ("biases",)}, ValueError, "unknown no_decay category"),
        ({"no_decay": "bias"}, TypeError, "collection of categories"),
        ({"layer_decay": 0.75}, ValueError, "needs the base learning rate"),
        ({"layer_decay": -1.0, "lr": 1e-3}, ValueError, "must be > 0"),
        ({"example_input": "text"}, TypeError, "example_input"),
        ({"layer_decay": 1e300, "lr": 1e-3}, ValueError, r"layer_decay=1e\+300 to the power"),
        ({"layer_decay": 1e-300, "lr": 1e-3}, ValueError, r"is 0, so a group would get"),
        ({"weight_decay": 1e300, "layer_wd_decay": 1e10}, ValueError, "overflows to inf"),
        ({"lr": 1e300, "overrides": {"*": {"lr_scale": 1e10}}}, ValueError, "lr × lr_scale"),
    ],
)
def test_bad_arguments_raise_clear_errors(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    arguments: dict[str, object] = {"weight_decay": 0.1, **kwargs}
    with pytest.raises(error, match=match):
        param_groups(TinyLM(), **arguments)  # type: ignore[arg-type]


def test_a_non_module_is_refused() -> None:
    with pytest.raises(TypeError, match=r"expected an nn\.Module"):
        param_groups([nn.Parameter(torch.ones(2))], 0.1)  # type: ignore[arg-type]


def test_hugging_face_models_decay_only_their_weight_matrices() -> None:
    pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = hf.gpt2(32, 2, n_head=2, vocab=50, positions=16)
    example = torch.randint(0, 50, (2, 8))
    groups = param_groups(model, 0.1, example_input=example)
    _check_partition(model, groups)
    decayed = [n for g in groups if g["weight_decay"] > 0 for n in g["param_names"]]
    # GPT-2's Conv1D weights are (in, out) matrices read by addmm: weights; nothing else decays
    assert len(decayed) == 8
    assert all(n.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")) for n in decayed)
