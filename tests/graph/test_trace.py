"""trace: what follows each layer, observed at run time, with the model left as it was."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stabletrain.graph import trace


class Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c, self.d, self.e = (nn.Linear(8, 8) for _ in range(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.a(x))
        x = torch.tanh(self.b(x))
        x = F.gelu(self.c(x), approximate="tanh")
        h = self.d(x)
        x = h * torch.sigmoid(h)  # SiLU written out
        return F.leaky_relu(self.e(x), 0.2)


def test_functional_activations_are_observed_with_their_parameters() -> None:
    g = trace(Functional(), torch.randn(4, 8))
    got = {n: g.layers[n].activation for n in "abcde"}
    assert {n: a.op if a else None for n, a in got.items()} == {
        "a": "relu",
        "b": "tanh",
        "c": "gelu_tanh",
        "d": "silu",
        "e": "leaky_relu",
    }
    assert got["e"] is not None
    assert dict(got["e"].params) == {"negative_slope": 0.2}


def test_normalization_then_activation_and_dropout_in_between() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3),
        nn.BatchNorm2d(8),
        nn.ReLU(inplace=True),
        nn.Flatten(),
        nn.Linear(8 * 6 * 6, 16),
        nn.Dropout(0.5),
        nn.Tanh(),
        nn.Linear(16, 3),
    )
    g = trace(model, torch.randn(2, 3, 8, 8))
    assert g.layers["0"].following[0].describe() == "batch_norm -> relu"
    assert g.layers["0"].norm_follows
    act = g.layers["4"].activation
    assert act is not None
    assert act.op == "tanh"
    assert act.via_dropout
    assert g.layers["7"].follows("output")


class Block(nn.Module):
    def __init__(self, d: int, project: bool = False) -> None:
        super().__init__()
        self.fc1, self.fc2, self.bn = nn.Linear(d, d), nn.Linear(d, d), nn.BatchNorm1d(d)
        self.short = nn.Linear(d, d) if project else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.short(x) if self.short is not None else x
        return F.relu(skip + self.bn(self.fc2(F.relu(self.fc1(x)))))


def test_residual_branches_are_found_with_their_last_layer_norm_and_shortcut() -> None:
    model = nn.Sequential(Block(8), Block(8, project=True))
    g = trace(model, torch.randn(16, 8))
    assert len(g.residuals) == 2
    first, second = g.residuals
    assert first.layers == ("0.fc1", "0.fc2", "0.bn")
    assert first.last_layer == "0.fc2"
    assert first.last_norm == "0.bn"
    assert first.depth == 2
    assert first.shortcut == ()
    assert second.shortcut == ("1.short",)
    assert g.layers["0.bn"].follows("residual")
    assert g.residual_of("1.fc1") == second


class ParallelBlock(nn.Module):
    """Phi / GPT-J: ``x + attn(ln(x)) + mlp(ln(x))``, two sub-branches summed into one add."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(d)
        self.q, self.v, self.out = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln(x)
        scores = torch.softmax(self.q(h) @ h.transpose(-1, -2), -1)
        attn = self.out(scores @ self.v(h))
        return attn + self.fc2(F.gelu(self.fc1(h))) + x


def test_a_pre_ln_branch_of_parallel_sub_branches_ends_in_each_of_their_last_layers() -> None:
    model = nn.Sequential(ParallelBlock(8), ParallelBlock(8))
    g = trace(model, torch.randn(2, 5, 8))
    pre_ln = [b for b in g.residuals if b.pre_norm is not None]
    assert [b.pre_norm for b in pre_ln] == ["0.ln", "1.ln"]
    assert [b.ends for b in pre_ln] == [("0.out", "0.fc2"), ("1.out", "1.fc2")]
    assert pre_ln[0].last_layer == "0.fc2"  # the last one executed: what Fixup-style modes scale


def test_auto_init_fits_every_end_of_parallel_sub_branches_to_the_stream() -> None:
    from stabletrain import auto_init

    torch.manual_seed(0)
    model = nn.Sequential(ParallelBlock(16), ParallelBlock(16))
    report = auto_init(model, torch.randn(8, 5, 16), generator=torch.Generator().manual_seed(0))
    ends = [r.name for r in report.params if "Pre-LN branch end" in r.rule]
    assert ends == ["0.out.weight", "0.fc2.weight", "1.out.weight", "1.fc2.weight"]
    assert all("stream std/√4" in r.rule for r in report.params if r.name in ends)


def test_no_residual_without_a_layer_on_the_branch() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.fc(x)
            return h + h * 2

    assert trace(Twice(), torch.randn(2, 4)).residuals == []


class Shared(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 6)
        self.fc = nn.Linear(6, 6)

    def forward(self, ids: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        h = self.emb(ids)
        for _ in range(2):  # one layer called twice
            h = torch.relu(self.fc(h))
        if h.sum() > -1e9:  # data-dependent control flow: torch.fx cannot trace this
            h = h * scale
        return F.linear(h, self.emb.weight)  # tied output projection


def test_tied_weights_calls_counted_control_flow_and_dict_inputs() -> None:
    g = trace(Shared(), {"ids": torch.randint(0, 10, (3, 5)), "scale": 2.0})
    assert g.layers["fc"].calls == 2
    assert g.layers["fc"].order == (1, 2)
    assert g.params["emb.weight"].ops == ("embedding", "linear")
    assert any(f.kind == "output" for f in g.params["emb.weight"].following)


def test_recurrent_and_attention_weights_are_read_by_their_fused_ops() -> None:
    class Seq(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(4, 8, batch_first=True)
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h, _ = self.lstm(x)
            return self.attn(h, h, h)[0]

    g = trace(Seq(), torch.randn(2, 5, 4))
    assert g.params["lstm.weight_hh_l0"].ops == ("lstm",)
    assert g.params["attn.in_proj_weight"].ops == ("multi_head_attention_forward",)
    assert g.params["attn.out_proj.weight"].ops == ("multi_head_attention_forward",)
    assert g.unused == ()


def test_buffers_and_modes_are_exactly_as_before() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 2))
    model.train()
    model[2].eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trace(model, torch.randn(16, 4) * 5 + 3)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert model.training
    assert model[1].training
    assert not model[2].training


def test_a_failing_model_raises_value_error_and_leaves_no_hook() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.Linear(5, 2))
    with pytest.raises(ValueError, match="model raised RuntimeError on example_input"):
        trace(model, torch.randn(2, 4))
    for m in model.modules():
        assert not m._forward_hooks
        assert not m._forward_pre_hooks
    assert not nn.modules.module._global_forward_hooks
    assert not nn.modules.module._global_forward_pre_hooks
    assert torch.overrides._get_current_function_mode_stack() == []


def test_bad_input_types() -> None:
    with pytest.raises(TypeError, match=r"expected an nn\.Module"):
        trace(lambda x: x, torch.randn(2))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="example_input must be a tensor"):
        trace(nn.Linear(2, 2), "x")


def test_summed_embeddings_are_not_a_residual_branch() -> None:
    class Embed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tok, self.pos = nn.Embedding(10, 4), nn.Embedding(8, 4)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.tok(ids) + self.pos(torch.arange(ids.shape[1]) + 0 * ids[0])

    assert trace(Embed(), torch.randint(0, 8, (2, 5))).residuals == []


def test_a_submodule_error_caught_by_the_model_keeps_the_module_stack_right() -> None:
    class Fallback(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bad, self.fc = nn.Linear(3, 4), nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            with contextlib.suppress(RuntimeError):  # e.g. an optional fast path
                x = self.bad(x)
            return torch.tanh(self.fc(x))

    g = trace(Fallback(), torch.randn(2, 4))
    linear = [op for op in g.recording.ops if op.name == "linear"][-1]
    assert linear.module == "fc"
    assert g.layers["fc"].activation is not None
