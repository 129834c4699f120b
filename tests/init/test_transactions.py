"""Model operations are transactions: a model that raises from its k-th forward pass on, for
every k, leaves parameters, buffers, train/eval flags and gradients bit-identical, and the error
names the stage that failed. (From the k-th pass on, not only at it: a trace on the first rows
of the batch is retried on more rows when the model raises, which a one-off failure would
pass.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

import stabletrain as st
from stabletrain.diagnostics import diagnose
from stabletrain.init import init_residual_, lsuv_


class Flaky(nn.Module):
    """A small residual GELU network with BatchNorm that raises from forward call ``fail_at`` on
    (never with ``fail_at=0``)."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at, self.calls = fail_at, 0
        self.stem = nn.Linear(8, 16)
        self.norm = nn.BatchNorm1d(16)
        self.fc1, self.fc2 = nn.Linear(16, 16), nn.Linear(16, 16)
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls >= self.fail_at > 0:
            raise RuntimeError(f"injected failure on forward pass {self.calls}")
        h = torch.relu(self.norm(self.stem(x)))
        h = h + self.fc2(nn.functional.gelu(self.fc1(h)))
        return self.head(h)


def _state(model: nn.Module) -> dict[str, Any]:
    return {
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "grads": {
            n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()
        },
        "modes": [m.training for m in model.modules()],
    }


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a["modes"] != b["modes"] or a["state"].keys() != b["state"].keys():
        return False
    if any(not torch.equal(a["state"][k], b["state"][k]) for k in a["state"]):
        return False
    return all(
        (x is None and y is None) or (x is not None and y is not None and torch.equal(x, y))
        for x, y in zip(a["grads"].values(), b["grads"].values(), strict=True)
    )


X = torch.randn(32, 8, generator=torch.Generator().manual_seed(0))

OPERATIONS: dict[str, Callable[[nn.Module], object]] = {
    "auto_init": lambda m: st.auto_init(m, X),
    "auto_init(residual=fixup)": lambda m: st.auto_init(m, X, residual="fixup"),
    "lsuv_": lambda m: lsuv_(m, X),
    "init_residual_": lambda m: init_residual_(m, X, "zero"),
    "diagnose(fix=True)": lambda m: diagnose(m, X, fix=True),
}


def _passes(operation: Callable[[nn.Module], object]) -> int:
    torch.manual_seed(0)
    model = Flaky(fail_at=0)
    operation(model)
    return model.calls


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_a_failure_at_every_forward_pass_leaves_the_model_bit_identical(name: str) -> None:
    operation = OPERATIONS[name]
    passes = _passes(operation)
    assert passes >= 1
    for fail_at in range(1, passes + 1):
        torch.manual_seed(0)
        model = Flaky(fail_at=0)
        model.train()
        model(X).sum().backward()  # gradients present: they must survive too
        model.calls = 0
        model.fail_at = fail_at
        before = _state(model)
        with pytest.raises((RuntimeError, ValueError)) as caught:
            operation(model)
        assert _same(before, _state(model)), (name, fail_at)
        notes = " ".join(getattr(caught.value, "__notes__", []))
        assert "failed while" in notes, (name, fail_at, notes)
        assert "restored" in notes, (name, fail_at, notes)


def test_the_undo_copy_can_live_in_host_memory() -> None:
    last = _passes(OPERATIONS["auto_init"])  # the calibration pass, after the trace
    torch.manual_seed(0)
    model = Flaky(fail_at=last)
    before = _state(model)
    with pytest.raises(RuntimeError, match="injected"):
        st.auto_init(model, X, snapshot="cpu")
    assert _same(before, _state(model))
    with pytest.raises(ValueError, match="valid options are 'device', 'cpu'"):
        st.auto_init(Flaky(0), X, snapshot="disk")  # type: ignore[arg-type]


def test_calibration_refuses_a_batch_that_asks_for_an_absurd_correction() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4))
    before = _state(model)
    with pytest.raises(ValueError, match=r"layer '0' has output std .* bound is ×1e\+06"):
        st.auto_init(model, X * 1e-30)
    assert _same(before, _state(model))


def test_a_non_finite_batch_is_named_and_nothing_changes() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4))
    before = _state(model)
    with pytest.raises(ValueError, match="non-finite"):
        st.auto_init(model, torch.full((4, 8), float("nan")))
    assert _same(before, _state(model))


def test_fp16_calibration_never_writes_inf() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4)).half()
    before = _state(model)
    with pytest.raises(ValueError, match=r"overflow|bound"):
        st.auto_init(model, (X * 1e-5).half())
    assert _same(before, _state(model))
    report = st.auto_init(model, X.half())  # a batch at a sane scale works
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert report["0.weight"].scheme == "he_normal"


def test_diagnose_fix_keeps_the_model_when_the_fix_measures_worse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import stabletrain.diagnostics.propagation as propagation

    real = propagation.auto_init

    def overconfident(model: nn.Module, x: Any, **kwargs: Any) -> Any:
        report = real(model, x, **kwargs)
        with torch.no_grad():
            model.get_parameter("head.weight").mul_(100.0)  # logits far from uniform
        return report

    monkeypatch.setattr(propagation, "auto_init", overconfident)
    torch.manual_seed(0)
    model = Flaky(fail_at=0).eval()
    before = _state(model)
    d = diagnose(model, X, fix=True)
    assert d.before is None
    assert "measured worse (step-0 loss" in d.notes[-1]
    assert "kept the model's own init" in d.notes[-1]
    assert _same(before, _state(model))


@pytest.mark.parametrize("operation", [st.auto_init, lsuv_])
def test_a_model_on_the_meta_device_gets_a_clear_error(operation: Callable[..., Any]) -> None:
    model = nn.Sequential(nn.Linear(8, 16, device="meta"), nn.ReLU(), nn.Linear(16, 4))
    with pytest.raises(ValueError, match=r"meta device .*to_empty"):
        operation(model, X)
