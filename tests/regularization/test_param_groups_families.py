"""param_groups agrees with timm's and the Hugging Face Trainer's rules, parameter by parameter,
except for the differences docs/param_groups.md lists (and nothing else).

The first tests build the families' blocks here (Swin V2's scaled cosine attention, XCiT's
temperature, a ConvNeXt-like stage with a FastViT-style C×1×1 layer scale), so CI without timm
covers the rules; the last ones compare with timm and transformers where they import.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stabletrain.regularization.param_groups import explain_param_groups, param_groups
from tests._timm import timm_or_skip


class CosineAttention(nn.Module):
    """Swin V2's scaled cosine attention: a per-head logit scale (heads×1×1), clamped and
    exponentiated; and XCiT's temperature (heads×1×1) multiplying the scores."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones(heads, 1, 1)))
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B, H, T, d)
        scores = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        scores = scores * torch.clamp(self.logit_scale, max=math.log(100)).exp()
        scores = scores * self.temperature
        return self.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, c))


class Gains(nn.Module):
    """Gains of every storage shape: C, 1×1×C, a scalar, and a class token to tell apart."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.attn = CosineAttention(dim, heads=4)
        self.gamma = nn.Parameter(1e-4 * torch.ones(dim))
        self.gamma_tokens = nn.Parameter(1e-4 * torch.ones(1, 1, dim))
        self.scale = nn.Parameter(torch.tensor(1.0))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.gamma * self.attn(x)
        return self.scale * (x + self.gamma_tokens * x)


class ConvBlock(nn.Module):
    """A ConvNeXt-like residual block whose layer scale is stored C×1×1 (FastViT)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm = nn.BatchNorm2d(dim)
        self.pw = nn.Conv2d(dim, dim, 1)
        self.gamma = nn.Parameter(1e-4 * torch.ones(dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.gamma * self.pw(self.norm(self.dw(x)))


class Stage(nn.Module):
    def __init__(self, cin: int, cout: int, depth: int) -> None:
        super().__init__()
        self.downsample = nn.Sequential(nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 2, stride=2))
        self.blocks = nn.Sequential(*[ConvBlock(cout) for _ in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class TinyConvNeXt(nn.Module):
    """Stem (a numbered conv and norm), two stages of two blocks, final norm and head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 2, stride=2), nn.BatchNorm2d(8))
        self.stages = nn.Sequential(Stage(8, 8, 2), Stage(8, 16, 2))
        self.norm = nn.LayerNorm(16)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.stages(self.stem(x)).mean((2, 3))))


def test_gains_of_every_shape_are_gains_without_decay_with_or_without_an_example_input() -> None:
    torch.manual_seed(0)
    model = Gains(16)
    x = torch.randn(2, 5, 16)
    for example in (None, x):
        report = explain_param_groups(model, 0.1, example_input=example)
        for name in (
            "attn.logit_scale",
            "attn.temperature",
            "gamma",
            "gamma_tokens",
            "scale",
        ):
            assert (report[name].category, report[name].weight_decay) == ("gain", 0.0), name
        assert report["cls_token"].category == "positional"
        assert report["attn.qkv.weight"].weight_decay == 0.1


def test_a_layer_scale_stored_c_by_1_by_1_is_a_gain_with_or_without_an_example_input() -> None:
    torch.manual_seed(0)
    model = TinyConvNeXt()
    plain = explain_param_groups(model, 0.1)
    traced = explain_param_groups(model, 0.1, example_input=torch.randn(2, 3, 16, 16))
    for report in (plain, traced):
        assert report["stages.0.blocks.1.gamma"].category == "gain"
        assert report["stages.0.blocks.1.gamma"].weight_decay == 0.0
    assert [r.category for r in plain.rows] == [r.category for r in traced.rows]


def test_layer_depth_counts_blocks_not_stages_and_puts_the_stem_at_zero() -> None:
    torch.manual_seed(0)
    model = TinyConvNeXt()
    x = torch.randn(2, 3, 16, 16)
    for example in (None, x):
        report = explain_param_groups(model, 0.1, layer_decay=0.5, example_input=example)
        depth = {row.name: row.depth for row in report.rows}
        assert depth["stem.0.weight"] == depth["stem.1.weight"] == 0
        assert [depth[f"stages.{s}.blocks.{b}.pw.weight"] for s in (0, 1) for b in (0, 1)] == [
            1,
            2,
            3,
            4,
        ]
        # a stage's downsampling joins the block after it, which reads its output
        assert depth["stages.1.downsample.1.weight"] == depth["stages.1.blocks.0.dw.weight"] == 3
        assert depth["stages.0.downsample.0.weight"] == 0  # runs before every block
        assert depth["norm.weight"] == depth["head.weight"] == 5


def test_layer_decay_gives_each_block_of_a_stage_its_own_learning_rate() -> None:
    torch.manual_seed(0)
    groups = param_groups(TinyConvNeXt(), 0.1, lr=1.0, layer_decay=0.5)
    lr = {name: g["lr"] for g in groups for name in g["param_names"]}
    assert lr["stages.0.blocks.0.pw.weight"] == 0.5**4
    assert lr["stages.0.blocks.1.pw.weight"] == 0.5**3
    assert lr["stem.0.weight"] == lr["stem.1.weight"] == 0.5**5
    assert lr["head.weight"] == 1.0


class Declaring(nn.Module):
    """A model and a submodule that declare their own no-decay parameters, as timm's do."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = CosineAttention(8, heads=2)
        self.attn.no_weight_decay = lambda: {"qkv.weight"}  # type: ignore[assignment,method-assign]
        self.bias_mlp = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
        self.proj = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.attn(x))

    def no_weight_decay(self) -> set[str]:
        return {"proj.*"}

    def no_weight_decay_keywords(self) -> set[str]:
        return {"bias_mlp"}


def test_the_models_own_no_weight_decay_declarations_exempt_what_they_name() -> None:
    torch.manual_seed(0)
    model = Declaring()
    report = explain_param_groups(model, 0.1)
    exempt = {r.name for r in report.rows if r.weight_decay == 0 and r.category == "weight"}
    assert exempt == {"attn.qkv.weight", "bias_mlp.0.weight", "bias_mlp.2.weight", "proj.weight"}
    assert "CosineAttention.no_weight_decay" in report["attn.qkv.weight"].reason
    assert report["attn.proj.weight"].weight_decay == 0.1
    ignored = explain_param_groups(model, 0.1, model_no_decay=False)
    assert ignored["proj.weight"].weight_decay == ignored["attn.qkv.weight"].weight_decay == 0.1


def test_a_no_weight_decay_that_returns_a_string_is_refused_by_name() -> None:
    model = nn.Linear(2, 2)
    model.no_weight_decay = lambda: "weight"  # type: ignore[assignment,method-assign]
    with pytest.raises(TypeError, match=r"no_weight_decay\(\) returned str.*model_no_decay=False"):
        param_groups(model, 0.1)


# --- timm -------------------------------------------------------------------------------------

TIMM_MODELS = ["resnet18", "convnext_atto", "vit_tiny_patch16_224", "efficientnet_b0"]


def _timm_model(name: str) -> Any:
    timm = timm_or_skip()
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, num_classes=10)


def _timm_decay(model: nn.Module) -> dict[str, bool]:
    from timm.optim import param_groups_weight_decay

    names = {id(p): n for n, p in model.named_parameters()}
    declared = model.no_weight_decay() if hasattr(model, "no_weight_decay") else ()
    groups = param_groups_weight_decay(model, 0.1, no_weight_decay_list=declared)
    return {names[id(p)]: g["weight_decay"] > 0 for g in groups for p in g["params"]}


def _allowed_decay_difference(row: Any) -> bool:
    """docs/param_groups.md, first row: gains with broadcast dims, which timm decays."""
    return row.category == "gain" and len(row.shape) >= 2 and row.weight_decay == 0


def _assert_same_decay_as_timm(model: nn.Module) -> None:
    theirs = _timm_decay(model)
    report = explain_param_groups(model, 0.1)
    differ = [r for r in report.rows if (r.weight_decay > 0) != theirs[r.name]]
    assert [r.name for r in differ if not _allowed_decay_difference(r)] == []


def _assert_same_depth_as_timm(model: nn.Module) -> None:
    from timm.models import group_parameters

    theirs = group_parameters(model, model.group_matcher(coarse=False), reverse=True)
    report = explain_param_groups(model, 0.1, layer_decay=0.5)
    top = max(row.depth for row in report.rows)
    assert max(theirs.values()) == top
    for row in report.rows:
        # docs/param_groups.md: what runs after the last block is at the top, where timm puts
        # it with the last block
        after_blocks = row.depth == top and theirs[row.name] == top - 1
        assert row.depth == theirs[row.name] or after_blocks, row.name


@pytest.mark.parametrize("name", TIMM_MODELS)
def test_weight_decay_matches_timm_parameter_by_parameter(name: str) -> None:
    _assert_same_decay_as_timm(_timm_model(name))


@pytest.mark.parametrize("name", TIMM_MODELS)
def test_layer_depth_matches_timms_block_grouping(name: str) -> None:
    _assert_same_depth_as_timm(_timm_model(name))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["swinv2_tiny_window8_256", "fastvit_t8", "xcit_nano_12_p16_224"])
def test_weight_decay_matches_timm_on_models_with_declared_or_shaped_gains(name: str) -> None:
    _assert_same_decay_as_timm(_timm_model(name))


@pytest.mark.slow
def test_layer_depth_matches_timm_on_swin_v2() -> None:
    _assert_same_depth_as_timm(_timm_model("swinv2_tiny_window8_256"))


# --- transformers -------------------------------------------------------------------------


def _hf_models() -> dict[str, Any]:
    t = pytest.importorskip("transformers")
    torch.manual_seed(0)
    small = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4}
    text = {**small, "vocab_size": 100, "num_hidden_layers": 1, "max_position_embeddings": 16}
    vision = {**small, "image_size": 32, "patch_size": 8, "num_hidden_layers": 1}
    return {
        "bert": lambda: t.BertModel(t.BertConfig(**text)),
        "gpt2": lambda: t.GPT2LMHeadModel(
            t.GPT2Config(
                vocab_size=100, n_embd=32, n_layer=1, n_head=4, bos_token_id=0, eos_token_id=0
            )
        ),
        "t5": lambda: t.T5ForConditionalGeneration(
            t.T5Config(vocab_size=100, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4)
        ),
        "llama": lambda: t.LlamaForCausalLM(t.LlamaConfig(**{**text, "num_key_value_heads": 2})),
        "vit": lambda: t.ViTForImageClassification(t.ViTConfig(**vision, num_labels=10)),
        "convnext": lambda: t.ConvNextForImageClassification(
            t.ConvNextConfig(num_stages=2, hidden_sizes=[8, 16], depths=[1, 1], num_labels=10)
        ),
        "clip": lambda: t.CLIPModel(
            t.CLIPConfig(
                text_config={**text, "bos_token_id": 0, "eos_token_id": 0},
                vision_config=vision,
                projection_dim=16,
            )
        ),
    }


HF_MODELS = ["bert", "gpt2", "t5", "llama", "vit", "convnext", "clip"]
# docs/param_groups.md: the categories the Trainer decays and stabletrain does not
HF_DIFFERENCES = {"embedding", "positional", "gain"}


@pytest.mark.parametrize("name", HF_MODELS)
def test_weight_decay_matches_the_hf_trainer_but_for_the_documented_categories(name: str) -> None:
    try:
        model = _hf_models()[name]()
        from transformers import Trainer
    except ImportError as error:  # e.g. a torchvision whose compiled ops do not load
        pytest.skip(f"transformers' models are not importable: {error}")
    theirs = set(Trainer.get_decay_parameter_names(None, model))
    report = explain_param_groups(model, 0.1)
    differ = [r for r in report.rows if (r.weight_decay > 0) != (r.name in theirs)]
    assert all(r.weight_decay == 0 for r in differ)
    assert {r.category for r in differ} <= HF_DIFFERENCES
    assert all(r.category not in HF_DIFFERENCES for r in report.rows if r.weight_decay > 0)
