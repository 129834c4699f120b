"""The framework adapters' shared sink: a logger's ``log_metrics`` gets the TensorBoard tags."""

from __future__ import annotations

from stabletrain.integrations._common import LogSink
from stabletrain.monitoring import Row


def test_log_metrics_gets_block_tags_and_no_zero_nonfinite_series() -> None:
    calls: list[tuple[dict[str, float], int]] = []
    sink = LogSink(lambda metrics, step: calls.append((metrics, step)), "CSVLogger")
    layer = "model.layers.0.self_attn.q_proj"
    sink.write(
        4,
        [
            Row(4, layer, "grad_norm", 0.25),
            Row(4, layer, "grad_nonfinite", 0.0),
            Row(4, layer, "weight_nonfinite", 0.0),
            Row(4, None, "loss", 1.5),
        ],
    )
    assert calls == [
        (
            {
                "stabletrain/grad_norm/model.layers.0/self_attn.q_proj": 0.25,
                "stabletrain/loss/(model)": 1.5,
                "stabletrain/grad_nonfinite/(model)": 0.0,
                "stabletrain/weight_nonfinite/(model)": 0.0,
            },
            4,
        )
    ]
