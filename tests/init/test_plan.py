"""plan_init: auto_init's report without changing, drawing or allocating anything."""

from __future__ import annotations

import copy
import json
import math
import re
import subprocess
import sys
import threading
from typing import Any

import pytest
import torch
from torch import nn

from stabletrain.init import auto_init, plan_init
from stabletrain.init.policy import _plan
from stabletrain.init.policy._plan import META_TRACE_PARAMETERS
from stabletrain.models import mlp, transformer
from tests import _hf
from tests._subprocess import TORCHVISION_PLACEHOLDERS, python_env


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict(keep_vars=False).items()}


def _same_plan(model: nn.Module, example: Any, **kwargs: Any) -> None:
    """plan_init's schemes, gains and rules equal what auto_init does to a copy."""
    planned = plan_init(model, example, **kwargs)
    done = auto_init(copy.deepcopy(model), example, **kwargs)
    assert planned.planned
    assert not done.planned
    assert [r.name for r in planned.params] == [r.name for r in done.params]
    for p, d in zip(planned.params, done.params, strict=True):
        assert (p.scheme, p.rule, p.following) == (d.scheme, d.rule, d.following), p.name
        assert (p.gain is None) == (d.gain is None), p.name
        if p.gain is not None and d.gain is not None:
            assert p.gain == pytest.approx(d.gain, rel=1e-12), p.name
        assert math.isnan(p.std_after)
        assert (p.calibration, p.output_std) == (None, None)
        assert p.std_before == pytest.approx(d.std_before, rel=1e-6, nan_ok=True), p.name
    # the same notes, less the size of the corrections only the calibration pass measures
    assert planned.notes == [re.sub(r"; largest correction ×\S+$", "", n) for n in done.notes]
    assert planned.forward_passes == 0 < done.forward_passes


@pytest.mark.parametrize(
    ("build", "example"),
    [
        (lambda: mlp(16, 10, depth=4, width=64, activation="gelu"), lambda: torch.randn(32, 16)),
        (
            lambda: transformer(d_model=32, n_heads=4, n_layers=3, vocab_size=50, out_features=50),
            lambda: torch.randint(0, 50, (4, 12)),
        ),
    ],
    ids=["gelu-mlp", "pre-ln-transformer"],
)
def test_the_plan_is_what_auto_init_does_and_the_model_is_untouched(build, example) -> None:  # type: ignore[no-untyped-def]
    model, x = build(), example()
    before, rng = _state(model), torch.random.get_rng_state()
    plan_init(model, x)
    assert torch.equal(torch.random.get_rng_state(), rng)  # the plan drew nothing
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    _same_plan(model, x)


def test_a_model_traced_as_its_meta_twin_plans_like_auto_init(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_plan, "META_TRACE_PARAMETERS", 0)  # BERT-sized models take this path
    model = transformer(d_model=32, n_heads=4, n_layers=2, vocab_size=40, out_features=40)
    _same_plan(model, torch.randint(0, 40, (2, 8)))


def test_a_tied_hf_lm_plans_like_auto_init_with_the_tied_table_as_logits() -> None:
    pytest.importorskip("transformers")
    model = _hf.gpt2(32, 2, vocab=64)
    ids = torch.randint(1, 64, (2, 10))
    _same_plan(model, {"input_ids": ids})
    plan = plan_init(model, {"input_ids": ids})
    assert plan["transformer.wte.weight"].scheme == "logits"
    assert "tied" in plan["transformer.wte.weight"].rule
    assert any("Pre-LN residual stream" in n for n in plan.notes)


def test_a_meta_model_is_planned_without_materializing_it() -> None:
    with torch.device("meta"):
        model = mlp(16, 10, depth=3, width=64)
    reference = mlp(16, 10, depth=3, width=64)
    plan = plan_init(model, torch.randn(8, 16))
    done = auto_init(reference, torch.randn(8, 16))
    assert [(r.name, r.scheme, r.rule) for r in plan.params] == [
        (r.name, r.scheme, r.rule) for r in done.params
    ]
    assert all(p.is_meta for p in model.parameters())
    assert all(math.isnan(r.std_before) for r in plan.params)
    data = json.loads(plan.to_json())
    assert (data["planned"], data["forward_passes"]) == (True, 0)
    assert (data["params"][0]["std_before"], data["params"][0]["std_after"]) == (None, None)
    assert "init plan (nothing changed)" in str(plan)


class _ValueBranch(nn.Module):
    """A forward pass that reads a value: a meta tensor cannot take the branch."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        if bool(h.sum() > -1e9):
            h = torch.relu(h)
        return self.b(h)


@pytest.mark.parametrize("meta_trace_from", [0, META_TRACE_PARAMETERS])
def test_data_dependent_control_flow_is_traced_on_the_model_and_planned_on_its_twin(
    meta_trace_from: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # from 0 parameters on, the twin's meta trace is tried first: it fails, the model's row runs
    monkeypatch.setattr(_plan, "META_TRACE_PARAMETERS", meta_trace_from)
    model, x = _ValueBranch(), torch.randn(16, 8)
    model.a.weight.grad = torch.ones_like(model.a.weight)
    before, grad = _state(model), model.a.weight.grad.clone()
    plan = plan_init(model, x)
    assert (plan["a.weight"].scheme, plan["b.weight"].scheme) == ("he_normal", "logits")
    assert not any("planned on the model itself" in n for n in plan.notes)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.a.weight.grad is not None
    assert torch.equal(model.a.weight.grad, grad)


class _Uncopyable(nn.Sequential):
    """Holds a lock: ``copy.deepcopy`` refuses it, so no meta twin can be made."""

    def __init__(self) -> None:
        super().__init__(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4))
        self.lock = threading.Lock()


def test_a_model_without_a_twin_is_planned_on_itself_and_restored() -> None:
    model, x = _Uncopyable(), torch.randn(16, 8)
    before = _state(model)
    plan = plan_init(model, x)
    assert (plan["0.weight"].scheme, plan["2.weight"].scheme) == ("he_normal", "logits")
    assert any("planned on the model itself" in n for n in plan.notes)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_data_dependent_control_flow_on_a_meta_model_names_the_fix() -> None:
    with torch.device("meta"):
        model = _ValueBranch()
    with pytest.raises(
        ValueError, match=r"plan_init: _ValueBranch's forward pass needs values.*to_empty"
    ):
        plan_init(model, torch.randn(4, 8))


def test_without_calibration_the_plan_names_no_fit() -> None:
    model = transformer(d_model=32, n_heads=4, n_layers=2, vocab_size=40, out_features=40)
    x = torch.randint(0, 40, (2, 8))
    _same_plan(model, x, calibrate_layers=False)
    assert not any("fitted" in n for n in plan_init(model, x, calibrate_layers=False).notes)


def test_bad_input_is_refused_like_auto_init() -> None:
    with pytest.raises(TypeError, match=r"plan_init: expected an nn\.Module"):
        plan_init("model", torch.randn(2, 2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"plan_init.*residual"):
        plan_init(nn.Linear(2, 2), torch.randn(2, 2), residual="half")  # type: ignore[arg-type]


def test_a_1b_parameter_meta_llama_plans_without_allocating_its_weights() -> None:
    pytest.importorskip("transformers")
    # 1.1B parameters: 4.4 GB in fp32 if anything materialized them. The peak resident memory
    # of the whole process (torch and transformers imported: about 0.5 GB) must stay far below.
    code = TORCHVISION_PLACEHOLDERS + (
        "import resource, torch, transformers\n"
        "from stabletrain.init import plan_init\n"
        "cfg = transformers.LlamaConfig(vocab_size=32000, hidden_size=2048, "
        "intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32, "
        "num_key_value_heads=4)\n"
        "with torch.device('meta'):\n"
        "    model = transformers.LlamaForCausalLM(cfg)\n"
        "n = sum(p.numel() for p in model.parameters())\n"
        "plan = plan_init(model, {'input_ids': torch.randint(0, 32000, (2, 16))})\n"
        "rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print(n, len(plan.params), plan['model.layers.0.mlp.down_proj.weight'].rule, rss, "
        "sep='|')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=python_env(), check=True
    )
    n, records, rule, rss = done.stdout.strip().splitlines()[-1].split("|")
    assert int(n) > 1_000_000_000
    assert int(records) == 201
    assert "Pre-LN branch end" in rule
    assert float(rss) < 1500, f"peak RSS {rss} MB: the weights were materialized"
