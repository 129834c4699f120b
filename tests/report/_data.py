"""Diagnoses built by hand and a small monitored run, shared by the report tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stabletrain.diagnostics import Diagnosis, LayerStats
from stabletrain.findings import Finding
from stabletrain.monitoring import JSONLSink, Thresholds, TrainingMonitor, every

# names a model may well hold (custom modules, ModuleDict keys) that break unescaped output
SCRIPT = "<script>alert(1)</script>"
HOSTILE = (f"blocks.0.{SCRIPT}", "a&b|c", "cost$x$", "plain.fc")
EDGES = tuple(float(e) for e in np.linspace(-3.0, 3.0, 25))


def layers(scale: float, names: tuple[str, ...] = HOSTILE) -> tuple[LayerStats, ...]:
    """Layers whose output std is ``scale**depth`` (theory: 1) and gradient std the reverse."""
    rng = np.random.default_rng(0)
    out = []
    n = len(names)
    for i, name in enumerate(names):
        std = scale**i
        counts, _ = np.histogram(rng.normal(0.0, std, 2000), bins=EDGES)
        out.append(
            LayerStats(
                name=name,
                kind="Linear",
                depth=i,
                activation="tanh",
                scheme="standard",
                fan_in=64,
                weight_std=0.05,
                out_mean=0.01,
                out_std=std,
                act_std=0.9 * std,
                zero_fraction=0.0,
                saturated_fraction=0.02 * i,
                grad_out_std=1e-2 * scale ** (n - 1 - i),
                grad_weight_std=1e-3,
                predicted_out_std=1.0,
                predicted_grad_out_std=1e-2,
                histogram=tuple(float(c) for c in counts),
            )
        )
    return tuple(out)


def diagnosis(scale: float = 1.0, *, names: tuple[str, ...] = HOSTILE) -> Diagnosis:
    """A fully measured diagnosis (no NaN), with hostile names, a finding and an init report."""
    ls = layers(scale, names)
    return Diagnosis(
        model="<MLP & co>",
        layers=ls,
        input_shape=(32, 64),
        loss="cross_entropy(random labels)",
        loss_value=2.31,
        forward_gain=ls[-1].out_std,
        backward_gain=ls[0].grad_out_std / ls[-1].grad_out_std,
        histogram_edges=EDGES,
        findings=[
            Finding(
                severity="warning",
                layer=names[0],
                metric="out_std",
                value=scale,
                threshold=0.5,
                message="Signal <shrinks> & vanishes | with depth.",
                fix="stabletrain.auto_init(model, example_input)",
                rule="propagation",
            )
        ],
        init_report={
            "params": [
                {
                    "name": f"{names[0]}.weight",
                    "layer": names[0],
                    "shape": [64, 64],
                    "following": "tanh",
                    "scheme": "xavier_normal",
                    "rule": "tanh -> xavier",
                    "std_before": 0.05,
                    "std_after": 0.125,
                    "gain": 1.0,
                    "calibration": None,
                    "output_std": None,
                    "fallback": False,
                }
            ],
            "notes": ["calibrated <1> layer & kept 0"],
            "forward_passes": 1,
        },
        notes=["the <loss> & labels are random"],
    )


def fixed_diagnosis() -> Diagnosis:
    """A fix's result: on theory after, shrinking with depth before (``before`` attached)."""
    after = diagnosis(1.0)
    after.before = diagnosis(0.5)  # type: ignore[attr-defined]  # a field of later versions
    return after


def monitored_run(path: Path, *, steps: int = 8, log_every: int = 1) -> list[Finding]:
    """Train a small broken MLP under TrainingMonitor writing ``path``; its findings.

    The first layer is scaled ×20 (the sigmoid saturates), the second is constant (symmetric
    units); short windows make the dead-unit and plateau rules eligible within a few steps.
    """
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(4, 16), nn.Sigmoid(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2)
    )
    with torch.no_grad():
        model[0].weight.mul_(20.0)
        nn.init.constant_(model[2].weight, 0.1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 4, generator=g), torch.randn(32, 2, generator=g)
    with TrainingMonitor(
        model,
        opt,
        preset="full",
        schedule=every(log_every),
        sinks=[JSONLSink(path)],
        thresholds=THRESHOLDS,
        summary=False,
    ) as mon:
        for _ in range(steps):
            loss = F.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(loss)
    return mon.findings()


THRESHOLDS = Thresholds(dead_window=2, loss_window=4)
