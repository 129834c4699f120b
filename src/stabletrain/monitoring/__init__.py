"""Training health, layer by layer, while the model trains: measurements, findings and fixes.

>>> import torch
>>> from torch import nn
>>> from stabletrain.monitoring import MemorySink, TrainingMonitor, every
>>> model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))
>>> opt = torch.optim.Adam(model.parameters(), lr=1e-3)
>>> sink = MemorySink()
>>> x, y = torch.randn(64, 8), torch.randn(64, 1)
>>> with TrainingMonitor(model, opt, schedule=every(5), sinks=[sink], summary=False) as mon:
...     for _ in range(10):
...         loss = nn.functional.mse_loss(model(x), y)
...         opt.zero_grad()
...         loss.backward()
...         opt.step()
...         mon.step(loss)
>>> [step for step, _ in sink.series("grad_norm", "0")]
[5, 10]
"""

from typing import Any

from stabletrain.findings import SEVERITIES, Finding, Severity
from stabletrain.monitoring import metrics
from stabletrain.monitoring.monitor import HISTOGRAM_BINS, SkipCounter, TrainingMonitor
from stabletrain.monitoring.presets import PRESETS, Measurements, Preset, measurements
from stabletrain.monitoring.rules import RULES, FindingRule, LayerMeta, StepMetrics, Thresholds
from stabletrain.monitoring.schedules import Schedule, every
from stabletrain.monitoring.sinks import (
    METRICS,
    SCHEMA_VERSION,
    ConsoleSink,
    Histogram,
    JSONLSink,
    MemorySink,
    Row,
    Sink,
    TensorBoardSink,
    read_findings,
    read_jsonl,
    read_meta,
)

__all__ = [
    "HISTOGRAM_BINS",
    "METRICS",
    "PRESETS",
    "RULES",
    "SCHEMA_VERSION",
    "SEVERITIES",
    "ConsoleSink",
    "Finding",
    "FindingRule",
    "Histogram",
    "JSONLSink",
    "LayerMeta",
    "Measurements",
    "MemorySink",
    "Preset",
    "Row",
    "Schedule",
    "Severity",
    "Sink",
    "SkipCounter",
    "StepMetrics",
    "TensorBoardSink",
    "Thresholds",
    "TrainingMonitor",
    "every",
    "measurements",
    "metrics",
    "read_findings",
    "read_jsonl",
    "read_meta",
]


def __getattr__(name: str) -> Any:
    if name == "Rule":  # the former name of FindingRule, until 1.0
        from stabletrain.monitoring import rules

        return rules.Rule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
